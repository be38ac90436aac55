"""Minutes of a CAB meeting, as Markdown or HTML.

Built from what was recorded: the approvals linked to the meeting (each member's decision and
comment), the `cab_decision_recorded` audit events (who was present, votes not recorded, evidence)
and the agenda items still undecided. Every piece of user text is escaped for the output format.
"""
from __future__ import annotations

import re
from datetime import datetime

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from .cab import agenda, get_meeting, outcome
from .models import Approval, AuditEvent, CabMeeting, Change, User

FORMATS = ("md", "html")


def minutes(session: Session, user: User, meeting_id: int, fmt: str = "md") -> str:
    meeting = get_meeting(session, user, meeting_id)
    data = minutes_data(session, meeting)
    return render_html(data) if fmt == "html" else render_markdown(data)


def minutes_data(session: Session, meeting: CabMeeting) -> dict:
    approvals = session.scalars(
        select(Approval).where(Approval.cab_meeting_id == meeting.id)
        .options(selectinload(Approval.approver), selectinload(Approval.recorded_by)).order_by(Approval.id)).all()
    ids = list(dict.fromkeys(a.change_id for a in approvals))
    changes = {c.id: c for c in session.scalars(
        select(Change).where(Change.id.in_(ids)).options(selectinload(Change.services)))}
    events = [e for e in session.scalars(
        select(AuditEvent).where(AuditEvent.kind == "cab_decision_recorded", AuditEvent.change_id.in_(ids))
        .order_by(AuditEvent.id)) if (e.data or {}).get("cab_meeting_id") == meeting.id]
    present = list(dict.fromkeys(m for e in events for m in e.data.get("present") or []))
    decided = []
    for change_id in ids:
        change, mine = changes[change_id], [a for a in approvals if a.change_id == change_id]
        decided.append({
            "change": change,
            "votes": [(a.approver.username, a.decision, a.comment,
                       a.recorded_by.username if a.recorded_by else "") for a in mine],
            "not_recorded": [s for e in events if e.change_id == change_id for s in e.data.get("skipped") or []],
            "evidence": list(dict.fromkeys(item for a in mine for item in a.evidence_reviewed or [])),
            "outcome": outcome(session, change, mine[0].round),
        })
    undecided = [item for item in agenda(session, meeting) if item["change_id"] not in ids]
    return {"meeting": meeting, "present": present or list(meeting.members), "decided": decided,
            "undecided": undecided}


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "not planned"


def _period(meeting: CabMeeting) -> str:
    return _when(meeting.starts_at) + (f" – {_when(meeting.ends_at)}" if meeting.ends_at else "")


# -- Markdown ------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#!])")


