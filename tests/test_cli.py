"""The `changeflow` command line, run as a real subprocess the way operators use it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

CHANGEFLOW = str(Path(sys.executable).with_name("changeflow"))


def run_cli(*args, database_url: str, tmp_path, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "CHANGEFLOW_INSTANCE_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)
    result = subprocess.run([CHANGEFLOW, *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_users_create_prints_a_working_token_last(app, database_url, tmp_path):
    run_cli("db", "upgrade", database_url=database_url, tmp_path=tmp_path)
    result = run_cli("users", "create", "dana", "--role", "change_manager", "--role", "cab_member",
                     "--email", "dana@example.org", database_url=database_url, tmp_path=tmp_path)
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("cf_") and len(token) > 30
    client = app.test_client()
    body = client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
    assert body.status_code == 200
    # the token is stored hashed, never in clear
    with app.app_context():
        from sqlalchemy import select

        from engine.models import ApiToken
        from webui.extensions import db

        hashes = db.session.scalars(select(ApiToken.token_hash)).all()
        assert token not in hashes and len(hashes) > 0


def test_users_create_refuses_unknown_role(app, database_url, tmp_path):
    result = run_cli("users", "create", "eve", "--role", "overlord", database_url=database_url,
                     tmp_path=tmp_path, check=False)
    assert result.returncode == 2
    assert "overlord" in result.stderr


def test_processes_deploy_only_versions_what_changed(app, database_url, tmp_path):
    first = run_cli("processes", "deploy", database_url=database_url, tmp_path=tmp_path)
    assert "unchanged normal_change version 1" in first.stdout
    processes = tmp_path / "processes"
    processes.mkdir()
    for path in Path("processes").iterdir():
        text = path.read_text()
        if path.name == "standard_change.bpmn":
            text = text.replace('name="Verify and close"', 'name="Verify outcome and close"')
        (processes / path.name).write_text(text)
    env_dirs = {"CHANGEFLOW_PROCESSES_DIR": str(processes)}
    os.environ.update(env_dirs)
    try:
        second = run_cli("processes", "deploy", database_url=database_url, tmp_path=tmp_path)
    finally:
        for key in env_dirs:
            os.environ.pop(key)
    assert "deployed standard_change version 2" in second.stdout
    assert "unchanged normal_change version 1" in second.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(server: subprocess.Popen, base: str, what: str, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.poll() is None, server.stdout.read()
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.2)


def test_demo_serves_the_api_with_documented_tokens(tmp_path):
    port = _free_port()
    env = {**os.environ, "CHANGEFLOW_INSTANCE_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    server = subprocess.Popen([CHANGEFLOW, "demo", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(server, base, "demo", seconds=60)
        headers = {"Authorization": "Bearer demo-alice"}
        created = httpx.post(f"{base}/api/changes", headers=headers, json={
            "title": "Rotate firewall certificates", "change_type": "normal", "category": "infrastructure",
            "services": ["firewall"], "impact": 2, "urgency": 2, "rollback_plan": "Restore old certs"})
        assert created.status_code == 201, created.text
        assert created.json()["number"].startswith("CHG")
        inbox = httpx.get(f"{base}/api/tasks", headers={"Authorization": "Bearer demo-morgan"}).json()
        assert [t["name"] for t in inbox] == ["Authorize change"]
        assert (tmp_path / "demo.sqlite3").exists() or (tmp_path / "changeflow.sqlite3").exists()
        # no Redis and no SMTP server: the approver's email was delivered in-process, as a file
        mails = [p.read_text() for p in (tmp_path / "mail").glob("*.eml")]
        assert any("Authorize change" in m and "morgan@demo.changeflow.invalid" in m for m in mails), mails
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_tokens_create_scoped_list_and_revoke(app, database_url, tmp_path):
    created = run_cli("tokens", "create", "ivan", "--name", "release pipeline", "--scope", "change.gate",
                      "--expires-days", "30", database_url=database_url, tmp_path=tmp_path)
    token = created.stdout.strip().splitlines()[-1]
    assert "limited to change.gate" in created.stdout
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/tasks", headers=headers).status_code == 403
    listed = run_cli("tokens", "list", "ivan", database_url=database_url, tmp_path=tmp_path).stdout
    line = next(l for l in listed.splitlines() if "release pipeline" in l)
    assert "active" in line and token not in listed
    token_id = line.split("\t")[0]
    run_cli("tokens", "revoke", token_id, database_url=database_url, tmp_path=tmp_path)
    assert client.get("/api/changes/1/gate", headers=headers).status_code == 401
    refused = run_cli("tokens", "create", "ivan", "--name", "x", "--scope", "everything",
                      database_url=database_url, tmp_path=tmp_path, check=False)
    assert refused.returncode == 2 and "everything" in refused.stderr


def test_worker_needs_redis_and_says_so(database_url, tmp_path):
    refused = run_cli("worker", "--burst", database_url=database_url, tmp_path=tmp_path, check=False)
    assert refused.returncode != 0 and "REDIS_URL" in refused.stderr


def test_users_set_password_lets_them_sign_in(app, database_url, tmp_path):
    env = {**os.environ, "DATABASE_URL": database_url, "CHANGEFLOW_INSTANCE_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)
    short = subprocess.run([CHANGEFLOW, "users", "set-password", "ivan", "--password-stdin"], env=env,
                           input="short\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    done = subprocess.run([CHANGEFLOW, "users", "set-password", "ivan", "--password-stdin"], env=env,
                          input="correct horse battery\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    import re

    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"username": "ivan", "password": "correct horse battery",
                                         "csrf_token": token})
    assert answer.status_code == 302
    with app.app_context():
        from sqlalchemy import select

        from engine.models import User
        from webui.extensions import db

        stored = db.session.scalar(select(User.password_hash).where(User.username == "ivan"))
        assert stored.startswith("$argon2id$") and "correct horse" not in stored


def test_serve_runs_two_workers_per_core_under_gunicorn(app, database_url, tmp_path):
    """The production entry point: migrates, deploys, and serves the API from gunicorn workers."""
    run_cli("db", "upgrade", database_url=database_url, tmp_path=tmp_path)
    token = run_cli("users", "create", "rita", "--role", "requester", database_url=database_url,
                    tmp_path=tmp_path).stdout.strip().splitlines()[-1]
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "CHANGEFLOW_INSTANCE_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)
    server = subprocess.Popen([CHANGEFLOW, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(server, base, "serve", seconds=90)
        workers = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        assert len(workers) == 2 * os.cpu_count()
        created = httpx.post(f"{base}/api/changes", headers={"Authorization": f"Bearer {token}"}, json={
            "title": "Rotate certificates", "change_type": "normal", "category": "infrastructure",
            "services": [], "impact": 3, "urgency": 3, "rollback_plan": "Restore the old ones"}, timeout=30)
        assert created.status_code == 201, created.text
    finally:
        server.terminate()
        server.wait(timeout=20)
