"""The `changeflow` command line."""
from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from engine import accounts, definitions, demo as demo_data, migrate
from engine.config import Settings, mask_url
from engine.errors import ChangeflowError


def _create_app():
    from . import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
def main():
    """Changeflow: IT change management on BPMN."""


def _session():
    from .extensions import db

    return db.session


def _fail(error: ChangeflowError):
    click.echo(f"error: {error.message}", err=True)
    for problem in error.errors or []:
        click.echo(f"  - {problem}", err=True)
    sys.exit(2)


@main.group()
def db():
    """Database schema."""


@db.command("upgrade")
@with_appcontext
def db_upgrade():
    """Apply Alembic migrations up to the newest schema."""
    url = current_app.config["SQLALCHEMY_DATABASE_URI"]
    migrate.upgrade(url)
    click.echo(f"database at revision {migrate.current_revision(url)}")


@main.group()
def processes():
    """Process definitions."""


def deploy_directories() -> definitions.DeployResult:
    settings: Settings = current_app.config["CHANGEFLOW_SETTINGS"]
    session = _session()
    try:
        result = definitions.sync_directories(session, settings.processes_dir, settings.forms_dir)
        session.commit()
        return result
    except BaseException:
        session.rollback()
        raise


@processes.command("deploy")
@with_appcontext
def processes_deploy():
    """Deploy processes/ and forms/ (only what changed becomes a new version)."""
    try:
        result = deploy_directories()
    except ChangeflowError as error:
        _fail(error)
    for version in result.deployed:
        click.echo(f"deployed {version.process_key} version {version.version}")
    for version in result.unchanged:
        click.echo(f"unchanged {version.process_key} version {version.version}")


@main.group()
def users():
    """People and their roles."""


@users.command("create")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True, help="Repeat for several roles.")
@click.option("--email", default=None)
@click.option("--name", "display_name", default="")
@with_appcontext
def users_create(username, roles, email, display_name):
    """Create a user; the API token is printed as the last line."""
    session = _session()
    try:
        user = accounts.create_user(session, username, list(roles), email=email, display_name=display_name)
        token = accounts.issue_token(session, user)
        session.commit()
    except ChangeflowError as error:
        session.rollback()
        _fail(error)
    click.echo(f"created {username} with roles {', '.join(user.roles)}")
    click.echo(token)


@users.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@with_appcontext
def users_set_password(username, password_stdin):
    """Set the password USERNAME signs in to the web pages with (stored as an argon2id hash)."""
    from engine.passwords import set_password

    password = sys.stdin.readline().rstrip("\n") if password_stdin else \
        click.prompt("Password", hide_input=True, confirmation_prompt=True)
    session = _session()
    try:
        set_password(session, username, password)
        session.commit()
    except ChangeflowError as error:
        session.rollback()
        _fail(error)
    click.echo(f"password set for {username}")


@main.group()
def tokens():
    """API tokens: create (shown once), list, revoke."""


@tokens.command("create")
@click.argument("username")
@click.option("--name", required=True, help="What the token is for, e.g. 'release pipeline'.")
@click.option("--scope", "scopes", multiple=True,
              help="Limit the token to these actions (e.g. change.gate for a CI pipeline). Repeatable.")
@click.option("--expires-days", type=click.IntRange(1, 3650), default=None)
@with_appcontext
def tokens_create(username, name, scopes, expires_days):
    """Create a token for USERNAME; the token is printed as the last line."""
    from datetime import timedelta

    from engine.db import utcnow

    session = _session()
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None
    try:
        row, token = accounts.create_token(session, username, name=name, scopes=list(scopes), expires_at=expires_at)
        session.commit()
    except ChangeflowError as error:
        session.rollback()
        _fail(error)
    limits = f"limited to {', '.join(row.scopes)}" if row.scopes else "with all of the user's permissions"
    click.echo(f"token {row.id} '{name}' for {username}, {limits}"
               + (f", expires {row.expires_at:%Y-%m-%d}" if row.expires_at else ""))
    click.echo(token)


