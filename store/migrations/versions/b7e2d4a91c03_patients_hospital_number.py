"""patients.hospital_number: the hospital's own identifier (MRN), by which its systems upsert patients

Revision ID: b7e2d4a91c03
Revises: 9a3f6c1e5b20
Create Date: 2026-11-28 08:10:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'b7e2d4a91c03'
down_revision = '9a3f6c1e5b20'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hospital_number', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint('uq_patients_hospital_number', ['hospital_number'])


def downgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_constraint('uq_patients_hospital_number', type_='unique')
        batch_op.drop_column('hospital_number')
