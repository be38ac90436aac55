"""The audit report (nine trace facts per material change, gaps first) and the change success score
(per service and implementing team, trend over four quarters), on a recorded history across 2026.

Every expected value is computed here from the test's own Facts, by the rules docs/reports.md states,
never by calling report code."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.demo import DEMO_SERVICES
from engine.errors import Forbidden
from engine.models import User
from engine.reports import build_report, changes_behind
from engine.reports.scope import quarter_scope
from webui.extensions import db

from .audit_score_history import NORMAL, recorded
from .report_history import Facts
from .test_pages import csrf, sign_in

RANK = {s: i for i, s in enumerate(("new",) + NORMAL)}
FACTS = ("request_source", "impacted_service", "risk_level", "owner", "approval", "test_evidence",
         "rollback_readiness", "implementation_result", "service_validation")
Q1, Q2, Q3, Q4 = (quarter_scope(2026, q) for q in (1, 2, 3, 4))
POINTS = {"successful": 3, "successful_with_issues": -2, "unsuccessful": -5, "backed_out": -5}
TEAMS = {"ivan": "platform", "nina": "network"}  # ivan's comes from the demo seed
NAMES = {key: name for key, name, *_ in DEMO_SERVICES}


# -- the rules, computed from the facts -------------------------------------------------------------

def reached(f: Facts, state: str) -> bool:
    return f.state in RANK and RANK[f.state] >= RANK[state]


def approved(f: Facts, steps, needed) -> bool:
    decided = [a for a in f.approvals if a.step in steps and a.decided]
    if not decided:
        return False
    this = [a for a in decided if a.round == max(a.round for a in decided)]
    return all(any(a.step == s and a.decision == "approve" for a in this) for s in needed) and \
        all(a.decision == "approve" for a in this)


def expected_facts(f: Facts) -> dict[str, str]:
    current = set(f.evidence) | {new for _, new in f.superseded}

    def fact(present, due):
        return "present" if present else "missing" if due else "not due"

    if f.change_type == "emergency":
        ecab = approved(f, ("ecab",), ("ecab",))
        retro = any(s.step == "RetrospectiveReview" and s.decided for s in f.tasks)
        approval = "present" if ecab and retro else \
            "missing" if reached(f, "closed") or (reached(f, "scheduled") and not ecab) else "not due"
    else:
        risk = f.risk or "low"
        needed = ["change_manager"] + ["service_owner"] * (risk != "low") + ["cab"] * (risk == "high")
        approval = fact(approved(f, ("change_manager", "service_owner", "cab"), needed), reached(f, "scheduled"))
    return {
        "request_source": fact(any(x.strip() for x in (f.justification, f.incident_ref or "", f.emergency_reason)),
                               True),
        "impacted_service": fact(bool(f.services), True),
        "risk_level": fact(bool(f.risk), reached(f, "authorize") or f.state == "canceled"),
        "owner": fact(f.implementer is not None, reached(f, "implement")),
        "approval": approval,
        "test_evidence": fact("test_result" in current, reached(f, "implement")),
        "rollback_readiness": fact(bool(f.rollback_plan.strip()) and (f.rollback_tested or "rollback_plan" in current),
                                   reached(f, "implement")),
        "implementation_result": fact(bool(f.implementation_result), reached(f, "review")),
        "service_validation": fact(approved(f, ("business_acceptance",), ("business_acceptance",))
                                   or "verification" in current, reached(f, "closed")),
    }


def of_period(f: Facts, scope) -> bool:
    ended = f.closed_at or f.entered("canceled")
    return f.change_type != "standard" and f.created < scope.end and (ended is None or ended >= scope.start)


def number(change_id: int) -> str:
    return f"CHG{change_id:07d}"


def user(name: str) -> User:
    return db.session.scalar(select(User).where(User.username == name))


def behind(kind, scope, metric, group=None) -> set[int]:
    rows, total = changes_behind(db.session, user("audrey"), kind, scope, metric, group)
    assert total == len(rows)
    return {c.id for c in rows}


# -- audit -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scope", [Q4, Q3], ids=["2026-Q4", "2026-Q3"])
def test_audit_marks_every_fact_of_every_material_change_gaps_first(app, scope):
    history = recorded(app)
    mine = {key: (f, i, expected_facts(f)) for key, (f, i) in history.items() if of_period(f, scope)}
    assert ("canceled" in mine, "spanning" in mine, "open-across" in mine) == (scope is Q4, True, True)
    assert "standard" not in mine and "next-year" not in mine and ("canceled-q3" in mine) == (scope is Q3)
    gaps = {key: list(e.values()).count("missing") for key, (_f, _i, e) in mine.items()}
    order = sorted(mine, key=lambda k: (-gaps[k], number(mine[k][1])))
    with app.app_context():
        report = build_report(db.session, user("audrey"), "audit", scope)
        rows = report.table("changes").rows
        assert [r["number"] for r in rows] == [number(mine[k][1]) for k in order]
        for row, key in zip(rows, order):
            f, _, expected = mine[key]
            assert {k: row[k] for k in FACTS} == expected, key
            assert (row["gaps"], row["type"], row["state"]) == (gaps[key], f.change_type, f.state)
        assert report.figure("material").value == len(mine)
        assert report.figure("with_gaps").value == sum(1 for g in gaps.values() if g)
        assert behind("audit", scope, "with_gaps") == {i for k, (_f, i, _e) in mine.items() if gaps[k]}
        assert behind("audit", scope, "material") == {i for _f, i, _e in mine.values()}
        table = {r["label"]: r for r in report.table("gaps_by_fact").rows}
        for fact, row in zip(FACTS, table.values()):
            for value, column in (("missing", "missing"), ("not due", "not_due"), ("present", "present")):
                ids = {i for _f, i, e in mine.values() if e[fact] == value}
                assert row[column] == len(ids) and behind("audit", scope, f"{column}:{fact}") == ids, (fact, value)
            assert report.figure(f"missing_{fact}").value == row["missing"]
        first = rows[0]["number"]
        assert behind("audit", scope, "change", first) == {i for _f, i, _e in mine.values() if number(i) == first}


def test_the_known_gaps_are_where_the_history_put_them(app):
    history = recorded(app)
    with app.app_context():
        rows = {r["number"]: r for r in build_report(db.session, user("morgan"), "audit", Q4).table("changes").rows}
    cell = {key: rows[number(i)] for key, (_f, i) in history.items() if number(i) in rows}
    assert cell["complete"]["gaps"] == 0 and {cell["complete"][k] for k in FACTS} == {"present"}
    assert cell["no-test"]["test_evidence"] == cell["superseded-test"]["test_evidence"] == "missing"
    assert cell["corrected-test"]["test_evidence"] == "present"
    assert (cell["no-implementer"]["owner"], cell["no-implementer"]["implementation_result"]) == ("missing", "not due")
    assert cell["emergency"]["approval"] == "present" and cell["emergency"]["request_source"] == "present"
    assert cell["emergency-no-retro"]["approval"] == "missing" and cell["emergency-no-ecab"]["approval"] == "missing"
    assert cell["emergency-in-review"]["approval"] == "not due"
    # a canceled change owes only its request; what it recorded anyway (a tested rollback plan) is present
    assert [cell["canceled"][k] for k in FACTS] == ["present"] * 3 + ["not due"] * 3 + ["present"] + ["not due"] * 2
    assert cell["reopened"]["service_validation"] == "present"  # one row, both acceptance rounds
    assert list(rows).count(number(history["reopened"][1])) == 1
    assert cell["reopen-pending"]["service_validation"] == "not due"
    assert cell["authorize-pending"]["approval"] == "not due" and cell["high-no-cab"]["approval"] == "missing"
    assert cell["reworked"]["approval"] == "present" and cell["rejected-again"]["approval"] == "missing"
    assert cell["no-source"]["request_source"] == "missing" and cell["incident-ref"]["request_source"] == "present"
    assert cell["no-service"]["impacted_service"] == "missing" and cell["no-risk"]["risk_level"] == "missing"
    assert cell["rollback-evidence"]["rollback_readiness"] == "present"
    for key in ("rollback-untested", "no-rollback-plan"):
        assert cell[key]["rollback_readiness"] == "missing"
    assert cell["no-result"]["implementation_result"] == "missing"
    assert cell["verification-only"]["service_validation"] == "present"
    for key in ("no-validation", "closed-after-rejection"):  # nobody accepted; the only round rejected
        assert cell[key]["service_validation"] == "missing"
    assert cell["just-filed"]["gaps"] == 0 and cell["just-filed"]["risk_level"] == "not due"


def test_the_audit_follows_the_service_filter(app):
    history = recorded(app)
    scope = quarter_scope(2026, 4, service="payroll")
    with app.app_context():
        report = build_report(db.session, user("ada"), "audit", scope)
    expected = {number(i) for f, i in history.values() if of_period(f, Q4) and "payroll" in f.services}
    assert {r["number"] for r in report.table("changes").rows} == expected
    assert number(history["spanning"][1]) in expected and number(history["no-test"][1]) not in expected


# -- success score ---------------------------------------------------------------------------------

def points(f: Facts) -> int:
    return POINTS.get(f.close_code, 0) - 5 * len(f.incidents)


def closed_in(f: Facts, scope) -> bool:
    return f.state == "closed" and scope.start <= f.closed_at < scope.end


def team(f: Facts) -> str:
    return "(no implementer)" if f.implementer is None else TEAMS.get(f.implementer, f.implementer)


def scores(history, scope, group_of) -> dict[str, tuple[int, int, set[int]]]:
    out: dict[str, tuple[int, int, set[int]]] = {}
    for f, i in history.values():
        if closed_in(f, scope):
            for group in group_of(f):
                score, count, ids = out.get(group, (0, 0, set()))
                out[group] = (score + points(f), count + 1, ids | {i})
    return out


def test_success_score_per_service_and_team_with_the_trend(app):
    history = recorded(app)
    periods = [Q1, Q2, Q3, Q4]
    with app.app_context():
        assert user("ivan").team == "platform"
        report = build_report(db.session, user("sam"), "success-score", Q4)
        closed = [f for f, _ in history.values() if closed_in(f, Q4)]
        assert report.figure("score").value == sum(points(f) for f in closed)
        assert report.figure("closed").value == len(closed)
        assert report.figure("incidents").value == sum(len(f.incidents) for f in closed) == 3
        made = {r["label"]: (r["changes"], r["points"]) for r in report.table("points").rows}
        for code, value in POINTS.items():
            n = sum(1 for f in closed if f.close_code == code)
            assert made[code] == (n, value * n)
        assert sum(p for _, p in made.values()) == report.figure("score").value
        for key, group_of, label in (("by_service", lambda f: f.services, NAMES.get),
                                     ("by_team", lambda f: [team(f)], lambda g: g)):
            per = [scores(history, p, group_of) for p in periods]
            groups = {g for s in per for g in s}
            table = report.table(key)
            assert table.chart == "line" and table.chart_columns == [f"period_{n}" for n in range(4)]
            assert [c.label for c in table.columns[3:]] == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
            expected = sorted(({"label": label(g), "score": per[3][g][0] if g in per[3] else None,
                                "changes": per[3][g][1] if g in per[3] else 0,
                                **{f"period_{n}": per[n][g][0] if g in per[n] else None for n in range(4)}}
                               for g in groups),
                              key=lambda r: (r["score"] is None, -(r["score"] or 0), r["label"]))
            assert [{k: v for k, v in r.items() if k != "drill"} for r in table.rows] == expected
            for row in table.rows:  # every cell lists exactly the changes it scores
                for n in range(4):
                    drill = row["drill"][f"period_{n}"]
                    group = next(g for g in groups if label(g) == row["label"])
                    ids = per[n][group][2] if group in per[n] else set()
                    assert behind("success-score", Q4, drill["metric"], drill["group"]) == ids
        trend = {r["label"]: [r[f"period_{n}"] for n in range(4)] for t in ("by_service", "by_team")
                 for r in report.table(t).rows}
        # by hand: payroll Q1 q1-a +3; Q2 q2-a backed out −5; Q3 q3-closed with issues −2; Q4 complete +3,
        # emergency −2 −5 (one incident), spanning +3, q4-b +3
        assert trend["Payroll"] == [3, -5, -2, 2] and trend["Perimeter firewall"] == [-2, -5, None, 3]
        # morgan (no team): high-no-cab −5 −10 (two incidents), no-result +3, q4-b +3; nina's team: −5 +3
        assert trend["morgan"] == [None, None, None, -9] and trend["network"] == [-2, None, None, -2]
        teams = {r["label"]: r for r in report.table("by_team").rows}
        assert {"platform", "network", "morgan", "(no implementer)"} <= set(teams)
        assert teams["(no implementer)"]["drill"]["score"]["group"] == "(none)"


def test_requesters_and_others_without_the_rule_are_forbidden(app):
    recorded(app)
    with app.app_context():
        for name, kind in (("alice", "audit"), ("alice", "success-score"), ("sam", "audit"), ("ivan", "audit"),
                           ("ivan", "success-score")):
            with pytest.raises(Forbidden):
                build_report(db.session, user(name), kind, Q4)
            with pytest.raises(Forbidden):
                changes_behind(db.session, user(name), kind, Q4, "closed" if kind != "audit" else "material")
        assert build_report(db.session, user("casey"), "success-score", Q4).figure("closed").value > 0


# -- the team on the admin pages -------------------------------------------------------------------

def test_an_admin_sets_a_team_that_the_score_then_counts_under(app):
    recorded(app)
    admin = app.test_client()
    sign_in(admin, "ada")
    page = admin.get("/admin/users/morgan").get_data(as_text=True)
    assert '<label for="team">Team</label>' in page and '<option value="network">' in page
    form = {"csrf_token": csrf(page), "display_name": "Morgan", "email": "", "roles": ["change_manager"]}
    refused = admin.post("/admin/users/morgan", data={**form, "team": "x" * 65})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="team-error"' in html and f'value="{"x" * 65}"' in html
    assert admin.post("/admin/users/morgan", data={**form, "team": " network "}).status_code == 302
    with app.app_context():
        assert user("morgan").team == "network"
    created = admin.post("/admin/users/new", data={**form, "username": "olga", "team": "storage"})
    assert created.status_code == 302
    auditor = app.test_client()
    sign_in(auditor, "audrey")
    assert "<dt>Team</dt><dd>storage</dd>" in auditor.get("/admin/users/olga").get_data(as_text=True)
    with app.app_context():
        teams = {r["label"] for r in build_report(db.session, user("morgan"), "success-score", Q4)
                 .table("by_team").rows}
        assert "network" in teams and "morgan" not in teams


def test_a_period_with_nothing_in_it_gives_zeros_and_no_scores(app):
    recorded(app)
    empty = quarter_scope(2025, 2)
    with app.app_context():
        audit = build_report(db.session, user("audrey"), "audit", empty)
        score = build_report(db.session, user("audrey"), "success-score", empty)
    assert audit.figure("material").value == audit.figure("with_gaps").value == 0 and not audit.table("changes").rows
    assert {r["missing"] for r in audit.table("gaps_by_fact").rows} == {0}
    assert score.figure("score").value is None and score.figure("closed").value == 0
    assert not score.table("by_service").rows and not score.table("by_team").rows
