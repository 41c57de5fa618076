"""why a questionnaire closed or a call task was cancelled: the enrollment ended first

Revision ID: 5c0e1a7d2b94
Revises: d18b04602765
Create Date: 2026-11-28 06:05:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '5c0e1a7d2b94'
down_revision = 'd18b04602765'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Statuses are free strings (no CHECK): 'closed' and 'cancelled' need no change to `status`.
    with op.batch_alter_table('questionnaires', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_reason', sa.Text(), nullable=True))
    with op.batch_alter_table('call_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('call_tasks', schema=None) as batch_op:
        batch_op.drop_column('closed_reason')
    with op.batch_alter_table('questionnaires', schema=None) as batch_op:
        batch_op.drop_column('closed_reason')
