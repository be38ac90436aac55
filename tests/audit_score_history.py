"""The recorded history of tests/test_reports_audit_score.py: material changes across 2026-Q3 and
2026-Q4 with known gaps, and closed changes across 2026 for the success score's trend."""
from __future__ import annotations

from datetime import timedelta

from engine import accounts
from webui.extensions import db

from .report_history import Facts, History, Step, at

NORMAL = ("assess", "authorize", "scheduled", "implement", "review", "closed")
EMERGENCY = ("authorize", "implement", "review", "closed")


def life(key, created, until, *, change_type="normal", risk="low", hours=6, **fields) -> Facts:
    """A change that went by the book up to `until`; `fields` take away (or add) what the test needs."""
    path = EMERGENCY if change_type == "emergency" else NORMAL
    start = at(created)
    states = [(s, start + timedelta(hours=hours * (i + 1))) for i, s in enumerate(path[:path.index(until) + 1])]
    when = dict(states)
    approvals = []
    if "authorize" in when:
        steps = ["ecab"] if change_type == "emergency" else \
            ["change_manager"] + ["service_owner"] * (risk in ("moderate", "high")) + ["cab"] * (risk == "high")
        decided = when["authorize"] + timedelta(hours=1) if until != "authorize" else None
        approvals = [Step(s, when["authorize"], decided, approver={"ecab": "erin", "service_owner": "sam",
                                                                  "cab": "casey"}.get(s, "morgan")) for s in steps]
    if until == "closed":
        approvals.append(Step("business_acceptance", when["review"], when["review"] + timedelta(hours=1),
                              role="service_owner", approver="sam"))
    tasks = [Step("RetrospectiveReview", when["review"], when["review"] + timedelta(hours=2), role="cab_member",
                  approver="casey")] if change_type == "emergency" and until == "closed" else []
    facts = dict(key=key, change_type=change_type, risk=risk, created=start, states=states, approvals=approvals,
                 tasks=tasks, evidence=("test_result",),
                 implementation_result="completed" if "review" in when else None,
                 close_code="successful" if until == "closed" else None)
    return Facts(**{**facts, **fields})


