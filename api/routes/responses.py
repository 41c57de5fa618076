"""Staff entering a patient's answers on the patient's behalf (phone follow-up, 电话随访)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field

from api.deps import ServicesDep, SessionDep
from api.routes.enrollments import enrollment_or_404
from api.schemas import MAXIMUM_COUNT, Message
from api.security import Access, allow
from language.instruments.scoring import AnswersInvalid
from services.principals import Role
from services.responses import QuestionnaireClosed, submit_response
from workflows.contracts import RuleOutcome

router = APIRouter(prefix="/enrollments", tags=["responses"])


class StaffResponse(BaseModel):
    answers: dict[str, Any] = Field(description="item id → answer: option id, number, 'yes'/'no' or text",
                                    examples=[{"q1": "several_days", "q2": "not_at_all"}])


class ResponseAccepted(BaseModel):
    response_id: str
    outcome: RuleOutcome | None = Field(description="what the pathway's rules did with the response; null when "
                                                    "the pathway could not be reached: the response is stored and "
                                                    "reaches it when it is back")


@router.post(
    "/{enrollment_id}/questionnaires/{step_id}/{occurrence}/responses",
    response_model=ResponseAccepted,
    status_code=status.HTTP_201_CREATED,
    responses={404: {"model": Message}, 410: {"model": Message}, 422: {"description": "answers to check, by item"}},
)
async def enter_response(enrollment_id: str, step_id: str, occurrence: Annotated[int, Path(ge=1, le=MAXIMUM_COUNT)],
                         body: StaffResponse,
                         session: SessionDep, services: ServicesDep,
                         access: Annotated[Access, Depends(allow(Role.CLINICIAN))]) -> ResponseAccepted:
    """Submit a questionnaire response taken by staff; the same rules apply as for the patient's form.
    The signed-in staff member is recorded as who took the answers."""
    await enrollment_or_404(session, enrollment_id, access)
    await access.read(session, "response.enter", enrollment_id=enrollment_id, target=f"{step_id}/{occurrence}")
    try:
        accepted = await submit_response(services.sessions, services.temporal, services.instruments,
                                         enrollment_id=enrollment_id, step_id=step_id, occurrence=occurrence,
                                         answers=body.answers, source="staff", entered_by=access.principal.id)
    except AnswersInvalid as invalid:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            {"message": "some answers need checking", "errors": invalid.errors}) from None
    except QuestionnaireClosed as closed:
        raise HTTPException(status.HTTP_410_GONE, str(closed)) from None
    return ResponseAccepted(response_id=accepted.response_id, outcome=accepted.outcome)
