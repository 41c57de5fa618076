"""touchpoints.claim and claimed_until: which delivery attempt holds a message, and until when

Revision ID: c41f8e0a7d55
Revises: b7e2d4a91c03
Create Date: 2026-11-28 08:20:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'c41f8e0a7d55'
down_revision = 'b7e2d4a91c03'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('touchpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('touchpoints', schema=None) as batch_op:
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claim')
