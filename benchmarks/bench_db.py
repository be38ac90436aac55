"""A fresh PostgreSQL database for the benchmark: empty schema, migrations, processes, users, a service."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
from bench_payloads import OWNER, SERVICE_KEY, USERS
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/changeflow_bench"
PROTECTED_DATABASES = {"test", "postgres", "template0", "template1"}  # the test suite owns `test`


def changeflow_command() -> list[str]:
    """The `changeflow` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("changeflow")
    if script.exists():
        return [str(script)]
    found = shutil.which("changeflow")
    return [found] if found else [sys.executable, "-m", "webui.cli"]


def server_env(database_url: str, redis_url: str | None = None) -> dict:
    """Without redis_url the server runs jobs in-process (the embedded topology)."""
    env = dict(os.environ, DATABASE_URL=database_url)
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def _libpq_conninfo(url, database: str) -> str:
    parts = {"host": url.host or "127.0.0.1", "port": url.port or 5432, "user": url.username or "postgres",
             "password": url.password, "dbname": database}
    return make_conninfo(**{k: v for k, v in parts.items() if v is not None})


def reset_database(database_url: str) -> None:
    """Create the database if missing, then drop and recreate its public schema."""
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        raise SystemExit("the benchmark needs a PostgreSQL DATABASE_URL")
    if url.database in PROTECTED_DATABASES:
        raise SystemExit(f"refusing to wipe database '{url.database}'; use a database of its own")
    with psycopg.connect(_libpq_conninfo(url, "postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{url.database}"')
    with psycopg.connect(_libpq_conninfo(url, url.database), autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


def run_cli(database_url: str, *args: str) -> str:
    result = subprocess.run([*changeflow_command(), *args], env=server_env(database_url),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"changeflow {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def seed(database_url: str) -> dict[str, str]:
    """Users with tokens (via the CLI) and the service the changes affect; returns username -> token."""
    tokens = {}
    for username, role in USERS:
        output = run_cli(database_url, "users", "create", username, "--role", role,
                         "--email", f"{username}@bench.changeflow.invalid")
        tokens[username] = output.strip().splitlines()[-1]
    _create_service(database_url)
    return tokens


def _create_service(database_url: str) -> None:
    from engine.catalog import create_service
    from engine.db import make_engine

    engine = make_engine(database_url)
    with Session(engine) as session:
        create_service(session, None, {"key": SERVICE_KEY, "name": "Benchmark app", "criticality": 3,
                                       "owner": OWNER}, check_permission=False)
        session.commit()
    engine.dispose()


def prepare(database_url: str) -> dict[str, str]:
    reset_database(database_url)
    run_cli(database_url, "db", "upgrade")
    run_cli(database_url, "processes", "deploy")
    return seed(database_url)


def stored_state_bytes(database_url: str) -> float | None:
    """Average size of the workflow state the service stores per instance (spec left out)."""
    url = make_url(database_url)
    with psycopg.connect(_libpq_conninfo(url, url.database)) as conn:
        row = conn.execute("SELECT avg(length(state)) FROM process_instances").fetchone()
    return float(row[0]) if row and row[0] is not None else None


def closed_changes(database_url: str) -> int:
    url = make_url(database_url)
    with psycopg.connect(_libpq_conninfo(url, url.database)) as conn:
        return conn.execute("SELECT count(*) FROM changes WHERE state = 'closed'").fetchone()[0]
