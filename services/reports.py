"""Figures for the people who run a service: per pathway, team and period.

Every figure is a count, a rate or a time over many enrollments: no name, contact, date of birth or
answer of any one patient leaves this module, so reading a report is not a read of patient data and
is not written to the access log (the stage summary, services/stage_summary.py, is, and is audited).

The counting is done by the database (SQLAlchemy, the same on SQLite and PostgreSQL); only the
percentiles of the response times are taken in Python, from the durations the database returns,
because SQLite has no percentile function. Periods are half-open, [start, end), in UTC.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    and_,
    case,
    cast,
    distinct,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from language.instruments.model import Instrument, ScaleItem, SingleChoiceItem
from language.model import CRISIS_POLICY_NAME, EscalationPolicy, crisis_policy
from services.principals import Principal, Role
from services.registry import PathwayRegistry, UnknownPathway
from services.scope import involved_enrollments
from store.db import (
    Enrollment,
    EscalationRecord,
    QuestionnaireRecord,
    ResponseRecord,
    TouchpointRecord,
)

# A message sent this long after it was due counts as late: a worker that was down, a database that did
# not answer, a channel that kept failing. Held by the send window is not late: due_at is after the window.
LATE_AFTER = timedelta(minutes=15)
# Who sees every team's figures; a clinician sees their own teams' only.
OVERSEERS = frozenset({Role.CLINICAL_MANAGER, Role.ADMIN, Role.AUDITOR})
# The satisfaction instrument (pathways/instruments/satisfaction.yaml) and the categories its items
# define: the formulas below name them, the thresholds stay in the instrument.
SATISFACTION = "satisfaction"
RECOMMEND, EXPERIENCE = "recommend", "overall_experience"
PROMOTER, PASSIVE, DETRACTOR = "promoter", "passive", "detractor"
POSITIVE, NEUTRAL, NEGATIVE = "positive", "neutral", "negative"


class NotYourTeam(PermissionError):
    """A clinician asked for the figures of a team they are not a member of."""


class ReportPeriodInvalid(ValueError):
    """The period asked for is empty, reversed or without a time zone."""


@dataclass(frozen=True)
class ReportFilter:
    """Which figures: [start, end) in UTC, one pathway or all, these teams or every team (None)."""

    start: datetime
    end: datetime
    pathway_id: str | None = None
    teams: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ReportPeriodInvalid("give the period's start and end with a time zone")
        if self.start >= self.end:
            raise ReportPeriodInvalid(f"the period's start ({self.start.isoformat()}) must come before its end "
                                      f"({self.end.isoformat()})")


def teams_for(principal: Principal, asked: str | None) -> tuple[str, ...] | None:
    """The teams whose figures `principal` may read: the one asked for, or all (None) for managers,
    admins and auditors; a clinician their own teams only, and NotYourTeam for another's."""
    if principal.has_any(OVERSEERS):
        return None if asked is None else (asked,)
    if asked is None:
        return tuple(sorted(principal.teams))
    if asked not in principal.teams:
        raise NotYourTeam(f"you are not a member of team '{asked}': ask a clinical manager for its figures")
    return (asked,)


# --- the tables ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EnrollmentFigures:
    pathway_id: str
    started: int
    completed: int
    cancelled: int
    stopped: int


@dataclass(frozen=True)
class TouchpointFigures:
    pathway_id: str
    channel: str
    due: int
    sent: int
    failed: int
    late: int


@dataclass(frozen=True)
class ResponseRate:
    """Answered of those that could have been: the expired ones count against, the ones still open and
    those closed because the enrollment ended do not."""

    pathway_id: str
    step_id: str
    instrument_id: str
    opened: int
    answered: int
    expired: int
    closed: int
    still_open: int
    rate: float | None


@dataclass(frozen=True)
class ResponseTimes:
    """Per team and tier where escalations were acknowledged (or are waiting); times in minutes.
    A breach: acknowledged later than the policy's first tier allows (`ack_within`), or resolved later
    after the acknowledgement than `resolve_within`; those still waiting past it count too."""

    team: str
    tier: int
    escalations: int
    acknowledged: int
    acknowledge_p50: float | None
    acknowledge_p90: float | None
    resolved: int
    resolve_p50: float | None
    resolve_p90: float | None
    acknowledge_breaches: int
    resolve_breaches: int


