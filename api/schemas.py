"""What the API accepts and returns. Database rows and domain models stay behind these shapes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PastDate,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from language.model import Locale, ParameterName, Pathway, Priority, Slug, ZoneName
from services.lifecycle import PatientEventType
from services.principals import Role as AccessRole
from services.receipts import DeliveryStatus
from workflows.contracts import (
    EnrollmentStatus,
    EscalationState,
    EscalationStatus,
    NotificationFailure,
    RuleOutcome,
    Timeline,
)

# Versions and occurrences are small counts; anything larger is a mistake (and overflows a database integer).
MAXIMUM_COUNT = 1_000_000
# PostgreSQL refuses a NUL character in text (a 500 if it got that far): refused here, with the field named.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=320,
                                         pattern=r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$"),
                  Field(examples=["li.wei@example.com"])]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40),
                  Field(description="with its country code (+86 138 0013 8000), or without it as a number of the "
                                    "site's region (CAREPATH_DEFAULT_PHONE_REGION, CN unless set); stored and "
                                    "returned in E.164 (+8613800138000)", examples=["+86 138 0013 8000"])]
# WeChat documents no length: the openids it issues are 28 characters of URL-safe base64. The bounds catch
# what is plainly something else (a phone number, an email address, a name).
WeChatOpenId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_-]{20,64}$"),
                         Field(description="the patient's openid for the hospital's WeChat Official Account "
                                           "(20 to 64 letters, digits, - and _; 28 as WeChat issues them)",
                               examples=["oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"])]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=r"^[^\x00]*$")]

ANCHOR_HELP = "a date (2026-12-01: the start of that day in the enrollment's time zone) or a date-time with its UTC offset (2026-12-01T09:30:00+08:00)"


def _parse_anchor(value: object) -> date | datetime:
    if isinstance(value, date):
        moment = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text) if "T" in text or " " in text else date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"'{value}' is not {ANCHOR_HELP}") from None
    else:
        raise ValueError(f"expected {ANCHOR_HELP}")
    if isinstance(moment, datetime) and moment.tzinfo is None:
        raise ValueError(f"'{value}' has no UTC offset; add one (e.g. +08:00 or Z) or give a date only")
    return moment


Anchor = Annotated[
    date | datetime,
    PlainValidator(_parse_anchor),
    WithJsonSchema({"type": "string", "description": ANCHOR_HELP, "examples": ["2026-12-01", "2026-12-01T09:30:00+08:00"]}),
]


HospitalNumber = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                                 pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"),
                          Field(description="the hospital's own identifier for the patient (MRN)", examples=["MRN-0042731"])]


class PatientCreate(BaseModel):
    hospital_number: HospitalNumber | None = None
    given_name: Name
    family_name: Name
    email: Email | None = None
    phone: Phone | None = None
    wechat_openid: WeChatOpenId | None = None
    locale: Locale = Field(description="the language messages are sent in, e.g. zh-CN or en")
    timezone: ZoneName = Field(description="IANA time zone; pathway times are the patient's local times")
    birth_date: PastDate | None = Field(default=None, description="date of birth, for birthday messages",
                                        examples=["1990-03-14"])


class PatientPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    hospital_number: str | None
    given_name: str
    family_name: str
    email: str | None
    phone: str | None
    wechat_openid: str | None
    locale: str
    timezone: str
    birth_date: date | None = None
    created_at: datetime
    deceased_at: datetime | None = Field(default=None, description="set by a `deceased` event: no enrollment since")


class PathwaySummary(BaseModel):
    id: str
    version: int
    title: str
    anchor: str = Field(description="the named date the schedule hangs on")
    locales: list[str]


class PathwayDetail(PathwaySummary):
    versions: list[int] = Field(description="every deployed version of this pathway")
    sha256: str = Field(description="of the YAML source exactly as deployed")
    deployed_at: datetime
    source: str = Field(description="the YAML source exactly as deployed")
    definition: Pathway


class InvalidPathwayDetail(BaseModel):
    message: str
    problems: list[str] = Field(description="file:line:col: field: message", examples=[
        ["<body>:12:9: steps[1].at: 'day three' is not 'day N HH:MM' ..."]])


class InvalidPathway(BaseModel):
    detail: InvalidPathwayDetail


class Message(BaseModel):
    detail: str


class EnrollmentCreate(BaseModel):
    patient_id: str
    pathway_id: Slug
    pathway_version: int | None = Field(default=None, ge=1, le=MAXIMUM_COUNT,
                                        description="default: the newest deployed version")
    anchor: Anchor
    timezone: ZoneName | None = Field(default=None, description="default: the patient's time zone")


class CancelBody(BaseModel):
    reason: Reason = Field(examples=["patient readmitted"])


class PauseBody(BaseModel):
    reason: Reason = Field(examples=["readmitted to ward 5"])


class AnchorBody(BaseModel):
    anchor: Anchor = Field(description="the new anchor; a date means the start of that day in the enrollment's zone")
    reason: Reason = Field(examples=["operation rescheduled"])


class PatientEventBody(BaseModel):
    """Something that happened to the patient, from staff or the hospital system (services/lifecycle.py)."""

    type: PatientEventType
    reason: Reason | None = Field(default=None, description="added to what the enrollments record",
                                  examples=["ward 5", "to Renji Hospital"])
    anchor: Anchor | None = Field(default=None, description="discharged only: recompute what is to come from this "
                                                            "anchor before resuming")
    occurred_at: AwareDatetime | None = Field(default=None, description="deceased only: when (default: now)")

    @model_validator(mode="after")
    def _fields_of_the_type(self) -> PatientEventBody:
        if self.anchor is not None and self.type != "discharged":
            raise ValueError(f"anchor applies to a discharged event, not {self.type}")
        if self.occurred_at is not None and self.type != "deceased":
            raise ValueError(f"occurred_at applies to a deceased event, not {self.type}")
        return self


class EnrollmentChange(BaseModel):
    enrollment_id: str
    changes: list[str] = Field(description="what was done to it, as the access log names it",
                               examples=[["enrollment.pause"]])
    unchanged: str | None = Field(default=None, description="why nothing was done to it",
                                  examples=["the enrollment is already paused, since 2026-12-01 09:30 UTC by st_1"])


class PatientEventResult(BaseModel):
    patient_id: str
    type: PatientEventType
    enrollments: list[EnrollmentChange]


class DeliveryPublic(BaseModel):
    """One message of a touchpoint: the channel it went by, whether the gateway took it, and what the
    gateway's receipt later said became of it."""

    model_config = ConfigDict(from_attributes=True)

    step_id: str
    occurrence: int
    purpose: str = Field(description="scheduled (a message), invitation or reminder-N (a questionnaire's)")
    channel: str
    status: Literal["sending", "sent", "failed", "deferred", "cancelled"] = Field(
        description="sent: the gateway took it; failed: it could not be handed over (last_error says why); "
                    "deferred: held by the patient's quiet hours or daily budget, to go later; cancelled: "
                    "the patient died before it went")
    sent_at: datetime | None
    last_error: str | None
    delivery_status: DeliveryStatus | None = Field(
        description="what the gateway's receipt said: delivered, or undelivered (delivery_reason says why); "
                    "null until a receipt comes, and for email, which has none")
    delivery_reason: str | None
    delivery_reported_at: datetime | None