@tokens.command("list")
@click.argument("username")
@with_appcontext
def tokens_list(username):
    """List a user's tokens (never the secrets)."""
    from sqlalchemy import select

    from engine.models import ApiToken, User

    session = _session()
    rows = session.scalars(select(ApiToken).join(User).where(User.username == username).order_by(ApiToken.id))
    for row in rows:
        status = "revoked" if row.revoked_at else "active"
        expires = f"{row.expires_at:%Y-%m-%d}" if row.expires_at else "never"
        click.echo(f"{row.id}\t{row.name}\t{status}\tscopes={','.join(row.scopes or ['all'])}\texpires={expires}")


@tokens.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
def tokens_revoke(token_id):
    """Revoke a token by its id (see `tokens list`); it stops working at once."""
    session = _session()
    try:
        row = accounts.revoke_token(session, token_id)
        session.commit()
    except ChangeflowError as error:
        session.rollback()
        _fail(error)
    click.echo(f"revoked token {row.id} '{row.name}' of {row.user.username}")


@main.group()
def services():
    """The service catalogue and its dependencies."""


@services.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--update", is_flag=True, help="Update services that already exist instead of refusing them.")
@with_appcontext
def services_import(file, update):
    """Load services and dependencies from FILE (.yaml/.yml or .csv), all or nothing.

    "A depends on B" means A needs B. Every bad row is reported with its row, key and field.
    """
    from pathlib import Path

    from engine.service_import import import_file
    from engine.transactions import run_command

    try:
        summary = run_command(_session(), None, import_file, None, Path(file), update=update,
                              check_permission=False)
    except ChangeflowError as error:
        click.echo(f"error: {error.message}", err=True)
        for problem in error.errors or []:
            where = f"{problem.get('section', 'row')} row {problem.get('row')}" if "row" in problem else ""
            key = f" ({problem['key']})" if isinstance(problem.get("key"), str) else ""
            click.echo(f"  - {where}{key}: {problem.get('field')}: {problem.get('message')}", err=True)
        sys.exit(2)
    click.echo(f"services: {summary['created']} created, {summary['updated']} updated, "
               f"{summary['unchanged']} unchanged")
    click.echo(f"dependencies: {summary['dependencies_added']} added, {summary['dependencies_updated']} updated, "
               f"{summary['dependencies_unchanged']} unchanged")


@main.group()
def audit():
    """The tamper-evident audit trail."""


@audit.command("verify")
@click.option("--change", "number", help="Only this change's chain (its number, e.g. CHG0000042).")
@with_appcontext
def audit_verify(number):
    """Recompute every audit chain; name the first broken event of each and exit 1 if any is."""
    from sqlalchemy import select

    from engine.audit_chain import verify
    from engine.errors import NotFound
    from engine.models import Change

    session = _session()
    change = None
    if number:
        change = session.scalar(select(Change).where(Change.number == number))
        if change is None:
            _fail(NotFound(f"Change {number} does not exist."))
    result = verify(session, change)
    if result.ok:
        click.echo(f"ok: {result.events} events in {result.chains} chains")
        return
    for broken in result.breaks:
        click.echo(f"broken: {broken.describe()}")
    click.echo(f"{len(result.breaks)} broken, {result.events} events in {result.chains} chains")
    sys.exit(1)


@main.command("serve")
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=None, type=int,
              help="gunicorn worker processes [default: two per core]")
@click.option("--threads", default=2, show_default=True, type=int, help="threads per worker process")
@click.option("--deploy/--no-deploy", default=True, show_default=True,
              help="Migrate the database and deploy processes/ before serving.")
@with_appcontext
def serve(host, port, workers, threads, deploy):
    """Serve the API under gunicorn (production)."""
    if deploy:
        migrate.upgrade(current_app.config["SQLALCHEMY_DATABASE_URI"])
        deploy_directories()
    from .extensions import db as database
    from .server import default_workers, run_gunicorn

    database.engine.dispose()  # never share pooled connections with forked workers
    run_gunicorn(f"{host}:{port}", workers=workers or default_workers(), threads=threads)


@main.command("worker")
@click.option("--burst", is_flag=True, help="Run what is queued and due, then exit.")
@click.option("--name", default=None, help="Worker name (default: changeflow-<host>:<pid>).")
@click.option("--nice", "niceness", default=0, show_default=True, type=click.IntRange(0, 19),
              help="Lower this worker's CPU priority by N (as nice(1)): on cores shared with the web "
                   "server, people's requests go first and background jobs take the idle time.")
