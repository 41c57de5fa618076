"""access_audit.action holds a refused request's method and route (84 characters and more: PostgreSQL refused
them past 64, which SQLite never enforced); staff.roles is required, as the model has always said

Revision ID: ee2bc469a9f6
Revises: c41f8e0a7d55
Create Date: 2026-11-28 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'ee2bc469a9f6'
down_revision = 'c41f8e0a7d55'
branch_labels = None
depends_on = None

APPEND_ONLY = 'access_audit is append-only'


def _audit_action(length: int, was: int) -> None:
    if op.get_bind().dialect.name == 'postgresql':
        # A change of type, not of rows: the append-only triggers stay, and do not fire. Going down, longer
        # actions are cut to fit.
        op.alter_column('access_audit', 'action', existing_type=sa.String(length=was), type_=sa.String(length=length),
                        existing_nullable=False, postgresql_using=f'left(action, {length})')
        return
    # SQLite copies the table to change a column, and its triggers are not copied: made again as at first.
    with op.batch_alter_table('access_audit', schema=None) as batch_op:
        batch_op.alter_column('action', existing_type=sa.String(length=was), type_=sa.String(length=length),
                              existing_nullable=False)
    for event in ('UPDATE', 'DELETE'):
        op.execute(f"""CREATE TRIGGER access_audit_no_{event.lower()} BEFORE {event} ON access_audit
                       BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""")


def upgrade() -> None:
    _audit_action(200, was=64)
    # Every account has had roles since they were introduced; a row without would stop the migration.
    op.execute("UPDATE staff SET roles = '[]' WHERE roles IS NULL")
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.alter_column('roles', existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.alter_column('roles', existing_type=sa.JSON(), nullable=True)
    _audit_action(64, was=200)
