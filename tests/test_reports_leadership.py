"""The IT leadership report against a recorded history of several dozen changes across 2026-Q3 and
2026-Q4: every figure is computed again here from the history's own facts, then compared.
Also: the report's exports (CSV, PDF rendered to an image, JSON API), its page with drill-downs, and
`changeflow report`."""
from __future__ import annotations

import csv
import io
import math
import subprocess
import sys
from datetime import timedelta

import pytest

from engine.errors import Forbidden
from engine.models import User
from engine.reports import build_report, changes_behind
from engine.reports.scope import parse_scope
from webui.extensions import db

from .report_history import Facts, History, Step, at
from .test_pages import sign_in

Q3, Q4 = parse_scope({"period": "2026-Q3"}), parse_scope({"period": "2026-Q4"})
CATEGORIES = ("infrastructure", "application_release", "access_control", "data_integration")
OUTCOMES = ("successful", "successful", "successful_with_issues", "successful", "unsuccessful", "successful",
            "backed_out")


def history_facts() -> list[Facts]:
    """48 changes created between 1 July and 15 December 2026, with known types, outcomes and times."""
    facts = []
    start = at("2026-07-01 08:00")
    for i in range(48):
        created = start + timedelta(days=i * 3.5, hours=i % 5)
        change_type = "emergency" if i % 10 == 0 else "standard" if i % 3 == 0 else "normal"
        states, approvals, tasks = [], [], []
        moment = created
        if change_type != "standard":
            moment += timedelta(minutes=1)
            states.append(("authorize", moment))
            asked = moment
            moment += timedelta(hours=2 + (i % 6) * 5)
            approvals.append(Step("change_manager", asked, moment, due=asked + timedelta(days=2)))
        canceled = i % 13 == 6
        if canceled:
            states.append(("canceled", moment + timedelta(hours=1)))
        elif i % 9 == 8 and created > at("2026-11-15 00:00"):  # still being implemented
            states += [("scheduled", moment), ("implement", moment + timedelta(days=1))]
            tasks.append(Step("implement", moment + timedelta(days=1), None, role="implementer", approver="ivan",
                              due=moment + timedelta(days=2)))
        else:
            scheduled = moment
            implement = scheduled + timedelta(days=1 + i % 4)
            review = implement + timedelta(hours=3 + i % 3)
            closed = review + timedelta(days=1 + i % 3, hours=i % 7)
            states += [("scheduled", scheduled), ("implement", implement), ("review", review), ("closed", closed)]
        closing = states[-1][0] == "closed"
        facts.append(Facts(
            key=f"c{i}", change_type=change_type, category=CATEGORIES[i % 4], risk=("low", "moderate", "high")[i % 3],
            created=created, states=states, approvals=approvals, tasks=tasks,
            close_code=OUTCOMES[i % 7] if closing else None,
            implementation_result="completed" if closing else None,
            incidents=(f"INC{i:04d}",) if closing and i % 8 == 2 else ()))
    # a change requested in Q3 and closed in Q4
    facts.append(Facts(key="boundary", created=at("2026-09-28 10:00"), states=[
        ("authorize", at("2026-09-28 10:01")), ("scheduled", at("2026-09-29 10:00")),
        ("implement", at("2026-10-02 20:00")), ("review", at("2026-10-02 23:00")), ("closed", at("2026-10-03 09:00"))],
        approvals=[Step("change_manager", at("2026-09-28 10:01"), at("2026-09-29 10:00"))],
        close_code="successful", implementation_result="completed"))
    # a reopened review: business acceptance rejected, then accepted after the impact was resolved
    facts.append(Facts(key="reopened", created=at("2026-10-20 09:00"), states=[
        ("authorize", at("2026-10-20 09:01")), ("scheduled", at("2026-10-21 09:00")),
        ("implement", at("2026-10-22 21:00")), ("review", at("2026-10-22 23:00")), ("closed", at("2026-10-27 12:00"))],
        approvals=[Step("change_manager", at("2026-10-20 09:01"), at("2026-10-21 09:00")),
                   Step("business_acceptance", at("2026-10-23 09:00"), at("2026-10-23 15:00"), decision="reject",
                        role="service_owner", approver="sam"),
                   Step("business_acceptance", at("2026-10-25 09:00"), at("2026-10-26 09:00"), round=2,
                        role="service_owner", approver="sam")],
        close_code="successful_with_issues", implementation_result="completed"))
    # an overdue approval still waiting at the end of Q4
    facts.append(Facts(key="waiting", created=at("2026-12-10 09:00"), states=[("authorize", at("2026-12-10 09:01"))],
                       approvals=[Step("change_manager", at("2026-12-10 09:01"), None, due=at("2026-12-12 09:01"))]))
    return facts


@pytest.fixture
def history(app):
    with app.app_context():
        recorded = History(db.session)
        for facts in history_facts():
            recorded.add(facts)
        db.session.commit()
    # not yielded inside the app context: requests would share its `g` (and its signed-in user)
    return recorded


