"""Notifications: who hears what, on which channel, opt-outs, delivery over real SMTP and webhooks,
retries with backoff, the dead-letter list and its retry. Jobs run in-process (no REDIS_URL)."""
from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import ssl
from datetime import datetime, timedelta, timezone

import pytest
import trustme
from sqlalchemy import select

from engine import outbox
from engine.config import SmtpSettings
from engine.delivery.email import plain_text_message
from engine.models import Job, Notification
from webui.extensions import db

from .background_support import DroppingServer, SmtpServer, WebhookReceiver

WINDOW = {"planned_start": "2037-12-08T21:00:00+00:00", "planned_end": "2037-12-08T22:00:00+00:00"}


def rows(api, change_id=None, **where):
    with api.app.app_context():
        query = select(Notification).order_by(Notification.id)
        if change_id:
            query = query.where(Notification.change_id == change_id)
        for field, value in where.items():
            query = query.where(getattr(Notification, field) == value)
        return [(n.kind, n.channel, n.recipient.username if n.recipient else None, n.status)
                for n in db.session.scalars(query)]


def approve_and_schedule(api, change_id):
    api.act("morgan", change_id, {"decision": "approve", "comment": "ok"}, name="Authorize change")
    api.attach_required(change_id)
    api.act("morgan", change_id, {**WINDOW, "implementer": "ivan"}, name="Schedule change")


def test_each_audience_hears_its_part_of_a_change(api, settings):
    change = api.submit(**WINDOW)
    cid = change["id"]
    assert rows(api, cid) == [("task_waiting", "email", "morgan", "sent")]  # the approver, delivered at once
    approve_and_schedule(api, cid)
    sent = rows(api, cid)
    assert ("request_approved", "email", "alice", "sent") in sent
    assert ("request_scheduled", "email", "alice", "sent") in sent
    assert ("change_scheduled", "email", "sam", "sent") in sent  # owner of crm-web
    assert ("window_reminder", "email", "sam", "pending") in sent  # 24 h before the window
    assert not [r for r in sent if r[2] in ("ivan", "audrey")]

    mail = {p.name: email.message_from_bytes(p.read_bytes()) for p in (settings.instance_dir / "mail").glob("*.eml")}
    scheduled = next(m for m in mail.values() if m["X-Changeflow-Event"] == "change_scheduled")
    assert scheduled["To"] == "sam@demo.changeflow.invalid"
    assert change["number"] in scheduled["Subject"]
    body = scheduled.get_payload()
    assert "Rollback plan: Redeploy 5.1" in body and f"/api/changes/{cid}" in body
    assert scheduled["Message-ID"].startswith("<notification-")

    api.run_due(datetime(2037, 12, 7, 21, 0, 1, tzinfo=timezone.utc))  # a day before the window
    assert ("window_reminder", "email", "sam", "sent") in rows(api, cid)
    told = [(n["kind"], n["recipient"], n["status"]) for n in api.trace(cid)["notifications"]]
    assert told == [(kind, who, status) for kind, _, who, status in rows(api, cid)]  # the auditor sees it all


def test_a_reminder_for_a_window_that_moved_is_not_sent(api):
    change = api.submit(**WINDOW)
    approve_and_schedule(api, change["id"])
    with api.app.app_context():
        from engine.models import Change

        moved = db.session.get(Change, change["id"])
        moved.planned_start += timedelta(days=3)
        moved.planned_end += timedelta(days=3)
        db.session.commit()
    api.run_due(datetime(2037, 12, 7, 22, tzinfo=timezone.utc))
    assert ("window_reminder", "email", "sam", "skipped") in rows(api, change["id"])


