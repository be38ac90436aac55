"""Which changes touch which service, directly or through the services it depends on, for the
service-owner report: one recursive CTE over `service_dependencies` in the style of
engine/service_map.py (bare ids, UNION, so cycles end).

`reach` pairs every service (the *root*) with itself and everything it depends on, transitively (the
*nodes*). A change touches a root when it names one of the root's nodes. For one service the
(service, change) pairs are few and are formed directly (`touches`). For every service at once they
are not: at 2,000 services a quarter's changes touch ~2 million (service, change) pairs, because a
change to a service many others depend on touches all of them. `per_service` therefore never forms
them all (see there).
"""
from __future__ import annotations

from sqlalchemy import and_, case, exists, func, select, union_all
from sqlalchemy.orm import aliased

from ..models import Service, ServiceDependency, change_services


def reach(service_key: str | None = None):
    """(root, node): each service — or the one named — with itself and what it depends on."""
    dep = ServiceDependency
    base = select(Service.id.label("root"), Service.id.label("node"))
    if service_key is not None:
        base = base.where(Service.key == service_key)
    walk = base.cte("reach", recursive=True)
    return walk.union(select(walk.c.root, dep.depends_on_id).join(dep, dep.service_id == walk.c.node))


def touches(service_key: str | None, changes=None):
    """(service_id, change_id, direct) for the service named (or every service) and each change touching
    it (or each of the `changes` column): `direct` is 1 when the change names the service, 0 when it
    names only services the service depends on."""
    walk, named = reach(service_key), change_services
    query = (select(walk.c.root.label("service_id"), named.c.change_id.label("change_id"),
                    func.max(case((named.c.service_id == walk.c.root, 1), else_=0)).label("direct"))
             .join(named, named.c.service_id == walk.c.node))
    if changes is not None:
        query = query.where(named.c.change_id.in_(select(changes)))
    return query.group_by(walk.c.root, named.c.change_id).subquery("touches")


def per_service(relevant, measures: list[str]):
    """A statement answering (service_id, direct, *measures) for every service touched by a change of
    `relevant` (a CTE: change_id and one numeric column per measure), each change counted once per
    service it touches; `direct` sums `touching` over the changes naming the service.

    Each change is first counted through its *dominant* service — the one it names that the most
    services reach — by totalling the changes per dominant service and summing those totals over each
    root's nodes (as many rows as `reach` has). Only the roots a change reaches through its other
    services and not through the dominant one are then listed as (root, change) pairs: those other
    services are mostly ones few services depend on, so the pairs are a small share of all of them;
    another service that itself depends on the dominant one adds no root and is skipped.
    """
    walk, cs = reach(), change_services
    fan = select(walk.c.node, func.count().label("fan")).group_by(walk.c.node).subquery("fan")
    named = (select(cs.c.change_id, cs.c.service_id,
                    func.row_number().over(partition_by=cs.c.change_id,
                                           order_by=(fan.c.fan.desc(), cs.c.service_id)).label("rank"))
             .join(relevant, relevant.c.change_id == cs.c.change_id)
             .join(fan, fan.c.node == cs.c.service_id).cte("named"))
    per_dominant = (select(named.c.service_id.label("node"), *(func.sum(relevant.c[m]).label(m) for m in measures))
                    .join(relevant, relevant.c.change_id == named.c.change_id)
                    .where(named.c.rank == 1).group_by(named.c.service_id).subquery("per_dominant"))
    through_dominant = (select(walk.c.root.label("service_id"), *(per_dominant.c[m] for m in measures))
                        .join(per_dominant, per_dominant.c.node == walk.c.node))
    dominant, below, probe = aliased(named, name="dominant"), aliased(walk, name="below"), aliased(walk, name="probe")
    # a service that depends on the dominant one reaches no root the dominant one does not: skipped
    spread = (select(named.c.change_id, named.c.service_id, dominant.c.service_id.label("dominant"))
              .join(dominant, and_(dominant.c.change_id == named.c.change_id, dominant.c.rank == 1))
              .where(named.c.rank > 1,
                     ~exists().where(below.c.root == named.c.service_id, below.c.node == dominant.c.service_id))
              .cte("spread"))
    others = (select(walk.c.root, spread.c.change_id)
              .join(spread, spread.c.service_id == walk.c.node)
              .where(~exists().where(probe.c.root == walk.c.root, probe.c.node == spread.c.dominant))
              .distinct().subquery("others"))
    through_others = (select(others.c.root.label("service_id"), *(relevant.c[m] for m in measures))
                      .join(relevant, relevant.c.change_id == others.c.change_id))
    both = union_all(through_dominant, through_others).subquery("both_ways")
    direct = (select(cs.c.service_id, func.sum(relevant.c.touching).label("direct"))
              .join(relevant, relevant.c.change_id == cs.c.change_id).group_by(cs.c.service_id).subquery("direct"))
    totals = (select(both.c.service_id, *(func.sum(both.c[m]).label(m) for m in measures))
              .group_by(both.c.service_id).subquery("totals"))
    return (select(totals.c.service_id, func.coalesce(direct.c.direct, 0).label("direct"),
                   *(totals.c[m] for m in measures))
            .outerjoin(direct, direct.c.service_id == totals.c.service_id))
