from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow
from .users import User


class DefinitionResource(Base):
    """A deployed form (JSON Schema) or DMN file. The newest row per name is the current one."""

    __tablename__ = "definition_resources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProcessVersion(Base):
    """An immutable deployed version: the BPMN plus a snapshot of every DMN and form it uses.

    The documents (`bpmn_xml`, `dmn`, `forms`: ~150 KB for a normal change) are deferred: every task
    completion loads its version, but reads them only through the per-version caches in
    `engine.bpmn.specs`, which touch them once per bundle hash and process.
    """

    __tablename__ = "process_versions"
    __table_args__ = (UniqueConstraint("process_key", "version", name="uq_process_versions_key_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_key: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    version: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    bpmn_xml: Mapped[str] = mapped_column(Text, deferred=True, deferred_group="documents")
    filename: Mapped[str] = mapped_column(String(200), default="")
    dmn: Mapped[dict] = mapped_column(default=dict, deferred=True, deferred_group="documents")
    forms: Mapped[dict] = mapped_column(default=dict, deferred=True, deferred_group="documents")
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deployed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(Text, default="")

    deployed_by: Mapped[User | None] = relationship()