def test_users_opt_out_per_channel_and_kind_but_not_of_escalations(api):
    prefs = api.get("/api/me/notifications", "alice").get_json()
    assert {k["kind"]: k["mandatory"] for k in prefs["kinds"]}["conflict_escalation"] is True
    refused = api.request("PUT", "/api/me/notifications", "morgan", json={"opt_out": ["email:conflict_escalation"]})
    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["field"] == "opt_out.0"
    assert api.request("PUT", "/api/me/notifications", "alice", json={"opt_out": ["pager"]}).status_code == 422
    ok = api.request("PUT", "/api/me/notifications", "alice", json={"opt_out": ["email:request_approved"]})
    assert ok.status_code == 200 and ok.get_json()["opt_out"] == ["email:request_approved"]
    assert api.request("PUT", "/api/me/notifications", "morgan", json={"opt_out": ["email"]}).status_code == 200

    change = api.submit(**WINDOW)
    approve_and_schedule(api, change["id"])
    heard = rows(api, change["id"])
    assert not [r for r in heard if r[0] == "request_approved"]
    assert ("request_scheduled", "email", "alice", "sent") in heard
    assert not [r for r in heard if r[2] == "morgan"]  # morgan switched email off entirely

    api.post("/api/windows", "morgan", json={"kind": "blackout", "name": "Freeze", "services": [],
                                             "starts_at": "2037-12-08T00:00:00+00:00",
                                             "ends_at": "2037-12-09T00:00:00+00:00"})
    assert ("conflict_escalation", "email", "morgan", "sent") in rows(api, change["id"])  # mandatory


def test_webhooks_are_signed_and_carry_the_change(api):
    with WebhookReceiver() as receiver:
        created = api.post("/api/admin/webhooks", "ada", json={
            "name": "chatops", "url": receiver.url, "events": ["change_scheduled"]})
        assert created.status_code == 201
        secret = created.get_json()["secret"]
        assert "secret" not in api.get("/api/admin/webhooks", "ada").get_json()[0]
        assert api.post("/api/admin/webhooks", "morgan", json={"name": "x", "url": receiver.url}).status_code == 403

        change = api.submit(**WINDOW)
        approve_and_schedule(api, change["id"])
        assert len(receiver.requests) == 1  # only the kind it subscribed to, once per event (not per person)
        request = receiver.requests[0]
        headers = request["headers"]
        expected = hmac.new(secret.encode(), headers["X-Changeflow-Timestamp"].encode() + b"." + request["body"],
                            hashlib.sha256).hexdigest()
        assert headers["X-Changeflow-Signature"] == f"sha256={expected}"
        assert headers["X-Changeflow-Event"] == "change_scheduled"
        body = request["json"]
        assert body["event"] == "change_scheduled" and body["change"]["number"] == change["number"]
        assert body["change"]["services"] == ["crm-web"] and str(body["id"]) == headers["X-Changeflow-Delivery"]


def test_a_personal_webhook_may_not_point_into_the_internal_network(api):
    for url in ("http://127.0.0.1:6379/", "http://10.1.2.3/hook", "http://[::1]/x", "ftp://example.com/x"):
        refused = api.request("PUT", "/api/me/notifications", "alice", json={"webhook_url": url})
        assert refused.status_code == 422, url
        assert refused.get_json()["errors"][0]["field"] == "webhook_url"
    assert api.get("/api/me/notifications", "alice").get_json()["webhook_url"] is None


