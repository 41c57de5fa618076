"""Report figures checked against a seeded data set whose numbers this test computes on its own.

The seed is a plain list of records (several pathways and versions, teams, enrollments in and out of
the period, late and failed messages, questionnaires in every state, escalations with and without
acknowledgement and resolution, satisfaction answers of every kind). The expected figures are worked
out below from that list in plain Python, with the definitions written out again here (CLINICAL.md
for satisfaction), never by calling the module's helpers; then the same seed goes into SQLite and
PostgreSQL (the `database` fixture is each) and services/reports.py must agree on both.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from services.principals import Principal, PrincipalKind, Role
from services.registry import PathwayRegistry
from services.reports import (
    NotYourTeam,
    ReportFilter,
    ReportPeriodInvalid,
    report,
    teams_for,
    version_use,
)
from store.db import (
    Enrollment,
    EnrollmentTeam,
    EscalationRecord,
    Patient,
    QuestionnaireRecord,
    ResponseRecord,
    TeamRecord,
    TouchpointRecord,
)

TEAMS = {"mood": ["midwives", "obstetrics"], "surgery": ["ward"]}
ACK_WITHIN = {("mood", "default"): timedelta(minutes=30), ("surgery", "default"): timedelta(hours=1),
              # Neither pathway defines 'crisis': the built-in route gives 15 minutes.
              ("mood", "crisis"): timedelta(minutes=15), ("surgery", "crisis"): timedelta(minutes=15)}
RESOLVE_WITHIN = {("mood", "default"): timedelta(hours=4)}

MOOD = """\
id: mood
version: {version}
title: Mood follow-up
anchor: discharge_date
timezone: Asia/Shanghai
locales: [en]
parameters:
  referral: {{value: 10, source: "Kroenke 2001"}}
escalation_policies:
  default:
    tiers:
      - {{notify: midwives, ack_within: 30m}}
      - {{notify: obstetrics}}
    resolve_within: 4h
steps:
  - kind: questionnaire
    id: phq9
    instrument: phq-9
    at: day {day} 10:00
    repeat: {{every: 7d, times: 3}}
    expire: 72h
    template: {{en: {{subject: "PHQ-9", body: "{{{{ link }}}}"}}}}
    on:
      - when: score >= referral
        escalate: {{reason: "PHQ-9 of 10 or more"}}
  - kind: questionnaire
    id: experience
    instrument: satisfaction
    at: day 30 10:00
    expire: 72h
    template: {{en: {{subject: "Your experience", body: "{{{{ link }}}}"}}}}
"""

SURGERY = """\
id: surgery
version: 1
title: Surgery follow-up
anchor: discharge_date
timezone: Asia/Shanghai
locales: [en]
parameters:
  fever: {value: 38.0, source: "CLINICAL.md"}
escalation_policies:
  default:
    tiers:
      - {notify: ward, ack_within: 1h}
      - {notify: ward, repeat: 30m}
steps:
  - kind: questionnaire
    id: check
    instrument: postop-check
    at: day 1 10:00
    repeat: {every: 2d, times: 3}
    expire: 24h
    template: {en: {subject: "Check", body: "{{ link }}"}}
    on:
      - when: temperature >= fever
        escalate: {reason: "Fever"}
  - kind: questionnaire
    id: experience
    instrument: satisfaction
    at: day 30 10:00
    expire: 72h
    template: {en: {subject: "Your experience", body: "{{ link }}"}}
