"""A report as a file: CSV (every figure and table, one block each), PDF (WeasyPrint from an HTML
template with the charts drawn as SVG on the server) and JSON. The web page, the API and
`changeflow report` all export through here.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .model import Report, Table

FORMATS = ("json", "csv", "pdf")
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}
_templates = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                         autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def filename(report: Report, fmt: str) -> str:
    label = report.scope.period or f"{report.scope.first_day}_{report.scope.last_day}"
    extra = "".join(f"-{v}" for v in (report.scope.service, report.scope.category) if v)
    return f"changeflow-{report.kind}-{label}{extra}.{fmt}"


def export(report: Report, fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2, default=str).encode("utf-8")
    if fmt == "csv":
        return to_csv(report).encode("utf-8")
    if fmt == "pdf":
        return to_pdf(report)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def to_csv(report: Report) -> str:
    """Blocks separated by a blank line: the header facts, the figures, then each table with its
    column labels. A spreadsheet opens it as one sheet; `# …` rows name each block."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["# report", report.title])
    writer.writerow(["period", report.scope.label, report.scope.first_day.isoformat(), report.scope.last_day.isoformat()])
    writer.writerow(["service", report.scope.service or "all"])
    writer.writerow(["category", report.scope.category or "all"])
    writer.writerow(["generated", report.generated_at.isoformat()])
    writer.writerow([])
    writer.writerow(["# figures"])
    writer.writerow(["key", "figure", "value", "unit", "note"])
    for figure in report.figures:
        writer.writerow([figure.key, figure.label, _cell(figure.value), figure.unit, figure.note])
    for table in report.tables:
        writer.writerow([])
        writer.writerow([f"# {table.key}", table.title])
        writer.writerow([c.label for c in table.columns])
        for row in table.rows:
            writer.writerow([_cell(row.get(c.key)) for c in table.columns])
    for note in report.notes:
        writer.writerow([])
        writer.writerow(["# note", note])
    return out.getvalue()


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    return value


def to_pdf(report: Report) -> bytes:
    from weasyprint import HTML  # imported here: only PDF exports need its native libraries

    html = _templates.get_template("report.html").render(report=report, charts={
        t.key: svg_chart(t) for t in report.tables if t.chart and t.rows})
    # the document refers to nothing outside itself; refuse any fetch a value might smuggle in
    return HTML(string=html, url_fetcher=_refuse_fetch).write_pdf()


def _refuse_fetch(url, *args, **kwargs):
    raise ValueError(f"report PDFs load nothing from outside ({url})")


def svg_chart(table: Table, width: int = 520, bar_height: int = 16) -> str:
    """Horizontal bars, one group per row (a PDF cannot run the page's chart script)."""
    columns = table.chart_columns or [c.key for c in table.columns[1:2]]
    values = [[_number(row.get(key)) for key in columns] for row in table.rows]
    top = max((v for group in values for v in group), default=0) or 1
    label_width, gap = 170, 6
    height = len(table.rows) * (bar_height * len(columns) + gap) + gap
    colours = ("#1f5fa8", "#c2571a", "#2e7d32", "#8e24aa")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    y = gap
    for row, group in zip(table.rows, values):
        label = _escape(str(row.get("label", "")))[:40]
        parts.append(f'<text x="0" y="{y + bar_height - 4}" font-size="10" fill="#1d2430">{label}</text>')
        for i, value in enumerate(group):
            length = (width - label_width - 60) * value / top
            parts.append(f'<rect x="{label_width}" y="{y}" width="{max(length, 0.5):.1f}" height="{bar_height - 2}" '
                         f'fill="{colours[i % len(colours)]}"/>')
            parts.append(f'<text x="{label_width + length + 4:.1f}" y="{y + bar_height - 4}" font-size="10" '
                         f'fill="#1d2430">{_escape(_format(value))}</text>')
            y += bar_height
        y += gap
    parts.append("</svg>")
    return "".join(parts)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _format(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
