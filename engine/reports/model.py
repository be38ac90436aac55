"""The shape every report has, whatever its kind: figures (one number each), tables (rows of numbers,
some drawn as charts) and notes. Renderers (HTML page, CSV, PDF, JSON) only read this shape.

Every number that counts changes names the metric behind it (`drill`), so the page can link it to
the list of exactly those changes (`changes_behind`), computed by the same condition as the count.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from .scope import Scope

UNITS = ("count", "percent", "hours", "minutes", "money", "score", "text")


@dataclass
class Figure:
    key: str
    label: str
    value: float | int | str | None
    unit: str = "count"
    drill: dict | None = None  # {"metric": ..., "group": ...}: the changes behind the number
    note: str = ""


@dataclass
class Column:
    key: str
    label: str
    unit: str = "count"


@dataclass
class Table:
    key: str
    title: str
    columns: list[Column]
    rows: list[dict]  # column key → value; a cell's drill-down in row["drill"][column key]
    chart: str | None = None  # bar | line | doughnut: drawn from the label column and `chart_columns`
    chart_columns: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class Report:
    kind: str
    title: str
    scope: Scope
    generated_at: datetime
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def figure(self, key: str) -> Figure:
        return next(f for f in self.figures if f.key == key)

    def table(self, key: str) -> Table:
        return next(t for t in self.tables if t.key == key)

    def as_dict(self) -> dict:
        """JSON-ready: what GET /api/reports/{kind} answers."""
        return {
            "kind": self.kind, "title": self.title, "generated_at": self.generated_at.isoformat(),
            "period": {"label": self.scope.label, "from": self.scope.first_day.isoformat(),
                       "to": self.scope.last_day.isoformat(), "kind": self.scope.kind},
            "filters": {"service": self.scope.service, "category": self.scope.category},
            "figures": [asdict(f) for f in self.figures],
            "tables": [asdict(t) for t in self.tables],
            "notes": list(self.notes),
        }