"""

STEPS = {"mood": [("phq9", "phq-9")], "surgery": [("check", "postop-check")]}
EXPERIENCES = ["very_good", "good", "neither", "poor", "very_poor", "dont_know"]


@dataclass
class Seed:
    """One enrollment and everything recorded for it, as plain values."""

    id: str
    pathway: str
    version: int
    created: datetime
    anchor: datetime
    status: str
    ended: datetime | None
    touchpoints: list[dict] = field(default_factory=list)
    questionnaires: list[dict] = field(default_factory=list)
    escalations: list[dict] = field(default_factory=list)


def make_seed(base: datetime) -> list[Seed]:
    """About 120 enrollments over 100 days around the period [base, base + 30 days)."""
    rng = random.Random(20261128)
    seeds = []
    for number in range(120):
        pathway = rng.choice(["mood", "mood", "surgery"])
        created = base + timedelta(days=rng.uniform(-35, 60), seconds=rng.randrange(86400))
        status = rng.choice(["active", "active", "completed", "completed", "cancelled", "stopped"])
        ended = created + timedelta(days=rng.uniform(0.5, 40)) if status != "active" else None
        seed = Seed(f"en_seed{number:04d}", pathway, rng.choice([1, 2]) if pathway == "mood" else 1, created,
                    created + timedelta(hours=rng.uniform(-30, 50)), status, ended)
        for occurrence in range(1, rng.randint(2, 6)):
            due = seed.anchor + timedelta(days=occurrence, minutes=rng.randrange(600))
            status = rng.choice(["sent", "sent", "sent", "failed", "cancelled"])
            # 14 or 16 minutes: either side of the 15-minute line, never on it.
            delay = timedelta(minutes=rng.choice([0, 1, 14, 16, 45, 300]), seconds=rng.randrange(50))
            seed.touchpoints.append({"step": f"message-{occurrence}", "occurrence": occurrence,
                                     "channel": rng.choice(["email", "sms"]), "status": status, "due": due,
                                     "sent": due + delay if status == "sent" else None})
        for step_id, instrument in STEPS[pathway]:
            for occurrence in range(1, rng.randint(1, 4)):
                opens = seed.anchor + timedelta(days=7 * occurrence - rng.uniform(0, 8))
                status = rng.choice(["answered", "answered", "answered", "expired", "closed", "open"])
                seed.questionnaires.append(_questionnaire(rng, step_id, occurrence, instrument, status, opens))
        if rng.random() < 0.7:
            status = rng.choice(["answered", "answered", "answered", "answered", "expired"])
            seed.questionnaires.append(_questionnaire(rng, "experience", 1, "satisfaction", status,
                                                      seed.anchor + timedelta(days=30)))
        for _ in range(rng.choice([0, 0, 1, 2])):
            opened = seed.anchor + timedelta(days=rng.uniform(0, 20))
            acknowledged = (opened + timedelta(minutes=rng.choice([3, 12, 25, 40, 75, 200]) + rng.random())
                            if rng.random() < 0.85 else None)
            resolved = (acknowledged + timedelta(minutes=rng.choice([10, 60, 230, 250, 600]) + rng.random())
                        if acknowledged and rng.random() < 0.8 else None)
            seed.escalations.append({"team": rng.choice(TEAMS[pathway]), "tier": rng.choice([1, 1, 2]),
                                     "policy": rng.choice(["default", "default", "crisis"]), "opened": opened,
                                     "acknowledged": acknowledged, "resolved": resolved})
        seeds.append(seed)
    return seeds


def _questionnaire(rng: random.Random, step_id: str, occurrence: int, instrument: str, status: str,
                   opens: datetime) -> dict:
    questionnaire = {"step": step_id, "occurrence": occurrence, "instrument": instrument, "status": status,
                     "opens": opens, "responses": []}
    if status == "answered":
        submitted = opens + timedelta(hours=rng.uniform(1, 60))
        if instrument == "satisfaction":
            answers = {"recommend": rng.randint(0, 10), "overall_experience": rng.choice(EXPERIENCES)}
            for skipped in ("recommend", "overall_experience"):
                if rng.random() < 0.1:
                    del answers[skipped]
            score = None
        else:
            answers, score = {"total": 1}, float(rng.randint(0, 27))
        questionnaire["responses"].append({"answers": answers, "score": score, "status": "accepted",
                                           "submitted": submitted})
        if rng.random() < 0.2:  # a second try, refused: it must not count anywhere
            questionnaire["responses"].append({"answers": answers, "score": 27.0, "status": "refused",
                                               "submitted": submitted + timedelta(hours=1)})
    return questionnaire


async def store_seed(sessions, seeds: list[Seed]) -> None:
    async with sessions.begin() as session:
        session.add_all(TeamRecord(id=team, name=team) for teams in TEAMS.values() for team in teams)
        for seed in seeds:
            session.add(Patient(id=f"pt_{seed.id}", given_name="Seed", family_name=seed.id, locale="en",
                                timezone="UTC"))
        await session.flush()  # no relationships declared: the unit of work would not order the rows
        for seed in seeds:
            session.add(Enrollment(id=seed.id, patient_id=f"pt_{seed.id}", pathway_id=seed.pathway,
                                   pathway_version=seed.version, anchor=seed.anchor, timezone="UTC", status=seed.status,
                                   request_fingerprint="seed", created_at=seed.created, ended_at=seed.ended))
            session.add_all(EnrollmentTeam(enrollment_id=seed.id, team_id=team) for team in TEAMS[seed.pathway])
        await session.flush()
        for seed in seeds:
            for t in seed.touchpoints:
                session.add(TouchpointRecord(enrollment_id=seed.id, step_id=t["step"], occurrence=t["occurrence"],
                                             channel=t["channel"], status=t["status"], due_at=t["due"],
                                             sent_at=t["sent"]))
            for number, e in enumerate(seed.escalations):
                session.add(EscalationRecord(id=f"{seed.id}-{number}", enrollment_id=seed.id, step_id="phq9",
                                             occurrence=1, trigger="rule", reason="seeded", priority="high",
                                             policy=e["policy"], team=e["team"], tier=e["tier"],
                                             status="resolved" if e["resolved"] else "open", opened_at=e["opened"],
                                             acknowledged_at=e["acknowledged"], resolved_at=e["resolved"]))
            for q in seed.questionnaires:
                record = QuestionnaireRecord(enrollment_id=seed.id, step_id=q["step"], occurrence=q["occurrence"],
                                             instrument_id=q["instrument"], status=q["status"], opens_at=q["opens"],
                                             expires_at=q["opens"] + timedelta(days=3))
                session.add(record)
                await session.flush()
                session.add_all(ResponseRecord(questionnaire_id=record.id, instrument_id=q["instrument"],
                                               answers=r["answers"], score=r["score"], status=r["status"],
                                               source="form", submitted_at=r["submitted"])
                                for r in q["responses"])


# --- the expected figures, from the seed alone ---------------------------------------------------------

def within(moment: datetime | None, start: datetime, end: datetime) -> bool:
    return moment is not None and start <= moment < end


def involved(seed: Seed, teams: tuple[str, ...] | None) -> bool:
    if teams is None:
        return True
    return bool(set(TEAMS[seed.pathway]) & set(teams)) or any(e["team"] in teams for e in seed.escalations)


def chosen(seeds: list[Seed], pathway: str | None, teams: tuple[str, ...] | None) -> list[Seed]:
    return [s for s in seeds if (pathway is None or s.pathway == pathway) and involved(s, teams)]


def interpolated(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def expected_figures(seeds: list[Seed], start: datetime, end: datetime, now: datetime, pathway: str | None = None,
                     teams: tuple[str, ...] | None = None) -> dict:
    mine = chosen(seeds, pathway, teams)
    enrollments: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for s in mine:
        if within(s.created, start, end):
            enrollments[s.pathway][0] += 1
        for index, status in enumerate(["completed", "cancelled", "stopped"], start=1):
            if s.status == status and within(s.ended, start, end):
                enrollments[s.pathway][index] += 1
    touchpoints: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for s in mine:
        for t in s.touchpoints:
            if within(t["due"], start, end):
                row = touchpoints[(s.pathway, t["channel"])]
                row[0] += 1
                row[1] += t["status"] == "sent"
                row[2] += t["status"] == "failed"
                row[3] += t["status"] == "sent" and t["sent"] - t["due"] > timedelta(minutes=15)
    rates: dict[tuple, Counter] = defaultdict(Counter)
    for s in mine:
        for q in s.questionnaires:
            if within(q["opens"], start, end):
                rates[(s.pathway, q["step"], q["instrument"])][q["status"]] += 1
    times: dict[tuple, list[dict]] = defaultdict(list)
    for s in (s for s in seeds if pathway is None or s.pathway == pathway):
        for e in s.escalations:
            if within(e["opened"], start, end) and (teams is None or e["team"] in teams):
                times[(e["team"], e["tier"])].append({**e, "pathway": s.pathway})
    satisfaction: dict[str, list] = defaultdict(list)
    cohort: dict[tuple, list[float]] = defaultdict(list)
    for s in mine:
        for q in s.questionnaires:
            for r in q["responses"]:
                if r["status"] != "accepted":
                    continue
                if q["instrument"] == "satisfaction" and within(r["submitted"], start, end):
                    satisfaction[s.pathway].append(r["answers"])
                if r["score"] is not None and within(s.anchor, start, end):
                    day = math.floor((r["submitted"] - s.anchor).total_seconds() / 86400)
                    cohort[(q["instrument"], day)].append(r["score"])

    def minutes(durations: list[timedelta]) -> tuple:
        values = [d.total_seconds() / 60 for d in durations]
        return (interpolated(values, 0.5), interpolated(values, 0.9)) if values else (None, None)

    def response_times(team_tier: tuple, rows: list[dict]) -> dict:
        acknowledged = [e["acknowledged"] - e["opened"] for e in rows if e["acknowledged"]]
        resolved = [e["resolved"] - e["opened"] for e in rows if e["resolved"]]
        acknowledge_breaches = sum(1 for e in rows if ((e["acknowledged"] or now) - e["opened"]
                                                        > ACK_WITHIN[(e["pathway"], e["policy"])]))
        resolve_breaches = sum(1 for e in rows if (e["pathway"], e["policy"]) in RESOLVE_WITHIN and e["acknowledged"]
                               and (e["resolved"] or now) - e["acknowledged"] > RESOLVE_WITHIN[(e["pathway"], e["policy"])])
        return {"team": team_tier[0], "tier": team_tier[1], "escalations": len(rows), "acknowledged": len(acknowledged),
                "acknowledge": minutes(acknowledged), "resolved": len(resolved), "resolve": minutes(resolved),
                "acknowledge_breaches": acknowledge_breaches, "resolve_breaches": resolve_breaches}

    def satisfied(pathway_id: str, answers: list[dict]) -> dict:
        scores = [a["recommend"] for a in answers if "recommend" in a]
        promoters = sum(1 for score in scores if score >= 9)
        passives = sum(1 for score in scores if 7 <= score <= 8)
        detractors = sum(1 for score in scores if score <= 6)
        experiences = [a["overall_experience"] for a in answers if "overall_experience" in a]
        positive = sum(1 for answer in experiences if answer in ("very_good", "good"))
        return {"pathway_id": pathway_id, "recommend_answers": len(scores), "promoters": promoters,
                "passives": passives, "detractors": detractors,
                "recommend_score": (promoters - detractors) / len(scores) * 100 if scores else None,
                "experience_answers": len(experiences), "positive": positive,
                "neutral": experiences.count("neither"),
                "negative": sum(1 for answer in experiences if answer in ("poor", "very_poor")),
                "percent_positive": positive / len(experiences) * 100 if experiences else None}

    return {
        "enrollments": sorted((p, *counts) for p, counts in enrollments.items() if any(counts)),
        "touchpoints": sorted((*key, *counts) for key, counts in touchpoints.items()),
        "response_rates": sorted((*key, sum(c.values()), c["answered"], c["expired"], c["closed"], c["open"],
                                  c["answered"] / (c["answered"] + c["expired"]) * 100
                                  if c["answered"] + c["expired"] else None) for key, c in rates.items()),
        "response_times": [response_times(key, rows) for key, rows in sorted(times.items())],
        "satisfaction": [satisfied(p, answers) for p, answers in sorted(satisfaction.items())],
        "cohort": [(instrument, day, len(scores), sum(scores) / len(scores))
                   for (instrument, day), scores in sorted(cohort.items())],
    }


def close(actual, expected, places: float = 0.051) -> bool:
    if expected is None or actual is None:
        return actual is expected
    return actual == pytest.approx(expected, abs=places)


def assert_matches(actual, expected: dict) -> None:
    def plain(rows, columns):
        return [tuple(getattr(row, column) for column in columns) for row in rows]

    assert plain(actual.enrollments, ["pathway_id", "started", "completed", "cancelled", "stopped"]) == \
        expected["enrollments"]
    assert plain(actual.touchpoints, ["pathway_id", "channel", "due", "sent", "failed", "late"]) == \
        expected["touchpoints"]
    rates = plain(actual.response_rates, ["pathway_id", "step_id", "instrument_id", "opened", "answered", "expired",
                                          "closed", "still_open", "rate"])
    assert [row[:-1] for row in rates] == [row[:-1] for row in expected["response_rates"]]
    assert all(close(row[-1], want[-1]) for row, want in zip(rates, expected["response_rates"])), rates
    assert len(actual.response_times) == len(expected["response_times"])
    for row, want in zip(actual.response_times, expected["response_times"]):
        assert (row.team, row.tier, row.escalations, row.acknowledged, row.resolved, row.acknowledge_breaches,
                row.resolve_breaches) == (want["team"], want["tier"], want["escalations"], want["acknowledged"],
                                          want["resolved"], want["acknowledge_breaches"], want["resolve_breaches"])
        for got, wanted in [(row.acknowledge_p50, want["acknowledge"][0]), (row.acknowledge_p90, want["acknowledge"][1]),
                            (row.resolve_p50, want["resolve"][0]), (row.resolve_p90, want["resolve"][1])]:
            assert close(got, wanted), (row, want)
    assert len(actual.satisfaction) == len(expected["satisfaction"])
    for row, want in zip(actual.satisfaction, expected["satisfaction"]):
        for name, value in want.items():
            assert close(getattr(row, name), value) if isinstance(value, float) else getattr(row, name) == value, \
                (name, row, want)
    cohort = plain(actual.cohort, ["instrument_id", "day", "responses", "mean_score"])
    assert [row[:3] for row in cohort] == [row[:3] for row in expected["cohort"]]
    assert all(close(row[3], want[3], 0.006) for row, want in zip(cohort, expected["cohort"]))


@pytest.fixture
async def seeded(database, shipped):
    """The seed in a migrated database of each kind (SQLite and PostgreSQL: see tests/conftest.py)."""
    sessions = database
    now = datetime.now(UTC).replace(microsecond=0)
    base = (now - timedelta(days=70)).replace(minute=0, second=0)
    seeds = make_seed(base)
    await store_seed(sessions, seeds)
    registry = PathwayRegistry(sessions, shipped)
    for source in (MOOD.format(version=1, day=7), MOOD.format(version=2, day=5), SURGERY):
        await registry.deploy(source, "<test>")
    return sessions, registry, shipped, seeds, base, now


async def test_every_table_matches_the_figures_worked_out_from_the_seed(seeded):
    sessions, registry, instruments, seeds, base, now = seeded
    start, end = base, base + timedelta(days=30)
    expected = expected_figures(seeds, start, end, now)
    # The seed is varied enough to mean something: every table has rows, every kind of case is there.
    assert len(expected["enrollments"]) == 2 and all(len(expected[table]) >= 3 for table in
                                                     ("touchpoints", "response_rates", "response_times", "cohort"))
    assert sum(row["resolve_breaches"] for row in expected["response_times"]) > 0
    assert sum(row[5] for row in expected["touchpoints"]) > 0, "some messages were late"

    async with sessions() as session:
        actual = await report(session, registry, instruments, ReportFilter(start, end), now)

    assert_matches(actual, expected)


@pytest.mark.parametrize(("pathway", "teams"), [("mood", None), (None, ("ward",)), ("mood", ("obstetrics",))])
async def test_a_pathway_or_a_team_gets_only_its_own_figures(seeded, pathway, teams):
    sessions, registry, instruments, seeds, base, now = seeded
    start, end = base + timedelta(days=10), base + timedelta(days=45)
    expected = expected_figures(seeds, start, end, now, pathway, teams)
    assert expected["response_times"] and expected["satisfaction"]

    async with sessions() as session:
        actual = await report(session, registry, instruments, ReportFilter(start, end, pathway, teams), now)

    assert_matches(actual, expected)
    assert {row.pathway_id for row in actual.enrollments} <= ({pathway} if pathway else {"mood", "surgery"})


async def test_patients_on_each_version_are_the_active_ones(seeded):
    sessions, _, _, seeds, _, _ = seeded
    async with sessions() as session:
        used = await version_use(session)

    expected = Counter((s.pathway, s.version) for s in seeds if s.status == "active")
    assert {key: use.active_patients for key, use in used.items()} == {key: expected[key] for key in used}
    assert {key: use.enrollments for key, use in used.items()} == Counter((s.pathway, s.version) for s in seeds)


def test_a_period_must_run_forwards_with_a_time_zone():
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ReportPeriodInvalid, match="must come before its end"):
        ReportFilter(moment, moment)
    with pytest.raises(ReportPeriodInvalid, match="time zone"):
        ReportFilter(moment.replace(tzinfo=None), moment + timedelta(days=1))


def test_a_clinician_reads_only_their_teams_figures_and_managers_every_team():
    clinician = Principal(PrincipalKind.STAFF, "st_1", "Nurse", frozenset({Role.CLINICIAN}), frozenset({"ward", "a"}))
    manager = Principal(PrincipalKind.STAFF, "st_2", "Manager", frozenset({Role.CLINICAL_MANAGER}))
    assert teams_for(clinician, None) == ("a", "ward")
    assert teams_for(clinician, "ward") == ("ward",)
    with pytest.raises(NotYourTeam, match="not a member of team 'midwives'"):
        teams_for(clinician, "midwives")
    assert teams_for(manager, None) is None
    assert teams_for(manager, "midwives") == ("midwives",)
