"""When an open escalation's acknowledgement is due: its current tier's clock, from the pathway's policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.overdue import acknowledgement_due
from services.registry import PathwayRegistry
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import Enrollment, EscalationAudit, EscalationRecord, Patient, TeamRecord

SITE = load_site(PROJECT_ROOT / "pathways")
PATHWAY = """\
id: overdue-check
version: 1
title: Overdue check
anchor: start
locales: [en]
parameters:
  phq9_referral_score: {value: 10, source: "Kroenke, Spitzer & Williams 2001"}
escalation_policies:
  default:
    tiers:
      - {notify: midwives, ack_within: 1h}
      - {notify: obstetrics-on-call}
steps:
  - kind: questionnaire
    id: phq9
    instrument: phq-9
    at: day 1 10:00
    expire: 2d
    template: {en: {subject: "How are you?", body: "{{ link }}"}}
    on:
      - when: score >= phq9_referral_score
        escalate: {reason: "PHQ-9 10 or more"}
"""


async def test_due_an_hour_after_the_first_tier_was_told_and_never_for_the_last_or_a_hand_over(database):
    now = datetime.now(UTC).replace(microsecond=0)
    told = now - timedelta(minutes=90)
    async with database() as session:
        session.add_all([TeamRecord(id=team, name=team, email=f"{team}@example.test")
                         for team in ("midwives", "obstetrics-on-call", "crisis", "surgical-ward")])
        session.add(Patient(id="pt_1", given_name="Wei", family_name="Li", locale="en", timezone="UTC"))
        await session.flush()
        session.add(Enrollment(id="en_1", patient_id="pt_1", pathway_id="overdue-check", pathway_version=1,
                               anchor=now, timezone="UTC", request_fingerprint="x"))
        await session.flush()
        for escalation_id, status, team, tier in [("first-tier", "open", "midwives", 1),
                                                  ("last-tier", "open", "obstetrics-on-call", 2),
                                                  ("handed-over", "open", "surgical-ward", 2),
                                                  ("taken", "acknowledged", "midwives", 1)]:
            session.add(EscalationRecord(id=escalation_id, enrollment_id="en_1", step_id="phq9", occurrence=1,
                                         trigger="rule 1", reason="PHQ-9 10 or more", priority="high",
                                         policy="default", status=status, team=team, tier=tier, opened_at=told))
            await session.flush()
            session.add(EscalationAudit(escalation_id=escalation_id, action="notified", actor="system", team=team,
                                        tier=tier, at=told))
        await session.commit()
    registry = PathwayRegistry(database, SITE.instruments)
    await registry.deploy(PATHWAY, "overdue-check.yaml")

    async with database() as session:
        due = await acknowledgement_due(session, registry, ["first-tier", "last-tier", "handed-over", "taken"])

    assert due == {"first-tier": told + timedelta(hours=1)}
    assert due["first-tier"] < now, "overdue: the midwives had an hour"