@dataclass(frozen=True)
class Satisfaction:
    """Likelihood to recommend: % promoters (9-10) − % detractors (0-6), −100…100; and, in the style of
    the NHS Friends and Family Test, % positive of every overall-experience answer, "don't know" included."""

    pathway_id: str
    recommend_answers: int
    promoters: int
    passives: int
    detractors: int
    recommend_score: float | None
    experience_answers: int
    positive: int
    neutral: int
    negative: int
    percent_positive: float | None


@dataclass(frozen=True)
class CohortPoint:
    """The scores of enrollments anchored in the period, by whole days since their anchor."""

    instrument_id: str
    day: int
    responses: int
    mean_score: float


@dataclass(frozen=True)
class Report:
    filter: ReportFilter
    enrollments: list[EnrollmentFigures]
    touchpoints: list[TouchpointFigures]
    response_rates: list[ResponseRate]
    response_times: list[ResponseTimes]
    satisfaction: list[Satisfaction]
    cohort: list[CohortPoint]


# The report's tables, in the order pages show them.
TABLES = tuple(field.name for field in fields(Report) if field.name != "filter")


async def report(session: AsyncSession, registry: PathwayRegistry, instruments: dict[str, Instrument],
                 scope: ReportFilter, now: datetime) -> Report:
    """Every table for one filter; `now` decides which escalations are still waiting past their limit."""
    return Report(scope, await enrollment_figures(session, scope), await touchpoint_figures(session, scope),
                  await response_rates(session, scope), await response_times(session, registry, scope, now),
                  await satisfaction(session, instruments[SATISFACTION], scope), await cohort(session, scope))


# --- durations in SQL --------------------------------------------------------------------------------

class elapsed_days(FunctionElement):
    """Days (fractional) from the second timestamp to the first, in SQL on both databases we run on."""

    type = Float()
    inherit_cache = True


@compiles(elapsed_days, "sqlite")
def _elapsed_days_sqlite(element, compiler, **kw) -> str:
    later, earlier = (compiler.process(argument, **kw) for argument in element.clauses)
    return f"(julianday({later}) - julianday({earlier}))"


@compiles(elapsed_days, "postgresql")
def _elapsed_days_postgresql(element, compiler, **kw) -> str:
    later, earlier = (compiler.process(argument, **kw) for argument in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 86400.0)"


def _in(column: ColumnElement, scope: ReportFilter) -> ColumnElement[bool]:
    return and_(column >= scope.start, column < scope.end)


