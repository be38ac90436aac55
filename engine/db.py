"""The declarative base shared by every model, and engine construction for SQLite and PostgreSQL."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict: JSON, list: JSON}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes stored as UTC on both SQLite (which has no tz) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    def result_processor(self, dialect, coltype):
        # PostgreSQL sessions run in UTC (sqlalchemy_engine_options), so psycopg returns aware UTC
        # datetimes already: no processing at all, which was a fifth of a calendar month's time
        # (8,800 timestamps). SQLite returns strings, which still go through process_result_value.
        if dialect.name == "postgresql" and self.impl_instance.result_processor(dialect, coltype) is None:
            return None
        return super().result_processor(dialect, coltype)


def insert_new_rows(session, model, key: str):
    """`INSERT … ON CONFLICT (key) DO NOTHING` into `model`, in the session's database's dialect
    (PostgreSQL and SQLite both have it): rows whose unique `key` exists already are skipped."""
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    insert_ = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return insert_(model).on_conflict_do_nothing(index_elements=[key])


def sqlalchemy_engine_options(url: str) -> dict:
    """Options that make each backend behave well under concurrent requests."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    # Sessions in UTC: psycopg then returns timestamps with datetime.timezone.utc (UTCDateTime).
    # connect_args replace the URL's own `options` (a search_path, say), so those are kept in front.
    given = make_url(url).query.get("options", "")
    given = " ".join(given) if isinstance(given, tuple) else given
    return {"pool_size": 10, "max_overflow": 20,
            "connect_args": {"options": f"{given} -c TimeZone=UTC".strip()}}


# SQLAlchemy's pool_pre_ping costs a round trip on every checkout, and a command checks a
# connection out several times (each commit gives it back). A connection in use a moment ago is
# alive; only one that sat idle in the pool is pinged before it is handed out.
IDLE_PING_SECONDS = 10.0


@event.listens_for(Pool, "checkin")
def _note_idle_since(dbapi_connection, connection_record):
    connection_record.info["idle_since"] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _ping_if_idle(dbapi_connection, connection_record, connection_proxy):
    idle_since = connection_record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
        return
    if "sqlite" in type(dbapi_connection).__module__:
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
        dbapi_connection.rollback()
    except Exception as exc:  # noqa: BLE001 — whatever the driver raises, the connection is gone
        raise DisconnectionError(f"a pooled connection was lost while idle: {exc}") from exc


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    # WAL lets readers proceed while one writer commits; foreign keys are off by default in SQLite.
    module = type(dbapi_connection).__module__
    if "sqlite" not in module:
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    return create_engine(url, **sqlalchemy_engine_options(url))
