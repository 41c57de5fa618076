"""Finding patients: by name, hospital record number or phone, among those the principal may see."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.principals import Principal
from services.scope import involved_enrollments, sees_everything
from store.db import Enrollment, Patient

SEARCH_LIMIT = 50


class SearchRefused(ValueError):
    pass


async def search_patients(session: AsyncSession, principal: Principal, text: str,
                          limit: int = SEARCH_LIMIT) -> list[Patient]:
    """Patients whose name (given, family, or both in either order), record number or phone contains
    `text`, case-insensitive; a clinician finds only patients their teams are involved in."""
    words = text.strip()
    if len(words) < 2:
        raise SearchRefused("search with at least two characters of a name, record number or phone")
    pattern = f"%{words.lower()}%"
    digits = "".join(character for character in words if character.isdigit())
    matches = [Patient.given_name.ilike(pattern), Patient.family_name.ilike(pattern),
               (Patient.family_name + Patient.given_name).ilike(pattern.replace(" ", "")),
               (Patient.given_name + " " + Patient.family_name).ilike(pattern),
               (Patient.family_name + " " + Patient.given_name).ilike(pattern),
               Patient.hospital_number.ilike(pattern)]
    if len(digits) >= 4:
        # Phones are stored in E.164, but one the migration could not read stays as typed (`+86 138 0013-8000`),
        # and staff type numbers with separators: compare digits alone.
        phone_digits = Patient.phone
        for separator in (" ", "-", "(", ")", "+"):
            phone_digits = func.replace(phone_digits, separator, "")
        matches.append(phone_digits.like(f"%{digits}%"))
    query = select(Patient).where(or_(*matches))
    if not sees_everything(principal):
        involved = involved_enrollments(principal.teams).subquery()
        query = query.where(Patient.id.in_(select(Enrollment.patient_id).where(
            Enrollment.id.in_(select(involved.c[0])))))
    return list(await session.scalars(query.order_by(Patient.family_name, Patient.given_name, Patient.id).limit(limit)))


async def patient_names(session: AsyncSession, enrollment_ids: Collection[str]) -> dict[str, str]:
    """Enrollment id → the patient's name (family name first), for lists staff work through."""
    if not enrollment_ids:
        return {}
    rows = await session.execute(select(Enrollment.id, Patient.family_name, Patient.given_name)
                                 .join(Patient, Patient.id == Enrollment.patient_id)
                                 .where(Enrollment.id.in_(enrollment_ids)))
    return {enrollment_id: f"{family} {given}" for enrollment_id, family, given in rows}
