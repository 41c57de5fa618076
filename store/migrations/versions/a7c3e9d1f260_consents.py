"""consents: each patient's consent per channel, granted or withdrawn, append-only

Revision ID: a7c3e9d1f260
Revises: f3b9d2c6a814
Create Date: 2026-11-28 12:50:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = 'a7c3e9d1f260'
down_revision = 'f3b9d2c6a814'
branch_labels = None
depends_on = None

APPEND_ONLY = 'consents are append-only: record a new decision instead'


def upgrade() -> None:
    op.create_table(
        'consents',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('patient_id', sa.String(length=32), sa.ForeignKey('patients.id'), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('decision', sa.String(length=16), nullable=False),
        sa.Column('method', sa.String(length=16), nullable=False),
        sa.Column('actor_kind', sa.String(length=16), nullable=False),
        sa.Column('actor_id', sa.String(length=32), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_consents_patient_channel', 'consents', ['patient_id', 'channel', 'id'])
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"""
            CREATE FUNCTION consents_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$""")
        op.execute("""CREATE TRIGGER consents_append_only BEFORE UPDATE OR DELETE ON consents
                      FOR EACH ROW EXECUTE FUNCTION consents_append_only()""")
        op.execute("""CREATE TRIGGER consents_no_truncate BEFORE TRUNCATE ON consents
                      FOR EACH STATEMENT EXECUTE FUNCTION consents_append_only()""")
    else:
        for event in ('UPDATE', 'DELETE'):
            op.execute(f"""CREATE TRIGGER consents_no_{event.lower()} BEFORE {event} ON consents
                           BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""")


def downgrade() -> None:
    # Dropping the table drops its triggers; the function is PostgreSQL's own object.
    op.drop_index('ix_consents_patient_channel', table_name='consents')
    op.drop_table('consents')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP FUNCTION consents_append_only()')
