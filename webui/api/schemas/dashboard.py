"""The dashboards' figures (GET /api/dashboard). Every row's `href` opens the list behind its number."""
from __future__ import annotations

from marshmallow import fields, validate

from engine.dashboards import PERIODS

from .common import Strict

_HREF = {"description": "the page listing exactly what this number counts"}


class DashboardQuery(Strict):
    period = fields.String(load_default="month", validate=validate.OneOf(PERIODS),
                           metadata={"description": "buckets of the trend: ISO weeks or calendar months (the last 6)"})


class DashboardPendingApprovals(Strict):
    approver = fields.String(allow_none=True, metadata={"description": "the assignee; null for a role's pool"})
    role = fields.String(allow_none=True, metadata={"description": "the role anyone of whom may decide"})
    label = fields.String()
    count = fields.Integer()
    oldest_since = fields.DateTime(metadata={"description": "when the longest-waiting one was created"})
    oldest_hours = fields.Float()
    href = fields.String(metadata=_HREF)


class DashboardHighRiskDay(Strict):
    date = fields.Date(metadata={"description": "UTC day the planned windows start"})
    count = fields.Integer(metadata={"description": "open (not closed or canceled) high-risk changes"})
    href = fields.String(metadata=_HREF)


class DashboardOverdue(Strict):
    kind = fields.String(metadata={"description": "approvals, tasks (other waiting tasks), actions (follow-ups)"})
    label = fields.String()
    count = fields.Integer()
    href = fields.String(metadata=_HREF)


class DashboardServiceImpact(Strict):
    service = fields.String()
    name = fields.String()
    changes = fields.Integer(metadata={"description": "open changes to the service"})
    outage_minutes = fields.Integer(metadata={"description": "sum of their planned windows, in minutes"})
    href = fields.String(metadata=_HREF)


class DashboardTrendPeriod(Strict):
    period = fields.String(metadata={"description": "e.g. 2026-W49 or Dec 2026"})
    start = fields.Date()
    end = fields.Date(metadata={"description": "last day, inclusive"})
    closed = fields.Integer(metadata={"description": "changes closed in the period (canceled ones not counted)"})
    emergency = fields.Integer()
    emergency_ratio = fields.Float(allow_none=True, metadata={"description": "percent; null without closed changes"})
    with_outcome = fields.Integer()
    successful = fields.Integer(metadata={"description": "close code successful or successful_with_issues"})
    success_rate = fields.Float(allow_none=True, metadata={"description": "percent of those with an outcome"})
    emergency_href = fields.String(metadata=_HREF)
    success_href = fields.String(metadata=_HREF)


class Dashboard(Strict):
    generated_at = fields.DateTime()
    period = fields.String()
    pending_approvals = fields.List(fields.Nested(DashboardPendingApprovals))
    high_risk_upcoming = fields.List(fields.Nested(DashboardHighRiskDay))
    overdue = fields.List(fields.Nested(DashboardOverdue))
    service_impact = fields.List(fields.Nested(DashboardServiceImpact))
    trend = fields.List(fields.Nested(DashboardTrendPeriod))
