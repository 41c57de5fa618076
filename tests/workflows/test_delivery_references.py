"""A run's message deliveries name their template instead of carrying every locale's text: what is
left of the texts in Temporal's history is the pathway snapshot the run started with."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.enums.v1 import EventType

from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site
from workflows.contracts import DELIVER_MESSAGE, MessageDelivery

SITE = load_site(PROJECT_ROOT / "pathways")
BODY = "A long text in every locale, that each delivery used to carry"
PATHWAY = parse_pathway(f"""\
id: reference-run
version: 4
title: Reference run
anchor: discharge_date
locales: [en, zh-CN]
steps:
  - kind: message
    id: daily
    at: 1h
    repeat: {{every: 1d, times: 3}}
    template:
      en: {{subject: "Day {{{{ step.occurrence }}}}", body: "{BODY}"}}
      zh-CN: {{subject: "第 {{{{ step.occurrence }}}} 天", body: "{BODY}"}}
""", "reference-run.yaml", SITE.instruments, SITE.teams())


async def test_each_delivery_names_the_version_step_and_template_and_the_texts_still_go(time_skipping, stack):
    patient = await stack.add_patient(locale="zh-CN")
    enrolled = await stack.enroll(patient, PATHWAY, await time_skipping.get_current_time() + timedelta(minutes=1))
    assert (await enrolled.workflow.result()).status == "completed"

    history = await enrolled.workflow.fetch_history()
    scheduled = [event.activity_task_scheduled_event_attributes for event in history.events
                 if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                 and event.activity_task_scheduled_event_attributes.activity_type.name == DELIVER_MESSAGE]
    deliveries = [(await stack.client.data_converter.decode(attributes.input.payloads, [MessageDelivery]))[0]
                  for attributes in scheduled]
    assert [(d.occurrence, d.pathway_version, d.template, d.templates, d.pathway_title, d.reach)
            for d in deliveries] == [(occurrence, 4, "template", None, None, None) for occurrence in (1, 2, 3)]
    assert [mail.subject for mail in stack.inbox.messages] == ["第 1 天", "第 2 天", "第 3 天"]
