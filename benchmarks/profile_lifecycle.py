"""Where a request's time goes: the lifecycle walked in-process (Flask test client) under pyinstrument.

    .venv/bin/pip install pyinstrument
    .venv/bin/python benchmarks/profile_lifecycle.py --changes 50 [--html profile.html]

Same database preparation and payloads as lifecycle.py, but no gunicorn and no sockets: what is
left is the service's own Python and its round trips to PostgreSQL.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench_db import DEFAULT_URL, prepare
from bench_payloads import REQUESTER, STEPS, change_request


def make_app(database_url: str):
    from engine.config import Settings
    from webui import create_app

    return create_app(Settings.from_env(database_url=database_url, redis_url=None))


def walk(client, headers: dict, index: int) -> None:
    response = client.post("/api/changes", json=change_request(index), headers=headers[REQUESTER])
    assert response.status_code == 201, response.get_json()
    change_id = response.get_json()["id"]
    for user, name, data in STEPS:
        tasks = client.get("/api/tasks", query_string={"change": change_id}, headers=headers[user]).get_json()
        task_id = next(t["id"] for t in tasks if t["name"] == name)
        response = client.post(f"/api/tasks/{task_id}/complete", json={"data": data}, headers=headers[user])
        assert response.status_code == 200, response.get_json()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL URL; the database is wiped")
    parser.add_argument("--html", type=Path, default=None, help="also write pyinstrument's HTML report")
    args = parser.parse_args(argv)
    from pyinstrument import Profiler

    tokens = prepare(args.database_url)
    headers = {user: {"Authorization": f"Bearer {token}"} for user, token in tokens.items()}
    client = make_app(args.database_url).test_client()
    walk(client, headers, 0)  # warm-up: spec cache, compiled expressions, connection pool
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for index in range(1, args.changes + 1):
        walk(client, headers, index)
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    if args.html:
        args.html.write_text(profiler.output_html())
    return 0


if __name__ == "__main__":
    sys.exit(main())
