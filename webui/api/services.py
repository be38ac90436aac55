from __future__ import annotations

from flask_smorest import Blueprint

from engine import catalog
from engine.transactions import run_command

from ..auth import current_user, permission
from ..extensions import db
from . import schemas

blp = Blueprint("services", __name__, url_prefix="/api/services",
                description="Services changes affect, and what depends on what (A depends on B = A needs B)")


@blp.route("", methods=["GET"])
@permission("service.read")
@blp.arguments(schemas.ServiceQuery, location="query")
@blp.response(200, schemas.ServiceOut(many=True))
def list_services(query):
    """Services by key; filter by owner (username) and criticality."""
    return catalog.list_services(db.session, current_user(), owner=query.get("owner"),
                                 criticality=query.get("criticality"))


@blp.route("", methods=["POST"])
@permission("service.write")
@blp.arguments(schemas.Service)
@blp.response(201, schemas.ServiceOut)
def create_service(fields):
    user = current_user()
    return run_command(db.session, user, catalog.create_service, user, fields)


@blp.route("/<key>", methods=["GET"])
@permission("service.read")
@blp.response(200, schemas.ServiceDetail)
def get_service(key):
    """A service with the services it depends on and those that depend on it (direct neighbours)."""
    return catalog.describe_service(db.session, current_user(), key)


@blp.route("/<key>", methods=["PATCH"])
@permission("service.write")
@blp.arguments(schemas.ServicePatch)
@blp.response(200, schemas.ServiceDetail)
def update_service(fields, key):
    """Change some fields; the key cannot change."""
    user = current_user()
    run_command(db.session, user, catalog.update_service, user, key, fields)
    return catalog.describe_service(db.session, user, key)


@blp.route("/<key>", methods=["DELETE"])
@permission("service.write")
@blp.response(204)
def delete_service(key):
    """Delete a service no change names (409 otherwise: services on changes are history)."""
    user = current_user()
    run_command(db.session, user, catalog.delete_service, user, key)


@blp.route("/<key>/dependencies", methods=["POST"])
@permission("service.write")
@blp.arguments(schemas.DependencyCreate)
@blp.response(201, schemas.Dependency)
def add_dependency(fields, key):
    """Record that `key` depends on (needs) `depends_on`. Cycles are allowed; self and duplicates are not."""
    user = current_user()
    return run_command(db.session, user, catalog.add_dependency, user, key, fields["depends_on"], fields["kind"])


@blp.route("/<key>/dependencies/<depends_on>", methods=["DELETE"])
@permission("service.write")
@blp.response(204)
def remove_dependency(key, depends_on):
    user = current_user()
    run_command(db.session, user, catalog.remove_dependency, user, key, depends_on)


@blp.route("/<key>/members", methods=["GET"])
@permission("service.read")
@blp.response(200, schemas.Member(many=True))
def list_members(key):
    """The people who belong to the service; requesters among them read every change touching it."""
    return catalog.list_members(db.session, current_user(), key)


@blp.route("/<key>/members", methods=["POST"])
@permission("service.write")
@blp.arguments(schemas.MemberCreate)
@blp.response(201, schemas.Member)
def add_member(fields, key):
    """Add a member (422 naming `username` when there is no such active user, 409 if already one)."""
    user = current_user()
    return run_command(db.session, user, catalog.add_member, user, key, fields["username"])


@blp.route("/<key>/members/<username>", methods=["DELETE"])
@permission("service.write")
@blp.response(204)
def remove_member(key, username):
    user = current_user()
    run_command(db.session, user, catalog.remove_member, user, key, username)
