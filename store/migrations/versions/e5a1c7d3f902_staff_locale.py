"""staff.locale: the language the console speaks to each staff member, their own choice

Revision ID: e5a1c7d3f902
Revises: ee2bc469a9f6
Create Date: 2026-11-28 10:05:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'e5a1c7d3f902'
down_revision = 'ee2bc469a9f6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale', sa.String(length=16), nullable=False, server_default='zh-CN'))


def downgrade() -> None:
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.drop_column('locale')
