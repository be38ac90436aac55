"""What each notification says. One entry per kind: subject, plain-text body, and whether it is mandatory.

Mandatory kinds (escalations) reach people even when they opted out of a channel. Placeholders are
filled by `engine.outbox`; every body ends with the change summary and a link.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    subject: str
    body: str
    mandatory: bool = False
    description: str = ""


TEMPLATES: dict[str, Template] = {
    "task_waiting": Template(
        "Waiting for you: {task} for {number} {title}",
        "{task} for {number} is waiting for you{due_phrase}.\n\nOpen your inbox to decide.",
        description="a task (an approval, evidence, a review) is waiting for you"),
    "approval_overdue": Template(
        "Overdue approval: {number} {title}",
        "An approval for {number} has waited past its SLA:\n{waiting}\n\n"
        "Chase the approvers or reassign the task; the approval stays open.",
        mandatory=True, description="an approval waited past its SLA (change managers)"),
    "request_approved": Template(
        "Approved: {number} {title}",
        "Your change {number} was authorized and will now be scheduled.",
        description="your change was authorized"),
    "request_rejected": Template(
        "Rejected: {number} {title}",
        "Your change {number} was rejected and is back with you for rework.\n\nComment: {comment}",
        description="your change was rejected"),
    "request_scheduled": Template(
        "Scheduled: {number} {title} ({window})",
        "Your change {number} is scheduled for {window}.",
        description="your change was scheduled"),
    "request_closed": Template(
        "Closed: {number} {title} ({close_code})",
        "Your change {number} was closed: {close_code}.",
        description="your change was closed or canceled"),
    "change_scheduled": Template(
        "Scheduled: {number} {title} ({window})",
        "A change that affects your services has been scheduled.",
        description="a change affecting a service you own (directly or through a dependency) was scheduled"),
    "window_reminder": Template(
        "Reminder: {number} {title} starts {start}",
        "A change that affects your services starts soon.",
        description="a change affecting your services starts within 24 hours"),
    "conflict_escalation": Template(
        "Conflict: {number} {title}",
        "New conflicts were found after the change was scheduled:\n{conflicts}",
        mandatory=True, description="new conflicts appeared after a change was scheduled"),
    "follow_up_overdue": Template(
        "Overdue follow-up action: {number} {title}",
        "A follow-up action agreed in the review of {number} is overdue:\n- {action} (due {due_date}, owner {owner})",
        mandatory=True, description="a follow-up action from a review is past its due date"),
}

MANDATORY = frozenset(kind for kind, template in TEMPLATES.items() if template.mandatory)