def test_a_personal_webhook_is_a_channel(api):
    api = api.with_settings(webhook_allow_private=True)  # the receiver listens on localhost
    with WebhookReceiver() as receiver:
        answer = api.request("PUT", "/api/me/notifications", "sam", json={"webhook_url": receiver.url,
                                                                         "opt_out": ["email"]}).get_json()
        secret = answer["webhook_secret"]
        change = api.submit(**WINDOW)
        approve_and_schedule(api, change["id"])
        assert ("change_scheduled", "webhook", "sam", "sent") in rows(api, change["id"])
        assert not [r for r in rows(api, change["id"]) if r[2] == "sam" and r[1] == "email"]
        hook = next(r for r in receiver.requests if r["json"]["event"] == "change_scheduled")
        assert hook["json"]["recipient"] == "sam"
        signed = hook["headers"]["X-Changeflow-Timestamp"].encode() + b"." + hook["body"]
        assert hook["headers"]["X-Changeflow-Signature"] == \
            "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def test_failing_webhook_retries_with_backoff_then_dead_letter_then_admin_retry(api):
    fast = api.with_settings(retry_base_seconds=10, job_max_attempts=3)
    with WebhookReceiver() as receiver:
        receiver.status = 500
        fast.post("/api/admin/webhooks", "ada", json={"name": "itsm", "url": receiver.url,
                                                      "events": ["request_scheduled"]})
        change = fast.submit(**WINDOW)
        approve_and_schedule(fast, change["id"])
        with fast.app.app_context():
            job = db.session.scalar(select(Job).join(Notification, Job.ref == Notification.id.cast(Job.ref.type))
                                    .where(Notification.channel == "webhook"))
            assert (job.status, job.attempts) == ("pending", 1)
            first_retry = job.due_at
        now = datetime.now(timezone.utc)
        assert timedelta(seconds=5) < first_retry - now < timedelta(seconds=15)  # base 10 s
        fast.run_due(first_retry)
        with fast.app.app_context():
            job = db.session.get(Job, job.id)
            assert (job.status, job.attempts) == ("pending", 2)
            assert timedelta(seconds=35) < job.due_at - first_retry < timedelta(seconds=45)  # 4 × base
            second_retry = job.due_at
        fast.run_due(second_retry)
        assert len(receiver.requests) == 3

        dead = fast.get("/api/admin/outbox", "ada", query_string={"status": "failed"}).get_json()
        assert dead["total"] == 1
        item = dead["items"][0]
        assert (item["kind"], item["channel"], item["endpoint"], item["attempts"]) == \
            ("request_scheduled", "webhook", "itsm", 3)
        assert "HTTP 500" in item["last_error"]
        assert fast.get("/api/admin/outbox", "audrey").status_code == 200  # auditors read
        assert fast.post(f"/api/admin/outbox/{item['id']}/retry", "audrey").status_code == 403
        assert fast.get("/api/admin/outbox", "morgan").status_code == 403

        assert fast.change(change["id"])["state"] == "scheduled"  # the workflow was never held up
        receiver.status = 200
        retried = fast.post(f"/api/admin/outbox/{item['id']}/retry", "ada")
        assert retried.status_code == 200
        assert rows(fast, change["id"], channel="webhook") == [("request_scheduled", "webhook", None, "sent")]
        assert fast.post(f"/api/admin/outbox/{item['id']}/retry", "ada").status_code == 409  # not failed now
        assert len(receiver.requests) == 4


@pytest.fixture(scope="module")
def certificate_authority():
    return trustme.CA()


def test_email_over_starttls_with_login(api, tmp_path, certificate_authority):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(server_context)
    cafile = tmp_path / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(cafile))
    with SmtpServer(tls_context=server_context, credentials=("changeflow", "s3cret")) as smtp:
        mailing = api.with_settings(smtp=SmtpSettings(host="127.0.0.1", port=smtp.port, starttls=True,
                                                        username="changeflow", password="s3cret",
                                                        sender="changes@example.com", cafile=str(cafile)))
        change = mailing.submit(**WINDOW)
        assert rows(mailing, change["id"]) == [("task_waiting", "email", "morgan", "sent")]
        [message] = smtp.sink.messages
        assert message["From"] == "changes@example.com" and message["To"] == "morgan@demo.changeflow.invalid"
        assert message["Message-ID"].endswith("@example.com>") and "Authorize change" in message["Subject"]

        refused = api.with_settings(smtp=SmtpSettings(host="127.0.0.1", port=smtp.port, starttls=True,
                                                        username="changeflow", password="wrong",
                                                        cafile=str(cafile)), retry_base_seconds=60)
        other = refused.submit(**WINDOW)
        with refused.app.app_context():
            failed = db.session.scalar(select(Notification).where(Notification.change_id == other["id"]))
            assert failed.status == "pending" and failed.attempts == 1
            assert "authentication" in failed.last_error.lower() or "535" in failed.last_error
        assert len(smtp.sink.messages) == 1


