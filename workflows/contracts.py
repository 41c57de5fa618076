"""What crosses the workflow boundary: inputs, results, and activity names with their payloads.

Workflows call activities by name so that workflow modules never import side-effecting code; the
activity implementations register under the same names. Nothing here may carry PHI: patients
are ids, and the texts are the pathway's templates, not what a patient wrote.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from language.messages import MessageTemplate
from language.migration import MigrationPlan
from language.model import Escalate, EscalationPolicy, Pathway, Reach
from language.plan import touchpoint_key

DELIVER_MESSAGE = "deliver_message"
RECORD_ENROLLMENT_STATUS = "record_enrollment_status"
OPEN_QUESTIONNAIRE = "open_questionnaire"
EXPIRE_QUESTIONNAIRE = "expire_questionnaire"
RECORD_ESCALATION = "record_escalation"
NOTIFY_TEAM = "notify_team"
NOTIFY_TEAM_BY_EMAIL = "notify_team_by_email"
NOTIFY_TEAM_BY_WEBHOOK = "notify_team_by_webhook"
OPEN_CALL_TASK = "open_call_task"
CLOSE_CALL_TASK = "close_call_task"
SCREEN_FREE_TEXT = "screen_free_text"
ALERT_OPERATIONS = "alert_operations"
# The error type of a delivery refused because the patient has died: not a failure anyone must fix.
PATIENT_DECEASED = "PatientDeceased"
RESOLVE_OCCASIONS = "resolve_occasions"

TouchpointStatus = Literal["planned", "sent", "failed", "cancelled", "skipped", "open", "answered", "expired",
                          "reached", "not_reached", "attended", "missed", "received"]
EnrollmentStatus = Literal["active", "completed", "cancelled", "stopped"]
ItemValue = bool | int | float | str | None


class Compact(BaseModel):
    """A payload written into every touchpoint's history: its JSON leaves out optional fields at their
    default, which decoding fills in again, so the meaning is the same. A required field has no default
    and is always written; payloads written in full still decode."""

    @model_serializer(mode="wrap")
    def _without_defaults(self, handler: SerializerFunctionWrapHandler) -> dict:
        fields = type(self).model_fields
        return {name: value for name, value in handler(self).items()
                if name not in fields or fields[name].is_required() or getattr(self, name) != fields[name].default}


def workflow_id_for(enrollment_id: str) -> str:
    return f"enrollment-{enrollment_id}"


class EnrollmentRun(BaseModel):
    """The workflow's input: which enrollment, and the pathway exactly as it was when enrolled."""

    enrollment_id: str
    pathway: Pathway
    anchor: AwareDatetime
    timezone: str
    # Set when an earlier run of this enrollment continued as new: where it got to.
    carried: CarriedState | None = None


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
    # Only whether there is free text to screen; the text itself stays in the database.
    has_free_text: bool = False
    # When it was stored: an answer given before expiry and delivered after it (the outbox) still counts.
    received_at: AwareDatetime | None = None


class RuleOutcome(BaseModel):
    tags: list[str] = []
    sent: list[str] = []
    calls: list[str] = []
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
    attempts: int = 0
    # For a step written `after` another: the touchpoint whose state it follows (`day3-check#1`).
    follows: str | None = None
    # The channel a message went by (its last, for a questionnaire's invitation and reminders).
    channel: str | None = None

    @property
    def key(self) -> str:
        return touchpoint_key(self.step_id, self.occurrence)


class TimelineEvent(BaseModel):
    at: AwareDatetime
    kind: Literal["tag", "escalation", "stop", "screening_failed", "migration", "pause", "resume", "anchor", "event"]
    detail: str
    escalation_id: str | None = None


class Timeline(BaseModel):
    enrollment_id: str
    status: EnrollmentStatus
    # When the workflow next wakes by itself; None while it waits only for people (an open call,
    # an escalation that pauses the pathway) and once it has finished.
    next_due: AwareDatetime | None = None
    cancel_reason: str | None = None
    tags: list[str] = []
    entries: list[TimelineEntry]
    events: list[TimelineEvent] = []
    # The version the enrollment follows now (None from workers before migrations existed).
    pathway_version: int | None = None
    # Set while staff hold the enrollment (a readmission): `status` stays "active", for it has not ended.
    paused: Pause | None = None