class EnrollmentPublic(BaseModel):
    id: str
    patient_id: str
    pathway_id: str
    pathway_version: int
    anchor: AwareDatetime = Field(description="in the enrollment's time zone")
    timezone: str
    status: EnrollmentStatus
    status_reason: str | None
    created_at: datetime
    ended_at: datetime | None
    workflow_id: str
    timeline: Timeline | None = Field(
        description="every touchpoint and what became of it; null when no worker answered in time")
    deliveries: list[DeliveryPublic] = Field(
        default=[], description="every message sent or attempted, by touchpoint (step_id, occurrence), in the order "
                                "due; given by GET /enrollments/{id} (the answers to create and cancel leave it empty)")


# Teams and staff ------------------------------------------------------------------------------

Webhook = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000, pattern=r"^https?://[^\s/?#]+\S*$"),
                    Field(description="a pager or IM bridge that takes a JSON POST",
                          examples=["https://pager.hospital.example/hooks/carepath"])]
JobTitle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
                     Field(examples=["midwife"])]
NO_CHANNEL = "team '{}' needs an email or a webhook, or nobody is ever told"


class TeamCreate(BaseModel):
    id: Slug = Field(description="what pathways name in `notify:` and `team:`", examples=["midwives"])
    name: Name = Field(description="shown to staff", examples=["Community midwives"])
    email: Email | None = Field(default=None, description="the team's shared mailbox")
    webhook: Webhook | None = None

    @model_validator(mode="after")
    def _reachable(self) -> TeamCreate:
        if not self.email and not self.webhook:
            raise ValueError(NO_CHANNEL.format(self.id))
        return self


