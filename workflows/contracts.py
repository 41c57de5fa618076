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

TouchpointStatus = Literal["planned", "sent", "failed", "cancelled", "skipped"]
EnrollmentStatus = Literal["active", "completed", "cancelled"]


def workflow_id_for(enrollment_id: str) -> str:
    return f"enrollment-{enrollment_id}"


class EnrollmentRun(BaseModel):
    """The workflow's input: which enrollment, and the pathway exactly as it was when enrolled."""

    enrollment_id: str
    pathway: Pathway
    anchor: AwareDatetime
    timezone: str


class TimelineEntry(BaseModel):
    step_id: str
    occurrence: int
    kind: str
    due: AwareDatetime
    status: TouchpointStatus = "planned"
    at: AwareDatetime | None = None
    detail: str | None = None

    @property
    def key(self) -> str:
        return f"{self.step_id}#{self.occurrence}"


class Timeline(BaseModel):
    enrollment_id: str
    status: EnrollmentStatus
    cancel_reason: str | None = None
    entries: list[TimelineEntry]


class CancelRequest(BaseModel):
    reason: str


class MessageDelivery(BaseModel):
    """Deliver one occurrence of a message step. (enrollment, step, occurrence) is the idempotency key."""

    enrollment_id: str
    pathway_id: str
    pathway_title: str
    step_id: str
    occurrence: int
    channel: str
    due: datetime
    templates: dict[str, MessageTemplate]


class DeliveryReceipt(BaseModel):
    duplicate: bool


class EnrollmentStatusChange(BaseModel):
    enrollment_id: str
    status: EnrollmentStatus
    reason: str | None = None
