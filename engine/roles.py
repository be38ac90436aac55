"""The roles people hold, and how BPMN lane names map onto them."""
from __future__ import annotations

import re

ROLES = (
    "requester",
    "change_manager",
    "cab_member",
    "service_owner",
    "implementer",
    "emergency_approver",
    "process_owner",
    "admin",
    "auditor",
)


def role_from_lane(lane_name: str | None) -> str | None:
    """'Change manager' → 'change_manager'. Returns None when the lane names no known role."""
    if not lane_name:
        return None
    key = re.sub(r"[\s\-]+", "_", lane_name.strip()).lower()
    return key if key in ROLES else None
