"""query indexes: a GiST index over each change's planned window as a range (PostgreSQL), for the
calendar and the conflict checks, which ask which planned windows overlap a span

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# engine/models/changes.py PLANNED_SPAN_SQL as of this revision (copied: a migration must not change
# when the model does). Empty unless the window ends after it starts, so tstzrange never raises.
PLANNED_SPAN = ("(CASE WHEN planned_end > planned_start THEN tstzrange(planned_start, planned_end) "
                "ELSE 'empty'::tstzrange END)")


def upgrade() -> None:
    # SQLite has no range types or GiST; its queries keep the plain comparisons on ix_changes_planned.
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.create_index('ix_changes_planned_span', 'changes', [sa.text(PLANNED_SPAN)], unique=False,
                    postgresql_using='gist')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.drop_index('ix_changes_planned_span', table_name='changes')