class TeamUpdate(BaseModel):
    """Only the fields given change; null removes a channel (one must remain)."""

    name: Name | None = None
    email: Email | None = None
    webhook: Webhook | None = None

    @model_validator(mode="after")
    def _name_stays(self) -> TeamUpdate:
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("a team's name can be changed, not removed")
        return self


class TeamPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    email: str | None
    webhook: str | None


class StaffCreate(BaseModel):
    name: Name = Field(examples=["Wang Fang"])
    email: Email
    job_title: JobTitle | None = None
    roles: list[AccessRole] = Field(min_length=1, description="what the account may do")
    teams: list[Slug] = Field(default=[], description="the teams whose worklists this person works",
                              examples=[["midwives"]])


class StaffPublic(BaseModel):
    id: str
    name: str
    email: str
    job_title: str | None
    roles: list[AccessRole]
    teams: list[str]
    active: bool
    locked_until: datetime | None
    last_sign_in_at: datetime | None
    created_at: datetime


class StaffCreated(StaffPublic):
    one_time_password: str = Field(description="shown this once; the staff member changes it at first sign-in")


# Worklist, escalations and call tasks -------------------------------------------------------------

def enrollment_path(enrollment_id: str) -> str:
    return f"/enrollments/{enrollment_id}"


class WorklistItem(BaseModel):
    """An open escalation or call task: ids, the pathway's own words and times, never a patient's answers."""

    kind: Literal["escalation", "call"]
    id: str = Field(description="the escalation's id, or the call task's id")
    priority: Priority
    due: datetime = Field(description="escalations: when opened; call tasks: when due")
    status: str = Field(description="escalations: open or acknowledged; call tasks: open")
    team: str | None = Field(description="the team it is with now")
    reason: str | None = Field(default=None, description="escalations: why, from the pathway's rule")
    script: str | None = Field(default=None, description="call tasks: what to ask, in the patient's language")
    enrollment_id: str
    step_id: str
    occurrence: int
    tier: int | None = Field(default=None, description="escalations: the ladder's rung reached so far")
    notification_failures: list[NotificationFailure] = Field(
        default=[], description="escalations: channels that could not tell a team, after their last retry")
    attempt: int | None = Field(default=None, description="call tasks: which attempt this is")
    link: str = Field(description="path of the enrollment", examples=["/enrollments/en_0123456789abcdef0123"])
    href: str = Field(description="path to act on the item", examples=["/escalations/en_0123456789abcdef0123-1"])