def test_smtp_down_does_not_hold_up_the_change(api):
    with DroppingServer() as down:
        broken = api.with_settings(smtp=SmtpSettings(host="127.0.0.1", port=down.port, starttls=False),
                               retry_base_seconds=60)
        change = broken.submit(**WINDOW)
        approve_and_schedule(broken, change["id"])
        assert broken.change(change["id"])["state"] == "scheduled"
        assert down.attempts, "delivery was attempted"
        due_now = [r for r in rows(broken, change["id"]) if r[0] != "window_reminder"]
        assert due_now and {status for *_, status in due_now} == {"pending"}  # each waits for its retry


def test_the_embedded_servers_timer_thread_sends_what_falls_due(api, settings):
    """No Redis: the demo's timer thread runs due jobs with the same runner a worker uses."""
    import time

    from webui.background import dispatcher

    change = api.submit(**WINDOW)
    with api.app.app_context():
        from engine.models import Change, User

        soon = datetime.now(timezone.utc) + timedelta(seconds=1)
        outbox_rows = outbox.notify(
            db.session, "request_approved", db.session.get(Change, change["id"]),
            [db.session.scalar(select(User).where(User.username == "alice"))], dedupe="later", send_after=soon)
        db.session.commit()
        later = outbox_rows[0].id
    timers = dispatcher(api.app)
    timers.start_timer_thread(interval=0.2)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with api.app.app_context():
                if db.session.get(Notification, later).status == "sent":
                    break
            time.sleep(0.1)
        with api.app.app_context():
            assert db.session.get(Notification, later).status == "sent"
    finally:
        timers.stop()


def test_mail_with_accents_long_lines_and_a_title_with_a_line_break_reads_back_as_written():
    """Messages are written without EmailMessage (it cost more than the rest of a delivery): what a
    mail client parses must be exactly the subject and text, and a title cannot add a header."""
    text = "Grüße Sam,\n\nThe window = Saturday 02:00–04:00.\n" + "log " * 400 + "\n-- \nChangeflow\n"
    raw = plain_text_message({"Subject": "CHG0000042 geplant: Datenbank-Update\r\nBcc: everyone@example.com",
                              "From": "changes@example.com", "To": "sam@example.com",
                              "Message-ID": "<notification-42@example.com>"}, text)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998 and b"\n" not in raw.replace(b"\r\n", b"")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "CHG0000042 geplant: Datenbank-Update Bcc: everyone@example.com"
    assert message["Bcc"] is None and message["To"] == "sam@example.com"
    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == text  # lines end in CRLF on the wire
    ascii_only = email.message_from_bytes(plain_text_message({"Subject": "Plain"}, "Hello,\n\nok\n"))
    assert ascii_only["Content-Transfer-Encoding"] == "7bit" and ascii_only.get_payload() == "Hello,\r\n\r\nok\r\n"


def test_a_notification_names_the_change_services_as_they_are_in_the_same_transaction(api):
    """The services in a message's summary and payload are read as columns when the command did not
    load them, and taken from the change when it did — including an edit not yet committed."""
    from engine.models import Change, Service, User

    change = api.submit(**{**WINDOW, "services": ["payroll", "crm-web"]})
    with api.app.app_context():
        alice = db.session.scalar(select(User).where(User.username == "alice"))
        row = db.session.get(Change, change["id"])
        first = outbox.notify(db.session, "request_approved", row, [alice], dedupe="keys-1")[0]
        assert "Services: crm-web, payroll\n" in first.body
        assert first.payload["change"]["services"] == ["crm-web", "payroll"]

        row.services = [db.session.scalar(select(Service).where(Service.key == "intranet"))]
        second = outbox.notify(db.session, "request_approved", row, [alice], dedupe="keys-2")[0]
        assert "Services: intranet\n" in second.body and second.payload["change"]["services"] == ["intranet"]
        db.session.rollback()