def _enrollments(scope: ReportFilter) -> list[ColumnElement[bool]]:
    """Conditions on Enrollment for the filter's pathway and teams (the enrollments they are involved in)."""
    conditions = []
    if scope.pathway_id is not None:
        conditions.append(Enrollment.pathway_id == scope.pathway_id)
    if scope.teams is not None:
        conditions.append(Enrollment.id.in_(select(involved_enrollments(scope.teams).subquery().c[0])))
    return conditions


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _share(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


# --- the computations ------------------------------------------------------------------------------

async def enrollment_figures(session: AsyncSession, scope: ReportFilter) -> list[EnrollmentFigures]:
    """Started in the period (created), and ended in it, by how they ended."""
    ended_in = _in(Enrollment.ended_at, scope)
    rows = await session.execute(
        select(Enrollment.pathway_id, _count(_in(Enrollment.created_at, scope)),
               *(_count(and_(ended_in, Enrollment.status == status)) for status in ("completed", "cancelled", "stopped")))
        .where(*_enrollments(scope), (Enrollment.created_at < scope.end))
        .group_by(Enrollment.pathway_id).order_by(Enrollment.pathway_id))
    return [EnrollmentFigures(*row) for row in rows if any(row[1:])]


async def touchpoint_figures(session: AsyncSession, scope: ReportFilter) -> list[TouchpointFigures]:
    """Messages due in the period, by pathway and channel: sent, failed, and sent late."""
    late = and_(TouchpointRecord.status == "sent",
                elapsed_days(TouchpointRecord.sent_at, TouchpointRecord.due_at) > LATE_AFTER / timedelta(days=1))
    rows = await session.execute(
        select(Enrollment.pathway_id, TouchpointRecord.channel, func.count(),
               _count(TouchpointRecord.status == "sent"), _count(TouchpointRecord.status == "failed"), _count(late))
        .join(Enrollment, Enrollment.id == TouchpointRecord.enrollment_id)
        .where(_in(TouchpointRecord.due_at, scope), *_enrollments(scope))
        .group_by(Enrollment.pathway_id, TouchpointRecord.channel)
        .order_by(Enrollment.pathway_id, TouchpointRecord.channel))
    return [TouchpointFigures(*row) for row in rows]


async def response_rates(session: AsyncSession, scope: ReportFilter) -> list[ResponseRate]:
    """Questionnaire occurrences opened in the period, by pathway and step."""
    status = QuestionnaireRecord.status
    rows = await session.execute(
        select(Enrollment.pathway_id, QuestionnaireRecord.step_id, QuestionnaireRecord.instrument_id, func.count(),
               *(_count(status == name) for name in ("answered", "expired", "closed", "open")))
        .join(Enrollment, Enrollment.id == QuestionnaireRecord.enrollment_id)
        .where(_in(QuestionnaireRecord.opens_at, scope), *_enrollments(scope))
        .group_by(Enrollment.pathway_id, QuestionnaireRecord.step_id, QuestionnaireRecord.instrument_id)
        .order_by(Enrollment.pathway_id, QuestionnaireRecord.step_id))
    return [ResponseRate(pathway_id, step_id, instrument_id, opened, answered, expired, closed, still_open,
                         _share(answered, answered + expired))
            for pathway_id, step_id, instrument_id, opened, answered, expired, closed, still_open in rows]


async def response_times(session: AsyncSession, registry: PathwayRegistry, scope: ReportFilter,
                         now: datetime) -> list[ResponseTimes]:
    """Escalations opened in the period, by the team and tier that hold them: time to acknowledge and to
    resolve (from opening), and breaches of the pathway's escalation policy."""
    query = (select(EscalationRecord.team, EscalationRecord.tier, EscalationRecord.policy, Enrollment.pathway_id,
                    Enrollment.pathway_version, EscalationRecord.opened_at, EscalationRecord.acknowledged_at,
                    EscalationRecord.resolved_at)
             .join(Enrollment, Enrollment.id == EscalationRecord.enrollment_id)
             .where(_in(EscalationRecord.opened_at, scope), EscalationRecord.team.is_not(None)))
    if scope.pathway_id is not None:
        query = query.where(Enrollment.pathway_id == scope.pathway_id)
    if scope.teams is not None:
        query = query.where(EscalationRecord.team.in_(scope.teams))
    groups: dict[tuple[str, int], list] = defaultdict(list)
    for row in await session.execute(query):
        groups[(row.team, row.tier)].append(row)
    policies: dict[tuple[str, int, str], EscalationPolicy | None] = {}
    figures = []
    for (team, tier), rows in sorted(groups.items()):
        to_acknowledge, to_resolve, acknowledge_breaches, resolve_breaches = [], [], 0, 0
        for row in rows:
            key = (row.pathway_id, row.pathway_version, row.policy)
            if key not in policies:
                policies[key] = await _policy(registry, *key)
            policy = policies[key]
            acknowledge_within = policy.tiers[0].ack_within if policy else None
            resolve_within = policy.resolve_within if policy else None
            if row.acknowledged_at is not None:
                to_acknowledge.append(row.acknowledged_at - row.opened_at)
            if row.resolved_at is not None:
                to_resolve.append(row.resolved_at - row.opened_at)
            if acknowledge_within is not None and (row.acknowledged_at or now) - row.opened_at > acknowledge_within:
                acknowledge_breaches += 1
            if (resolve_within is not None and row.acknowledged_at is not None
                    and (row.resolved_at or now) - row.acknowledged_at > resolve_within):
                resolve_breaches += 1
        figures.append(ResponseTimes(team, tier, len(rows), len(to_acknowledge), *_p50_p90(to_acknowledge),
                                     len(to_resolve), *_p50_p90(to_resolve), acknowledge_breaches, resolve_breaches))
    return figures


async def _policy(registry: PathwayRegistry, pathway_id: str, version: int, name: str) -> EscalationPolicy | None:
    try:
        pathway = (await registry.get(pathway_id, version)).pathway
    except UnknownPathway:
        return None
    return crisis_policy(pathway) if name == CRISIS_POLICY_NAME else pathway.escalation_policies.get(name)


def _p50_p90(durations: Sequence[timedelta]) -> tuple[float | None, float | None]:
    """Median and 90th percentile in minutes, interpolated between ranks (as PostgreSQL's percentile_cont)."""
    minutes = [duration / timedelta(minutes=1) for duration in durations]
    if not minutes:
        return None, None
    if len(minutes) == 1:
        return round(minutes[0], 1), round(minutes[0], 1)
    deciles = statistics.quantiles(minutes, n=10, method="inclusive")
    return round(deciles[4], 1), round(deciles[8], 1)


async def satisfaction(session: AsyncSession, instrument: Instrument, scope: ReportFilter) -> list[Satisfaction]:
    """Satisfaction answers submitted in the period, by pathway, grouped by the categories the instrument's
    items define (so a site that moves a threshold in the instrument moves it here too)."""
    recommend, experience = instrument.item(RECOMMEND), instrument.item(EXPERIENCE)
    assert isinstance(recommend, ScaleItem) and isinstance(experience, SingleChoiceItem)
    score = ResponseRecord.answers[RECOMMEND].as_integer()
    choice = ResponseRecord.answers[EXPERIENCE].as_string()
    score_category = case(*((score.between(c.min, c.max), c.id) for c in recommend.categories), else_=None)
    choice_category = case({option.id: option.category for option in experience.options if option.category},
                           value=choice, else_=None)
    rows = await session.execute(
        select(Enrollment.pathway_id, func.count(score),
               *(_count(score_category == name) for name in (PROMOTER, PASSIVE, DETRACTOR)),
               func.count(choice), *(_count(choice_category == name) for name in (POSITIVE, NEUTRAL, NEGATIVE)))
        .join(QuestionnaireRecord, QuestionnaireRecord.id == ResponseRecord.questionnaire_id)
        .join(Enrollment, Enrollment.id == QuestionnaireRecord.enrollment_id)
        .where(ResponseRecord.instrument_id == instrument.id, ResponseRecord.status == "accepted",
               _in(ResponseRecord.submitted_at, scope), *_enrollments(scope))
        .group_by(Enrollment.pathway_id).order_by(Enrollment.pathway_id))
    return [Satisfaction(pathway_id, answers, promoters, passives, detractors,
                         round(100 * (promoters - detractors) / answers, 1) if answers else None,
                         experience_answers, positive, neutral, negative, _share(positive, experience_answers))
            for pathway_id, answers, promoters, passives, detractors, experience_answers, positive, neutral, negative
            in rows]


async def cohort(session: AsyncSession, scope: ReportFilter) -> list[CohortPoint]:
    """Mean scored totals of the enrollments anchored in the period, by instrument and days since the anchor
    (whole days, rounded down: an answer the day before the anchor is day -1)."""
    day = cast(func.floor(elapsed_days(ResponseRecord.submitted_at, Enrollment.anchor)), Integer).label("day")
    rows = await session.execute(
        select(ResponseRecord.instrument_id, day, func.count(), func.avg(ResponseRecord.score))
        .join(QuestionnaireRecord, QuestionnaireRecord.id == ResponseRecord.questionnaire_id)
        .join(Enrollment, Enrollment.id == QuestionnaireRecord.enrollment_id)
        .where(ResponseRecord.status == "accepted", ResponseRecord.score.is_not(None),
               _in(Enrollment.anchor, scope), *_enrollments(scope))
        .group_by(ResponseRecord.instrument_id, day).order_by(ResponseRecord.instrument_id, day))
    return [CohortPoint(instrument_id, day, responses, round(float(mean), 2)) for instrument_id, day, responses, mean
            in rows]


@dataclass(frozen=True)
class VersionUse:
    pathway_id: str
    version: int
    active_patients: int
    enrollments: int


async def version_use(session: AsyncSession) -> dict[tuple[str, int], VersionUse]:
    """How many patients each deployed version is running for now (active enrollments), and has ever had."""
    rows = await session.execute(
        select(Enrollment.pathway_id, Enrollment.pathway_version,
               func.count(distinct(case((Enrollment.status == "active", Enrollment.patient_id)))), func.count())
        .group_by(Enrollment.pathway_id, Enrollment.pathway_version))
    return {(pathway_id, version): VersionUse(pathway_id, version, active, total)
            for pathway_id, version, active, total in rows}