def inside(moment, scope) -> bool:
    return moment is not None and scope.start <= moment < scope.end


def nearest_rank(values, p):
    ordered = sorted(values)
    return ordered[max(math.ceil(p * len(ordered)), 1) - 1] if ordered else None


def hours(a, b) -> float:
    return (b - a).total_seconds() / 3600


def expected(facts: list[Facts], scope) -> dict:
    requested = [f for f in facts if inside(f.created, scope)]
    closed = [f for f in facts if f.state == "closed" and inside(f.closed_at, scope)]
    failed = [f for f in closed if f.close_code in ("unsuccessful", "backed_out") or f.incidents]
    pct = lambda part, whole: round(100 * len(part) / len(whole), 1) if whole else None  # noqa: E731
    return {
        "requested": len(requested), "closed": len(closed),
        "failure_rate": pct(failed, closed), "success_rate": pct([f for f in closed if f not in failed], closed),
        "emergency_ratio": pct([f for f in requested if f.change_type == "emergency"], requested),
        "standard_share": pct([f for f in requested if f.change_type == "standard"], requested),
        "canceled": len([f for f in requested if f.state == "canceled"]),
        "requested_facts": requested, "closed_facts": closed, "failed_facts": failed,
    }


@pytest.mark.parametrize("scope", [Q3, Q4], ids=["Q3", "Q4"])
def test_every_leadership_figure_matches_the_recorded_history(app, history, scope):
    facts = list(history.facts.values())
    want = expected(facts, scope)
    with app.app_context():
        report = build_report(db.session, None, "leadership", scope, check_permission=False)
    for key in ("requested", "closed", "failure_rate", "success_rate", "emergency_ratio", "standard_share", "canceled"):
        assert report.figure(key).value == want[key], key
    assert want["closed"] > 10 and want["failed_facts"]  # the history is not trivial

    by_type = {r["label"]: r["count"] for r in report.table("by_type").rows}
    assert by_type == {t: sum(f.change_type == t for f in want["requested_facts"]) for t in ("standard", "normal", "emergency")}
    by_category = {r["label"]: r["count"] for r in report.table("by_category").rows}
    assert by_category == {c: n for c in CATEGORIES if (n := sum(f.category == c for f in want["requested_facts"]))}
    outcomes = {r["label"]: r["count"] for r in report.table("outcomes").rows}
    assert outcomes == {code: sum(f.close_code == code for f in want["closed_facts"])
                        for code in ("successful", "successful_with_issues", "unsuccessful", "backed_out")}

    lead = {r["label"]: r for r in report.table("lead_times").rows}
    stages = {"Request → authorized": ("created", "authorized"), "Authorized → implemented": ("authorized", "review"),
              "Implemented → closed": ("review", "closed"), "Request → closed": ("created", "closed")}
    for label, (first, last) in stages.items():
        def moment(f, name):
            if name == "created":
                return f.created
            if name == "authorized":  # left authorize for scheduled (standard changes never were there)
                return f.entered("scheduled") if f.entered("authorize") else None
            return f.entered(name)
        values = [hours(moment(f, first), moment(f, last)) for f in want["closed_facts"]
                  if moment(f, first) and moment(f, last)]
        assert lead[label]["changes"] == len(values), label
        assert lead[label]["median"] == round(nearest_rank(values, 0.5), 1), label
        assert lead[label]["p90"] == round(nearest_rank(values, 0.9), 1), label

    ages = {r["label"]: r for r in report.table("approval_ages").rows}
    decided = [s for f in facts for s in f.approvals if inside(s.decided, scope)]
    for step in {s.step for s in decided}:
        values = [hours(s.asked, s.decided) for s in decided if s.step == step]
        assert (ages[step]["decisions"], ages[step]["median"], ages[step]["p90"]) == (
            len(values), round(nearest_rank(values, 0.5), 1), round(nearest_rank(values, 0.9), 1)), step
    assert set(ages) == {s.step for s in decided}

    overdue = {r["label"]: r["count"] for r in report.table("overdue").rows}
    end = scope.end
    open_at_end = lambda s: s.asked < end and (s.decided is None or s.decided >= end) and s.due and s.due < end  # noqa: E731
    assert overdue["Approvals"] == sum(open_at_end(s) for f in facts for s in f.approvals)
    assert overdue["Other tasks"] == sum(open_at_end(s) for f in facts for s in f.tasks)