def worker(burst, name, niceness):
    """Run background jobs from Redis: deliveries, timers, slow service tasks (needs REDIS_URL).

    Start as many as you like, on as many machines; each also sweeps for jobs Redis lost.
    """
    import logging
    import os

    from engine.jobs.worker import run_worker

    if niceness:
        os.nice(niceness)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_worker(Settings.from_env(), burst=burst, name=name)


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def demo(host, port):
    """Run the embedded demo: SQLite, no Redis, demo users and services."""
    from . import create_app

    settings = Settings.from_env()
    if not settings.database_url.startswith("sqlite"):
        settings = Settings.from_env(database_url=f"sqlite:///{settings.instance_dir / 'demo.sqlite3'}")
    settings = Settings(**{**settings.__dict__, "redis_url": None})
    settings.instance_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.database_url)
    app = create_app(settings)
    with app.app_context():
        deploy_directories()
        session = _session()
        people = demo_data.seed(session)
        session.commit()
    click.echo(f"Changeflow demo on http://{host}:{port}/  (API docs: http://{host}:{port}/api/docs)")
    click.echo(f"database: {mask_url(settings.database_url).strip(chr(39))}")
    click.echo("demo users (token = 'Authorization: Bearer <token>'):")
    for username, roles, token in people:
        click.echo(f"  {username:<8} {', '.join(roles):<20} {token}")
    from werkzeug.serving import run_simple

    from .background import dispatcher

    # No Redis in the demo: jobs run in-process after each commit; this thread fires timers and
    # sends delayed notifications when they fall due. Emails land in <instance>/mail as .eml files.
    dispatcher(app).start_timer_thread(interval=5.0)
    click.echo(f"emails: {settings.instance_dir / 'mail'} (set CHANGEFLOW_SMTP_HOST to send them)")

    # Flask ignores app.run() under its own CLI, so serve with werkzeug directly.
    run_simple(host, port, app, threaded=True, use_reloader=False)


@main.command("report")
@click.argument("kind")
@click.option("--from", "first_day", help="First day, inclusive (2026-10-01).")
@click.option("--to", "last_day", help="Last day, inclusive (2026-12-31).")
@click.option("--period", help="Instead of --from/--to: a month (2026-11) or a quarter (2026-Q4).")
@click.option("--service", help="Only changes touching this service (its key).")
@click.option("--category", help="Only changes of this category.")
@click.option("--format", "fmt", type=click.Choice(["pdf", "csv", "json"]), default="pdf", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, allow_dash=True),
              help="The file to write; '-' for standard output. Default: a name from the kind and period.")
@click.option("--as-user", "username", help="Check this user's permission to read the report.")
@with_appcontext
def report_command(kind, first_day, last_day, period, service, category, fmt, output, username):
    """Export a report (leadership, service-owner, steering, audit, success-score, …) for a period."""
    from pathlib import Path

    from sqlalchemy import select

    from engine import reports
    from engine.models import User
    from engine.reports import export
    from engine.reports.scope import parse_scope

    session = _session()
    try:
        scope = parse_scope({"from": first_day, "to": last_day, "period": period, "service": service,
                             "category": category})
        user = None
        if username:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                raise click.BadParameter(f"no user '{username}'", param_hint="--as-user")
        steps = ["query the database", f"render {fmt.upper()}", "write the file"]
        with click.progressbar(steps, label=f"{kind} {scope.label}", file=sys.stderr,
                               item_show_func=lambda step: step or "") as bar:
            for step in bar:
                if step == steps[0]:
                    report = reports.build_report(session, user, kind, scope, check_permission=user is not None)
                elif step == steps[1]:
                    content = export.export(report, fmt)
                else:
                    target = output or export.filename(report, fmt)
                    if target == "-":
                        sys.stdout.buffer.write(content)
                    else:
                        Path(target).write_bytes(content)
    except ChangeflowError as error:
        _fail(error)
    if target != "-":
        click.echo(f"wrote {target} ({len(content)} bytes)", err=True)


if __name__ == "__main__":
    main()
