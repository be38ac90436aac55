"""service members: the people who belong to a service (requesters among them read its changes)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('service_members',
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_service_members_service_id_services'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_service_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('service_id', 'user_id', name=op.f('pk_service_members'))
    )
    with op.batch_alter_table('service_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_members_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('service_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_members_user_id'))
    op.drop_table('service_members')
