"""patients.deceased_at; enrollments.paused_at (enrollment lifecycle)

Revision ID: a6d0c2e4f718
Revises: f3b9d2c6a814
Create Date: 2026-11-28 13:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'a6d0c2e4f718'
down_revision = "a7c3e9d1f260"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deceased_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_column('paused_at')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_column('deceased_at')