def audit_history() -> list[Facts]:
    t = at
    ba_reject = Step("business_acceptance", t("2026-10-12 10:00"), t("2026-10-12 11:00"), decision="reject",
                     role="service_owner", approver="sam")
    return [
        life("complete", "2026-10-02 09:00", "closed", services=("crm-web", "payroll")),
        life("no-test", "2026-10-03 09:00", "closed", risk="moderate", evidence=()),
        life("superseded-test", "2026-10-04 09:00", "closed", evidence=(), superseded=(("test_result", "other"),)),
        life("corrected-test", "2026-10-04 10:00", "closed", evidence=(),
             superseded=(("test_result", "test_result"),)),
        life("no-implementer", "2026-10-05 09:00", "implement", implementer=None),
        life("emergency", "2026-10-06 09:00", "closed", change_type="emergency", risk="moderate",
             justification="", emergency_reason="Payroll run is failing.", services=("payroll",),
             incidents=("INC-7",), close_code="successful_with_issues"),
        life("emergency-no-retro", "2026-10-07 09:00", "closed", change_type="emergency", risk="high", tasks=[]),
        life("emergency-in-review", "2026-10-08 09:00", "review", change_type="emergency", risk="moderate"),
        life("emergency-no-ecab", "2026-10-08 12:00", "implement", change_type="emergency", risk="high",
             approvals=[]),
        Facts("canceled", created=t("2026-10-09 09:00"), risk="moderate", states=[
            ("assess", t("2026-10-09 10:00")), ("authorize", t("2026-10-09 11:00")), ("new", t("2026-10-10 09:00")),
            ("canceled", t("2026-10-11 09:00"))], implementer=None, evidence=(),
            approvals=[Step("change_manager", t("2026-10-09 11:00"), t("2026-10-10 09:00"), decision="reject")]),
        life("reopened", "2026-10-10 09:00", "closed", approvals=[
            Step("change_manager", t("2026-10-10 21:00"), t("2026-10-10 22:00")), ba_reject,
            Step("business_acceptance", t("2026-10-13 09:00"), t("2026-10-14 09:00"), round=2, role="service_owner",
                 approver="sam")], implementer="nina", services=("identity",), close_code="backed_out",
             states=[("assess", t("2026-10-10 15:00")), ("authorize", t("2026-10-10 21:00")),
                     ("scheduled", t("2026-10-11 03:00")), ("implement", t("2026-10-11 09:00")),
                     ("review", t("2026-10-11 15:00")), ("closed", t("2026-10-14 10:00"))]),
        life("reopen-pending", "2026-10-15 09:00", "review", approvals=[
            Step("change_manager", t("2026-10-15 21:00"), t("2026-10-15 22:00")),
            Step("business_acceptance", t("2026-10-17 10:00"), t("2026-10-17 11:00"), decision="reject",
                 role="service_owner", approver="sam")]),
        life("authorize-pending", "2026-10-16 09:00", "authorize", risk="high", approvals=[
            Step("change_manager", t("2026-10-16 21:00"), t("2026-10-16 22:00")),
            Step("service_owner", t("2026-10-16 22:00"), None, role="service_owner", approver="sam")]),
        life("high-no-cab", "2026-10-17 09:00", "closed", risk="high", implementer="morgan",
             approvals=[Step("change_manager", t("2026-10-17 21:00"), t("2026-10-17 22:00")),
                        Step("service_owner", t("2026-10-17 22:00"), t("2026-10-17 23:00"), role="service_owner",
                             approver="sam")],
             incidents=("INC-8", "INC-9"), close_code="unsuccessful", evidence=("test_result", "verification")),
        life("reworked", "2026-10-18 09:00", "closed", approvals=[
            Step("change_manager", t("2026-10-18 10:00"), t("2026-10-18 11:00"), decision="reject"),
            Step("change_manager", t("2026-10-19 10:00"), t("2026-10-19 11:00"), round=2),
            Step("business_acceptance", t("2026-10-20 10:00"), t("2026-10-20 11:00"), round=2)]),
        life("rejected-again", "2026-10-18 12:00", "scheduled", approvals=[
            Step("change_manager", t("2026-10-18 13:00"), t("2026-10-18 14:00")),
            Step("change_manager", t("2026-10-19 13:00"), t("2026-10-19 14:00"), decision="reject", round=2)]),
        life("no-source", "2026-10-19 09:00", "closed", justification=" "),
        life("incident-ref", "2026-10-20 09:00", "closed", justification="", incident_ref="INC-1"),
        life("no-service", "2026-10-21 09:00", "review", services=()),
        life("no-risk", "2026-10-22 09:00", "scheduled", risk=None),
        life("rollback-evidence", "2026-10-23 09:00", "implement", rollback_tested=False,
             evidence=("test_result", "rollback_plan")),
        life("rollback-untested", "2026-10-24 09:00", "implement", rollback_tested=False),
        life("no-rollback-plan", "2026-10-25 09:00", "closed", rollback_plan=""),
        life("no-result", "2026-10-26 09:00", "closed", implementation_result=None, implementer="morgan"),
        life("verification-only", "2026-10-27 09:00", "closed", evidence=("test_result", "verification"),
             approvals=[Step("change_manager", t("2026-10-27 21:00"), t("2026-10-27 22:00"))]),
        life("no-validation", "2026-10-28 12:00", "closed",
             approvals=[Step("change_manager", t("2026-10-29 06:00"), t("2026-10-29 07:00"))]),
        life("closed-after-rejection", "2026-10-29 12:00", "closed", approvals=[
            Step("change_manager", t("2026-10-30 06:00"), t("2026-10-30 07:00")),
            Step("business_acceptance", t("2026-10-31 10:00"), t("2026-10-31 11:00"), decision="reject",
                 role="service_owner", approver="sam")]),
        life("just-filed", "2026-12-30 09:00", "assess", risk=None, implementer=None),
        life("standard", "2026-10-28 09:00", "closed", change_type="standard"),
        life("q3-closed", "2026-08-03 09:00", "closed", services=("payroll",), close_code="successful_with_issues"),
        life("spanning", "2026-09-20 09:00", "closed", hours=72, services=("payroll",), implementer="nina"),
        life("open-across", "2026-08-10 09:00", "scheduled"),
        life("canceled-q3", "2026-07-10 09:00", "assess", states=[
            ("assess", t("2026-07-10 10:00")), ("canceled", t("2026-07-11 10:00"))], evidence=()),
        life("next-year", "2027-01-04 09:00", "assess"),
    ]


def score_history() -> list[Facts]:
    return [
        life("q1-a", "2026-02-02 09:00", "closed", services=("payroll",)),
        life("q1-b", "2026-03-02 09:00", "closed", services=("firewall",), implementer="nina", incidents=("INC-2",)),
        life("q2-a", "2026-05-04 09:00", "closed", services=("payroll", "firewall"), close_code="backed_out"),
        life("q2-b", "2026-06-01 09:00", "closed", implementer=None, close_code="successful_with_issues"),
        life("q4-a", "2026-11-02 09:00", "closed", services=("firewall",), implementer=None),
        life("q4-b", "2026-12-31 10:00", "closed", hours=2, services=("payroll",), implementer="morgan"),
    ]


def recorded(app) -> dict[str, tuple[Facts, int]]:
    with app.app_context():
        accounts.create_user(db.session, "nina", ["implementer"], team="network")
        h = History(db.session)
        for facts in audit_history() + score_history():
            h.add(facts)
        db.session.commit()
        return {key: (facts, h.ids[key]) for key, facts in h.facts.items()}
