"""Fixtures: every test that takes `app` or `api` runs once on SQLite and once on PostgreSQL.

PostgreSQL is a real server (127.0.0.1:5432, database `test`, or CHANGEFLOW_TEST_POSTGRES_URL).
There is no skipping: if it is unreachable the PostgreSQL half of the suite errors.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from engine import demo, migrate
from engine.bpmn.specs import FORMS, SPECS
from engine.config import PROJECT_ROOT, Settings
from engine.db import Base, make_engine

from .client import ApiClient

POSTGRES_URL = os.environ.get("CHANGEFLOW_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")
CORPUS_DIR = PROJECT_ROOT.parent / "shared" / "corpus" / "bpmn-miwg-reference"


def _reset_schema(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        existing = inspect(conn).get_table_names()
        if conn.dialect.name == "postgresql":
            for table in existing:
                conn.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
        else:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    migrate.upgrade(url)


def _private_postgres_schema(base_url: str, prefix: str = "cf_test"):
    """A schema of our own, so parallel test runs on one server never see each other's tables."""
    schema = f"{prefix}_{os.getpid()}"
    admin = make_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    return admin, schema, f"{base_url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'changeflow.sqlite3'}"
        _reset_schema(url)
        yield url
        return
    admin, schema, url = _private_postgres_schema(POSTGRES_URL)
    _reset_schema(url)
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def _empty_tables(engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return Settings.from_env(database_url=database_url, redis_url=None, instance_dir=tmp_path / "instance")


@pytest.fixture
def app(settings):
    from webui import create_app
    from webui.cli import deploy_directories
    from webui.extensions import db

    app = create_app(settings, TESTING=True)
    with app.app_context():
        _empty_tables(db.engine)
        deploy_directories()
        demo.seed(db.session)
        db.session.commit()
        db.session.remove()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def api(app) -> ApiClient:
    return ApiClient(app)


@pytest.fixture
def backend(database_url) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture(autouse=True)
def _fresh_spec_cache():
    yield
    SPECS.clear()
    FORMS.clear()


def corpus_files() -> list[Path]:
    files = sorted(CORPUS_DIR.glob("*.bpmn"))
    # An empty list would make pytest skip the corpus tests quietly; a missing corpus is an error.
    assert files, f"the BPMN MIWG reference models are missing from {CORPUS_DIR}"
    return files
