"""What the benchmark submits: one normal change, its evidence, and the form data of its user tasks.

Shared by the HTTP load (bench_load) and the raw SpiffWorkflow ceiling (bench_raw) so both walk
exactly the same path: authorize (approve) → schedule → implement → post-implementation review →
business acceptance by the service owner. The evidence the category requires (infrastructure:
rollback_plan before implementation, verification before closure) is attached as links right after
submission, so no "Provide evidence" task appears.

The process waits at *Wait for planned start* until the planned start, and a benchmark against a
live server has no clock to move on: every planned window has therefore opened already (it lies in
the past) when the change is scheduled, so the timer is due at once and fires right after that
commit, and *Implement change* is there for the next call.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

SERVICE_KEY = "bench-app"
REQUESTER = "bench-requester"
MANAGER = "bench-manager"
IMPLEMENTER = "bench-implementer"
OWNER = "bench-owner"

USERS = (
    (REQUESTER, "requester"),
    (MANAGER, "change_manager"),
    (IMPLEMENTER, "implementer"),
    (OWNER, "service_owner"),
)

EVIDENCE = (
    {"kind": "rollback_plan", "url": "https://ci.example.org/rollback-plan", "note": "Benchmark."},
    {"kind": "verification", "url": "https://ci.example.org/verification", "note": "Benchmark."},
)


# The latest slot starts a day before the benchmark started; change i's slot lies 2*i hours before it.
LATEST_START = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


def window(index: int) -> dict:
    """Each change gets its own two-hour slot, as real changes on one service would, already open (see above)."""
    start = LATEST_START - timedelta(hours=2 * index)
    return {"planned_start": start.isoformat(), "planned_end": (start + timedelta(hours=1, minutes=30)).isoformat()}


def _done(index: int) -> dict:
    """Implemented inside the change's window."""
    start = datetime.fromisoformat(window(index)["planned_start"])
    return {"actual_start": (start + timedelta(minutes=5)).isoformat(),
            "actual_end": (start + timedelta(hours=1, minutes=10)).isoformat(), "implementation_result": "completed"}


def change_request(index: int) -> dict:
    return {
        "title": f"Benchmark change {index}",
        "description": "Submitted by benchmarks/lifecycle.py.",
        "change_type": "normal",
        "category": "infrastructure",
        "services": [SERVICE_KEY],
        "impact": 3,
        "urgency": 3,
        **window(index),
        "implementation_plan": "Deploy the release with the pipeline.",
        "rollback_plan": "Redeploy the previous release.",
        "rollback_tested": True,
        "test_plan": "Regression suite in staging.",
        "justification": "Benchmark.",
    }


# (who acts, task name, form data) in the order the normal change process asks for them. The HTTP
# load schedules each change into its own window(index); the raw ceiling uses these (window 0) as they are.
# Between Schedule change and Implement change the process waits for the planned start (long past).
STEPS = (
    (MANAGER, "Authorize change", {"decision": "approve", "comment": "Looks fine."}),
    (MANAGER, "Schedule change", {**window(0), "implementer": IMPLEMENTER}),
    (IMPLEMENTER, "Implement change", _done(0)),
    (MANAGER, "Post-implementation review", {"close_code": "successful",
                                             "close_notes": "Went as planned."}),
    (OWNER, "Business acceptance", {"decision": "approve", "comment": "Service validated."}),
)


def process_start_data(index: int) -> dict:
    """The variables the service starts a normal change with (engine.projection.process_data + risk_inputs)."""
    request = change_request(index)
    return {
        "change_number": f"CHG{index:07d}",
        **{k: request[k] for k in ("title", "description", "change_type", "category", "services", "impact",
                                   "urgency", "planned_start", "planned_end", "implementation_plan",
                                   "rollback_plan", "test_plan", "justification")},
        "emergency_reason": "", "incident_ref": None, "cost_estimate": None,
        "requester": REQUESTER, "implementer": None,
        "max_criticality": 3, "has_rollback_plan": True, "rollback_tested": True,
        "touches_blackout": False, "recent_failures": 0,
        "service_owners": [OWNER], "cab_members": [], "template_risk": None, "template_risk_reasons": [],
    }
