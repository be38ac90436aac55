"""The facts of the service-owner and steering report tests: a history across 2026-Q3 and 2026-Q4 on
services that depend on each other, and the figures computed from those facts alone (never by the
report code), for tests/test_reports_service_owner_steering.py."""
from __future__ import annotations

from collections import deque
from datetime import timedelta
from decimal import Decimal

from engine.reports.scope import parse_scope

from .report_history import Facts, Step, at

Q3, Q4 = parse_scope({"period": "2026-Q3"}), parse_scope({"period": "2026-Q4"})
SERVICES = ("crm-web", "identity", "payroll", "data-warehouse", "cloud-capacity", "firewall", "intranet",
            "service-desk")
DEPENDS = (("crm-web", "identity", "calls"), ("identity", "cloud-capacity", "runs_on"),
           ("payroll", "cloud-capacity", "runs_on"), ("payroll", "identity", "calls"),
           ("data-warehouse", "payroll", "feeds_data_to"), ("cloud-capacity", "firewall", "runs_on"),
           ("firewall", "identity", "calls"), ("intranet", "crm-web", "calls"))  # identity→cloud→firewall→identity
CATEGORIES = ("infrastructure", "application_release", "access_control", "data_integration")
OUTCOMES = ("successful", "successful", "successful_with_issues", "unsuccessful", "successful", "backed_out",
            "successful")
CODES = ("successful", "successful_with_issues", "unsuccessful", "backed_out")


def acceptance(asked, decided=None, approver="sam", **more) -> Step:
    return Step("business_acceptance", asked, decided, role="service_owner", approver=approver, assigned=True, **more)


def routine(i: int) -> Facts:
    created = at("2026-07-02 09:00") + timedelta(days=5 * i, hours=i % 4)
    service = SERVICES[i % 8]
    start = (created + timedelta(days=6)).replace(hour=22, minute=0)
    end = start + timedelta(minutes=60 + 30 * (i % 4))
    authorized = created + timedelta(hours=1)
    states = [("authorize", created + timedelta(minutes=5))]
    facts = dict(key=f"R{i:02d}", category=CATEGORIES[i % 4], risk=("low", "moderate", "high")[i % 3],
                 services=(service, "firewall") if i % 7 == 3 and service != "firewall" else (service,),
                 created=created, planned=(start, end), states=states,
                 approvals=[Step("change_manager", created + timedelta(minutes=5), authorized)],
                 cost_estimate=f"{1000 + 100 * i}.00" if i % 3 else None,
                 cost_actual=f"{900 + 130 * i}.50" if i % 4 in (1, 2) else None)
    if i % 13 == 12:
        states.append(("canceled", created + timedelta(days=2)))
        return Facts(**facts)
    reviewed = end + timedelta(hours=1)
    states += [("scheduled", authorized), ("implement", start), ("review", reviewed)]
    if i % 11 == 10:  # still waiting for business acceptance
        facts["approvals"].append(acceptance(reviewed, due=reviewed + timedelta(days=3)))
        return Facts(**facts, implementation_result="completed")
    closed = reviewed + timedelta(days=1, hours=i % 5)
    facts["approvals"].append(acceptance(reviewed, closed))
    states.append(("closed", closed))
    incidents = tuple(f"INC{1000 + 10 * i + n}" for n in range(2 if i % 12 == 4 else 1)) if i % 6 == 4 else ()
    return Facts(**facts, close_code=OUTCOMES[i % 7], implementation_result="completed", incidents=incidents)


def lifecycle(created, start, end, closed=None, **facts) -> Facts:
    states = [("authorize", created + timedelta(hours=1)), ("scheduled", created + timedelta(days=1))]
    if closed or facts.pop("implemented", False):
        states += [("implement", start), ("review", end + timedelta(minutes=30))]
    if closed:
        states.append(("closed", closed))
    return Facts(created=created, planned=(start, end), states=states, **facts)


