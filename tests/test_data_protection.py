"""Data protection: secrets come from the environment and never show in a printed setting, a log
line or an error stored for the outbox; evidence files live outside the web root."""
from __future__ import annotations

import logging

from sqlalchemy import select

from engine.config import Settings, SmtpSettings
from engine.models import Notification
from webui.extensions import db

from .background_support import DroppingServer

SECRETS = {"SECRET_KEY": "flask-secret-DO-NOT-PRINT", "CHANGEFLOW_SMTP_PASSWORD": "smtp-secret-DO-NOT-PRINT",
           "CHANGEFLOW_OIDC_CLIENT_SECRET": "oidc-secret-DO-NOT-PRINT",
           "DATABASE_URL": "postgresql+psycopg://cf:db-secret-DO-NOT-PRINT@db.example.com/changeflow",
           "REDIS_URL": "redis://:redis-secret-DO-NOT-PRINT@cache.example.com:6379/0"}


def test_settings_come_from_the_environment_and_never_print_their_secrets(monkeypatch, tmp_path):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CHANGEFLOW_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("CHANGEFLOW_SMTP_USERNAME", "changeflow")
    settings = Settings.from_env(instance_dir=tmp_path)
    assert settings.secret_key == SECRETS["SECRET_KEY"] and settings.smtp.password == SECRETS["CHANGEFLOW_SMTP_PASSWORD"]
    printed = repr(settings) + str(settings) + repr(settings.smtp)
    assert "DO-NOT-PRINT" not in printed, printed
    assert "cf:***@db.example.com" in printed and ":***@cache.example.com:6379" in printed  # the rest stays readable


def test_a_failing_delivery_logs_and_stores_no_password(api, caplog):
    password = "smtp-secret-DO-NOT-PRINT"
    caplog.set_level(logging.DEBUG)
    with DroppingServer() as down:
        broken = api.with_settings(smtp=SmtpSettings(host="127.0.0.1", port=down.port, starttls=False,
                                                     username="changeflow", password=password),
                                   retry_base_seconds=60)
        change = broken.submit()
        assert down.attempts
    with api.app.app_context():
        errors = db.session.scalars(select(Notification.last_error).where(Notification.change_id == change["id"])).all()
    assert any(errors), "the delivery failed and said why"
    assert password not in caplog.text and not any(password in (e or "") for e in errors)


def test_evidence_files_are_stored_outside_the_web_root_and_not_served_as_static(api, settings):
    from engine.config import PROJECT_ROOT

    change = api.submit()
    content = b"evidence that must only leave through the permission-checked download"
    uploaded = api.post(f"/api/changes/{change['id']}/evidence", "alice", data={
        "kind": "test_result", "file": (__import__("io").BytesIO(content), "result.txt")},
        content_type="multipart/form-data")
    assert uploaded.status_code == 201, uploaded.get_json()
    stored = [p for p in settings.evidence_dir.rglob("*") if p.is_file() and p.read_bytes() == content]
    assert stored, "the file is in the evidence store"
    web_root = (PROJECT_ROOT / "webui" / "static").resolve()
    assert all(web_root not in p.resolve().parents for p in stored)
    sha = uploaded.get_json()["sha256"]
    for path in (f"/static/{sha}", f"/static/../instance/evidence/{sha}", f"/static/%2e%2e/{sha}",
                 f"/{stored[0].name}"):
        answer = api.get(path)
        assert answer.status_code in (302, 404) and content not in answer.data, path
