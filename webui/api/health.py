from __future__ import annotations

from flask import current_app
from flask_smorest import Blueprint
from sqlalchemy import text

from engine.db import utcnow
from engine.jobs import queue

from ..auth import permission
from ..extensions import db
from . import schemas

blp = Blueprint("health", __name__, url_prefix="/api/health", description="Liveness and dependencies")


@blp.route("", methods=["GET"])
@permission("health.read")
@blp.response(200, schemas.Health)
@blp.alt_response(503, schema=schemas.Health, description="A dependency is down")
def health():
    database = {"ok": True, "dialect": db.engine.dialect.name}
    jobs = None
    try:
        db.session.execute(text("SELECT 1"))
        jobs = queue.stats(db.session, utcnow())
    except Exception as exc:  # report, don't crash: this endpoint exists to say what is down
        database = {"ok": False, "error": type(exc).__name__}
    redis_url = current_app.config.get("REDIS_URL")
    redis_status = {"configured": bool(redis_url), "ok": None}
    if redis_url:
        import redis

        try:
            connection = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
            connection.ping()
            redis_status["ok"] = True
            from rq import Worker

            redis_status["workers"] = Worker.count(connection=connection)
        except Exception as exc:
            redis_status.update(ok=False, error=type(exc).__name__)
    healthy = database["ok"] and redis_status["ok"] is not False
    # Late or failed jobs are reported, not fatal: the web tier is healthy even when workers lag.
    return {"status": "ok" if healthy else "degraded", "database": database, "redis": redis_status,
            "jobs": jobs}, 200 if healthy else 503
