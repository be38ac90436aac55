"""Database models. Import from here: `from engine.models import Change, Task`."""
from .users import ApiToken, User
from .services import Service, service_members
from .changes import Approval, Assessment, Change, change_services
from .definitions import DefinitionResource, ProcessVersion
from .workflow import ProcessInstance, Task
from .audit import AuditEvent, Incident
from .templates import ChangeTemplate, TemplateVersion
from .cab import CabMeeting
from .evidence import EVIDENCE_KINDS, Evidence, FollowUpAction
from .schedule import ChangeConflict, ServiceDependency, Window, window_services
from .notifications import Notification, WebhookEndpoint
from .jobs import Job
from .drafts import TaskDraft

__all__ = [
    "ApiToken", "User", "Service", "service_members", "Approval", "Assessment", "Change", "change_services",
    "DefinitionResource", "ProcessVersion", "ProcessInstance", "Task", "AuditEvent", "Incident",
    "ChangeTemplate", "TemplateVersion", "CabMeeting",
    "EVIDENCE_KINDS", "Evidence", "FollowUpAction", "ChangeConflict", "Notification", "ServiceDependency", "Window", "window_services",
    "WebhookEndpoint", "Job", "TaskDraft",
]
