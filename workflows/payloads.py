"""The inputs PathwayWorkflow gives its activities and escalation children, built from its run.

Pure functions of their arguments, so a replay builds exactly what the first run sent. They carry
ids and the pathway's own texts, never a patient's details (see contracts.py).
"""

from __future__ import annotations

from datetime import datetime

from language.messages import MessageTemplate
from language.model import (
    CRISIS_POLICY_NAME,
    AppointmentStep,
    CallStep,
    Escalate,
    EscalationPolicy,
    MessageStep,
    Pathway,
    QuestionnaireStep,
    Tier,
    crisis_policy,
)
from workflows.contracts import (
    AppointmentNotice,
    CallTask,
    EnrollmentRun,
    EscalationStart,
    FormLink,
    MessageDelivery,
    QuestionnaireOccurrence,
    TemplateName,
    TimelineEntry,
)

# A message that finally could not go is work for a person (a wrong address, a relay down for a day):
# the site's `operations` team gets it on its worklist. A pathway may route its own with a policy so named.
OPERATIONS_POLICY_NAME = "operations"
OPERATIONS_POLICY = EscalationPolicy(priority="high", tiers=[Tier(notify="operations")])


def undelivered(entry: TimelineEntry) -> Escalate:
    """The operations team's escalation for a message that finally could not go (one line, as reasons are)."""
    reason = " ".join(f"{entry.key} could not be delivered: {entry.detail}".split())
    return Escalate(reason=reason[:200], policy=OPERATIONS_POLICY_NAME)


def message_delivery(run: EnrollmentRun, pathway: Pathway, entry: TimelineEntry, *, purpose: str,
                     template: TemplateName, due: datetime, form: FormLink | None,
                     waits_for: list[str], appointment: AppointmentNotice | None = None) -> MessageDelivery:
    """The message of `entry`'s step in `pathway` (the version whose rules the touchpoint follows), its
    texts by reference.

    The run's title and `reach` are its current version's; where that is the version referenced
    (always, but for a touchpoint finishing under an older version after a migration), the activity
    reads them from it instead of every input carrying them."""
    step = pathway.step(entry.step_id)
    migrated = pathway.version != run.pathway.version
    return MessageDelivery(enrollment_id=run.enrollment_id, pathway_id=run.pathway.id, step_id=step.id,
                           occurrence=entry.occurrence, purpose=purpose, channel=step.channel, due=due, form=form,
                           appointment=appointment, waits_for=waits_for, pathway_version=pathway.version,
                           template=template, pathway_title=run.pathway.title if migrated else None,
                           reach=run.pathway.reach if migrated else None)


def templates_of(step: MessageStep | QuestionnaireStep | AppointmentStep, template: TemplateName) -> dict[str, MessageTemplate]:
    """A step's texts by name; a questionnaire without reminder texts reminds with its invitation's."""
    if template == "reminder_template":
        return step.reminder_template or step.template
    return step.template


def appointment_notice(run: EnrollmentRun, step: AppointmentStep, entry: TimelineEntry) -> AppointmentNotice:
    """The step's link with ids in its placeholders: the video service knows the visit, nobody learns the patient."""
    link = step.link.format_map({"enrollment": run.enrollment_id, "step": step.id, "occurrence": entry.occurrence})
    return AppointmentNotice(link=link, at=entry.due)


def form_link(step: QuestionnaireStep, entry: TimelineEntry) -> FormLink:
    return FormLink(instrument_id=step.instrument, expires=entry.closes)


def questionnaire_occurrence(run: EnrollmentRun, step: QuestionnaireStep, entry: TimelineEntry,
                             opens: datetime) -> QuestionnaireOccurrence:
    return QuestionnaireOccurrence(enrollment_id=run.enrollment_id, step_id=step.id, occurrence=entry.occurrence,
                                   instrument_id=step.instrument, opens=opens, expires=entry.closes)


def call_task(run: EnrollmentRun, step: CallStep, entry: TimelineEntry, due: datetime) -> CallTask:
    return CallTask(enrollment_id=run.enrollment_id, step_id=step.id, occurrence=entry.occurrence,
                    attempt=entry.attempts, team=step.team, due=due, scripts=step.script)


def escalation_start(run: EnrollmentRun, entry: TimelineEntry, trigger: str, escalate: Escalate,
                     escalation_id: str) -> EscalationStart:
    """The escalation with a snapshot of its policy: the pathway's own, or the built-in crisis or operations route."""
    pathway = run.pathway
    if escalate.policy == CRISIS_POLICY_NAME:
        policy = crisis_policy(pathway)
    elif escalate.policy == OPERATIONS_POLICY_NAME:
        policy = pathway.escalation_policies.get(OPERATIONS_POLICY_NAME, OPERATIONS_POLICY)
    else:
        policy = pathway.escalation_policies[escalate.policy]
    return EscalationStart(escalation_id=escalation_id, enrollment_id=run.enrollment_id, step_id=entry.step_id,
                           occurrence=entry.occurrence, trigger=trigger, reason=escalate.reason,
                           priority=escalate.priority or policy.priority, policy_name=escalate.policy, policy=policy,
                           response_id=entry.response.response_id if entry.response else None)
