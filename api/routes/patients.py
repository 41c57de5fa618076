"""Patients: registered by staff or a hospital system; read by the clinicians whose teams follow them."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.deps import SessionDep, SettingsDep
from api.paging import PageDep
from api.schemas import (
    AccessLogLine,
    HospitalNumber,
    Message,
    PatientCreate,
    PatientPublic,
)
from api.security import Access, allow
from services.phones import PhoneRefused, to_e164
from services.principals import Role
from services.scope import may_see_patient
from store.db import AccessAudit, Patient

router = APIRouter(prefix="/patients", tags=["patients"])

Registers = Annotated[Access, Depends(allow(Role.CLINICIAN, Role.INTEGRATION))]
Integration = Annotated[Access, Depends(allow(Role.INTEGRATION))]
Clinician = Annotated[Access, Depends(allow(Role.CLINICIAN))]
Auditor = Annotated[Access, Depends(allow(Role.AUDITOR))]


@router.post("", response_model=PatientPublic, status_code=status.HTTP_201_CREATED)
async def create_patient(body: PatientCreate, session: SessionDep, settings: SettingsDep, access: Registers) -> Patient:
    """Register a patient, who can then be enrolled in pathways."""
    patient = Patient(**stored_details(body, settings.DEFAULT_PHONE_REGION))
    session.add(patient)
    try:
        await session.flush()
    except IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, f"a patient with hospital number {body.hospital_number} "
                            f"exists; PUT /patients/by-hospital-number/{body.hospital_number} updates them") from None
    await access.record(session, "patient.create", patient_id=patient.id)
    await session.commit()
    return patient


@router.put("/by-hospital-number/{hospital_number}", response_model=PatientPublic,
            responses={200: {"model": PatientPublic, "description": "Updated: the hospital number was known."},
                       201: {"model": PatientPublic, "description": "Registered."},
                       422: {"description": "A malformed field, or a body naming another hospital number."}})
async def upsert_patient(hospital_number: HospitalNumber, body: PatientCreate, response: Response,
                         session: SessionDep, settings: SettingsDep, access: Integration) -> Patient:
    """Register a patient by the hospital's number (MRN), or bring their details up to date: what a hospital
    system sends on admission or discharge, safe to repeat. The number is one patient's, however many
    systems send it at once."""
    if body.hospital_number not in (None, hospital_number):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"the body names hospital number {body.hospital_number}, the URL {hospital_number}")
    details = stored_details(body, settings.DEFAULT_PHONE_REGION) | {"hospital_number": hospital_number}
    # The same number sent twice at once: both may find no row; the unique index lets one insert, and the
    # other, rolled back, finds that row and updates it.
    for _ in range(2):
        patient = await session.scalar(select(Patient).where(Patient.hospital_number == hospital_number))
        created = patient is None
        if created:
            patient = Patient(**details)
            session.add(patient)
        else:
            for name, value in details.items():
                setattr(patient, name, value)
        try:
            await session.flush()
            break
        except IntegrityError:
            await session.rollback()
    if created:
        response.status_code = status.HTTP_201_CREATED
    await access.record(session, "patient.create" if created else "patient.update", patient_id=patient.id)
    await session.commit()
    return patient


@router.get("/{patient_id}", response_model=PatientPublic, responses={404: {"model": Message}})
async def read_patient(patient_id: str, session: SessionDep, access: Clinician) -> Patient:
    """Read one patient whom one of your teams follows."""
    patient = await patient_or_404(session, patient_id, access)
    await access.read(session, "patient.read", patient_id=patient.id)
    return patient


@router.get("/{patient_id}/access-log", response_model=list[AccessLogLine], responses={404: {"model": Message}})
async def read_access_log(patient_id: str, session: SessionDep, access: Auditor, page: PageDep) -> list[AccessAudit]:
    """Who used this patient's data, when, from where and why: every read and every change, newest first."""
    if await session.get(Patient, patient_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"patient '{patient_id}' not found")
    lines = list(await session.scalars(page.apply(
        select(AccessAudit).where(AccessAudit.patient_id == patient_id)
        .order_by(AccessAudit.at.desc(), AccessAudit.id.desc()))))
    await access.read(session, "patient.access_log.read", patient_id=patient_id)
    return lines


def stored_details(body: PatientCreate, phone_region: str) -> dict:
    """The row's fields from the body, the phone in E.164; a number that is none is refused as the
    field's own 422, like any other malformed field."""
    details = body.model_dump()
    if body.phone is not None:
        try:
            details["phone"] = to_e164(body.phone, phone_region)
        except PhoneRefused as refused:
            raise RequestValidationError([{"type": "value_error", "loc": ("body", "phone"), "msg": str(refused),
                                           "input": body.phone}]) from None
    return details


async def patient_or_404(session: SessionDep, patient_id: str, access: Access) -> Patient:
    """The patient, if it exists and the principal may see it; the same 404 either way."""
    patient = await session.get(Patient, patient_id)
    if patient is None or not await may_see_patient(session, access.principal, patient_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"patient '{patient_id}' not found")
    return patient
