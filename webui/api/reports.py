"""Management and audit reports as JSON, CSV or PDF — the same Report the /reports pages show."""
from __future__ import annotations

from flask import Response, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from engine import reports
from engine.permissions import can
from engine.reports import export
from engine.reports.scope import parse_scope

from ..auth import current_user, permission
from ..extensions import db

blp = Blueprint("reports", __name__, url_prefix="/api/reports",
                description="Reports for service owners, IT leaders, steering committees and auditors")


class ReportQuery(Schema):
    period = fields.String(metadata={"description": "a month (2026-11) or a quarter (2026-Q4); or from/to"})
    from_ = fields.Date(data_key="from", metadata={"description": "first day (inclusive)"})
    to = fields.Date(metadata={"description": "last day (inclusive)"})
    service = fields.String(metadata={"description": "a service key"})
    category = fields.String()
    format = fields.String(load_default="json", validate=validate.OneOf(export.FORMATS))


class DrillQuery(ReportQuery):
    metric = fields.String(required=True, metadata={"description": "the number's metric, from its drill"})
    group = fields.String(metadata={"description": "the number's group, from its drill"})


# Documentation only (the routes build their answers themselves): what /api/openapi.json promises.
class ReportKind(Schema):
    kind, title, allowed = fields.String(), fields.String(), fields.Boolean()


class ReportKinds(Schema):
    reports = fields.List(fields.Nested(ReportKind))


class ChangeBehind(Schema):
    id = fields.Integer()
    number, title, state, change_type = fields.String(), fields.String(), fields.String(), fields.String()
    category, risk, close_code = (fields.String(allow_none=True) for _ in range(3))
    services = fields.List(fields.String())


class ChangesBehind(Schema):
    total = fields.Integer()
    items = fields.List(fields.Nested(ChangeBehind))


REPORT_DOC = {"200": {"description": "The report: JSON (the default), or a file with `format=csv` or `pdf`",
                      "content": {"application/json": {"schema": {"type": "object", "required": [
                                      "kind", "title", "period", "figures", "tables"]}},
                                  "text/csv": {"schema": {"type": "string"}},
                                  "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}}


@blp.route("", methods=["GET"])
@permission("report.read")
@blp.alt_response(200, schema=ReportKinds, success=True)
def list_reports():
    """The report kinds, and whether the caller may read each."""
    user = current_user()
    return {"reports": [{"kind": kind, "title": module.TITLE, "allowed": can(user, action)}
                        for kind, (module, action) in reports.KINDS.items()]}


@blp.route("/<kind>", methods=["GET"])
@permission("report.read")
@blp.arguments(ReportQuery, location="query")
@blp.doc(responses=REPORT_DOC)
def get_report(query, kind):
    """One report for a period (`period`, or `from` and `to`), optionally for one service or category.
    `format=csv` or `format=pdf` answers a file; the default is JSON."""
    report = reports.build_report(db.session, current_user(), kind, parse_scope(request.args))
    fmt = query["format"]
    if fmt == "json":
        return report.as_dict()
    return Response(export.export(report, fmt), mimetype=export.MEDIA_TYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="{export.filename(report, fmt)}"'})


@blp.route("/<kind>/changes", methods=["GET"])
@permission("report.read")
@blp.arguments(DrillQuery, location="query")
@blp.alt_response(200, schema=ChangesBehind, success=True)
def changes_behind(query, kind):
    """The changes a number of the report counts (the same condition as the count; at most 500)."""
    rows, total = reports.changes_behind(db.session, current_user(), kind, parse_scope(request.args),
                                         query["metric"], query.get("group"))
    return {"total": total, "items": [
        {"id": c.id, "number": c.number, "title": c.title, "state": c.state, "change_type": c.change_type,
         "category": c.category, "risk": c.risk, "close_code": c.close_code,
         "services": [s.key for s in c.services]} for c in rows]}
