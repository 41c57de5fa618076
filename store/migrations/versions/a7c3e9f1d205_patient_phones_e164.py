"""Patients' phone numbers in E.164, as the API now stores them; a number it cannot read stays as typed

A number without its country code is read as one of the region `carepath db upgrade` passes (the site's
CAREPATH_DEFAULT_PHONE_REGION). The ids of the patients whose number stays as typed are logged (a
warning), for staff to correct: their SMS will not go until then. The parsing is written out here, not
imported from services/phones.py: a migration must do tomorrow what it does today.

Revision ID: a7c3e9f1d205
Revises: a7c4e19b2d35
Create Date: 2026-11-28 13:00:00.000000
"""
import logging

import phonenumbers
import sqlalchemy as sa
from alembic import context, op

revision = 'a7c3e9f1d205'
down_revision = 'a7c4e19b2d35'
branch_labels = None
depends_on = None

log = logging.getLogger("carepath.migrations")
patients = sa.table("patients", sa.column("id", sa.String), sa.column("phone", sa.String))


def _e164(phone: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) \
        if phonenumbers.is_valid_number(number) else None


def upgrade() -> None:
    region = context.config.attributes.get("phone_region", "CN")
    connection = op.get_bind()
    unreadable = []
    for patient_id, phone in connection.execute(sa.select(patients.c.id, patients.c.phone)
                                                .where(patients.c.phone.is_not(None))).all():
        e164 = _e164(phone, region)
        if e164 is None:
            unreadable.append(patient_id)
        elif e164 != phone:
            connection.execute(patients.update().where(patients.c.id == patient_id).values(phone=e164))
    if unreadable:
        log.warning("%d patients' phone numbers are not numbers of region %s or with a country code, and stay as "
                    "typed until staff correct them: %s", len(unreadable), region, ", ".join(unreadable))


def downgrade() -> None:
    """Nothing to undo: a number in E.164 is one the older code took too."""
