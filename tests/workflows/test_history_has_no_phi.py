"""What Temporal stores for an enrollment holds no patient data in plaintext: a postnatal enrollment
with a PHQ-9 answer that escalates and a cancellation, through the real worker and services, then
every byte of its histories searched for the patient's details, the anchor date and the answers."""

from __future__ import annotations

import re
from datetime import timedelta

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from services.responses import submit_response
from services.settings import PROJECT_ROOT
from services.site import load_site
from workflows.contracts import CancelRequest
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")
POSTNATAL = SITE.load_pathway(PROJECT_ROOT / "pathways" / "postnatal-42d.yaml")
GIVEN, FAMILY = "Marisolde", "Quennevillian"
EMAIL, PHONE = "marisolde.q.7731@example.test", "+44 7700 900461"
CANCEL_MARKER = "ZX81Q-readmitted-to-ward-7"
# Score 12 (mood escalation), no self-harm; the difficulty item is asked but no rule reads it.
PHQ9 = {"q1": "nearly_every_day", "q2": "nearly_every_day", "q3": "nearly_every_day", "q4": "nearly_every_day",
        "q5": "not_at_all", "q6": "not_at_all", "q7": "not_at_all", "q8": "not_at_all", "q9": "not_at_all",
        "difficulty": "extremely_difficult"}
ANY_ISO_DATE = re.compile(rb"20\d\d-[01]\d-[0-3]\d")


def payloads_in(message: Message) -> list[Payload]:
    """Every Payload anywhere in a history event: inputs, results, headers, failures' encoded attributes."""
    if isinstance(message, Payload):
        return [message]
    found = []
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            values = [value]
        elif field.message_type.GetOptions().map_entry:
            values = list(value.values())
        else:  # a repeated field
            values = list(value)
        for item in values:
            if isinstance(item, Message):
                found += payloads_in(item)
    return found


async def histories(client: Client, workflow_id: str) -> tuple[bytes, bytes]:
    """The history as Temporal stores it, and the same payloads decoded by the client's codec."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)
    payloads = [payload for event in history.events for payload in payloads_in(event)]
    decoded = await client.data_converter.payload_codec.decode(payloads)
    return raw, b"".join(payload.SerializeToString() for payload in decoded)


async def test_histories_carry_no_patient_data_in_plaintext(time_skipping, stack):
    patient = await stack.add_patient(given_name=GIVEN, family_name=FAMILY, email=EMAIL, phone=PHONE,
                                      locale="en", timezone="Asia/Shanghai")
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)
    enrolled = await stack.enroll(patient, POSTNATAL, anchor)
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    opens = next(e.due for e in timeline.entries if e.step_id == "phq9")
    await time_skipping.sleep(opens + timedelta(minutes=30) - await time_skipping.get_current_time())

    accepted = await submit_response(stack.sessions, stack.client, stack.instruments,
                                     enrollment_id=enrolled.enrollment.id, step_id="phq9", occurrence=1,
                                     answers=PHQ9, source="patient")
    assert accepted.outcome.escalations, "the answer should escalate, so that an escalation's history is searched"
    await enrolled.workflow.execute_update(PathwayWorkflow.cancel, CancelRequest(reason=f"cancelled: {CANCEL_MARKER}"))
    await enrolled.workflow.result()

    pathway_history = await enrolled.workflow.fetch_history()
    escalations = [event.start_child_workflow_execution_initiated_event_attributes.workflow_id
                   for event in pathway_history.events
                   if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED]
    assert escalations
    raw, decoded = b"", b""
    for workflow_id in [enrolled.workflow.id, *escalations]:
        stored, plain = await histories(stack.client, workflow_id)
        raw, decoded = raw + stored, decoded + plain

    secrets = [GIVEN, FAMILY, EMAIL, PHONE, anchor.isoformat(), f"{anchor:%d/%m/%Y}", f"{anchor:%Y%m%d}",
               CANCEL_MARKER, "nearly_every_day", "extremely_difficult"]
    assert [secret for secret in secrets if secret.encode() in raw] == []
    assert ANY_ISO_DATE.findall(raw) == []
    # Not vacuous: the history does hold the anchor, the cancel reason and the score, encrypted.
    assert anchor.isoformat().encode() in decoded and CANCEL_MARKER.encode() in decoded
    assert b"\"score\":12" in decoded.replace(b" ", b"") or b"\"score\":12.0" in decoded.replace(b" ", b"")
    # Only what the rules read reached the workflow: PHQ-9's rules read the score and flags, no item.
    assert b"extremely_difficult" not in decoded and b"nearly_every_day" not in decoded
    # Nor does the patient's identity reach the workflow at all: activities read it from the store.
    assert [secret for secret in (GIVEN, FAMILY, EMAIL, PHONE) if secret.encode() in decoded] == []
