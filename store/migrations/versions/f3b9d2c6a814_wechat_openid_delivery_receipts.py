"""patients.wechat_openid; touchpoints keep the provider's message id and its delivery receipt

Revision ID: f3b9d2c6a814
Revises: e5a1c7d3f902
Create Date: 2026-11-28 10:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'f3b9d2c6a814'
down_revision = 'e5a1c7d3f902'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wechat_openid', sa.String(length=128), nullable=True))
    with op.batch_alter_table('touchpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider_message_id', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('delivery_status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('delivery_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('delivery_reported_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_touchpoints_provider_message', ['channel', 'provider_message_id'])


def downgrade() -> None:
    with op.batch_alter_table('touchpoints', schema=None) as batch_op:
        batch_op.drop_index('ix_touchpoints_provider_message')
        batch_op.drop_column('delivery_reported_at')
        batch_op.drop_column('delivery_reason')
        batch_op.drop_column('delivery_status')
        batch_op.drop_column('provider_message_id')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_column('wechat_openid')