def md(text) -> str:
    """User text as inert Markdown on one line: no HTML, links, emphasis or table breaks."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text if text is not None else "").split()))


def render_markdown(data: dict) -> str:
    meeting = data["meeting"]
    out = [f"# {md(meeting.title)}", "",
           f"- **Date:** {_period(meeting)}",
           f"- **Members:** {md(', '.join(meeting.members))}",
           f"- **Present:** {md(', '.join(data['present']))}",
           f"- **Status:** {md(meeting.status)}", ""]
    if meeting.notes:
        out += [md(meeting.notes), ""]
    out += ["## Decisions", ""]
    if not data["decided"]:
        out += ["No decisions were recorded.", ""]
    for item in data["decided"]:
        change = item["change"]
        out += [f"### {md(change.number)} — {md(change.title)}", "",
                f"- **Risk:** {md(change.risk or 'not assessed')}"
                + (f" ({md('; '.join(change.risk_reasons))})" if change.risk_reasons else ""),
                f"- **Services:** {md(', '.join(s.key for s in change.services) or 'none')}",
                f"- **Outcome:** {item['outcome']} (state: {md(change.state)})",
                f"- **Evidence reviewed:** {md(', '.join(item['evidence'])) if item['evidence'] else 'none'}",
                "", "| Member | Decision | Comment | Recorded by |", "|---|---|---|---|"]
        out += [f"| {md(m)} | {md(d)} | {md(c)} | {md(r)} |" for m, d, c, r in item["votes"]]
        out.append("")
        if item["not_recorded"]:
            out += ["Not recorded:", ""]
            out += [f"- {md(s['member'])} ({md(s['vote'])}): {md(s['reason'])}" for s in item["not_recorded"]]
            out.append("")
    out += ["## Agenda items not decided", ""]
    if not data["undecided"]:
        out += ["None.", ""]
    else:
        out += ["| Change | Title | Risk | Planned start | Awaiting |", "|---|---|---|---|---|"]
        out += [f"| {md(i['number'])} | {md(i['title'])} | {md(i['risk'] or '')} | {_when(i['planned_start'])} "
                f"| {md(', '.join(i['pending_members']))} |" for i in data["undecided"]]
        out.append("")
    return "\n".join(out)


# -- HTML ----------------------------------------------------------------------------------------

def _rows(cells_per_row) -> Markup:
    return Markup("").join(Markup("<tr>{}</tr>").format(
        Markup("").join(Markup("<td>{}</td>").format(c) for c in cells)) for cells in cells_per_row)


def _table(headers, rows) -> Markup:
    head = Markup("").join(Markup("<th>{}</th>").format(h) for h in headers)
    return Markup("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>").format(head, _rows(rows))


def render_html(data: dict) -> str:
    meeting = data["meeting"]
    parts = [Markup("<h1>{}</h1><ul><li><strong>Date:</strong> {}</li><li><strong>Members:</strong> {}</li>"
                    "<li><strong>Present:</strong> {}</li><li><strong>Status:</strong> {}</li></ul>").format(
        meeting.title, _period(meeting), ", ".join(meeting.members), ", ".join(data["present"]), meeting.status)]
    if meeting.notes:
        parts.append(Markup("<p>{}</p>").format(meeting.notes))
    parts.append(Markup("<h2>Decisions</h2>"))
    if not data["decided"]:
        parts.append(Markup("<p>No decisions were recorded.</p>"))
    for item in data["decided"]:
        change = item["change"]
        reasons = "; ".join(change.risk_reasons or [])
        parts.append(Markup(
            "<section><h3>{} — {}</h3><ul><li><strong>Risk:</strong> {}{}</li><li><strong>Services:</strong> {}</li>"
            "<li><strong>Outcome:</strong> {} (state: {})</li><li><strong>Evidence reviewed:</strong> {}</li></ul>{}"
        ).format(change.number, change.title, change.risk or "not assessed", f" ({reasons})" if reasons else "",
                 ", ".join(s.key for s in change.services) or "none", item["outcome"], change.state,
                 ", ".join(item["evidence"]) or "none",
                 _table(("Member", "Decision", "Comment", "Recorded by"), item["votes"])))
        if item["not_recorded"]:
            parts.append(Markup("<p>Not recorded:</p><ul>{}</ul>").format(Markup("").join(
                Markup("<li>{} ({}): {}</li>").format(s["member"], s["vote"], s["reason"])
                for s in item["not_recorded"])))
        parts.append(Markup("</section>"))
    parts.append(Markup("<h2>Agenda items not decided</h2>"))
    if not data["undecided"]:
        parts.append(Markup("<p>None.</p>"))
    else:
        parts.append(_table(("Change", "Title", "Risk", "Planned start", "Awaiting"), [
            (i["number"], i["title"], i["risk"] or "", _when(i["planned_start"]), ", ".join(i["pending_members"]))
            for i in data["undecided"]]))
    body = Markup("\n").join(parts)
    return str(Markup('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{}</title>'
                      "<style>table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px 8px;"
                      "text-align:left;vertical-align:top}}</style></head>\n<body>\n{}\n</body></html>\n")
               .format(escape(meeting.title), body))
