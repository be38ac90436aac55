from __future__ import annotations

from flask_smorest import Blueprint

from engine import templates as template_service
from engine.transactions import run_command

from ..auth import current_user, permission
from ..extensions import db
from . import schemas

blp = Blueprint("templates", __name__, url_prefix="/api/templates",
                description="The standard-change catalogue: pre-approved change templates")


@blp.route("", methods=["GET"])
@permission("template.read")
@blp.arguments(schemas.TemplateQuery, location="query")
@blp.response(200, schemas.Template(many=True))
def list_templates(query):
    """Templates by key, optionally with one `status`; name, category and plans are the active version's."""
    return template_service.list_templates(db.session, current_user(), status=query.get("status"))


@blp.route("", methods=["POST"])
@permission("template.propose")
@blp.arguments(schemas.TemplateCreate)
@blp.response(201, schemas.TemplateDetail)
def propose_template(fields):
    """Propose a new template: it is `proposed` until a change manager approves version 1."""
    user = current_user()
    return run_command(db.session, user, template_service.propose_template, user, fields)


@blp.route("/<key>", methods=["GET"])
@permission("template.read")
@blp.response(200, schemas.TemplateDetail)
def get_template(key):
    """A template with every version: who proposed and decided it, and which one is active."""
    return template_service.get_template(db.session, current_user(), key)


@blp.route("/<key>/versions", methods=["POST"])
@permission("template.propose")
@blp.arguments(schemas.TemplateChange)
@blp.response(201, schemas.TemplateVersion)
def propose_change(fields, key):
    """Propose changed content; fields left out keep the active version's. The active version stays in
    force until this one is approved."""
    user = current_user()
    return run_command(db.session, user, template_service.propose_change, user, key, fields)


@blp.route("/<key>/retire", methods=["POST"])
@permission("template.propose")
@blp.arguments(schemas.TemplateRetire)
@blp.response(201, schemas.TemplateVersion)
def propose_retirement(fields, key):
    """Propose retiring the template; it is retired once a change manager approves."""
    user = current_user()
    return run_command(db.session, user, template_service.propose_retirement, user, key, fields["reason"])


@blp.route("/<key>/versions/<int:number>/decision", methods=["POST"])
@permission("template.decide")
@blp.arguments(schemas.TemplateDecision)
@blp.response(200, schemas.TemplateVersion)
def decide_version(fields, key, number):
    """Approve or reject a pending version (not your own proposal: segregation of duties)."""
    user = current_user()
    return run_command(db.session, user, template_service.decide_version, user, key, number,
                       fields["decision"], fields["comment"])


@blp.route("/<key>/reinstate", methods=["POST"])
@permission("template.decide")
@blp.arguments(schemas.TemplateReinstate)
@blp.response(200, schemas.TemplateDetail)
def reinstate_template(fields, key):
    """After reviewing a suspension: make the template usable again."""
    user = current_user()
    return run_command(db.session, user, template_service.reinstate_template, user, key, fields["comment"])
