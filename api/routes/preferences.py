"""A patient's preferences for being reached (services/preferences.py): read and replaced by the clinicians
whose teams follow them and by hospital systems; every read and change audited."""

from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import SessionDep, SettingsDep
from api.routes.patients import patient_or_404
from api.schemas import Message
from api.security import Access, allow
from services.preferences import (
    Preferences,
    PreferencesInForce,
    apply_preferences,
    preferences_of,
)
from services.principals import Role
from store.db import PatientPreferences

router = APIRouter(prefix="/patients", tags=["patients"])

Looks = Annotated[Access, Depends(allow(Role.CLINICIAN, Role.INTEGRATION))]


@router.get("/{patient_id}/preferences", response_model=PreferencesInForce, responses={404: {"model": Message}})
async def read_preferences(patient_id: str, session: SessionDep, settings: SettingsDep,
                           access: Looks) -> PreferencesInForce:
    """How the patient wants to be reached: channels first tried, quiet hours, daily budget, language."""
    patient = await patient_or_404(session, patient_id, access)
    stored = await session.get(PatientPreferences, patient.id)
    await access.read(session, "patient.preferences.read", patient_id=patient.id)
    return preferences_of(patient, stored, settings.DAILY_CONTACT_BUDGET)


@router.put("/{patient_id}/preferences", response_model=PreferencesInForce,
            responses={404: {"model": Message}, 422: {"description": "A field that cannot be read; nothing changed."}})
async def replace_preferences(patient_id: str, body: Preferences, session: SessionDep, settings: SettingsDep,
                              access: Looks) -> PreferencesInForce:
    """Replace the patient's preferences whole: the next message follows them, and so does one held now once its wait ends."""
    patient = await patient_or_404(session, patient_id, access)
    stored = apply_preferences(patient, await session.get(PatientPreferences, patient.id), body)
    session.add(stored)
    await access.record(session, "patient.preferences.update", patient_id=patient.id)
    await session.commit()
    return preferences_of(patient, stored, settings.DAILY_CONTACT_BUDGET)
