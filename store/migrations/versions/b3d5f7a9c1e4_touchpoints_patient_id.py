"""touchpoints.patient_id, indexed with due_at: a patient's daily budget counts their day's messages without a join

Revision ID: b3d5f7a9c1e4
Revises: a7c3e9d1f5b2
Create Date: 2026-11-28 16:45:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'b3d5f7a9c1e4'
down_revision = 'a7c3e9d1f5b2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('touchpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('patient_id', sa.String(length=32), nullable=True))
        batch_op.create_foreign_key('fk_touchpoints_patient', 'patients', ['patient_id'], ['id'])
    op.execute("UPDATE touchpoints SET patient_id = "
               "(SELECT enrollments.patient_id FROM enrollments WHERE enrollments.id = touchpoints.enrollment_id)")
    op.create_index('ix_touchpoints_patient_due', 'touchpoints', ['patient_id', 'due_at'])


def downgrade() -> None:
    op.drop_index('ix_touchpoints_patient_due', table_name='touchpoints')
    with op.batch_alter_table('touchpoints', schema=None) as batch_op:
        batch_op.drop_constraint('fk_touchpoints_patient', type_='foreignkey')
        batch_op.drop_column('patient_id')
