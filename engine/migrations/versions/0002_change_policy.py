"""change policy: templates, CAB meetings, approval rounds, token scopes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:52:34.190660
"""
from alembic import op
import sqlalchemy as sa
import engine.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cab_meetings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('starts_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('members', sa.JSON(), nullable=False),
    sa.Column('horizon_days', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_cab_meetings_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cab_meetings'))
    )
    with op.batch_alter_table('cab_meetings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cab_meetings_starts_at'), ['starts_at'], unique=False)

    op.create_table('change_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=False),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_change_templates_owner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_templates')),
    sa.UniqueConstraint('key', name=op.f('uq_change_templates_key'))
    )
    op.create_table('template_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('implementation_plan', sa.Text(), nullable=False),
    sa.Column('rollback_plan', sa.Text(), nullable=False),
    sa.Column('test_plan', sa.Text(), nullable=False),
    sa.Column('allowed_services', sa.JSON(), nullable=False),
    sa.Column('max_risk', sa.String(length=16), nullable=False),
    sa.Column('proposed_by_id', sa.Integer(), nullable=True),
    sa.Column('proposed_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decision_comment', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_template_versions_decided_by_id_users')),
    sa.ForeignKeyConstraint(['proposed_by_id'], ['users.id'], name=op.f('fk_template_versions_proposed_by_id_users')),
    sa.ForeignKeyConstraint(['template_id'], ['change_templates.id'], name=op.f('fk_template_versions_template_id_change_templates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_template_versions')),
    sa.UniqueConstraint('template_id', 'version', name='uq_template_versions_template_version')
    )
    with op.batch_alter_table('template_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_template_versions_template_id'), ['template_id'], unique=False)

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scopes', sa.JSON(), nullable=True))

    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('round', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('cab_meeting_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('recorded_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('override_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('evidence_reviewed', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.create_index(batch_op.f('ix_approvals_cab_meeting_id'), ['cab_meeting_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_approvals_cab_meeting_id_cab_meetings'), 'cab_meetings', ['cab_meeting_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_approvals_recorded_by_id_users'), 'users', ['recorded_by_id'], ['id'])

    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('approval_round', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('template_version_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_changes_template_version_id'), ['template_version_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_changes_template_version_id_template_versions'), 'template_versions', ['template_version_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_changes_template_version_id_template_versions'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_changes_template_version_id'))
        batch_op.drop_column('template_version_id')
        batch_op.drop_column('approval_round')

    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_approvals_recorded_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_approvals_cab_meeting_id_cab_meetings'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_approvals_cab_meeting_id'))
        batch_op.drop_column('evidence_reviewed')
        batch_op.drop_column('override_reason')
        batch_op.drop_column('recorded_by_id')
        batch_op.drop_column('cab_meeting_id')
        batch_op.drop_column('round')

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('scopes')

    with op.batch_alter_table('template_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_template_versions_template_id'))

    op.drop_table('template_versions')
    op.drop_table('change_templates')
    with op.batch_alter_table('cab_meetings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cab_meetings_starts_at'))

    op.drop_table('cab_meetings')