def edge_cases() -> list[Facts]:
    return [
        lifecycle(at("2026-09-20 10:00"), at("2026-09-30 22:00"), at("2026-10-01 03:00"), at("2026-10-02 12:00"),
                  key="BOUNDARY", services=("identity",), risk="high", close_code="successful",
                  risk_reasons=("Mission-critical service", "Window crosses the quarter end"),
                  approvals=[acceptance(at("2026-10-01 03:30"), at("2026-10-02 12:00"))],
                  cost_estimate="8000.00", cost_actual="9250.75"),
        Facts("CANCELED", services=("payroll",), risk="high", created=at("2026-08-10 09:00"),
              planned=(at("2026-08-20 22:00"), at("2026-08-20 23:00")), cost_estimate="5000.00",
              states=[("authorize", at("2026-08-10 10:00")), ("canceled", at("2026-08-15 09:00"))]),
        Facts("CANCELED_NEXT", services=("crm-web",), risk="high", created=at("2026-11-20 09:00"),
              planned=(at("2027-01-12 22:00"), at("2027-01-12 23:00")),
              states=[("authorize", at("2026-11-20 10:00")), ("canceled", at("2026-12-01 09:00"))]),
        lifecycle(at("2026-09-01 09:00"), at("2026-09-20 21:00"), at("2026-09-20 23:00"), at("2026-10-03 16:00"),
                  key="REOPENED", services=("crm-web", "intranet"), risk="moderate",
                  close_code="successful_with_issues", incidents=("INC9001",),
                  cost_estimate="1000.00", cost_actual="1500.00",
                  approvals=[acceptance(at("2026-09-25 09:00"), at("2026-09-26 10:00")),
                             acceptance(at("2026-09-25 09:00"), at("2026-09-27 15:00"), "olga", decision="reject"),
                             acceptance(at("2026-09-29 09:00"), at("2026-10-02 10:00"), round=2),
                             acceptance(at("2026-09-29 09:00"), at("2026-10-03 16:00"), "olga", round=2)],
                  tasks=[Step("resolve_business_impact", at("2026-09-27 15:00"), at("2026-09-29 09:00"))]),
        lifecycle(at("2026-11-20 09:00"), at("2026-12-15 22:00"), at("2026-12-15 23:30"), key="PENDING",
                  services=("payroll",), implemented=True,
                  approvals=[acceptance(at("2026-12-16 00:00"), due=at("2026-12-19 00:00"))]),
        lifecycle(at("2026-10-10 09:00"), at("2026-10-20 22:00"), at("2026-10-21 00:30"), at("2026-12-02 10:00"),
                  key="WITHDRAWN", services=("data-warehouse",), close_code="successful",
                  approvals=[acceptance(at("2026-10-21 01:00"), withdrawn=at("2026-12-01 09:00")),
                             acceptance(at("2026-12-01 09:00"), at("2026-12-02 10:00"))]),
        lifecycle(at("2026-12-10 09:00"), at("2027-01-10 22:00"), at("2027-01-11 02:00"), key="NEXT1",
                  services=("payroll", "identity"), risk="high",
                  risk_reasons=("Mission-critical service", "Recent failures on the service")),
        lifecycle(at("2026-12-01 09:00"), at("2027-01-05 01:00"), at("2027-01-05 03:00"), key="NEXT2",
                  services=("firewall",), risk="high", risk_reasons=("Rollback not tested",)),
        lifecycle(at("2026-12-02 09:00"), at("2027-01-07 01:00"), at("2027-01-07 02:00"), key="NEXT_LOW",
                  services=("firewall",)),
        lifecycle(at("2026-12-03 09:00"), at("2026-12-31 22:00"), at("2027-01-01 02:00"), key="NEXT_SPAN",
                  services=("crm-web",), risk="high", risk_reasons=("Window spans the year end",)),
        # intranet depends on crm-web, payroll on neither: for intranet it is one change, not two
        lifecycle(at("2026-11-02 09:00"), at("2026-11-09 22:00"), at("2026-11-10 01:00"), at("2026-11-11 09:00"),
                  key="TRIPLE", services=("payroll", "crm-web", "intranet"), risk="high", close_code="backed_out",
                  incidents=("INC9100", "INC9101"), cost_estimate="4000.00", cost_actual="6100.25",
                  approvals=[acceptance(at("2026-11-10 02:00"), at("2026-11-11 09:00"))]),
        lifecycle(at("2026-10-05 09:00"), at("2026-10-12 20:00"), at("2026-10-12 21:00"), at("2026-10-14 09:00"),
                  key="NOSERVICE", services=(), category="process_change", close_code="successful",
                  cost_estimate="300.00", cost_actual="250.00"),
    ]


# -- the expectations, from the facts alone ------------------------------------------------------

def reach(service: str) -> set[str]:
    found, queue = set(), deque([service])
    while queue:
        for key, depends_on, _ in DEPENDS:
            if key == queue[0] and depends_on not in found:
                found.add(depends_on)
                queue.append(depends_on)
        queue.popleft()
    return found - {service}


def relation(f: Facts, service: str | None) -> str | None:
    if service is None:
        return "direct" if f.services else None
    return "direct" if service in f.services else "dependent" if set(f.services) & reach(service) else None


def requested(f, p):
    return p.start <= f.created < p.end


def closed(f, p):
    return f.state == "closed" and p.start <= f.closed_at < p.end


def planned(f, p):
    return f.state != "canceled" and f.planned is not None and f.planned[0] < p.end and f.planned[1] > p.start


def minutes_inside(f, p) -> float:
    return (min(f.planned[1], p.end) - max(f.planned[0], p.start)).total_seconds() / 60


def open_steps(f, end) -> list[Step]:
    return [s for s in f.approvals if s.step == "business_acceptance" and s.asked < end
            and (s.decided is None or s.decided >= end) and (s.withdrawn is None or s.withdrawn >= end)]


def owner_sets(h, service, p) -> dict[str, set[str]]:
    facts = [f for f in h.facts.values() if relation(f, service)]
    active = [f for f in facts if requested(f, p) or closed(f, p) or planned(f, p)]
    sets = {"touching": {f.key for f in active},
            "direct": {f.key for f in active if relation(f, service) == "direct"},
            "dependent": {f.key for f in active if relation(f, service) == "dependent"},
            "canceled": {f.key for f in active if f.state == "canceled"},
            "planned": {f.key for f in facts if planned(f, p)},
            "closed": {f.key for f in facts if closed(f, p)},
            "incidents": {f.key for f in facts if closed(f, p) and f.incidents},
            "acceptance_open": {f.key for f in facts if open_steps(f, p.end)}}
    sets.update({code: {k for k in sets["closed"] if h.facts[k].close_code == code} for code in CODES})
    return sets


def number(h, key) -> str:
    return f"CHG{h.ids[key]:07d}"


def outcome(f, p) -> str:
    if f.state == "closed" and f.closed_at < p.end:
        return f.close_code
    return "canceled" if f.state == "canceled" and f.entered("canceled") < p.end else "open"


def money(values) -> Decimal | None:
    values = [Decimal(v) for v in values if v is not None]
    return sum(values) if values else None


def as_float(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None