class CarriedAgendaItem(BaseModel):
    """An agenda item as the next run receives it: its entry by position in `CarriedState.entries`."""

    kind: Literal["send", "open_questionnaire", "remind", "expire", "open_call", "escalate",
                  "appointment_reminder", "appointment_due", "attendance_deadline"]
    due: AwareDatetime
    entry: int
    sent_by_rule: bool = False
    trigger: str | None = None
    escalate: Escalate | None = None


class CarriedState(BaseModel):
    """What a long enrollment's run hands to the next when its history grows too long."""

    entries: list[TimelineEntry]
    agenda: list[CarriedAgendaItem]
    tags: list[str]
    events: list[TimelineEvent]
    escalations: int
    cancel_reason: str | None = None
    stop_reason: str | None = None
    migrations: list[Migration] = []
    pause: Pause | None = None
    # Touchpoints that fell due while paused and go when it ends (`while_paused: send_on_resume`).
    held: list[CarriedAgendaItem] = []


class Pause(BaseModel):
    """Why and since when an enrollment is on hold; `actor` is a staff id (no PHI)."""

    since: AwareDatetime
    reason: str
    actor: str


class PauseRequest(BaseModel):
    reason: str
    actor: str


class ResumeRequest(BaseModel):
    actor: str


class AnchorMove(BaseModel):
    """Recompute the touchpoints still to come from `anchor` (the operation was rescheduled, say)."""

    anchor: AwareDatetime
    reason: str
    actor: str


class MigrationRequest(BaseModel):
    """Follow `pathway` (a newer version) from now on; `actor` is who decided it (a staff id, no PHI)."""

    pathway: Pathway
    actor: str


class RollbackRequest(BaseModel):
    actor: str


class Migration(BaseModel):
    """A migration applied to this enrollment: enough to answer by the old rules, and to undo it."""

    at: AwareDatetime
    actor: str
    previous: Pathway
    plan: MigrationPlan
    # Touchpoints in progress at the moment (by key): they finish under `previous`'s rules.
    kept: list[str]
    # The planned entries it replaced, and the keys of those it planned instead, for a rollback.
    replaced: list[TimelineEntry]
    planned: list[str]


class MigrationOutcome(BaseModel):
    status: Literal["migrated", "unchanged", "rolled_back"]
    from_version: int
    to_version: int
    plan: MigrationPlan | None = None


class CancelRequest(BaseModel):
    reason: str


class StopForGood(BaseModel):
    """End the enrollment so that nothing more reaches the patient, not even what a rule already decided
    (the patient has died); escalations already decided still reach staff."""

    reason: str
    actor: str


class FormLink(BaseModel):
    """Put a signed link to this questionnaire occurrence's web form into the message."""

    instrument_id: str
    expires: AwareDatetime


class AppointmentNotice(BaseModel):
    """Put the visit's link and time into the message (`{{ link }}`, `{{ visit }}` in the patient's zone)."""

    link: str
    at: AwareDatetime


# Which of a step's texts a message sends: a message's or an invitation's, or a questionnaire's reminder.
TemplateName = Literal["template", "reminder_template"]


class MessageDelivery(Compact):
    """Deliver one message. (enrollment, step, occurrence, purpose) is the idempotency key.

    Its texts by reference: the step's `template` in deployed version `pathway_version`, which the
    activity reads (cached per version), so every locale's text is not in each activity input. The
    pathway's title and `reach` the activity reads from that version too where `pathway_title` is None.
    `templates` (the texts themselves) the workflow no longer writes; the activity still reads it.
    """

    enrollment_id: str
    pathway_id: str
    pathway_title: str | None = None
    step_id: str
    occurrence: int
    purpose: str = "scheduled"
    # The step's channel; None: the pathway's `reach` for the patient's language (language/reach.py).
    channel: str | None
    due: datetime
    pathway_version: int | None = None
    template: TemplateName | None = None
    templates: dict[str, MessageTemplate] | None = None
    form: FormLink | None = None
    appointment: AppointmentNotice | None = None
    reach: Reach | None = None
    # What the patient's wishes may hold the message for: their quiet hours, their daily budget (a day's
    # messages across all their enrollments). Never for what a rule sent: that may be about their safety.
    waits_for: list[Literal["quiet_hours", "daily_budget"]] = []


class QuestionnaireOccurrence(BaseModel):
    enrollment_id: str
    step_id: str
    occurrence: int
    instrument_id: str
    opens: AwareDatetime
    expires: AwareDatetime