def test_the_boundary_and_reopened_changes_are_counted_where_they_belong(app, history):
    with app.app_context():
        q3 = build_report(db.session, None, "leadership", Q3, check_permission=False)
        q4 = build_report(db.session, None, "leadership", Q4, check_permission=False)
        boundary = history.ids["boundary"]
        requested_q3, _ = changes_behind(db.session, _user("audrey"), "leadership", Q3, "requested")
        closed_q3, _ = changes_behind(db.session, _user("audrey"), "leadership", Q3, "closed")
        closed_q4, total_q4 = changes_behind(db.session, _user("audrey"), "leadership", Q4, "closed")
    assert boundary in {c.id for c in requested_q3} and boundary not in {c.id for c in closed_q3}
    assert boundary in {c.id for c in closed_q4} and total_q4 == q4.figure("closed").value
    assert history.ids["reopened"] in {c.id for c in closed_q4}
    # the reopened review's two business-acceptance decisions are both approval ages; the change counts once
    assert next(r for r in q4.table("approval_ages").rows if r["label"] == "business_acceptance")["decisions"] == 2
    assert q3.figure("requested").value + q4.figure("requested").value == len(history.facts)


def test_the_number_and_the_list_behind_it_agree(app, history):
    with app.app_context():
        report = build_report(db.session, None, "leadership", Q4, check_permission=False)
        for figure in report.figures:
            if figure.drill and figure.unit == "count":
                _rows, total = changes_behind(db.session, _user("morgan"), "leadership", Q4, **figure.drill)
                assert total == figure.value, figure.key
        failed, total = changes_behind(db.session, _user("morgan"), "leadership", Q4, "failed")
    want = expected(list(history.facts.values()), Q4)
    assert {c.id for c in failed} == {history.ids[f.key] for f in want["failed_facts"]} and total == len(failed)


def test_requesters_may_not_read_it(app):
    with app.app_context():
        with pytest.raises(Forbidden):
            build_report(db.session, _user("alice"), "leadership", Q4)


def _user(name):
    return db.session.query(User).filter_by(username=name).one()


def test_csv_json_and_pdf_exports(app, history, api):
    answer = api.get("/api/reports/leadership?period=2026-Q4", "morgan")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["period"] == {"label": "2026-Q4", "from": "2026-10-01", "to": "2026-12-31", "kind": "quarter"}
    figures = {f["key"]: f["value"] for f in body["figures"]}
    assert figures["closed"] == expected(list(history.facts.values()), Q4)["closed"]

    as_csv = api.get("/api/reports/leadership?from=2026-10-01&to=2026-12-31&format=csv", "morgan")
    assert as_csv.headers["Content-Disposition"].endswith('changeflow-leadership-2026-Q4.csv"')
    rows = list(csv.reader(io.StringIO(as_csv.get_data(as_text=True))))
    figure_rows = {r[0]: r[2] for r in rows if len(r) >= 3 and r[0] in figures}
    assert figure_rows["closed"] == str(figures["closed"]) and figure_rows["failure_rate"] == str(figures["failure_rate"])
    assert ["# lead_times", "Lead times of the changes closed (hours)"] in rows

    pdf = api.get("/api/reports/leadership?period=2026-Q4&format=pdf", "morgan")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf.data)
    text = "".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
    assert "IT leadership" in text and "2026-Q4" in text and "Change failure rate" in text
    image = document[0].render(scale=1).to_pil().convert("L")
    dark = sum(image.histogram()[:128])
    assert dark > 2000  # text and bars were drawn, not a blank page
    assert api.get("/api/reports/leadership?period=2026-13", "morgan").status_code == 400
    assert api.get("/api/reports/leadership", "alice").status_code == 403
    assert api.get("/api/reports/nonsense", "morgan").status_code == 404


def test_the_page_links_each_number_to_the_changes_behind_it(app, history):
    client = app.test_client()
    sign_in(client, "morgan")
    page = client.get("/reports/leadership?period=2026-Q4").get_data(as_text=True)
    assert 'class="chart" data-chart="bar"' in page and "Change failure rate" in page
    import re

    link = re.search(r'id="figure-failed[^"]*"|href="(/reports/leadership/changes\?[^"]*metric=failed[^"]*)"', page).group(1)
    listed = client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    want = expected(list(history.facts.values()), Q4)["failed_facts"]
    assert f"{len(want)} change" in listed
    for facts in want:
        assert f"History {facts.key}<" in listed
    assert client.get("/reports/leadership.csv?period=2026-Q4").headers["Content-Type"].startswith("text/csv")
    index = client.get("/reports").get_data(as_text=True)
    assert "IT leadership" in index


def test_changeflow_report_writes_the_file(app, history, settings, tmp_path):
    target = tmp_path / "q4.csv"
    env = {"DATABASE_URL": settings.database_url, "CHANGEFLOW_INSTANCE_DIR": str(settings.instance_dir),
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "webui.cli", "report", "leadership", "--from", "2026-10-01",
                           "--to", "2026-12-31", "--format", "csv", "-o", str(target)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stderr and target.read_text().startswith("# report,IT leadership")
    bad = subprocess.run([sys.executable, "-m", "webui.cli", "report", "leadership", "--period", "2026-Q9",
                          "--format", "json", "-o", "-"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "period must be" in bad.stderr
