"""audit chain: every audit event becomes a link of a hash chain (chain, seq, prev_hash, hash);
existing events are chained in id order, one chain per change plus the system chain

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

import engine.db
# The canonical form is the one verify checks against, so the backfill uses the same function.
from engine.audit_chain import GENESIS, chain_of, event_hash


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BATCH = 1000

events = sa.table(
    'audit_events',
    sa.column('id', sa.Integer()), sa.column('at', engine.db.UTCDateTime(timezone=True)),
    sa.column('actor_id', sa.Integer()), sa.column('actor', sa.String()), sa.column('kind', sa.String()),
    sa.column('change_id', sa.Integer()), sa.column('element_id', sa.String()),
    sa.column('task_id', sa.String()), sa.column('data', sa.JSON()), sa.column('chain', sa.String()),
    sa.column('seq', sa.Integer()), sa.column('prev_hash', sa.String()), sa.column('hash', sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chain', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    _backfill(op.get_bind())
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('chain', existing_type=sa.String(length=40), nullable=False)
        batch_op.alter_column('seq', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint('uq_audit_events_chain_seq', ['chain', 'seq'])


def _backfill(bind) -> None:
    """Chain the events already there, oldest id first, a page at a time (both backends)."""
    heads: dict[str, tuple[int, str]] = {}
    update = (events.update().where(events.c.id == sa.bindparam('event_id'))
              .values(chain=sa.bindparam('new_chain'), seq=sa.bindparam('new_seq'),
                      prev_hash=sa.bindparam('new_prev'), hash=sa.bindparam('new_hash')))
    last_id = 0
    while True:
        rows = bind.execute(sa.select(events).where(events.c.id > last_id)
                            .order_by(events.c.id).limit(BATCH)).all()
        if not rows:
            return
        values = []
        for row in rows:
            chain = chain_of(row.change_id)
            seq, prev = heads.get(chain, (0, GENESIS))
            seq += 1
            digest = event_hash(chain=chain, seq=seq, prev_hash=prev, kind=row.kind, at=row.at,
                                actor=row.actor, actor_id=row.actor_id, change_id=row.change_id,
                                element_id=row.element_id, task_id=row.task_id, data=row.data)
            heads[chain] = (seq, digest)
            values.append({'event_id': row.id, 'new_chain': chain, 'new_seq': seq, 'new_prev': prev,
                           'new_hash': digest})
        bind.execute(update, values)
        last_id = rows[-1].id


def downgrade() -> None:
    # Dropping these columns would throw away the evidence that the trail is intact; migrations
    # never drop audit data (tests/test_audit_chain.py checks every migration for it).
    raise RuntimeError("0008 cannot be downgraded: it would drop the audit hash chain")
