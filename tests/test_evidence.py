"""Evidence on a change: content-addressed files, links, immutable versions, hostile uploads, access, audit."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile

import pytest
from sqlalchemy import func, select

from engine.config import Settings
from engine.evidence import current_evidence, present_kinds
from engine.evidence_files import safe_filename
from engine.models import Change, Evidence
from webui.extensions import db

from .test_permissions_api import make_user

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"


@pytest.fixture
def settings(settings, request):
    """conftest's settings; `@pytest.mark.parametrize("settings", [limit], indirect=True)` sets the size limit."""
    limit = getattr(request, "param", None)
    return dataclasses.replace(settings, evidence_max_bytes=limit) if limit else settings


# -- helpers -----------------------------------------------------------------------------------

def upload(api, change_id: int, content: bytes, filename: str = "report.txt", user: str = "alice", **form):
    data = {"file": (io.BytesIO(content), filename), "kind": "test_result", **form}
    return api.post(f"/api/changes/{change_id}/evidence", user, data=data, content_type="multipart/form-data")


def uploaded(api, change_id: int, content: bytes, filename: str = "report.txt", **form) -> dict:
    response = upload(api, change_id, content, filename, **form)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def link(api, change_id: int, url: str, user: str = "alice", **body):
    return api.post(f"/api/changes/{change_id}/evidence", user, json={"kind": "test_result", "url": url, **body})


def listed(api, change_id: int, user: str = "audrey") -> list[dict]:
    response = api.get(f"/api/changes/{change_id}/evidence", user)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def files_under(path) -> set:
    return {p for p in path.rglob("*") if p.is_file()}


def rows(api) -> int:
    with api.app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Evidence))
        db.session.remove()
    return count


def audit_events(api, change_id: int, kind: str) -> list[dict]:
    return [e for e in api.trace(change_id)["events"] if e["kind"] == kind]


def canceled_change(api) -> int:
    change_id = api.submit()["id"]
    api.act("morgan", change_id, {"decision": "reject", "comment": "Not now."})
    api.act("alice", change_id, {"rework_action": "cancel", "comment": "No longer needed."})
    assert api.change(change_id)["state"] == "canceled"
    return change_id


# -- files -------------------------------------------------------------------------------------

def test_uploaded_file_is_stored_by_its_sha256_and_typed_from_its_content(api, settings):
    change_id = api.submit()["id"]
    item = uploaded(api, change_id, PDF, "results.txt", note="Regression suite, all green.")
    sha = hashlib.sha256(PDF).hexdigest()
    assert (item["sha256"], item["size"], item["content_type"]) == (sha, len(PDF), "application/pdf")
    assert (item["filename"], item["kind"], item["version"], item["uploaded_by"]) == ("results.txt", "test_result", 1,
                                                                                       "alice")
    blob = settings.evidence_dir / sha[:2] / sha[2:4] / sha
    assert blob.read_bytes() == PDF
    assert files_under(settings.evidence_dir) == {blob}

    again = uploaded(api, change_id, PDF, "copy.pdf", kind="verification")  # same bytes: stored once
    assert again["sha256"] == sha and files_under(settings.evidence_dir) == {blob}

    download = api.get(item["download_url"], "morgan")
    assert download.status_code == 200 and download.data == PDF
    assert download.mimetype == "application/pdf"
    assert download.headers["Content-Disposition"].startswith("attachment") and "results.txt" in \
        download.headers["Content-Disposition"]
    assert api.get(f"/api/evidence/{item['id']}", "audrey").get_json() == {**item, "superseded_by": None}


