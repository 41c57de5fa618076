"""patient_preferences: the channels a patient wants first, their quiet hours and daily budget

Revision ID: a7c3e9d1f5b2
Revises: a7c3e9f1d205
Create Date: 2026-11-28 12:45:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'a7c3e9d1f5b2'
down_revision = 'a7c3e9f1d205'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'patient_preferences',
        sa.Column('patient_id', sa.String(length=32), sa.ForeignKey('patients.id'), primary_key=True),
        sa.Column('channels', sa.JSON(), nullable=False),
        sa.Column('quiet_hours', sa.String(length=11), nullable=True),
        sa.Column('daily_budget', sa.Integer(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('patient_preferences')
