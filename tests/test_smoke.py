def test_health_reports_database(api, backend):
    body = api.get("/api/health").get_json()
    assert body["database"] == {"ok": True, "dialect": backend}


def test_health_reports_redis_when_configured(app, settings):
    from webui import create_app

    configured = create_app(settings.__class__(**{**settings.__dict__, "redis_url": "redis://127.0.0.1:6379/0"}))
    body = configured.test_client().get("/api/health").get_json()
    assert (body["redis"]["configured"], body["redis"]["ok"]) == (True, True)
    assert isinstance(body["redis"]["workers"], int)
    assert body["status"] == "ok"


def test_health_reports_background_jobs_nobody_runs(api):
    from datetime import timedelta

    from sqlalchemy import update

    from engine.db import utcnow
    from engine.models import Job
    from webui.extensions import db

    from .background_support import free_port

    offline = api.with_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    offline.submit()  # the approver's email job cannot reach Redis and waits in the database
    assert api.get("/api/health").get_json()["jobs"] == {"late": 0, "failed": 0}
    with api.app.app_context():
        db.session.execute(update(Job).where(Job.status == "pending", Job.kind == "deliver")
                           .values(due_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
    body = api.get("/api/health").get_json()
    assert body["jobs"] == {"late": 1, "failed": 0} and body["status"] == "ok"


def test_health_is_degraded_when_redis_is_down(app, settings):
    from webui import create_app

    broken = create_app(settings.__class__(**{**settings.__dict__, "redis_url": "redis://127.0.0.1:1/0"}))
    response = broken.test_client().get("/api/health")
    assert response.status_code == 503
    assert response.get_json()["redis"]["ok"] is False


def test_openapi_document_is_served(api):
    spec = api.get("/api/openapi.json").get_json()
    assert spec["info"]["title"] == "Changeflow API"
    for path in ("/api/changes", "/api/tasks/{task_id}/complete", "/api/process-definitions",
                 "/api/changes/{change_id}/trace"):
        assert path in spec["paths"], path
    page = api.get("/api/docs")
    assert page.status_code == 200 and b"swagger-ui" in page.data
    assert api.get("/api/docs/assets/swagger-ui-bundle.js").status_code == 200
