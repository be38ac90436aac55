import json
from .client import NORMAL_CHANGE

def test_explore(api, backend):
    if backend != "sqlite":
        return
    r = api.post("/api/changes", "alice", json={**NORMAL_CHANGE, "change_type": "emergency"})
    print(r.status_code, r.get_json())
    c = api.submit(change_type="emergency", emergency_reason="Outage", services=["firewall"], implementer="ivan")
    print(c["state"], c["risk"], c["risk_reasons"], c["priority"])
    print(api.inbox("erin"))
    api.act("erin", c["id"], {"decision": "reject", "comment": "more detail"})
    print(api.change(c["id"])["state"], api.inbox("alice"))
    api.act("alice", c["id"], {"rework_action": "resubmit", "impact": 1, "urgency": 1})
    c2 = api.change(c["id"])
    print(c2["state"], c2["risk"], c2["risk_reasons"], c2["priority"], c2["impact"])
    api.act("erin", c["id"], {"decision": "approve"})
    print(api.change(c["id"])["state"], api.inbox("ivan"))
    api.act("ivan", c["id"], {"actual_start": "2026-12-05T22:05:00+01:00", "actual_end": "2026-12-05T22:50:00+01:00", "implementation_result": "completed"})
    print(api.change(c["id"])["state"], api.inbox("casey"), api.inbox("morgan"))
    api.act("casey", c["id"], {"close_code": "successful", "lessons_learned": "x"})
    tr = api.trace(c["id"])
    print([ (e["kind"], e["data"]) for e in tr["events"] if e["kind"] in ("state_changed", "risk_assessed")])
    print(tr["diagram"]["completed_element_ids"], tr["diagram"]["active_element_ids"])
    s = api.submit(change_type="standard")
    print(s["state"], s["risk"], s["risk_reasons"], api.inbox("ivan"), api.inbox("alice"))
    t = api.task("ivan", s["id"])
    print(api.post(f"/api/tasks/{t['id']}/claim", "ivan").get_json())
    api.act("ivan", s["id"], {"actual_start": "2026-12-05T22:05:00+01:00", "actual_end": "2026-12-05T22:50:00+01:00", "implementation_result": "completed"})
    print(api.inbox("alice"))
    api.act("alice", s["id"], {"close_code": "successful", "verification_notes": "ok"})
    print(api.change(s["id"])["state"])
    tr = api.trace(s["id"])
    print([ (e["kind"], e["data"]) for e in tr["events"] if e["kind"] in ("state_changed", "risk_assessed")])
    assert 0
