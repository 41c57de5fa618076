"""Patients and enrollments: search, the patient, the enrollment's timeline and charts; enroll, pause,
resume, cancel, and answers taken by phone. Reads go through the JSON routes' functions, which check scope and audit."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.console.charts import charts
from api.console.pages import PREFIX, form_body, instrument_items, page, shown_time
from api.deps import RegistryDep, ServicesDep, SessionDep, SettingsDep, TemporalDep
from api.routes import enrollments, escalations, patients, responses
from api.schemas import MAXIMUM_COUNT, CancelBody, EnrollmentCreate, PauseBody
from api.security import Access, allow
from services.history import measurements, responses_of
from services.patients import SearchRefused, search_patients
from services.principals import Role
from services.scope import (
    involved_enrollments,
    may_see_enrollment,
    may_see_patient,
    sees_everything,
)
from store.db import Enrollment, EscalationRecord, Patient

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Clinician = Annotated[Access, Depends(allow(Role.CLINICIAN))]


async def refuse_unless_theirs(request: Request, session: AsyncSession, access: Access, *,
                               patient_id: str | None = None, enrollment_id: str | None = None) -> Response | None:
    """The console's refusal of a patient of another team: a 403 page, and a "denied" line in the access log.
    (What does not exist at all stays a 404, as in the API.)"""
    if enrollment_id is not None:
        enrollment = await session.get(Enrollment, enrollment_id)
        if enrollment is None or await may_see_enrollment(session, access.principal, enrollment_id):
            return None
        patient_id = enrollment.patient_id
    elif await session.get(Patient, patient_id) is None or await may_see_patient(session, access.principal, patient_id):
        return None
    await access.record(session, f"GET {request.url.path}", patient_id=patient_id, enrollment_id=enrollment_id,
                        outcome="denied")
    await session.commit()
    return await page(request, "error.html", access, status.HTTP_403_FORBIDDEN, title=None,
                      message=None, refused=True)


@router.get("/patients", response_class=HTMLResponse)
async def patient_search(request: Request, session: SessionDep, access: Clinician, q: str | None = None) -> HTMLResponse:
    found, problem = [], None
    if q:
        try:
            found = await search_patients(session, access.principal, q)
        except SearchRefused as refused:
            problem = str(refused)
        for patient in found:
            await access.record(session, "patient.search", patient_id=patient.id)
        await session.commit()
    return await page(request, "patients.html", access, section="patients", q=q or "", found=found, problem=problem)


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
async def patient_page(patient_id: str, request: Request, session: SessionDep, registry: RegistryDep,
                       access: Clinician) -> Response:
    if refused := await refuse_unless_theirs(request, session, access, patient_id=patient_id):
        return refused
    patient = await patients.read_patient(patient_id, session, access)
    query = select(Enrollment).where(Enrollment.patient_id == patient_id).order_by(Enrollment.created_at.desc())
    if not sees_everything(access.principal):
        involved = involved_enrollments(access.principal.teams).subquery()
        query = query.where(Enrollment.id.in_(select(involved.c[0])))
    return await page(request, "patient.html", access, section="patients", patient=patient,
                      enrollments=list(await session.scalars(query)), pathways=await registry.latest(),
                      idempotency_key=str(uuid.uuid4()))


@router.post("/patients/{patient_id}/enroll", response_class=RedirectResponse)
async def enroll(patient_id: str, pathway_id: Annotated[str, Form()], anchor: Annotated[str, Form()],
                 idempotency_key: Annotated[str, Form(max_length=200)], session: SessionDep, temporal: TemporalDep,
                 registry: RegistryDep, settings: SettingsDep, access: Clinician) -> RedirectResponse:
    """Enroll through the API's own route; the form's key makes a double click join the same enrollment."""
    body = form_body(EnrollmentCreate, patient_id=patient_id, pathway_id=pathway_id, anchor=anchor)
    enrolled = await enrollments.create_enrollment(body, Response(), session, temporal, registry, settings, access,
                                                   idempotency_key)
    return RedirectResponse(f"{PREFIX}/enrollments/{enrolled.id}", status.HTTP_303_SEE_OTHER)


@router.get("/enrollments/{enrollment_id}", response_class=HTMLResponse)
async def enrollment_page(enrollment_id: str, request: Request, session: SessionDep, temporal: TemporalDep,
                          registry: RegistryDep, access: Clinician) -> Response:
    if refused := await refuse_unless_theirs(request, session, access, enrollment_id=enrollment_id):
        return refused
    enrollment = await enrollments.read_enrollment(enrollment_id, session, temporal, access)
    patient = await patients.read_patient(enrollment.patient_id, session, access)
    deployed = await registry.get(enrollment.pathway_id, enrollment.pathway_version)
    escalation_ids = list(await session.scalars(select(EscalationRecord.id).where(
        EscalationRecord.enrollment_id == enrollment_id).order_by(EscalationRecord.opened_at)))
    # Each escalation read as GET /escalations/{id} reads it: scoped, audited, with its audit trail.
    escalation_details = [await escalations.read_escalation(escalation_id, session, temporal, access)
                          for escalation_id in escalation_ids]
    answered = await responses_of(session, enrollment_id)
    drawn = charts(deployed.pathway, await measurements(session, enrollment_id))
    return await page(request, "enrollment.html", access, section="patients", enrollment=enrollment, patient=patient,
                      pathway=deployed.pathway, escalations=escalation_details, answered=answered, charts=drawn,
                      shown_time=shown_time)


@router.post("/enrollments/{enrollment_id}/cancel", response_class=RedirectResponse)
async def cancel(enrollment_id: str, reason: Annotated[str, Form()], session: SessionDep, temporal: TemporalDep,
                 access: Clinician) -> RedirectResponse:
    await enrollments.cancel_enrollment(enrollment_id, form_body(CancelBody, reason=reason), session, temporal, access)
    return RedirectResponse(f"{PREFIX}/enrollments/{enrollment_id}", status.HTTP_303_SEE_OTHER)


@router.post("/enrollments/{enrollment_id}/pause", response_class=RedirectResponse)
async def pause(enrollment_id: str, reason: Annotated[str, Form()], session: SessionDep, temporal: TemporalDep,
                access: Clinician) -> RedirectResponse:
    await enrollments.pause_enrollment(enrollment_id, form_body(PauseBody, reason=reason), session, temporal, access)
    return RedirectResponse(f"{PREFIX}/enrollments/{enrollment_id}", status.HTTP_303_SEE_OTHER)


@router.post("/enrollments/{enrollment_id}/resume", response_class=RedirectResponse)
async def resume(enrollment_id: str, session: SessionDep, temporal: TemporalDep, access: Clinician) -> RedirectResponse:
    await enrollments.resume_enrollment(enrollment_id, session, temporal, access)
    return RedirectResponse(f"{PREFIX}/enrollments/{enrollment_id}", status.HTTP_303_SEE_OTHER)


@router.get("/enrollments/{enrollment_id}/questionnaires/{step_id}/{occurrence}", response_class=HTMLResponse)
async def phone_answers_form(enrollment_id: str, step_id: str, occurrence: int, request: Request,
                             session: SessionDep, services: ServicesDep, access: Clinician) -> Response:
    if refused := await refuse_unless_theirs(request, session, access, enrollment_id=enrollment_id):
        return refused
    enrollment = await enrollments.enrollment_or_404(session, enrollment_id, access)
    deployed = await services.registry.get(enrollment.pathway_id, enrollment.pathway_version)
    step = next((step for step in deployed.pathway.steps if step.id == step_id and step.kind == "questionnaire"), None)
    if step is None or not 1 <= occurrence <= MAXIMUM_COUNT:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no questionnaire {step_id} #{occurrence} in this pathway")
    items = await instrument_items(request, services, access, services.instruments[step.instrument])
    return await page(request, "phone_answers.html", access, section="patients", enrollment_id=enrollment_id,
                      step_id=step_id, occurrence=occurrence, items=items, prefix="answer.")


@router.post("/enrollments/{enrollment_id}/questionnaires/{step_id}/{occurrence}", response_class=HTMLResponse)
async def enter_phone_answers(enrollment_id: str, step_id: str, occurrence: int, request: Request,
                              session: SessionDep, services: ServicesDep, access: Clinician) -> Response:
    """Answers taken on the phone, through the API's staff-response route: the same checks and rules."""
    form = await request.form()
    answers = {key.removeprefix("answer."): str(value) for key, value in form.items()
               if key.startswith("answer.") and str(value).strip()}
    body = form_body(responses.StaffResponse, answers=answers)
    if not 1 <= occurrence <= MAXIMUM_COUNT:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"occurrence must be 1 to {MAXIMUM_COUNT}")
    await responses.enter_response(enrollment_id, step_id, occurrence, body, session, services, access)
    return RedirectResponse(f"{PREFIX}/enrollments/{enrollment_id}", status.HTTP_303_SEE_OTHER)
