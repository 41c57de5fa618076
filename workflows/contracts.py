"""What crosses the workflow boundary: inputs, results, and activity names with their payloads.

Workflows call activities by name so that workflow modules never import side-effecting code; the
activity implementations register under the same names. Nothing here may carry PHI: patients
are ids, and the texts are the pathway's templates, not what a patient wrote.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel

from pathways.model import MessageTemplate, Pathway

DELIVER_MESSAGE = "deliver_message"
RECORD_ENROLLMENT_STATUS = "record_enrollment_status"
OPEN_QUESTIONNAIRE = "open_questionnaire"
EXPIRE_QUESTIONNAIRE = "expire_questionnaire"
OPEN_ESCALATION = "open_escalation"

TouchpointStatus = Literal["planned", "sent", "failed", "cancelled", "skipped", "open", "answered", "expired"]
EnrollmentStatus = Literal["active", "completed", "cancelled", "stopped"]
ItemValue = bool | int | float | str | None


def workflow_id_for(enrollment_id: str) -> str:
    return f"enrollment-{enrollment_id}"


class EnrollmentRun(BaseModel):
    """The workflow's input: which enrollment, and the pathway exactly as it was when enrolled."""

    enrollment_id: str
    pathway: Pathway
    anchor: AwareDatetime
    timezone: str


class ResponseSummary(BaseModel):
    """What rules may look at. The answers themselves, and any free text, stay in the database."""

    response_id: str
    score: float | None = None
    band: str | None = None
    flags: list[str] = []
    items: dict[str, ItemValue] = {}


class ResponseSubmission(ResponseSummary):
    step_id: str
    occurrence: int


class RuleOutcome(BaseModel):
    tags: list[str] = []
    sent: list[str] = []
    escalations: list[str] = []
    stopped: bool = False
    errors: list[str] = []


class TimelineEntry(BaseModel):
    step_id: str
    occurrence: int
    kind: str
    due: AwareDatetime
    status: TouchpointStatus = "planned"
    at: AwareDatetime | None = None
    detail: str | None = None
    closes: AwareDatetime | None = None
    reminders: list[AwareDatetime] = []
    reminders_sent: int = 0
    response: ResponseSummary | None = None
    outcome: RuleOutcome | None = None

    @property
    def key(self) -> str:
        return f"{self.step_id}#{self.occurrence}"


class TimelineEvent(BaseModel):
    at: AwareDatetime
    kind: Literal["tag", "escalation", "stop"]
    detail: str


class Timeline(BaseModel):
    enrollment_id: str
    status: EnrollmentStatus
    cancel_reason: str | None = None
    tags: list[str] = []
    entries: list[TimelineEntry]
    events: list[TimelineEvent] = []


class CancelRequest(BaseModel):
    reason: str


class FormLink(BaseModel):
    """Put a signed link to this questionnaire occurrence's web form into the message."""

    instrument_id: str
    expires: AwareDatetime


class MessageDelivery(BaseModel):
    """Deliver one message. (enrollment, step, occurrence, purpose) is the idempotency key."""

    enrollment_id: str
    pathway_id: str
    pathway_title: str
    step_id: str
    occurrence: int
    purpose: str = "scheduled"
    channel: str
    due: datetime
    templates: dict[str, MessageTemplate]
    form: FormLink | None = None


class QuestionnaireOccurrence(BaseModel):
    enrollment_id: str
    step_id: str
    occurrence: int
    instrument_id: str
    opens: AwareDatetime
    expires: AwareDatetime


class EscalationRequest(BaseModel):
    """Open an escalation once per (enrollment, step, occurrence, trigger)."""

    enrollment_id: str
    step_id: str
    occurrence: int
    trigger: str
    reason: str
    priority: str
    response_id: str | None = None


class DeliveryReceipt(BaseModel):
    duplicate: bool


class EnrollmentStatusChange(BaseModel):
    enrollment_id: str
    status: EnrollmentStatus
    reason: str | None = None