@pytest.mark.parametrize("content, expected", [
    (PNG, "image/png"), (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"), (b"GIF89a\x01\x00", "image/gif"),
    (b"\x1f\x8b\x08\x00" + bytes(8), "application/gzip"), (b'{"passed": 412, "failed": 0}', "application/json"),
    ("deploy ok — 3 nodes\n\tdone\n".encode(), "text/plain"), (b"\x00\x01\x02binary", "application/octet-stream"),
    (b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'><script>x()</script></svg>", "image/svg+xml"),
    (b"  <html><body>hi</body></html>", "text/html"),
])
def test_type_is_sniffed_from_content(api, content, expected):
    change_id = api.submit()["id"]
    assert uploaded(api, change_id, content, "evidence.pdf")["content_type"] == expected


def test_office_documents_are_recognised_inside_their_zip(api):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("logs/run.txt", "ok")
    change_id = api.submit()["id"]
    assert uploaded(api, change_id, buffer.getvalue(), "costs.bin")["content_type"] == \
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert uploaded(api, change_id, plain.getvalue(), "logs.zip")["content_type"] == "application/zip"


@pytest.mark.parametrize("content", [HTML, b"<svg onload='alert(1)' xmlns='http://www.w3.org/2000/svg'/>"])
def test_markup_is_never_served_as_a_page(api, content):
    change_id = api.submit()["id"]
    item = uploaded(api, change_id, content, "report.pdf")
    response = api.get(item["download_url"], "alice")
    assert response.status_code == 200 and response.data == content
    assert response.mimetype == "application/octet-stream"
    assert "html" not in response.headers["Content-Type"] and "svg" not in response.headers["Content-Type"]
    assert response.headers["Content-Disposition"] == "attachment; filename=report.pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "sandbox"


@pytest.mark.parametrize("hostile, safe", [
    ("../../etc/passwd", "passwd"), ("..\\..\\boot.ini", "boot.ini"), ("report\x00.pdf.exe", "report.pdf.exe"),
    (".htaccess", "htaccess"), ("...", "evidence"), ("", "evidence"), ("a\r\nSet-Cookie: x=1", "aSet-Cookie_ x_1"),
    ("résumé <script>.txt", "r_sum_ _script_.txt"), ("x" * 300 + ".pdf", "x" * 251 + ".pdf"),
])
def test_filenames_are_sanitised(hostile, safe):
    assert safe_filename(hostile) == safe


def test_hostile_filenames_are_stored_with_safe_names_inside_the_store(api, settings, tmp_path):
    change_id = api.submit()["id"]
    cases = {"../../etc/passwd": "passwd", "..\\..\\boot.ini": "boot.ini", "evil\x00.txt": "evil.txt",
             "y" * 300: "y" * 255, ".htaccess": "htaccess"}
    before = set(files_under(tmp_path))  # the app's own files (its secret key, mail so far)
    for n, (hostile, safe) in enumerate(cases.items()):
        item = uploaded(api, change_id, f"line {n}\n".encode(), hostile)
        assert item["filename"] == safe, hostile
        download = api.get(item["download_url"], "alice")
        assert download.headers["Content-Disposition"] == f"attachment; filename={safe}"
    mail = settings.instance_dir / "mail"  # delivered notifications (no SMTP in tests), not evidence
    blobs = {p for p in set(files_under(tmp_path)) - before if mail not in p.parents}
    assert len(blobs) == len(cases) and all(settings.evidence_dir in p.parents for p in blobs)
    assert not (tmp_path / "etc").exists() and not any(p.name in ("passwd", "boot.ini", ".htaccess") for p in
                                                       tmp_path.rglob("*"))


def test_empty_file_is_refused_and_nothing_is_stored(api, tmp_path):
    change_id = api.submit()["id"]
    before = files_under(tmp_path)
    response = upload(api, change_id, b"", "empty.log")
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"] == [{"field": "file", "message": "is empty (0 bytes)"}]
    assert rows(api) == 0 and files_under(tmp_path) == before
    assert audit_events(api, change_id, "evidence_uploaded") == []


@pytest.mark.parametrize("settings", [1024], indirect=True)
def test_over_the_size_limit_is_413_and_nothing_is_stored(api, settings, tmp_path):
    assert api.app.config["CHANGEFLOW_SETTINGS"].evidence_max_bytes == 1024
    change_id = api.submit()["id"]
    assert uploaded(api, change_id, b"x" * 1024, "exactly.log")["size"] == 1024
    before = files_under(tmp_path)
    for size in (1025, 1024 * 1024 + 1, 3 * 1024 * 1024):  # over the file limit; over the request limit
        response = upload(api, change_id, b"y" * size, "big.log")
        assert response.status_code == 413, (size, response.get_json())
        body = response.get_json()
        assert (body["status"], body["max_bytes"]) == ("Payload Too Large", 1024)
        assert "1024 bytes" in body["message"] and body["errors"][0]["field"] == "file"
    assert rows(api) == 1 and files_under(tmp_path) == before
    assert len(audit_events(api, change_id, "evidence_uploaded")) == 1


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    defaults = Settings.from_env(instance_dir=tmp_path)
    assert (defaults.evidence_dir, defaults.evidence_max_bytes) == (tmp_path / "evidence", 25 * 1024 * 1024)
    monkeypatch.setenv("CHANGEFLOW_EVIDENCE_DIR", str(tmp_path / "vault"))
    monkeypatch.setenv("CHANGEFLOW_EVIDENCE_MAX_BYTES", "4096")
    configured = Settings.from_env(instance_dir=tmp_path)
    assert (configured.evidence_dir, configured.evidence_max_bytes) == (tmp_path / "vault", 4096)


# -- links -------------------------------------------------------------------------------------

def test_links_are_evidence_and_only_web_urls_are_accepted(api):
    change_id = api.submit()["id"]
    response = link(api, change_id, "https://ci.example.com/runs/4711", note="Pipeline run")
    assert response.status_code == 201, response.get_json()
    item = response.get_json()
    assert (item["url"], item["sha256"], item["filename"], item["download_url"]) == (
        "https://ci.example.com/runs/4711", None, None, None)
    assert api.get(f"/api/evidence/{item['id']}/download", "alice").status_code == 404
    for bad in ("javascript:alert(1)", "data:text/html,<script>x()</script>", "JavaScript:alert(1)",
                "ftp://files.example.com/x", "https://", "http://exa mple.com", "//example.com/x",
                "https://example.com/" + "a" * 2000):
        refused = link(api, change_id, bad)
        assert refused.status_code == 422, bad[:80]
        assert [e["field"] for e in refused.get_json()["errors"]] == ["url"], bad[:80]
    assert [e["url"] for e in listed(api, change_id)] == ["https://ci.example.com/runs/4711"]


# -- versions ----------------------------------------------------------------------------------

def test_a_correction_supersedes_and_both_versions_stay(api):
    change_id = api.submit()["id"]
    first = uploaded(api, change_id, b"42 passed, 1 failed\n", "run.log")
    second = uploaded(api, change_id, b"43 passed\n", "run.log", supersedes=str(first["id"]), note="Rerun")
    assert (second["version"], second["supersedes"]) == (2, first["id"])
    third = link(api, change_id, "https://ci.example.com/runs/4712", supersedes=second["id"]).get_json()
    assert third["version"] == 3
    versions = listed(api, change_id)
    assert [(v["id"], v["version"], v["superseded_by"]) for v in versions] == [
        (first["id"], 1, second["id"]), (second["id"], 2, third["id"]), (third["id"], 3, None)]
    assert api.get(f"/api/evidence/{first['id']}", "alice").get_json()["superseded_by"] == second["id"]
    assert api.get(first["download_url"], "alice").data == b"42 passed, 1 failed\n"  # the old file stays

    again = upload(api, change_id, b"44 passed\n", supersedes=first["id"])
    assert again.status_code == 409 and str(second["id"]) in again.get_json()["message"]
    assert link(api, change_id, "https://x.example.com", supersedes=second["id"]).status_code == 409
    other = api.submit()["id"]
    assert upload(api, other, b"y\n", supersedes=third["id"]).get_json()["errors"][0]["field"] == "supersedes"
    assert upload(api, change_id, b"y\n", kind="rollback_plan", supersedes=third["id"]).status_code == 422
    assert len(listed(api, change_id)) == 3

    with api.app.app_context():
        change = db.session.get(Change, change_id)
        assert [e.id for e in current_evidence(db.session, change)] == [third["id"]]
        assert present_kinds(db.session, change) == {"test_result"}
        db.session.remove()


# -- who and when ------------------------------------------------------------------------------

def test_unknown_kind_and_missing_file_are_refused(api):
    change_id = api.submit()["id"]
    refused = upload(api, change_id, b"x\n", kind="screenshot")
    assert refused.status_code == 422 and [e["field"] for e in refused.get_json()["errors"]] == ["kind"]
    missing = api.post(f"/api/changes/{change_id}/evidence", "alice", data={"kind": "other"},
                       content_type="multipart/form-data")
    assert missing.status_code == 422 and [e["field"] for e in missing.get_json()["errors"]] == ["file"]
    assert link(api, change_id, "https://ci.example.com", kind="screenshot").status_code == 422
    assert rows(api) == 0


def test_access_follows_the_change(api, tmp_path):
    change_id = api.submit()["id"]
    item = uploaded(api, change_id, b"plan\n", kind="rollback_plan")
    before = files_under(tmp_path)
    auditor = upload(api, change_id, b"audit\n", user="audrey")
    assert auditor.status_code == 403 and "evidence.upload" in auditor.get_json()["message"]
    assert link(api, change_id, "https://example.com", user="audrey").status_code == 403
    rita = make_user(api, "rita", "requester")
    assert api.request("POST", f"/api/changes/{change_id}/evidence", token=rita, data={
        "file": (io.BytesIO(b"r\n"), "r.txt"), "kind": "other"}, content_type="multipart/form-data").status_code == 403
    for path in (item["download_url"], f"/api/evidence/{item['id']}", f"/api/changes/{change_id}/evidence"):
        assert api.request("GET", path, token=rita).status_code == 403, path
        assert api.get(path).status_code == 401, path
    assert api.get(item["download_url"], "audrey").status_code == 200
    assert api.get("/api/evidence/9999", "audrey").status_code == 404
    assert rows(api) == 1 and files_under(tmp_path) == before
    assert uploaded(api, change_id, b"log\n", user="ivan", kind="implementation_log")["uploaded_by"] == "ivan"


def test_closed_and_canceled_changes_take_no_evidence(api, tmp_path):
    change_id = canceled_change(api)
    before = files_under(tmp_path)
    refused = upload(api, change_id, b"late\n")
    assert refused.status_code == 409 and "canceled" in refused.get_json()["message"]
    assert link(api, change_id, "https://ci.example.com/late").status_code == 409
    assert rows(api) == 0 and files_under(tmp_path) == before


def test_uploads_and_downloads_are_audited(api):
    change_id = api.submit()["id"]
    item = uploaded(api, change_id, PDF, "result.pdf")
    fixed = uploaded(api, change_id, PDF + b"%fixed\n", "result.pdf", supersedes=item["id"])
    api.get(fixed["download_url"], "audrey")
    api.get(fixed["download_url"], "morgan")
    events = audit_events(api, change_id, "evidence_uploaded")
    assert [(e["actor"], e["data"]["evidence_id"], e["data"]["supersedes"]) for e in events] == [
        ("alice", item["id"], None), ("alice", fixed["id"], item["id"])]
    assert events[1]["data"].items() >= {"sha256": fixed["sha256"], "kind": "test_result", "size": fixed["size"],
                                         "version": 2}.items()
    downloads = audit_events(api, change_id, "evidence_downloaded")
    assert [(e["actor"], e["data"]["evidence_id"], e["data"]["sha256"]) for e in downloads] == [
        ("audrey", fixed["id"], fixed["sha256"]), ("morgan", fixed["id"], fixed["sha256"])]