def escalation_workflow_id(escalation_id: str) -> str:
    return f"escalation-{escalation_id}"


class EscalationStart(BaseModel):
    """The input of an EscalationWorkflow: what happened, and the policy snapshot to follow."""

    escalation_id: str
    enrollment_id: str
    step_id: str
    occurrence: int
    trigger: str
    reason: str
    priority: str
    policy_name: str
    policy: EscalationPolicy
    response_id: str | None = None


class StaffAction(BaseModel):
    """A staff member acting on an escalation for one of their teams (checked by the API)."""

    staff_id: str
    team: str


class Reassignment(StaffAction):
    to_team: str


class Notified(BaseModel):
    team: str
    tier: int
    at: AwareDatetime


class NotificationFailure(BaseModel):
    """A channel that could not tell a team, after its last retry: which, and the error's type only.
    `any` with NoChannel: the team has neither an email nor a webhook."""

    team: str
    tier: int
    channel: Literal["email", "webhook", "any"]
    error: str
    at: AwareDatetime


EscalationStatus = Literal["open", "acknowledged", "resolved"]


class EscalationState(BaseModel):
    escalation_id: str
    enrollment_id: str
    status: EscalationStatus
    priority: str
    reason: str
    notified: list[Notified] = []
    notification_failures: list[NotificationFailure] = []
    acknowledged_by: str | None = None
    acknowledged_at: AwareDatetime | None = None
    resolved_by: str | None = None
    resolved_at: AwareDatetime | None = None


class EscalationEvent(BaseModel):
    """A change to record: the escalation's row, and one audit line saying who did what, when."""

    start: EscalationStart
    action: Literal["opened", "notified", "notify_failed", "acknowledged", "resolved", "reassigned", "reopened"]
    actor: str
    at: AwareDatetime
    status: EscalationStatus
    team: str | None = None
    tier: int | None = None
    # notify_failed: "<channel>: <error type>", never an address or a server's words.
    detail: str | None = None


class TeamNotification(BaseModel):
    escalation_id: str
    enrollment_id: str
    team: str
    tier: int
    priority: str
    reason: str
    trigger: str
    # Which telling of this team at this tier (the last tier repeats): part of every idempotency key.
    page: int = 1


class CallTask(BaseModel):
    """One attempt of a call step: a task on a team's worklist."""

    enrollment_id: str
    step_id: str
    occurrence: int
    attempt: int
    team: str
    due: AwareDatetime
    scripts: dict[str, str]


class CallOutcome(BaseModel):
    """What staff recorded. Their notes stay in the database; measured values come here for rules."""

    step_id: str
    occurrence: int
    outcome: Literal["reached", "not_reached"]
    staff_id: str
    values: dict[str, ItemValue] = {}


class OccasionQuery(BaseModel):
    """Which birthdays and holidays (`birthday`, `holiday cn/spring-festival`) fall in an enrollment's local days."""

    enrollment_id: str
    occasions: list[str]
    first: date
    last: date


class OccasionDates(BaseModel):
    """The dates each occasion falls on in the span, and why any are incomplete. Never the date of birth itself:
    only the birthdays within the span (a message on one is sent on that day anyway)."""

    dates: dict[str, list[date]]
    gaps: list[str] = []


class AttendanceReport(BaseModel):
    """Whether the patient came to an appointment, and who says so (a staff id, or the video service)."""

    step_id: str
    occurrence: int
    outcome: Literal["attended", "missed"]
    recorded_by: str


class EnrollmentEvent(BaseModel):
    """An event into a running enrollment (a lab result). `values` are those its rules compare, never text:
    the event itself, with its notes and when it happened, is stored in the database under `event_id`."""

    event_id: str
    type: str
    values: dict[str, ItemValue] = {}


class DeliveryReceipt(Compact):
    duplicate: bool
    # The channel that took the message, and why those before it in the patient's order could not.
    channel: str | None = None
    passed_over: str | None = None
    # Not sent: the patient's quiet hours or daily budget hold it until then (`deferred_for` says which).
    deferred_until: AwareDatetime | None = None
    deferred_for: str | None = None


class EnrollmentStatusChange(BaseModel):
    enrollment_id: str
    status: EnrollmentStatus
    reason: str | None = None


class OperationsAlert(BaseModel):
    """Something only a person can fix (a message that could not go, our database not answering), told
    to the site's operations staff: ids and the kind of error, never a patient's details."""

    enrollment_id: str
    what: str
    detail: str
