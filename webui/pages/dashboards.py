"""Dashboards: the figures as chart tables, and the approval and overdue lists they drill down to.

Each chart is an ordinary table (`table.chart`, data-chart / data-series) that the front-end turns into
a Chart.js chart; without JavaScript the table is the chart. Its row headers link to the list behind
each number: the change list with filters, or the two lists below.
"""
from __future__ import annotations

from flask import abort, render_template, request, url_for

from engine import dashboard_lists, dashboards
from engine.change_filters import InvalidFilter
from engine.db import utcnow

from ..extensions import db
from . import blp
from .security import page, signed_in_user

LISTS = {"changes": "pages.changes", "approvals": "pages.dashboard_approvals", "overdue": "pages.dashboard_overdue"}


def with_links(figures: dict) -> dict:
    """The engine's figures with an `href` (and `<name>_href`) for each row's `filters` (`<name>_filters`)."""
    linked = dict(figures)
    for name, rows in figures.items():
        if not isinstance(rows, list):
            continue
        linked[name] = []
        for row in rows:
            row = dict(row)
            for key in [k for k in row if k == "filters" or k.endswith("_filters")]:
                row[key[:-len("filters")] + "href"] = url_for(LISTS[row["list"]], **row.pop(key))
            linked[name].append(row)
    return linked


def _chart(title: str, kind: str, heading: str, series: list[str], rows: list[dict], *, note: str = "") -> dict:
    """What dashboards.html renders as one chart table: rows of (label, href, numbers); `heading` names
    the label column. Series names go into a comma-separated attribute, so they hold no commas."""
    return {"title": title, "kind": kind, "heading": heading, "series": series, "rows": rows, "note": note}


def charts(figures: dict) -> list[dict]:
    unit = "week" if figures["period"] == "week" else "month"
    trend = figures["trend"]
    closed = sum(r["closed"] for r in trend)
    emergencies = sum(r["emergency"] for r in trend)
    judged, successful = sum(r["with_outcome"] for r in trend), sum(r["successful"] for r in trend)
    return [
        _chart("Pending approvals by approver", "bar", "Approver", ["Waiting", "Oldest waiting (hours)"],
               [{"label": r["label"], "href": r["href"], "values": [r["count"], r["oldest_hours"]]}
                for r in figures["pending_approvals"]],
               note="Nothing waits for a decision." if not figures["pending_approvals"] else ""),
        _chart("High-risk changes in the next 14 days", "bar", "Day (UTC)", ["High-risk changes starting"],
               [{"label": r["date"].strftime("%a %d %b"), "href": r["href"], "values": [r["count"]]}
                for r in figures["high_risk_upcoming"]]),
        _chart("Overdue", "bar", "What", ["Overdue"],
               [{"label": r["label"], "href": r["href"], "values": [r["count"]]} for r in figures["overdue"]]),
        _chart("Service impact: open changes per service", "bar", "Service",
               ["Open changes", "Planned outage (minutes)"],
               [{"label": r["name"], "href": r["href"], "values": [r["changes"], r["outage_minutes"]]}
                for r in figures["service_impact"]],
               note="No open changes." if not figures["service_impact"] else ""),
        _chart(f"Emergency ratio per {unit}", "line", unit.title(), ["Emergency changes (% of closed)"],
               [{"label": r["period"], "href": r["emergency_href"], "values": [r["emergency_ratio"]]} for r in trend],
               note=f"{emergencies} emergency of {closed} closed changes in these {len(trend)} {unit}s."),
        _chart(f"Success rate per {unit}", "line", unit.title(), ["Successful (% of closed with an outcome)"],
               [{"label": r["period"], "href": r["success_href"], "values": [r["success_rate"]]} for r in trend],
               note=f"{successful} successful of {judged} closed changes with an outcome in these "
                    f"{len(trend)} {unit}s."),
    ]


def _engine_call(func, *args, **kwargs):
    try:
        return func(db.session, signed_in_user(), *args, **kwargs)
    except InvalidFilter as error:
        abort(400, description=error.message)


@blp.route("/dashboards", methods=["GET"])
@page("dashboard.read")
def dashboards_page():
    """The figures as charts, each row linking to its list; `?period=week|month` for the trends."""
    period = request.args.get("period") or "month"
    figures = with_links(_engine_call(dashboards.dashboard, period=period))
    return render_template("dashboards.html", charts=charts(figures), figures=figures, periods=dashboards.PERIODS)


@blp.route("/dashboards/approvals", methods=["GET"])
@page("dashboard.read")
def dashboard_approvals():
    """Approvals waiting, oldest first: `?approver=<username>` (assigned to them) or `?role=<role>` (its pool)."""
    approver, role = request.args.get("approver") or None, request.args.get("role") or None
    tasks, total = _engine_call(dashboard_lists.pending_approval_tasks, approver=approver, role=role)
    return render_template("dashboard_approvals.html", tasks=tasks, total=total, approver=approver, role=role,
                           limit=dashboard_lists.LIMIT, now=utcnow())


@blp.route("/dashboards/overdue", methods=["GET"])
@page("dashboard.read")
def dashboard_overdue():
    """Overdue approvals, other tasks and follow-up actions; `?kind=approvals|tasks|actions` for one of them."""
    kind = request.args.get("kind") or None
    found = _engine_call(dashboard_lists.overdue_items, kind)
    return render_template("dashboard_overdue.html", found=found, kind=kind, limit=dashboard_lists.LIMIT,
                           now=utcnow())
