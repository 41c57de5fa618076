"""staff accounts (passwords, roles, teams), API keys, the append-only access audit, enrollment teams,
unguessable call task ids

Revision ID: 9a3f6c1e5b20
Revises: 5c0e1a7d2b94
Create Date: 2026-11-28 07:50:00.000000
"""
import json
import uuid

import sqlalchemy as sa
from alembic import op

revision = '9a3f6c1e5b20'
down_revision = '5c0e1a7d2b94'
branch_labels = None
depends_on = None

APPEND_ONLY = "access_audit is append-only"


def upgrade() -> None:
    bind = op.get_bind()
    # Everyone on staff so far worked one team's worklist, as a clinician; they have no password yet
    # (an administrator gives them one with POST /staff/{id}/reset-password).
    staff = sa.table('staff', sa.column('id', sa.String), sa.column('email', sa.String),
                     sa.column('team_id', sa.String), sa.column('created_at', sa.DateTime))
    rows = bind.execute(sa.select(staff.c.id, staff.c.email, staff.c.team_id).order_by(staff.c.created_at,
                                                                                        staff.c.id)).all()
    # SQLite alters a table by copying it: nothing may reference `staff` yet, so memberships come after.
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.alter_column('role', new_column_name='job_title', existing_type=sa.String(length=64), nullable=True)
        batch_op.add_column(sa.Column('roles', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('password_hash', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('failed_sign_ins', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_sign_in_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('oidc_subject', sa.String(length=255), nullable=True))
        batch_op.drop_index('ix_staff_team_id')
        batch_op.drop_column('team_id')
    # Emails become the sign-in name: lower-cased and unique. A repeated address keeps its words,
    # tagged with the account's id, so that nothing stored is lost.
    staff = sa.table('staff', sa.column('id', sa.String), sa.column('email', sa.String), sa.column('roles', sa.JSON))
    seen: set[str] = set()
    for row in rows:
        email = row.email.strip().lower()
        if email in seen:
            local, _, domain = email.partition('@')
            email = f"{local}+{row.id}@{domain}"
        seen.add(email)
        bind.execute(staff.update().where(staff.c.id == row.id).values(email=email, roles=json.loads('["clinician"]')))
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_staff_email', ['email'])
        batch_op.create_unique_constraint('uq_staff_oidc_subject', ['oidc_subject'])
    op.create_table(
        'staff_teams',
        sa.Column('staff_id', sa.String(length=32), sa.ForeignKey('staff.id'), primary_key=True),
        sa.Column('team_id', sa.String(length=64), sa.ForeignKey('teams.id'), primary_key=True, index=True),
    )
    memberships = sa.table('staff_teams', sa.column('staff_id', sa.String), sa.column('team_id', sa.String))
    if rows:
        op.bulk_insert(memberships, [{'staff_id': row.id, 'team_id': row.team_id} for row in rows])

    op.create_table(
        'api_keys',
        sa.Column('id', sa.String(length=32), primary_key=True),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False, unique=True),
        sa.Column('roles', sa.JSON(), nullable=False),
        sa.Column('teams', sa.JSON(), nullable=False),
        sa.Column('created_by', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        'access_audit',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column('actor_kind', sa.String(length=16), nullable=False),
        sa.Column('actor_id', sa.String(length=32), nullable=True, index=True),
        sa.Column('actor_roles', sa.String(length=200), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('patient_id', sa.String(length=32), nullable=True, index=True),
        sa.Column('enrollment_id', sa.String(length=32), nullable=True, index=True),
        sa.Column('target', sa.String(length=200), nullable=True),
        sa.Column('client_ip', sa.String(length=64), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
    )
    if bind.dialect.name == 'postgresql':
        op.execute(f"""
            CREATE FUNCTION access_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$""")
        op.execute("""CREATE TRIGGER access_audit_append_only BEFORE UPDATE OR DELETE ON access_audit
                      FOR EACH ROW EXECUTE FUNCTION access_audit_append_only()""")
        op.execute("""CREATE TRIGGER access_audit_no_truncate BEFORE TRUNCATE ON access_audit
                      FOR EACH STATEMENT EXECUTE FUNCTION access_audit_append_only()""")
    else:
        for event in ('UPDATE', 'DELETE'):
            op.execute(f"""CREATE TRIGGER access_audit_no_{event.lower()} BEFORE {event} ON access_audit
                           BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""")

    op.create_table(
        'enrollment_teams',
        sa.Column('enrollment_id', sa.String(length=32), sa.ForeignKey('enrollments.id'), primary_key=True),
        sa.Column('team_id', sa.String(length=64), primary_key=True, index=True),
    )
    with op.batch_alter_table('call_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('public_id', sa.String(length=32), nullable=True))
    tasks = sa.table('call_tasks', sa.column('id', sa.Integer), sa.column('public_id', sa.String))
    for (task_id,) in bind.execute(sa.select(tasks.c.id)).all():
        bind.execute(tasks.update().where(tasks.c.id == task_id).values(public_id=f"ct_{uuid.uuid4().hex[:20]}"))
    with op.batch_alter_table('call_tasks', schema=None) as batch_op:
        batch_op.alter_column('public_id', existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint('uq_call_tasks_public_id', ['public_id'])


def downgrade() -> None:
    raise NotImplementedError("the access audit is kept: restore a backup taken before this migration instead")
