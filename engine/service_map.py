"""The service map: which services depend on which, and what a change to some of them affects.

Direction: a `ServiceDependency` row says *service* depends on *depends_on* ("A depends on B" = A
needs B: crm-web calls identity, payroll runs_on cloud-capacity, data-warehouse is fed by payroll).
A change to B can therefore affect A and everything that depends on A: those are B's *downstream
dependents*, the services impact analysis reports.

Both questions are answered by the database with one recursive CTE each (SQLite and PostgreSQL),
never by walking ORM objects:

- `impacted_services`: the CTE walks from the changed services to their dependents breadth-first,
  keeping rows `(service, depth, via)` with UNION, so identical rows are never queued twice. It does
  not re-enter a changed service and stops at `MAX_DEPTH` hops, so cycles terminate; the number of
  rows is bounded by edges × depth rather than by the number of paths (a path-carrying CTE explodes
  on diamonds). A window function keeps each service's rows at its smallest depth; the shortest path
  is then read off those rows by following `via` back to the changed service (one step per hop —
  the rows are a breadth-first tree, no further query and no graph search).
- `related_service_ids`: dependents and dependencies, transitively, with two recursive CTEs of bare
  ids in one statement; UNION discards rows seen before, so cycles end without a depth bound.
"""
from __future__ import annotations

from sqlalchemy import Integer, String, bindparam, cast, func, null, select, union
from sqlalchemy.orm import Session

from .models import Change, Service, ServiceDependency, User

MAX_DEPTH = 20  # hops; dependents further away than this are not reported


def _impacted_statement():
    dep, seeds = ServiceDependency, bindparam("seeds", expanding=True)
    walk = (
        select(Service.id.label("service_id"), cast(0, Integer).label("depth"),
               cast(null(), Integer).label("via_id"), cast(null(), String(16)).label("kind"))
        .where(Service.id.in_(seeds))
        .cte("walk", recursive=True)
    )
    walk = walk.union(
        select(dep.service_id, walk.c.depth + 1, walk.c.service_id, dep.kind)
        .join(walk, dep.depends_on_id == walk.c.service_id)
        .where(walk.c.depth < MAX_DEPTH, dep.service_id.not_in(seeds))
    )
    ranked = select(walk, func.min(walk.c.depth).over(partition_by=walk.c.service_id).label("best")).subquery()
    return (select(ranked.c.service_id, ranked.c.depth, ranked.c.via_id, ranked.c.kind, Service.key, Service.name,
                   Service.criticality, Service.owner_id, User.username)
            .join(Service, Service.id == ranked.c.service_id)
            .outerjoin(User, User.id == Service.owner_id)
            .where(ranked.c.depth == ranked.c.best))


def _related_statement():
    dep, seeds = ServiceDependency, bindparam("seeds", expanding=True)
    down = select(Service.id.label("id")).where(Service.id.in_(seeds)).cte("dependents", recursive=True)
    down = down.union(select(dep.service_id).join(down, dep.depends_on_id == down.c.id))
    up = select(Service.id.label("id")).where(Service.id.in_(seeds)).cte("dependencies", recursive=True)
    up = up.union(select(dep.depends_on_id).join(up, dep.service_id == up.c.id))
    return union(select(down.c.id), select(up.c.id))


# Built once, run with the seeds as a parameter: building either costs about a millisecond, and a
# conflict check, a scheduling and the owners' notifications each run one or both.
_IMPACTED = _impacted_statement()
_RELATED = _related_statement()


def impacted_services(session: Session, service_ids) -> list[dict]:
    """Every service that transitively depends on any of `service_ids`, once, by its shortest path.

    Each item: service_id, key, name, criticality, owner_id, owner (username), depth (1 = depends
    directly on a changed service), path (keys from the changed service to this one) and kinds (the
    dependency kind of each hop: kinds[i] is how path[i+1] depends on path[i]). Sorted by depth, key.
    The changed services themselves are never listed, even when they depend on each other.
    """
    seeds = sorted({int(i) for i in service_ids})
    if not seeds:
        return []
    rows = session.execute(_IMPACTED, {"seeds": seeds}).all()
    return _shortest_paths(rows)


def _shortest_paths(rows) -> list[dict]:
    """Pick one predecessor per service (smallest key on ties) and spell out the path to it."""
    keys = {row.service_id: row.key for row in rows}
    best: dict[int, object] = {}
    for row in rows:
        current = best.get(row.service_id)
        if current is None or (row.via_id is not None and keys[row.via_id] < keys[current.via_id]):
            best[row.service_id] = row
    out = []
    for row in best.values():
        if row.depth == 0:
            continue
        path, kinds, step = [row.key], [], row
        while step.depth > 0:  # via's own best depth is step.depth - 1, so this ends at a changed service
            kinds.append(step.kind)
            step = best[step.via_id]
            path.append(step.key)
        out.append({"service_id": row.service_id, "key": row.key, "name": row.name,
                    "criticality": row.criticality, "owner_id": row.owner_id, "owner": row.username,
                    "depth": row.depth, "path": path[::-1], "kinds": kinds[::-1]})
    return sorted(out, key=lambda item: (item["depth"], item["key"]))


def related_service_ids(session: Session, service_ids) -> set[int]:
    """Services connected to any of `service_ids` in either direction, transitively: what depends on
    them and what they depend on. The given services themselves are not included."""
    seeds = {int(i) for i in service_ids}
    if not seeds:
        return set()
    found = session.scalars(_RELATED, {"seeds": sorted(seeds)}).all()
    return set(found) - seeds


def change_impact(session: Session, change: Change) -> dict:
    """What a change touches directly and what that affects downstream, for the change's impact view."""
    impacted = impacted_services(session, [s.id for s in change.services])
    # the owners of all the services in one query (a lazy `s.owner` would be one query per owner)
    owner_ids = {s.owner_id for s in change.services if s.owner_id is not None}
    owners = {u.id: u for u in session.scalars(select(User).where(User.id.in_(owner_ids)))} if owner_ids else {}
    direct = [{"key": s.key, "name": s.name, "criticality": s.criticality, "owner": owners.get(s.owner_id)}
              for s in change.services]
    criticalities = [s["criticality"] for s in direct] + [i["criticality"] for i in impacted]
    return {"change_id": change.id, "number": change.number, "services": direct, "impacted": impacted,
            "max_criticality": min(criticalities) if criticalities else None, "max_depth": MAX_DEPTH}
