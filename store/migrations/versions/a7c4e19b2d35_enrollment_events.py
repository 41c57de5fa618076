"""enrollment_events: events sent into running enrollments (lab results), with their values and outcome

Revision ID: a7c4e19b2d35
Revises: b7d4e1a9c305
Create Date: 2026-11-28 13:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'a7c4e19b2d35'
down_revision = 'b7d4e1a9c305'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'enrollment_events',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('enrollment_id', sa.String(length=32), nullable=False),
        sa.Column('idempotency_key', sa.String(length=200), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('values', sa.JSON(), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_by', sa.String(length=32), nullable=False),
        sa.Column('outcome', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('public_id'),
        sa.UniqueConstraint('enrollment_id', 'idempotency_key', name='uq_enrollment_event_key'),
    )
    op.create_index('ix_enrollment_events_enrollment_id', 'enrollment_events', ['enrollment_id'])


def downgrade() -> None:
    op.drop_index('ix_enrollment_events_enrollment_id', table_name='enrollment_events')
    op.drop_table('enrollment_events')
