"""changes by state in id order: the change list filtered by state pages newest first

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 06:45:00.000000
"""
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Without it, page 200 of the closed changes walked the primary key backwards past every newer
    # change of another state (20 ms at 150,000 changes; 1 ms with it).
    op.create_index('ix_changes_state_id', 'changes', ['state', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_changes_state_id', table_name='changes')
