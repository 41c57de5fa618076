"""The relational store: tables, engine and sessions. SQLite by default, PostgreSQL in production.

Schema changes go through Alembic migrations (store/migrations); `store.schema.migrate()` applies them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy import true as sa_true
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import QueuePool
from sqlalchemy.types import TypeDecorator


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timestamps stored in UTC and always returned time-zone aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Base(DeclarativeBase):
    pass


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("pt"))
    # The hospital's own identifier (MRN): what its systems know the patient by.
    hospital_number: Mapped[str | None] = mapped_column(String(64), unique=True)
    given_name: Mapped[str] = mapped_column(String(200))
    family_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    # The patient's openid for the hospital's WeChat Official Account: where template messages go.
    wechat_openid: Mapped[str | None] = mapped_column(String(128))
    locale: Mapped[str] = mapped_column(String(16))
    timezone: Mapped[str] = mapped_column(String(64))
    # For birthday steps: an activity reads it and gives the workflow only the birthdays within the enrollment.
    birth_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Recorded by staff or the hospital system: every enrollment stopped for good, no new one, no message.
    deceased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PatientPreferences(Base):
    """How a patient wants to be reached (services/preferences.py); no row: the pathways' order, the site's budget."""

    __tablename__ = "patient_preferences"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    # Channel names, most wanted first: tried before the pathway's own order.
    channels: Mapped[list] = mapped_column(JSON, default=list)
    # "22:00-07:00" in the patient's time zone (language/reach.py), or none.
    quiet_hours: Mapped[str | None] = mapped_column(String(11))
    # Messages a local day across all their enrollments; None: the site's CAREPATH_DAILY_CONTACT_BUDGET.
    daily_budget: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PathwayVersion(Base):
    """Every deployed version, kept forever: running enrollments may still follow an old one."""

    __tablename__ = "pathway_versions"

    pathway_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Enrollment(Base):
    __tablename__ = "enrollments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("en"))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    pathway_id: Mapped[str] = mapped_column(String(64))
    pathway_version: Mapped[int] = mapped_column(Integer)
    anchor: Mapped[datetime] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # While staff hold it (a readmission); `status` stays active, for it has not ended (see workflows/lifecycle.py).
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TouchpointRecord(Base):
    """One message's delivery; the unique key is what makes a retried delivery send once."""

    __tablename__ = "touchpoints"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_id", "occurrence", "purpose", name="uq_touchpoint_key"),
        Index("ix_touchpoints_provider_message", "channel", "provider_message_id"),
        # A patient's daily budget counts their messages due on one day (activities/reach.py): a range of this.
        Index("ix_touchpoints_patient_due", "patient_id", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enrollment_id: Mapped[str] = mapped_column(ForeignKey("enrollments.id"), index=True)
    # The enrollment's patient, copied when the message is claimed so that counting a patient's messages joins
    # nothing. Every claim writes it and the migration that added it filled it in; rows written by hand
    # (test data) may leave it empty, and no budget counts them.
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id", name="fk_touchpoints_patient"))
    step_id: Mapped[str] = mapped_column(String(64))
    occurrence: Mapped[int] = mapped_column(Integer)
    # scheduled, invitation, reminder-1, ...: one occurrence of a questionnaire sends several messages.
    purpose: Mapped[str] = mapped_column(String(32), default="scheduled", server_default="scheduled")
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The delivery attempt that holds the message while it is `sending`, and until when: another attempt
    # may take it over only after that (see activities/delivery.py), and only the holder records the outcome.
    claim: Mapped[str | None] = mapped_column(String(200))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[str | None] = mapped_column(String(200))
    # The gateway's own id for the message (SMS biz id, WeChat msgid): what its delivery receipt names.
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    # What the receipt said, apart from `status` (which only says whether we handed it over):
    # delivered or undelivered, the provider's reason, and when the receipt came.
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    delivery_reason: Mapped[str | None] = mapped_column(Text)
    delivery_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


def create_engine(url: str, *, pool_size: int | None = None, pool_timeout: float | None = None) -> AsyncEngine:
    """`pool_size`, `pool_timeout` (seconds to wait for a connection, then sqlalchemy.exc.TimeoutError):
    for a pool that queues connections, PostgreSQL's and a SQLite file's; in-memory SQLite has one
    connection (StaticPool) and takes neither. None keeps SQLAlchemy's default."""
    options = {name: value for name, value in (("pool_size", pool_size), ("pool_timeout", pool_timeout))
               if value is not None}
    parsed = make_url(url)
    if not issubclass(parsed.get_dialect().get_pool_class(parsed), QueuePool):
        options = {}
    engine = create_async_engine(url, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # The API and the worker are separate processes writing one file: WAL lets readers proceed
    # during a write, and the busy timeout makes a writer wait its turn instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class QuestionnaireRecord(Base):
    """One occurrence of a questionnaire step: open from `opens` until answered, `expires`, or the
    enrollment ends (closed, with the enrollment's reason)."""

    __tablename__ = "questionnaires"
    __table_args__ = (UniqueConstraint("enrollment_id", "step_id", "occurrence", name="uq_questionnaire_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enrollment_id: Mapped[str] = mapped_column(ForeignKey("enrollments.id"), index=True)
    step_id: Mapped[str] = mapped_column(String(64))
    occurrence: Mapped[int] = mapped_column(Integer)
    instrument_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_reason: Mapped[str | None] = mapped_column(Text)


class ResponseRecord(Base):
    """A submitted questionnaire: the answers (PHI, free text included) live here and only here."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("rs"))
    questionnaire_id: Mapped[int] = mapped_column(ForeignKey("questionnaires.id"), index=True)
    instrument_id: Mapped[str] = mapped_column(String(64))
    answers: Mapped[dict] = mapped_column(JSON)
    score: Mapped[float | None] = mapped_column(Float)
    band: Mapped[str | None] = mapped_column(String(64))
    flags: Mapped[list] = mapped_column(JSON, default=list)
    # received → accepted (the workflow took it) or refused (expired or answered meanwhile); kept either way.
    status: Mapped[str] = mapped_column(String(16), default="received")
    source: Mapped[str] = mapped_column(String(16))
    entered_by: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[dict | None] = mapped_column(JSON)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EscalationRecord(Base):
    """An escalation as staff see it on the worklist; the EscalationWorkflow keeps it current."""

    __tablename__ = "escalations"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    enrollment_id: Mapped[str] = mapped_column(ForeignKey("enrollments.id"), index=True)
    step_id: Mapped[str] = mapped_column(String(64))
    occurrence: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(16), index=True)
    policy: Mapped[str] = mapped_column(String(64), server_default="default")
    response_id: Mapped[str | None] = mapped_column(ForeignKey("responses.id"))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    team: Mapped[str | None] = mapped_column(String(64), index=True)
    tier: Mapped[int] = mapped_column(Integer, server_default="0")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_by: Mapped[str | None] = mapped_column(String(32))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(32))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome_note: Mapped[str | None] = mapped_column(Text)


class EscalationAudit(Base):
    """Who did what to an escalation, and when: never updated, only added to."""

    __tablename__ = "escalation_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    escalation_id: Mapped[str] = mapped_column(ForeignKey("escalations.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(64))
    tier: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    __table_args__ = (UniqueConstraint("escalation_id", "action", "actor", "at", name="uq_escalation_audit_once"),)


class TeamRecord(Base):
    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    webhook: Mapped[str | None] = mapped_column(String(2000))


class StaffMember(Base):
    """A staff account: who may sign in, with which roles (services/principals.py)."""

    __tablename__ = "staff"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("st"))
    name: Mapped[str] = mapped_column(String(200))
    # Lower-cased: people sign in with it, in whatever case they type.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    job_title: Mapped[str | None] = mapped_column(String(64))
    # The console's language for this member (services.accounts.STAFF_LOCALES); a hospital in China by default.
    locale: Mapped[str] = mapped_column(String(16), default="zh-CN", server_default="zh-CN")
    roles: Mapped[list] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    # An argon2 hash; None for an account that signs in only through the hospital's single sign-on.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The identity provider's `sub`, remembered at the first single sign-on.
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StaffTeam(Base):
    """Membership: a clinician works the worklists of each of their teams."""

    __tablename__ = "staff_teams"

    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"), primary_key=True, index=True)


class ApiKey(Base):
    """A hospital system's key. Keys are 256 random bits, so a fast hash (SHA-256) is the right one:
    there is nothing to brute-force, and every request checks one."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("key"))
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    roles: Mapped[list] = mapped_column(JSON, default=list)
    teams: Mapped[list] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AccessAudit(Base):
    """Every read of patient data, every change and every refused attempt. Only ever added to: no code
    updates or deletes a row, and database triggers refuse it (see the migration)."""

    __tablename__ = "access_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(32), index=True)
    actor_roles: Mapped[str] = mapped_column(String(200))
    # A refused request is audited as its method and route: "POST /enrollments/{enrollment_id}/questionnaires/..."
    action: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[str | None] = mapped_column(String(32), index=True)
    enrollment_id: Mapped[str | None] = mapped_column(String(32), index=True)
    target: Mapped[str | None] = mapped_column(String(200))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)


class EnrollmentTeam(Base):
    """The teams an enrollment's pathway names (escalation tiers, call steps): they may see it."""

    __tablename__ = "enrollment_teams"

    enrollment_id: Mapped[str] = mapped_column(ForeignKey("enrollments.id"), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class CallTaskRecord(Base):
    """One attempt at a phone follow-up, on a team's worklist until staff record the outcome (done)
    or the enrollment ends first (cancelled, with the enrollment's reason)."""

    __tablename__ = "call_tasks"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_id", "occurrence", "attempt", name="uq_call_task_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # What URLs show: not a counter anyone could walk.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: new_id("ct"))
    enrollment_id: Mapped[str] = mapped_column(ForeignKey("enrollments.id"), index=True)
    step_id: Mapped[str] = mapped_column(String(64))
    occurrence: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    team: Mapped[str] = mapped_column(String(64), index=True)
    script: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))
    notes: Mapped[str | None] = mapped_column(Text)
    values: Mapped[dict | None] = mapped_column(JSON)
    recorded_by: Mapped[str | None] = mapped_column(String(32))
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_reason: Mapped[str | None] = mapped_column(Text)


class ConsentRecord(Base):
    """A patient's consent to be contacted on one channel, granted or withdrawn: who recorded it, when
    and how. Only ever added to (triggers refuse UPDATE and DELETE): the newest row per channel holds."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_patient_channel", "patient_id", "channel", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    channel: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(16))
    # verbal, written, web, import; `link` (the email's unsubscribe link), `sms-reply` (a STOP reply).
    method: Mapped[str] = mapped_column(String(16))
    # Who recorded it: staff or api_key and its id, or the patient themself (no id).
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
class EnrollmentEventRecord(Base):
    """An event sent into an enrollment (a lab result): every value and note it carried, when it happened,
    who sent it and what the pathway's rules did. Its workflow was given only the values rules compare."""

    __tablename__ = "enrollment_events"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "idempotency_key", name="uq_enrollment_event_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The workflow update's id too: a retry of the same request is the same update.
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    enrollment_id: Mapped[str] = mapped_column(ForeignKey("enrollments.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(64))
    values: Mapped[dict] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[dict] = mapped_column(JSON)
