"""The data set of benchmarks/reports.py: two years of changes as the processes leave them.

Each change walks a small simulation of its process (docs/processes.md) — state_changed audit events,
user tasks with task_created / task_completed events, approvals (change manager, service owners, CAB
votes at weekly meetings, emergency approver, rollback review, business acceptance with a second round
after a rejection), evidence by category (processes/evidence.dmn), the review's close code, incidents,
costs, follow-up actions — and is cut at `now`: later steps have not happened yet, so recent changes
are still open, as are the ~5 % that stalled on a task. The rows are those tests/report_history.py
writes, made in bulk; reports.py loads them with COPY (PostgreSQL) or Core executemany (SQLite).
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from schedule_at_scale import make_dependencies, make_services, pick_services

HOUR = timedelta(hours=1)
TEAMS = 20
EXTRA_PEOPLE = (("owner", "service_owner", 40), ("requester", "requester", 60), ("impl", "implementer", 200),
                ("manager", "change_manager", 4), ("cab", "cab_member", 8), ("ecab", "emergency_approver", 3))
DEMO_PEOPLE = {"alice": "requester", "morgan": "change_manager", "casey": "cab_member", "sam": "service_owner",
               "ivan": "implementer", "erin": "emergency_approver"}
# changes that touch a demo service (15 %), by service: crm-web is the benchmark's service filter
DEMO_SHARE = {"crm-web": 30, "cloud-capacity": 15, "identity": 15, "payroll": 10, "data-warehouse": 10,
              "service-desk": 10, "firewall": 5, "intranet": 5}
DEMO_DEPENDENCIES = (("crm-web", "identity"), ("crm-web", "cloud-capacity"), ("payroll", "identity"),
                     ("payroll", "data-warehouse"), ("data-warehouse", "cloud-capacity"),
                     ("service-desk", "identity"), ("intranet", "identity"), ("identity", "firewall"))
TYPES = {"standard": 60, "normal": 35, "emergency": 5}
CATEGORIES = {
    "standard": {"service_catalog": 30, "application_release": 25, "infrastructure": 25, "access_control": 15,
                 "data_integration": 5},
    "normal": {"application_release": 30, "infrastructure": 30, "data_integration": 15, "access_control": 10,
               "process_change": 10, "service_catalog": 5},
    "emergency": {"emergency_patch": 70, "infrastructure": 20, "application_release": 10}}
RISKS = {"standard": {"low": 95, "moderate": 5}, "normal": {"low": 45, "moderate": 40, "high": 15},
         "emergency": {"moderate": 40, "high": 60}}
CLOSE_CODES = {"successful": 86, "successful_with_issues": 7, "unsuccessful": 3.5, "backed_out": 3.5}
RESULT_FOR = {"successful": "completed", "successful_with_issues": "completed_with_issues",
              "unsuccessful": "failed", "backed_out": "backed_out"}
INCIDENT_CHANCE = {"successful": 0.005, "successful_with_issues": 0.05, "unsuccessful": 0.2, "backed_out": 0.2}
COST_SHARE = {"standard": 0.2, "normal": 0.45, "emergency": 0.4}
EVIDENCE = {  # category -> (before implementation, before closure), from processes/evidence.dmn
    "emergency_patch": (("rollback_plan",), ("implementation_log", "review_note")),
    "application_release": (("test_result", "business_sign_off"), ("verification",)),
    "infrastructure": (("rollback_plan",), ("verification",)), "service_catalog": (("business_sign_off",), ("verification",)),
    "access_control": (("identity_validation",), ("implementation_log",)),
    "data_integration": (("test_result", "business_sign_off"), ("monitoring",)),
    "process_change": (("business_sign_off",), ("review_note",))}


def pick(rng, weights: dict):
    return rng.choices(list(weights), list(weights.values()))[0]


def hours(rng, median: float, spread: float = 0.8) -> float:
    return median * rng.lognormvariate(0.0, spread)


class World:
    """Who and what exists: user ids by role, services with owners, CAB meetings; and the rows made."""

    def __init__(self, rng, now: datetime, users: dict[str, int], services: dict[str, int], first_user: int,
                 first_service: int, service_count: int):
        self.rng, self.now = rng, now
        self.rows: dict[str, list[dict]] = defaultdict(list)
        self.names = {uid: name for name, uid in users.items()}
        self.by_role = defaultdict(list)
        uid = first_user
        for prefix, role, count in EXTRA_PEOPLE:
            for i in range(count):
                self.rows["users"].append({"id": uid, "username": f"{prefix}{i:03d}", "display_name": f"{prefix} {i}",
                                           "email": f"{prefix}{i:03d}@reports.invalid", "roles": [role], "active": True,
                                           "team": f"team-{i % TEAMS:02d}" if role == "implementer" else None})
                self.names[uid] = f"{prefix}{i:03d}"
                self.by_role[role].append(uid)
                uid += 1
        for name, role in DEMO_PEOPLE.items():
            self.by_role[role].append(users[name])
        self.demo_services = {key: services[key] for key in DEMO_SHARE}
        self.owner = {sid: users["sam"] for sid in services.values()}
        self._services(first_service, service_count)
        self._meetings(now - timedelta(days=740), now + timedelta(days=28))

    def _services(self, first: int, count: int) -> None:
        rng, offset, owners = self.rng, first - 1, self.by_role["service_owner"]
        self.first_service, self.service_count = first, count
        for row in make_services(rng, count):
            group = (row["id"] - 1) // 50
            row["id"] += offset
            row["owner_id"] = owners[group % len(owners)] if rng.random() < 0.8 else rng.choice(owners)
            self.owner[row["id"]] = row["owner_id"]
            self.rows["services"].append(row)
        for dep in make_dependencies(rng, count):
            self.rows["service_dependencies"].append({**dep, "service_id": dep["service_id"] + offset,
                                                      "depends_on_id": dep["depends_on_id"] + offset})
        demo = self.demo_services
        self.rows["service_dependencies"] += [{"service_id": demo[a], "depends_on_id": demo[b], "kind": "calls"}
                                              for a, b in DEMO_DEPENDENCIES]
        for sid in rng.sample(range(first, first + count), count // 20):  # the platform they all log in with
            self.rows["service_dependencies"].append({"service_id": sid, "depends_on_id": demo["identity"], "kind": "calls"})

    def _meetings(self, first: datetime, last: datetime) -> None:
        """Weekly CAB on Tuesdays at 14:00 UTC."""
        day = (first + timedelta(days=(1 - first.weekday()) % 7)).replace(hour=14, minute=0, second=0, microsecond=0)
        self.meetings = []
        cab = [self.names[u] for u in self.by_role["cab_member"]]
        while day < last:
            mid = len(self.meetings) + 1
            self.meetings.append((mid, day))
            self.rows["cab_meetings"].append({
                "id": mid, "title": f"CAB {day:%Y-%m-%d}", "starts_at": day, "ends_at": day + HOUR,
                "members": self.rng.sample(cab, 5), "status": "held" if day < self.now else "planned",
                "created_by_id": self.by_role["change_manager"][0], "created_at": day - timedelta(days=7)})
            day += timedelta(days=7)

    def next_meeting(self, after: datetime):
        index = max(0, int((after - self.meetings[0][1]) / timedelta(days=7)))
        while self.meetings[index][1] < after:
            index += 1
        return self.meetings[index]

    def change_services(self) -> list[int]:
        rng = self.rng
        if rng.random() < 0.15:
            picked = {self.demo_services[pick(rng, DEMO_SHARE)]}
            if rng.random() < 0.3:
                picked.add(self.first_service + rng.randrange(self.service_count))
            return sorted(picked)
        return [s + self.first_service - 1 for s in pick_services(rng, self.service_count, rng.choice((1, 1, 2, 3)))]


class Life:
    """One change's way through its process, recorded as it happens and cut at `now`."""

    def __init__(self, world: World, change_id: int, created: datetime, stall_at: int | None):
        self.w, self.change_id, self.t, self.stall_at = world, change_id, created, stall_at
        self.state, self.alive, self.steps, self.done, self.entered = "new", True, 0, set(), {}

    def event(self, at, kind, actor=None, **extra) -> None:
        self.w.rows["audit_events"].append({"at": at, "kind": kind, "change_id": self.change_id, "actor_id": actor,
                                            "actor": self.w.names[actor] if actor else "system",
                                            "element_id": extra.pop("element", None), "task_id": extra.pop("task", None),
                                            "data": extra})

    def go(self, state: str, after: float = 0.0, at: datetime | None = None) -> bool:
        at = at or self.t + after * HOUR
        if not self.alive or at > self.w.now:
            self.alive = False
            return False
        self.event(at, "state_changed", **{"from": self.state, "to": state})
        self.entered.setdefault(state, at)
        self.state, self.t = state, at
        return True

    def step(self, element: str, name: str, role: str, takers, *, approval: str | None = None, due: float | None = None,
             round: int = 1, meeting=None) -> bool:
        """Tasks created now, one per (user id, hours to decide, decision) in `takers`, in parallel; at a CAB
        `meeting` the votes are taken there. False when one is still open (or the change stalls here)."""
        if not self.alive:
            return False
        created, stalled, rows = self.t, self.steps == self.stall_at, self.w.rows
        self.steps += 1
        decided_all = created
        for n, (who, wait, decision) in enumerate(takers):
            task_id = str(uuid.UUID(int=self.w.rng.getrandbits(128), version=4))
            decided = meeting[1] + 10 * n * timedelta(minutes=1) if meeting else created + wait * HOUR
            done = not stalled and decided <= self.w.now
            rows["tasks"].append({
                "id": task_id, "instance_id": self.change_id, "change_id": self.change_id, "element_id": element,
                "name": name, "role": role, "status": "completed" if done else "ready", "approval_step": approval,
                "created_at": created, "due_at": created + due * HOUR if due else None,
                "completed_at": decided if done else None, "completed_by_id": who if done else None})
            self.event(created, "task_created", element=element, task=task_id, name=name)
            if not done:
                self.alive = False
                continue
            self.event(decided, "task_completed", who, element=element, task=task_id, name=name)
            if approval:
                rows["approvals"].append({
                    "change_id": self.change_id, "task_id": task_id, "step": approval, "approver_id": who, "role": role,
                    "decision": decision or "approve", "decided_at": decided, "round": round,
                    "cab_meeting_id": meeting[0] if meeting else None,
                    "recorded_by_id": self.w.by_role["change_manager"][0] if meeting else None})
            decided_all = max(decided_all, decided)
        if self.alive:
            self.t = decided_all
            self.done.add(element)
        return self.alive

    def evidence(self, kinds, by: int, missing: float = 0.03) -> None:
        if not self.alive:
            return
        for kind in kinds:
            if self.w.rng.random() >= missing:
                self.w.rows["evidence"].append({"change_id": self.change_id, "kind": kind, "uploaded_by_id": by,
                                                "url": f"https://evidence.example.com/{self.change_id}/{kind}",
                                                "uploaded_at": self.t + 0.5 * HOUR})
