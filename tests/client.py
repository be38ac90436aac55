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
    "planned_start": "2026-12-05T22:00:00+01:00",
    "planned_end": "2026-12-05T23:30:00+01:00",
    "implementation_plan": "Deploy the release with the pipeline.",
    "rollback_plan": "Redeploy 5.1 from the artefact store.",
    "rollback_tested": True,
    "test_plan": "Regression suite in staging.",
    "justification": "Fixes customer-facing defects.",
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
