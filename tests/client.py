"""A thin API client for tests: requests as a named demo user, plus the steps users take most."""
from __future__ import annotations

from engine.demo import demo_token

NORMAL_CHANGE = {
    "title": "Upgrade CRM web app to 5.2",
    "description": "Minor release with bug fixes.",
    "change_type": "normal",
    "category": "application_release",
    "services": ["crm-web"],
    "impact": 3,
    "urgency": 3,
    "planned_start": "2037-12-05T22:00:00+01:00",
    "planned_end": "2037-12-05T23:30:00+01:00",
    "implementation_plan": "Deploy the release with the pipeline.",
    "rollback_plan": "Redeploy 5.1 from the artefact store.",
    "rollback_tested": True,
    "test_plan": "Regression suite in staging.",
    "justification": "Fixes customer-facing defects.",
}


# What processes/evidence.dmn requires, by category: (before implementation, before closure).
# A backed-out change also needs an implementation_log before closure.
REQUIRED_EVIDENCE = {
    "emergency_patch": (("rollback_plan",), ("implementation_log", "review_note")),
    "application_release": (("business_sign_off", "test_result"), ("verification",)),
    "infrastructure": (("rollback_plan",), ("verification",)),
    "service_catalog": (("business_sign_off",), ("verification",)),
    "access_control": (("identity_validation",), ("implementation_log",)),
    "data_integration": (("business_sign_off", "test_result"), ("monitoring",)),
    "process_change": (("business_sign_off",), ("review_note",)),
}


class ApiClient:
    def __init__(self, app):
        self.app = app
        self.client = app.test_client()

    def request(self, method: str, path: str, user: str | None = None, token: str | None = None, **kwargs):
        headers = kwargs.pop("headers", {})
        if user or token:
            headers["Authorization"] = f"Bearer {token or demo_token(user)}"
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def get(self, path, user=None, **kwargs):
        return self.request("GET", path, user, **kwargs)

    def post(self, path, user=None, **kwargs):
        return self.request("POST", path, user, **kwargs)

    # -- the steps of a change ------------------------------------------------------------------

    def submit(self, user: str = "alice", **overrides) -> dict:
        response = self.post("/api/changes", user, json={**NORMAL_CHANGE, **overrides})
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def change(self, change_id: int, user: str = "audrey") -> dict:
        response = self.get(f"/api/changes/{change_id}", user)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def inbox(self, user: str, **params) -> list[dict]:
        response = self.get("/api/tasks", user, query_string=params)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def task(self, user: str, change_id: int, name: str | None = None) -> dict:
        tasks = [t for t in self.inbox(user) if t["change_id"] == change_id and (name is None or t["name"] == name)]
        assert len(tasks) == 1, f"{user} expected one task for change {change_id}, inbox has {tasks}"
        return tasks[0]

    def complete(self, user: str, task_id: str, data: dict, expect: int = 200):
        response = self.post(f"/api/tasks/{task_id}/complete", user, json={"data": data})
        assert response.status_code == expect, response.get_json()
        return response.get_json()

    def act(self, user: str, change_id: int, data: dict, name: str | None = None) -> dict:
        """Complete the one task `user` has for the change."""
        return self.complete(user, self.task(user, change_id, name)["id"], data)

    def trace(self, change_id: int, user: str = "audrey") -> dict:
        response = self.get(f"/api/changes/{change_id}/trace", user)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def with_settings(self, **changes) -> "ApiClient":
        """The same database, served by an app with other settings (SMTP server, Redis, retry timing)."""
        from dataclasses import replace

        from webui import create_app

        return ApiClient(create_app(replace(self.app.config["CHANGEFLOW_SETTINGS"], **changes), TESTING=True))

    # -- time passing: timers and delayed notifications ------------------------------------------

    def run_due(self, at=None) -> int:
        """Let time pass until `at` (default now): run every background job due by then, as a worker would."""
        from sqlalchemy.orm import sessionmaker

        from engine.jobs.runner import run_due
        from webui.extensions import db

        with self.app.app_context():
            return run_due(sessionmaker(bind=db.engine), self.app.config["CHANGEFLOW_SETTINGS"], now=at)

    def wait_for_window(self, change_id: int) -> int:
        """Time passes until the change's planned start: its *Wait for planned start* timer fires."""
        from datetime import datetime, timedelta

        start = datetime.fromisoformat(self.change(change_id)["planned_start"])
        return self.run_due(start + timedelta(seconds=1))

    # -- evidence, rollback review, business acceptance -----------------------------------------

    def attach(self, change_id: int, *kinds: str, user: str = "alice") -> list[dict]:
        """Attach link evidence of each kind to the change."""
        attached = []
        for kind in kinds:
            response = self.post(f"/api/changes/{change_id}/evidence", user, json={
                "kind": kind, "url": f"https://evidence.example.com/changes/{change_id}/{kind}"})
            assert response.status_code == 201, response.get_json()
            attached.append(response.get_json())
        return attached

    def attach_required(self, change_id: int, stage: str = "implement", user: str = "alice",
                        category: str | None = None) -> None:
        """Attach what evidence.dmn requires of the change's category before `stage` (implement or close)."""
        before, after = REQUIRED_EVIDENCE[category or self.change(change_id)["category"]]
        self.attach(change_id, *(before if stage == "implement" else after), user=user)

    def provide_evidence(self, change_id: int, *kinds: str, user: str = "alice") -> dict:
        """Attach the kinds, then complete the `Provide evidence` task waiting for `user`."""
        self.attach(change_id, *kinds, user=user)
        return self.act(user, change_id, {}, name="Provide evidence")

    def accept(self, change_id: int, user: str = "sam", data: dict | None = None) -> dict:
        """`user` completes their Business acceptance task (accepts unless `data` says otherwise)."""
        return self.act(user, change_id, data or {"decision": "approve"}, name="Business acceptance")
