"""A patient's consent to be contacted, per channel: read, granted and withdrawn by the patient's care
team or the hospital's systems (its consent forms, imported). Every decision is kept (services/consent.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, Field

from api.deps import SessionDep, SettingsDep, TemporalDep
from api.routes.patients import patient_or_404
from api.schemas import Message
from api.security import Access, allow
from services.consent import (
    CHANNELS,
    EVERY_CHANNEL,
    WITHDREW,
    Decision,
    Recorder,
    StaffMethod,
    consent_history,
    record_decision,
)
from services.lifecycle import end_all_enrollments
from services.principals import Role
from store.consent import allowed_channels

router = APIRouter(prefix="/patients", tags=["consent"])

CareTeam = Annotated[Access, Depends(allow(Role.CLINICIAN, Role.INTEGRATION))]
ConsentChannel = Literal[CHANNELS + (EVERY_CHANNEL,)]


class ConsentChange(BaseModel):
    channel: ConsentChannel = Field(description=f"one channel, or `{EVERY_CHANNEL}`: withdrawing every channel "
                                                "ends all of the patient's enrollments")
    decision: Decision
    method: StaffMethod = Field(description="how the patient gave or withdrew it")


class ConsentLine(BaseModel):
    channel: str
    decision: str
    method: str
    recorded_by_kind: str = Field(description="staff, api_key, or patient (unsubscribe link, STOP reply)")
    recorded_by: str | None
    at: datetime


class ConsentState(BaseModel):
    patient_id: str
    open_channels: list[str] = Field(description="the channels a message may go on now, under the site's setting")
    history: list[ConsentLine] = Field(description="every decision, newest first; the newest per channel holds")
    ended_enrollments: list[str] = Field(default=[], description="enrollments this withdrawal cancelled")
    enrollments_not_answering: list[str] = Field(
        default=[], description="enrollments whose workflow did not answer: nothing is sent on them (no channel "
                                "is open), and withdrawing again cancels them")


async def _state(session: SessionDep, patient_id: str, require_consent: bool, **ended: list[str]) -> ConsentState:
    history = await consent_history(session, patient_id)
    return ConsentState(
        patient_id=patient_id,
        open_channels=await allowed_channels(session, patient_id, CHANNELS, require_consent=require_consent),
        history=[ConsentLine(channel=row.channel, decision=row.decision, method=row.method,
                             recorded_by_kind=row.actor_kind, recorded_by=row.actor_id, at=row.at) for row in history],
        **ended)


@router.get("/{patient_id}/consent", response_model=ConsentState, responses={404: {"model": Message}})
async def read_consent(patient_id: str, session: SessionDep, settings: SettingsDep, access: CareTeam) -> ConsentState:
    """Which channels may carry messages to the patient, and every consent decision recorded."""
    await patient_or_404(session, patient_id, access)
    await access.read(session, "patient.consent.read", patient_id=patient_id)
    return await _state(session, patient_id, settings.REQUIRE_CONSENT)


@router.post("/{patient_id}/consent", response_model=ConsentState, status_code=status.HTTP_201_CREATED,
             responses={404: {"model": Message}, 422: {"description": "An unknown channel, decision or method."}})
async def record_consent(patient_id: str, body: ConsentChange, session: SessionDep, settings: SettingsDep,
                         temporal: TemporalDep, access: CareTeam) -> ConsentState:
    """Record the patient's consent to a channel, or its withdrawal. Withdrawing `all` is the patient
    leaving follow-up: each of their running enrollments is cancelled ("patient withdrew consent")."""
    patient = await patient_or_404(session, patient_id, access)
    record_decision(session, patient_id, body.channel, body.decision, body.method,
                    Recorder(access.principal.kind.value, access.principal.id))
    await access.record(session, f"consent.{'grant' if body.decision == 'granted' else 'withdraw'}",
                        patient_id=patient_id, target=body.channel)
    await session.commit()
    ended, unanswered = [], []
    if body.channel == EVERY_CHANNEL and body.decision == "withdrawn":
        outcomes = await end_all_enrollments(session, temporal, patient, WITHDREW)
        ended = [outcome.enrollment_id for outcome in outcomes if outcome.changes]
        unanswered = [outcome.enrollment_id for outcome in outcomes if outcome.unanswered]
        access.reason = access.reason or WITHDREW
        for enrollment_id in ended:
            await access.record(session, "enrollment.cancel", patient_id=patient_id, enrollment_id=enrollment_id)
        await session.commit()
    return await _state(session, patient_id, settings.REQUIRE_CONSENT, ended_enrollments=ended,
                        enrollments_not_answering=unanswered)
