"""The changes of the reports benchmark: what each one is (type, category, risk, services, outcome) and
how it walks its process (docs/processes.md), on the World and Life of reports_data.py."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from reports_data import (CATEGORIES, CLOSE_CODES, COST_SHARE, EVIDENCE, HOUR, INCIDENT_CHANCE, RESULT_FOR, RISKS,
                          TYPES, Life, World, hours, pick)

SPAN = timedelta(days=730)


def half_hour(moment: datetime) -> datetime:
    return moment.replace(minute=30 if moment.minute >= 30 else 0, second=0, microsecond=0)


class Plan:
    """What will happen to one change (drawn up front; the simulation cuts it at `now`)."""

    def __init__(self, world: World, change_id: int):
        rng, now = world.rng, world.now
        self.type = pick(rng, TYPES)
        self.category, self.risk = pick(rng, CATEGORIES[self.type]), pick(rng, RISKS[self.type])
        self.services = world.change_services()
        self.owners = sorted({world.owner[s] for s in self.services})
        self.requester = rng.choice(world.by_role["requester"])
        self.implementer = rng.choice(world.by_role["implementer"])
        self.manager = rng.choice(world.by_role["change_manager"])
        self.close_code = pick(rng, CLOSE_CODES)
        self.incidents = ([f"INC{change_id:07d}"] if rng.random() < INCIDENT_CHANCE[self.close_code] else [])
        self.cost = Decimal(rng.randrange(500, 50_000, 50)) if rng.random() < COST_SHARE[self.type] else None
        roll, material = rng.random(), self.type != "standard"
        self.cancel = roll < 0.03                      # ~3 % canceled
        self.rejected = material and (roll < 0.018 or 0.03 <= roll < 0.07)  # rejected once (then canceled or reworked)
        self.reopened = rng.random() < 0.02           # business acceptance rejected, impact resolved, accepted again
        self.stall_at = rng.randrange(6) if rng.random() < 0.07 else None  # waits on a task for good
        back = (rng.random() * timedelta(days=180)) if self.stall_at is not None else rng.random() * SPAN
        day = (now - back).replace(hour=7, minute=0, second=0, microsecond=0)
        self.created = day + rng.random() * timedelta(hours=11)


def standard(life: Life, plan: Plan, w: World) -> None:
    rng = w.rng
    life.go("scheduled", after=0.02)
    life.evidence(EVIDENCE[plan.category][0], plan.requester)
    start = half_hour(plan.created + rng.uniform(4, 240) * HOUR)
    plan.window = (start, start + rng.choice((1, 1, 2, 3, 4)) * HOUR)
    if plan.cancel:
        life.go("canceled", after=hours(rng, 24))
        return
    implement(life, plan, w, at=start)
    life.step("Task_Verify", "Verify and close", "requester", [(plan.requester, hours(rng, 6), None)])
    close(life, plan, w)


def through_scheduling(life: Life, plan: Plan, w: World) -> bool:
    """A normal change from assessment to *Schedule change*; False when authorization ended it."""
    rng = w.rng
    life.go("assess", after=0.01)
    life.go("authorize", after=0.01)
    if not authorize(life, plan, w, "Task_Authorize", "Authorize change", "change_manager", plan.manager, 8, 48,
                     "change_manager"):
        return False
    if plan.risk != "low":
        life.step("Task_OwnerApproval", "Service owner approval", "service_owner",
                  [(o, hours(rng, 16), None) for o in plan.owners], approval="service_owner", due=48)
    if plan.risk == "high" and life.alive:
        voters = rng.sample(w.by_role["cab_member"], 3)
        life.step("Task_CabApproval", "CAB approval", "cab_member", [(v, 0, None) for v in voters],
                  approval="cab", due=120, meeting=w.next_meeting(life.t + HOUR))
    life.go("scheduled")
    life.step("Task_Schedule", "Schedule change", "change_manager", [(plan.manager, hours(rng, 4), None)])
    return True


def normal(life: Life, plan: Plan, w: World) -> None:
    rng = w.rng
    if not through_scheduling(life, plan, w):
        return
    start = half_hour(life.t + rng.uniform(24, 14 * 24) * HOUR)
    plan.window = (start, start + rng.randint(1, 8) * HOUR) if "Task_Schedule" in life.done else None
    if plan.cancel and not plan.rejected:
        life.go("canceled", after=hours(rng, 24))
        return
    life.evidence(EVIDENCE[plan.category][0], plan.requester)
    if plan.risk != "low":
        life.step("Task_RollbackReview", "Review rollback plan", "change_manager",
                  [(rng.choice(w.by_role["change_manager"]), hours(rng, 6), None)], approval="rollback_review", due=48)
    implement(life, plan, w, at=max(start, life.t))
    life.step("Task_Review", "Post-implementation review", "change_manager", [(plan.manager, hours(rng, 24), None)])
    close(life, plan, w)


def emergency(life: Life, plan: Plan, w: World) -> None:
    rng = w.rng
    life.go("authorize", after=0.01)
    approver = rng.choice(w.by_role["emergency_approver"])
    if not authorize(life, plan, w, "Task_EmergencyApproval", "Emergency approval", "emergency_approver", approver,
                     0.7, 4, "ecab"):
        return
    life.evidence(EVIDENCE[plan.category][0], plan.requester, missing=0.08)
    life.step("Task_RollbackReview", "Review rollback plan", "emergency_approver", [(approver, hours(rng, 0.8), None)],
              approval="rollback_review", due=2)
    plan.window = (life.t, life.t + rng.choice((1, 2, 3)) * HOUR)
    if plan.cancel and not plan.rejected:
        life.go("canceled", after=0.5)
        return
    implement(life, plan, w, at=life.t + 0.2 * HOUR)
    life.step("Task_Retrospective", "Retrospective review", "cab_member",
              [(rng.choice(w.by_role["cab_member"]), hours(rng, 48), None)])
    close(life, plan, w)


def authorize(life: Life, plan: Plan, w: World, element, name, role, who, median, due, step) -> bool:
    """The authorization step; a rejection sends the change back to the requester, who cancels or reworks it."""
    rng = w.rng
    if not plan.rejected:
        return life.step(element, name, role, [(who, hours(rng, median), None)], approval=step, due=due)
    life.step(element, name, role, [(who, hours(rng, median), "reject")], approval=step, due=due)
    life.go("new")
    life.step("Task_Rework", "Rework change request", "requester", [(plan.requester, hours(rng, 24), None)])
    if plan.cancel:
        life.go("canceled")
        return False
    plan.rounds = 2
    life.go("assess" if plan.type == "normal" else "authorize", after=0.01)
    if plan.type == "normal":
        life.go("authorize", after=0.01)
    return life.step(element, name, role, [(who, hours(rng, median), None)], approval=step, due=due, round=2)


def implement(life: Life, plan: Plan, w: World, at: datetime) -> None:
    if not life.alive or at > w.now:
        life.alive = False
        return
    life.go("implement", at=at)
    length = (plan.window[1] - plan.window[0]) / HOUR * w.rng.uniform(0.6, 1.2)
    life.step("Task_Implement", "Implement change", "implementer", [(plan.implementer, length, None)],
              due=(plan.window[1] - at) / HOUR)
    life.go("review")


def close(life: Life, plan: Plan, w: World) -> None:
    """Evidence for closure, business acceptance by every owner (a rejection: impact resolved, asked again), closed."""
    rng = w.rng
    closing = EVIDENCE[plan.category][1] + (("implementation_log",) if plan.close_code == "backed_out" else ())
    life.evidence(dict.fromkeys(closing), plan.implementer)
    plan.reviewed_at = life.t if life.alive else None
    takers = [(o, hours(rng, 12), "reject" if plan.reopened and n == 0 else None) for n, o in enumerate(plan.owners)]
    life.step("Task_BusinessAcceptance", "Business acceptance", "service_owner", takers,
              approval="business_acceptance", due=72)
    if plan.reopened:
        life.step("Task_ResolveBusinessImpact", "Resolve business impact", "change_manager",
                  [(plan.manager, hours(rng, 24), None)])
        life.step("Task_BusinessAcceptance", "Business acceptance", "service_owner",
                  [(o, hours(rng, 12), None) for o in plan.owners], approval="business_acceptance", due=72, round=2)
    life.go("closed", after=0.01)


PATHS = {"standard": standard, "normal": normal, "emergency": emergency}


def make_change(w: World, change_id: int, version_ids: dict[str, int]) -> None:
    """The change row, its services, process instance and follow-ups; the Life adds events, tasks and so on."""
    plan, rows, rng = Plan(w, change_id), w.rows, w.rng
    plan.window, plan.rounds, plan.reviewed_at = None, 1, None
    life = Life(w, change_id, plan.created, plan.stall_at)
    life.event(plan.created, "change_created", plan.requester, title=f"Report benchmark change {change_id}")
    PATHS[plan.type](life, plan, w)
    implemented = "Task_Implement" in life.done
    reviewed = plan.reviewed_at is not None
    code = plan.close_code if reviewed else None
    # the process stamps closed_at on both final states (engine/operators.py)
    closed_at = life.entered.get(life.state) if life.state in ("closed", "canceled") else None
    rows["changes"].append({
        "id": change_id, "number": f"CHG{change_id:07d}", "title": f"Report benchmark change {change_id}",
        "change_type": plan.type, "category": plan.category, "state": life.state, "risk": plan.risk,
        "risk_reasons": [], "priority": rng.randint(2, 4), "impact": rng.randint(1, 3), "urgency": rng.randint(1, 3),
        "planned_start": plan.window[0] if plan.window else None, "planned_end": plan.window[1] if plan.window else None,
        "actual_start": life.entered.get("implement") if implemented else None,
        "actual_end": life.entered.get("review") if implemented else None,
        "rollback_plan": "Restore the previous version.", "rollback_tested": rng.random() < 0.9,
        "justification": "Needed by the business.",
        "emergency_reason": "Service down." if plan.type == "emergency" else "",
        "cost_estimate": plan.cost, "cost_actual": (plan.cost * Decimal(str(round(rng.lognormvariate(0, 0.25), 2)))
                                                    if plan.cost and reviewed and rng.random() < 0.9 else None),
        "implementation_result": RESULT_FOR[plan.close_code] if implemented else None, "close_code": code,
        "incidents_caused": plan.incidents if reviewed else [], "close_notes": "Done." if reviewed else "",
        "requester_id": plan.requester, "implementer_id": plan.implementer if plan.type == "standard" or plan.window else None,
        "created_at": plan.created, "updated_at": life.t, "closed_at": closed_at,
        "approval_round": plan.rounds if plan.type != "standard" else 0})
    rows["change_services"] += [{"change_id": change_id, "service_id": s} for s in plan.services]
    rows["process_instances"].append({
        "id": change_id, "change_id": change_id, "process_version_id": version_ids[f"{plan.type}_change"], "state": "{}",
        "status": "completed" if life.state in ("closed", "canceled") else "running", "lock_version": 1,
        "created_at": plan.created, "updated_at": life.t})
    if reviewed and (code != "successful" or plan.incidents or rng.random() < 0.03):
        for n in range(rng.choice((1, 1, 2))):
            due = plan.reviewed_at + timedelta(days=rng.randint(7, 30))
            done = plan.reviewed_at + timedelta(days=rng.uniform(1, 40))
            done = done if rng.random() < 0.75 and done <= w.now else None
            rows["follow_up_actions"].append({
                "change_id": change_id, "action": f"Follow-up {n + 1} of {plan.type} change {change_id}",
                "owner_id": plan.implementer, "due_date": due.date(), "status": "done" if done else "open",
                "created_at": plan.reviewed_at, "completed_at": done})


def generate(world: World, count: int, version_ids: dict[str, int]) -> dict[str, list[dict]]:
    for change_id in range(1, count + 1):
        make_change(world, change_id, version_ids)
    return world.rows
