"""The data set of benchmarks/queries_at_scale.py: the reports benchmark's two years of changes, plus
what the queries at scale need on top — a large schedule ahead, task history of the issue's size,
windows, service members — as rows for reports_load.copy_rows.

- Every change of the reports simulation (reports_changes.generate), with one difference: tasks whose
  BPMN user task names an `assigneeVariable` (owner and CAB approvals, business acceptance, implement,
  rework, evidence, verify) are assigned to the person the simulation hands them to, as the engine's
  `_task_row` does; the others stay role tasks. Otherwise every open approval would sit in every
  service owner's inbox, which no real inbox does.
- N more changes that reached *scheduled* (standard and normal, created in the last 3-40 days, walked
  through the same process steps with the same Life/authorize helpers) with a planned window in the
  next 12 months: what the calendar, the conflict check and the open-work figures read.
- Task history padded to the issue's 1,000,000 rows: copies of completed tasks of closed changes
  (another id, the same step, person and times), as if steps had been repeated; no audit events and
  no approvals for the copies, so the reports' figures over approvals and audit events are unchanged.
- The ~100 maintenance and blackout windows of schedule_at_scale.make_windows on the 2,000 services,
  and requesters as members of two services each (the scope rule of a requester's lists).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import reports_changes
from reports_changes import EVIDENCE, HOUR, Plan, half_hour, hours, make_change, pick, through_scheduling
from reports_data import CATEGORIES, RISKS, Life, World
from schedule_at_scale import make_windows

# user tasks with an assigneeVariable in processes/*.bpmn: the engine assigns them to one person
ASSIGNED = {"Task_OwnerApproval", "Task_CabApproval", "Task_BusinessAcceptance", "Task_Implement", "Task_Rework",
            "Task_Verify", "Task_Reschedule", "Task_ProvideEvidence_Implement", "Task_ProvideEvidence_Close"}
AHEAD = timedelta(days=365)  # planned windows of the scheduled changes: anywhere in the next 12 months


class AssigningLife(Life):
    """reports_data.Life, recording each task's assignee where the BPMN assigns one."""

    def step(self, element, name, role, takers, **kwargs):
        tasks = self.w.rows["tasks"]
        before = len(tasks)
        alive = super().step(element, name, role, takers, **kwargs)
        for row, (who, _wait, _decision) in zip(tasks[before:], takers):
            row["assignee_id"] = who if element in ASSIGNED else None
        return alive


class ScheduledPlan(Plan):
    """A plan drawn as reports_changes draws it, then made one that is scheduled now: standard or normal,
    filed in the last weeks, not canceled, not stalled."""

    def __init__(self, world: World, change_id: int):
        super().__init__(world, change_id)
        rng = world.rng
        if self.type == "emergency":  # emergencies are implemented at once, never weeks ahead
            self.type = "normal"
            self.category, self.risk = pick(rng, CATEGORIES["normal"]), pick(rng, RISKS["normal"])
        self.cancel, self.stall_at = False, None
        day = (world.now - rng.uniform(3, 40) * timedelta(days=1)).replace(hour=7, minute=0, second=0, microsecond=0)
        self.created = day + rng.random() * timedelta(hours=11)


def future_window(w: World, longest: int) -> tuple[datetime, datetime]:
    start = half_hour(w.now + timedelta(hours=1) + w.rng.random() * AHEAD)
    return start, start + w.rng.randint(1, longest) * HOUR


def scheduled_standard(life: Life, plan: Plan, w: World) -> None:
    life.go("scheduled", after=0.02)
    life.evidence(EVIDENCE[plan.category][0], plan.requester)
    plan.window = future_window(w, 4)


def scheduled_normal(life: Life, plan: Plan, w: World) -> None:
    """reports_changes.normal up to the window, which lies ahead: implementation has not begun."""
    rng = w.rng
    if not through_scheduling(life, plan, w):
        return
    plan.window = future_window(w, 8) if "Task_Schedule" in life.done else None
    life.evidence(EVIDENCE[plan.category][0], plan.requester)
    if plan.risk != "low":
        life.step("Task_RollbackReview", "Review rollback plan", "change_manager",
                  [(rng.choice(w.by_role["change_manager"]), hours(rng, 6), None)], approval="rollback_review", due=48)


def generate(world: World, history: int, scheduled: int, version_ids: dict[str, int], min_tasks: int,
             window_author: int) -> dict[str, list[dict]]:
    """The reports benchmark's `history` changes, then changes until `scheduled` of them are scheduled,
    then padding, windows and members. The reports_changes globals are swapped only while it runs."""
    saved = reports_changes.Life, reports_changes.Plan, dict(reports_changes.PATHS)
    rows = world.rows
    try:
        reports_changes.Life = AssigningLife
        for change_id in range(1, history + 1):
            make_change(world, change_id, version_ids)
        reports_changes.Plan = ScheduledPlan
        reports_changes.PATHS.update(standard=scheduled_standard, normal=scheduled_normal)
        change_id, reached = history, 0
        while reached < scheduled:
            change_id += 1
            make_change(world, change_id, version_ids)
            reached += rows["changes"][-1]["state"] == "scheduled" and rows["changes"][-1]["planned_start"] is not None
    finally:
        reports_changes.Life, reports_changes.Plan = saved[:2]
        reports_changes.PATHS.clear()
        reports_changes.PATHS.update(saved[2])
    for row in rows["tasks"]:
        row.setdefault("assignee_id", None)
    pad_tasks(world, min_tasks)
    add_windows(world, window_author)
    add_members(world)
    return rows


def pad_tasks(world: World, total: int) -> None:
    """Copies of completed tasks of closed changes until there are `total` task rows."""
    rows, rng = world.rows, world.rng
    closed = {c["id"] for c in rows["changes"] if c["state"] == "closed"}
    done = [t for t in rows["tasks"] if t["status"] == "completed" and t["change_id"] in closed]
    for _ in range(max(0, total - len(rows["tasks"]))):
        rows["tasks"].append({**rng.choice(done), "id": str(uuid.UUID(int=rng.getrandbits(128), version=4))})


def add_windows(world: World, author: int) -> None:
    shift = world.first_service - 1
    anchor = world.now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    windows, links = make_windows(world.rng, world.service_count, anchor)
    world.rows["windows"] = [{**w, "created_by_id": author} for w in windows]
    world.rows["window_services"] = [{**link, "service_id": link["service_id"] + shift} for link in links]


def add_members(world: World) -> None:
    rng, first, count = world.rng, world.first_service, world.service_count
    world.rows["service_members"] = [
        {"service_id": sid, "user_id": uid}
        for uid in world.by_role["requester"] for sid in sorted(set(rng.sample(range(first, first + count), 2)))]