class AuditLine(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    action: str = Field(examples=["opened", "notified", "notify_failed", "acknowledged", "resolved", "reassigned",
                                  "reopened"])
    actor: str = Field(description="a staff member's id, or 'system'")
    team: str | None
    tier: int | None
    detail: str | None = Field(default=None, description="notify_failed: the channel and the kind of error",
                               examples=["email: SmtpUnavailable"])
    at: datetime


class EscalationDetail(BaseModel):
    id: str
    enrollment_id: str
    step_id: str
    occurrence: int
    trigger: str = Field(description="the rule (or safety net) that escalated")
    reason: str
    priority: Priority
    policy: str
    response_id: str | None
    status: EscalationStatus
    team: str | None = Field(description="the team it is with now")
    tier: int
    opened_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    outcome_note: str | None = Field(description="what the resolver wrote; kept here, never in workflow history")
    link: str = Field(description="path of the enrollment")
    notification_failures: list[NotificationFailure] = Field(
        description="channels that could not tell a team, after their last retry (the ladder moved on)")
    audit: list[AuditLine] = Field(description="who did what, when, oldest first")
    state: EscalationState | None = Field(description="the workflow's live account; null when no worker answered in time")


class ResolveBody(BaseModel):
    outcome: Reason = Field(description="what was done; stored with the escalation, never in workflow history",
                            examples=["Phoned the patient; GP appointment booked for tomorrow."])


class ReassignBody(BaseModel):
    to_team: Slug = Field(examples=["obstetrics-on-call"])


Measurement = Annotated[
    bool | int | float | Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")],
    Field(description="a number, true/false, or a short code; sentences belong in notes"),
]


class CallOutcomeBody(BaseModel):
    outcome: Literal["reached", "not_reached"]
    notes: Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)] | None = Field(
        default=None, description="free text; stays in the database, never reaches the pathway's rules")
    values: dict[ParameterName, Measurement] = Field(
        default_factory=dict, description="what was measured, by the names the call step's rules use",
        examples=[{"systolic": 150, "feeding_ok": True}])

    @model_validator(mode="after")
    def _values_need_the_patient(self) -> CallOutcomeBody:
        if self.values and self.outcome == "not_reached":
            raise ValueError("values can only be recorded when the patient was reached")
        return self


class CallTaskPublic(BaseModel):
    id: str = Field(description="not guessable: a task is reached from the worklist", examples=["ct_0123456789abcdef0123"])
    enrollment_id: str
    step_id: str
    occurrence: int
    attempt: int
    team: str
    script: str | None
    status: str = Field(description="open; done once an outcome is recorded; cancelled when the enrollment ended first")
    due_at: datetime
    outcome: Literal["reached", "not_reached"] | None
    notes: str | None
    values: dict[str, bool | int | float | str | None] | None
    recorded_by: str | None
    recorded_at: datetime | None
    link: str = Field(description="path of the enrollment")


class CallOutcomeRecorded(BaseModel):
    task: CallTaskPublic
    rules: RuleOutcome = Field(description="what the pathway's rules did with the outcome")


class AccessLogLine(BaseModel):
    """One use of patient data: a read, a change, or an attempt that was refused."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor_kind: str = Field(description="staff, api_key, form_link (whoever holds the patient's link), or anonymous")
    actor_id: str | None
    actor_roles: str
    action: str = Field(examples=["patient.read", "enrollment.cancel"])
    outcome: Literal["allowed", "denied"]
    patient_id: str | None
    enrollment_id: str | None
    target: str | None
    client_ip: str | None
    reason: str | None = Field(description="why, when the caller said (X-Access-Reason)")


EventValue = Annotated[
    bool | int | float | Annotated[str, StringConstraints(max_length=1000, pattern=r"^[^\x00]*$")] | None,
    Field(description="a number, true/false, a code, or a note (text never reaches the pathway's rules)"),
]


class EventCreate(BaseModel):
    type: Slug = Field(description="an event the enrollment's pathway declares under `events:`", examples=["lab-result"])
    values: dict[ParameterName, EventValue] = Field(
        default_factory=dict, description="the event's fields, by the names its declaration gives them",
        examples=[{"hb_g_dl": 9.1, "test": "hb"}])
    occurred_at: AwareDatetime = Field(description="when it happened (the sample was taken, the reading made); "
                                                   "stored, never sent to the pathway's workflow",
                                       examples=["2026-11-28T09:30:00+08:00"])


class EnrollmentEventPublic(BaseModel):
    id: str = Field(examples=["ev_0123456789abcdef01234567"])
    enrollment_id: str
    type: str
    values: dict[str, bool | int | float | str | None]
    occurred_at: datetime
    received_at: datetime
    recorded_by: str = Field(description="the staff member or API key that sent it")
    outcome: RuleOutcome = Field(description="what the pathway's on_event rules did")
