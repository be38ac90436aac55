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


def mask_url(url) -> str:
    """A URL as it may be printed: any password replaced by ***."""
    if not url:
        return repr(url)
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(str(url))
    if parts.password is None:
        return repr(str(url))
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return repr(urlunsplit(parts._replace(netloc=netloc)))


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    starttls: bool = True
    ssl: bool = False  # implicit TLS (port 465) instead of STARTTLS
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "changeflow@localhost"
    timeout: float = 20.0
    cafile: str | None = None  # CA bundle to verify the server with (default: the system's)

    @classmethod
    def from_env(cls) -> "SmtpSettings | None":
        host = os.environ.get("CHANGEFLOW_SMTP_HOST")
        if not host:
            return None
        ssl = _flag(os.environ.get("CHANGEFLOW_SMTP_SSL"), False)
        return cls(host=host, port=int(os.environ.get("CHANGEFLOW_SMTP_PORT") or (465 if ssl else 587)),
                   starttls=_flag(os.environ.get("CHANGEFLOW_SMTP_STARTTLS"), not ssl), ssl=ssl,
                   username=os.environ.get("CHANGEFLOW_SMTP_USERNAME") or None,
                   password=os.environ.get("CHANGEFLOW_SMTP_PASSWORD") or None,
                   sender=os.environ.get("CHANGEFLOW_SMTP_FROM") or "changeflow@localhost",
                   timeout=float(os.environ.get("CHANGEFLOW_SMTP_TIMEOUT") or 20),
                   cafile=os.environ.get("CHANGEFLOW_SMTP_CAFILE") or None)


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
    base_url: str = "http://127.0.0.1:5000"  # links in notifications
    smtp: "SmtpSettings | None" = None  # None: emails are written as .eml files to <instance>/mail
    queue_name: str = "changeflow"
    job_lease_seconds: float = 120.0  # a running job not finished by then is taken over (its worker died)
    sweep_seconds: float = 10.0        # how often a worker looks for due jobs Redis does not know about
    retry_base_seconds: float = 30.0   # first retry delay; each next one is 4× longer (capped at 1 h)
    job_max_attempts: int = 6
    webhook_timeout: float = 10.0
    # Personal webhooks (set by any user) may not reach loopback or private addresses unless allowed:
    # otherwise a requester could make workers POST into the internal network.
    webhook_allow_private: bool = False
    # Sign-in throttling: failed passwords per username and per client address within the window
    login_max_failures: int = 5
    login_address_max_failures: int = 20
    login_window_seconds: float = 900.0
    # Optional single sign-on through OpenID Connect (off unless an issuer is set)
    oidc_issuer: str | None = None
    oidc_client_id: str = ""
    oidc_client_secret: str = field(repr=False, default="")
    oidc_username_claim: str = "preferred_username"
    oidc_label: str = "single sign-on"
    # BPMN scripts and expressions (engine.sandbox_limits): CPU time of one run, JSON size of what a
    # script leaves or an expression returns, characters/items (bits of an integer) of one value, memory
    script_cpu_seconds: float = 1.0
    script_output_bytes: int = 256 * 1024
    script_max_length: int = 1_000_000
    script_memory_mb: int = 256  # growth of the process's resident memory while one script runs

    def __repr__(self) -> str:
        # settings get printed and logged; passwords inside the database and Redis URLs must not be
        shown = []
        for name, spec in self.__dataclass_fields__.items():
            if spec.repr:
                value = getattr(self, name)
                shown.append(f"{name}={mask_url(value) if name.endswith('_url') else value!r}")
        return f"Settings({', '.join(shown)})"

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
            base_url=(os.environ.get("CHANGEFLOW_BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
            smtp=SmtpSettings.from_env(),
            queue_name=os.environ.get("CHANGEFLOW_QUEUE") or "changeflow",
            job_lease_seconds=float(os.environ.get("CHANGEFLOW_JOB_LEASE_SECONDS") or 120),
            sweep_seconds=float(os.environ.get("CHANGEFLOW_SWEEP_SECONDS") or 10),
            retry_base_seconds=float(os.environ.get("CHANGEFLOW_RETRY_BASE_SECONDS") or 30),
            job_max_attempts=int(os.environ.get("CHANGEFLOW_JOB_MAX_ATTEMPTS") or 6),
            webhook_timeout=float(os.environ.get("CHANGEFLOW_WEBHOOK_TIMEOUT") or 10),
            webhook_allow_private=_flag(os.environ.get("CHANGEFLOW_WEBHOOK_ALLOW_PRIVATE"), False),
            login_max_failures=int(os.environ.get("CHANGEFLOW_LOGIN_MAX_FAILURES") or 5),
            login_address_max_failures=int(os.environ.get("CHANGEFLOW_LOGIN_ADDRESS_MAX_FAILURES") or 20),
            login_window_seconds=float(os.environ.get("CHANGEFLOW_LOGIN_WINDOW_SECONDS") or 900),
            oidc_issuer=(os.environ.get("CHANGEFLOW_OIDC_ISSUER") or "").rstrip("/") or None,
            oidc_client_id=os.environ.get("CHANGEFLOW_OIDC_CLIENT_ID", ""),
            oidc_client_secret=os.environ.get("CHANGEFLOW_OIDC_CLIENT_SECRET", ""),
            oidc_username_claim=os.environ.get("CHANGEFLOW_OIDC_USERNAME_CLAIM") or "preferred_username",
            oidc_label=os.environ.get("CHANGEFLOW_OIDC_LABEL") or "single sign-on",
            script_cpu_seconds=float(os.environ.get("CHANGEFLOW_SCRIPT_CPU_SECONDS") or 1.0),
            script_output_bytes=int(os.environ.get("CHANGEFLOW_SCRIPT_OUTPUT_BYTES") or 256 * 1024),
            script_max_length=int(os.environ.get("CHANGEFLOW_SCRIPT_MAX_LENGTH") or 1_000_000),
            script_memory_mb=int(os.environ.get("CHANGEFLOW_SCRIPT_MEMORY_MB") or 256),
        )
        values.update(overrides)
        return cls(**values)
