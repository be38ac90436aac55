"""Handing committed jobs to the dispatcher: rq when REDIS_URL is set, else in-process.

Engine code writes job rows inside the command's transaction and notes them in `session.info`;
once the web session commits, this hands them on. Nothing is lost if that fails: the rows are
committed and a worker's sweep (or the demo's timer thread) finds them.
"""
from __future__ import annotations

from flask import Flask, current_app, has_app_context
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import event
from sqlalchemy.orm import sessionmaker

from engine.jobs import queue
from engine.jobs.dispatch import InlineDispatcher, RqDispatcher

from .extensions import db

KEY = "changeflow.dispatcher"


def init_app(app: Flask) -> None:
    app.extensions[KEY] = None  # built on first use, inside an app context (it needs the engine)


def dispatcher(app: Flask):
    found = app.extensions.get(KEY)
    if found is None:
        settings = app.config["CHANGEFLOW_SETTINGS"]
        if settings.redis_url:
            found = RqDispatcher(settings)
        else:
            with app.app_context():
                found = InlineDispatcher(sessionmaker(bind=db.engine), settings)
        app.extensions[KEY] = found
    return found


@event.listens_for(FlaskSession, "after_commit")
def _hand_on_committed_jobs(session) -> None:
    if session.in_nested_transaction():  # a savepoint was released; the transaction goes on
        return
    jobs = queue.take_new(session)
    if jobs and has_app_context():
        found = dispatcher(current_app._get_current_object())
        found.dispatch(jobs)
        if isinstance(found, InlineDispatcher):
            # The jobs ran here, in sessions of their own: what this session holds may be stale now.
            session.expire_all()
