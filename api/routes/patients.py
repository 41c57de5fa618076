from fastapi import APIRouter, HTTPException, status

from api.deps import SessionDep
from api.schemas import Message, PatientCreate, PatientPublic
from store.db import Patient

router = APIRouter(prefix="/patients", tags=["patients"])


@router.post("", response_model=PatientPublic, status_code=status.HTTP_201_CREATED)
async def create_patient(body: PatientCreate, session: SessionDep) -> Patient:
    """Register a patient, who can then be enrolled in pathways."""
    patient = Patient(**body.model_dump())
    session.add(patient)
    await session.commit()
    return patient


@router.get("/{patient_id}", response_model=PatientPublic, responses={404: {"model": Message}})
async def read_patient(patient_id: str, session: SessionDep) -> Patient:
    """Read one patient."""
    return await patient_or_404(session, patient_id)


async def patient_or_404(session: SessionDep, patient_id: str) -> Patient:
    patient = await session.get(Patient, patient_id)
    if patient is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"patient '{patient_id}' not found")
    return patient
