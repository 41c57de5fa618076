"""patients.birth_date, for birthday steps (read by an activity, never sent to the workflow)

Revision ID: b7d4e1a9c305
Revises: a6d0c2e4f718
Create Date: 2026-11-28 13:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'b7d4e1a9c305'
down_revision = 'a6d0c2e4f718'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('birth_date', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_column('birth_date')
