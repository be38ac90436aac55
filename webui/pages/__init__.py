"""The web pages: server-rendered HTML over the same engine functions and permission matrix as the API.

People sign in with a username and password (a session cookie, HttpOnly, SameSite=Lax, Secure on
HTTPS); every form carries a CSRF token; pages send a strict Content-Security-Policy (no inline
script) and refuse to be framed. See docs/web-ui.md.
"""
from __future__ import annotations

from flask import Blueprint

blp = Blueprint("pages", __name__)

from . import admin, calendar, changes, dashboards, processes, reports, security, signin, sso, tasks  # noqa: E402,F401  (routes and hooks)
from . import admin_common, admin_services, admin_templates, admin_users, admin_windows  # noqa: E402,F401
