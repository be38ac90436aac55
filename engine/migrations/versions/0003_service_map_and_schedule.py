"""service map and schedule

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:12:15.037501
"""
from alembic import op
import sqlalchemy as sa
import engine.db


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('windows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('starts_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('rrule', sa.Text(), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('until', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_windows_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_windows'))
    )
    with op.batch_alter_table('windows', schema=None) as batch_op:
        batch_op.create_index('ix_windows_kind_span', ['kind', 'starts_at', 'until'], unique=False)

    op.create_table('service_dependencies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('depends_on_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['depends_on_id'], ['services.id'], name=op.f('fk_service_dependencies_depends_on_id_services'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_service_dependencies_service_id_services'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_dependencies')),
    sa.UniqueConstraint('service_id', 'depends_on_id', name='uq_service_dependencies_pair')
    )
    with op.batch_alter_table('service_dependencies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_dependencies_depends_on_id'), ['depends_on_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_service_dependencies_service_id'), ['service_id'], unique=False)

    op.create_table('window_services',
    sa.Column('window_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_window_services_service_id_services'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['window_id'], ['windows.id'], name=op.f('fk_window_services_window_id_windows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('window_id', 'service_id', name=op.f('pk_window_services'))
    )
    with op.batch_alter_table('window_services', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_window_services_service_id'), ['service_id'], unique=False)

    op.create_table('change_conflicts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('change_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('other_change_id', sa.Integer(), nullable=True),
    sa.Column('window_id', sa.Integer(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('detected_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['change_id'], ['changes.id'], name=op.f('fk_change_conflicts_change_id_changes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['other_change_id'], ['changes.id'], name=op.f('fk_change_conflicts_other_change_id_changes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['window_id'], ['windows.id'], name=op.f('fk_change_conflicts_window_id_windows'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_conflicts'))
    )
    with op.batch_alter_table('change_conflicts', schema=None) as batch_op:
        batch_op.create_index('ix_change_conflicts_change_open', ['change_id', 'resolved_at'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('recipient_id', sa.Integer(), nullable=True),
    sa.Column('change_id', sa.Integer(), nullable=True),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('send_after', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['change_id'], ['changes.id'], name=op.f('fk_notifications_change_id_changes'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['recipient_id'], ['users.id'], name=op.f('fk_notifications_recipient_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('dedupe_key', name='uq_notifications_dedupe_key')
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_change_id'), ['change_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_recipient_id'), ['recipient_id'], unique=False)
        batch_op.create_index('ix_notifications_status_due', ['status', 'send_after'], unique=False)

    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('business_owner', sa.String(length=200), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('sla_tier', sa.String(length=32), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('vendors', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('requires_maintenance_window', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('calendar_token', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_users_calendar_token'), ['calendar_token'])



def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_users_calendar_token'), type_='unique')
        batch_op.drop_column('calendar_token')

    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_column('requires_maintenance_window')
        batch_op.drop_column('vendors')
        batch_op.drop_column('sla_tier')
        batch_op.drop_column('business_owner')

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_status_due')
        batch_op.drop_index(batch_op.f('ix_notifications_recipient_id'))
        batch_op.drop_index(batch_op.f('ix_notifications_change_id'))

    op.drop_table('notifications')
    with op.batch_alter_table('change_conflicts', schema=None) as batch_op:
        batch_op.drop_index('ix_change_conflicts_change_open')

    op.drop_table('change_conflicts')
    with op.batch_alter_table('window_services', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_window_services_service_id'))

    op.drop_table('window_services')
    with op.batch_alter_table('service_dependencies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_dependencies_service_id'))
        batch_op.drop_index(batch_op.f('ix_service_dependencies_depends_on_id'))

    op.drop_table('service_dependencies')
    with op.batch_alter_table('windows', schema=None) as batch_op:
        batch_op.drop_index('ix_windows_kind_span')

    op.drop_table('windows')
