"""Settings read from the environment, in one place.

Secrets and locations come from the environment only (twelve-factor); nothing here is written back.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_instance_dir() -> Path:
    return Path(os.environ.get("CHANGEFLOW_INSTANCE_DIR", PROJECT_ROOT / "instance"))


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    processes_dir: Path
    forms_dir: Path
    instance_dir: Path
    secret_key: str = field(repr=False, default="")
    evidence_dir: Path | None = None  # evidence files, content-addressed; None → <instance_dir>/evidence
    evidence_max_bytes: int = 25 * 1024 * 1024

    def __post_init__(self):
        if self.evidence_dir is None:  # outside the web root: files are only served through the API
            object.__setattr__(self, "evidence_dir", Path(self.instance_dir) / "evidence")

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        instance_dir = Path(overrides.pop("instance_dir", None) or _default_instance_dir())
        values = dict(
            database_url=os.environ.get("DATABASE_URL")
            or f"sqlite:///{instance_dir / 'changeflow.sqlite3'}",
            redis_url=os.environ.get("REDIS_URL") or None,
            processes_dir=Path(os.environ.get("CHANGEFLOW_PROCESSES_DIR", PROJECT_ROOT / "processes")),
            forms_dir=Path(os.environ.get("CHANGEFLOW_FORMS_DIR", PROJECT_ROOT / "forms")),
            instance_dir=instance_dir,
            secret_key=os.environ.get("SECRET_KEY", ""),
            evidence_dir=Path(os.environ.get("CHANGEFLOW_EVIDENCE_DIR") or instance_dir / "evidence"),
            evidence_max_bytes=int(os.environ.get("CHANGEFLOW_EVIDENCE_MAX_BYTES") or 25 * 1024 * 1024),
        )
        values.update(overrides)
        return cls(**values)
