"""Reports: the index with a period picker, one report as a page (figures, chart tables whose labels
and numbers open the changes behind them), those drill-down lists, and the CSV and PDF downloads.
Everything comes from `engine.reports`, as the API and `changeflow report` do."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Response, render_template, request, url_for
from sqlalchemy import select

from engine import reports
from engine.changes import CATEGORIES
from engine.models import Service
from engine.permissions import can
from engine.reports import export
from engine.reports.scope import month_scope, parse_scope, quarter_scope

from ..extensions import db
from . import blp
from .security import page, signed_in_user


def _choices():
    """Recent months and quarters for the period picker, newest first."""
    today = datetime.now(timezone.utc).date()
    quarters, months = [], []
    scope = quarter_scope(today.year, (today.month - 1) // 3 + 1)
    for _ in range(6):
        quarters.append(scope)
        scope = scope.previous()
    scope = month_scope(today.year, today.month)
    for _ in range(12):
        months.append(scope)
        scope = scope.previous()
    return quarters, months


def _context(scope):
    quarters, months = _choices()
    services = db.session.scalars(select(Service.key).order_by(Service.key)).all()
    return {"scope": scope, "quarters": quarters, "months": months, "services": services,
            "categories": CATEGORIES}


@blp.route("/reports", methods=["GET"])
@page("report.read")
def reports_index():
    user = signed_in_user()
    kinds = [{"kind": kind, "title": module.TITLE, "summary": (module.__doc__ or "").strip().splitlines()[0]}
             for kind, (module, action) in reports.KINDS.items() if can(user, action)]
    return render_template("reports.html", kinds=kinds, **_context(parse_scope(request.args)))


@blp.route("/reports/<kind>", methods=["GET"])
@page("report.read")
def report_page(kind):
    scope = parse_scope(request.args)
    report = reports.build_report(db.session, signed_in_user(), kind, scope)
    return render_template("report.html", report=report, drill=_drill_url(kind, scope), **_context(scope))


@blp.route("/reports/<kind>.<fmt>", methods=["GET"])
@page("report.read")
def report_download(kind, fmt):
    if fmt not in export.FORMATS:
        return Response(f"Unknown format '{fmt}'; use one of {', '.join(export.FORMATS)}.", 404, mimetype="text/plain")
    report = reports.build_report(db.session, signed_in_user(), kind, parse_scope(request.args))
    return Response(export.export(report, fmt), mimetype=export.MEDIA_TYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="{export.filename(report, fmt)}"'})


@blp.route("/reports/<kind>/changes", methods=["GET"])
@page("report.read")
def report_changes(kind):
    scope = parse_scope(request.args)
    metric, group = request.args.get("metric", ""), request.args.get("group") or None
    rows, total = reports.changes_behind(db.session, signed_in_user(), kind, scope, metric, group)
    return render_template("report_changes.html", kind=kind, title=reports.kind_module(kind).TITLE, scope=scope,
                           metric=metric, group=group, changes=rows, total=total)


def _drill_url(kind: str, scope):
    def url(drill: dict | None) -> str | None:
        if not drill:
            return None
        params = {**scope.query(), "metric": drill["metric"]}
        if drill.get("group"):
            params["group"] = drill["group"]
        return url_for("pages.report_changes", kind=kind, **params)
    return url
