"""Delivery inputs and receipts leave their defaults out of the JSON in Temporal's history; decoding fills
them in again, and payloads written in full before still decode to the same thing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site
from workflows.contracts import (
    DeliveryReceipt,
    EnrollmentRun,
    FormLink,
    MessageDelivery,
    TimelineEntry,
)
from workflows.payloads import message_delivery

SITE = load_site(PROJECT_ROOT / "pathways")
DUE = datetime(2026, 3, 2, 9, tzinfo=UTC)


def pathway(version: int):
    return parse_pathway(f"""\
id: compact
version: {version}
title: Compact v{version}
anchor: discharge_date
locales: [en]
reach:
  channels: {{en: [email]}}
steps:
  - kind: message
    id: hello
    at: 1h
    template:
      en: {{subject: "Hello", body: "Hello"}}
""", "compact.yaml", SITE.instruments, SITE.teams())


def test_defaults_are_left_out_and_required_fields_kept_even_when_null():
    delivery = MessageDelivery(enrollment_id="en_1", pathway_id="p", step_id="s", occurrence=1, channel=None, due=DUE,
                               pathway_version=2, template="template")
    written = json.loads(delivery.model_dump_json())
    assert written == {"enrollment_id": "en_1", "pathway_id": "p", "step_id": "s", "occurrence": 1, "channel": None,
                       "due": "2026-03-02T09:00:00Z", "pathway_version": 2, "template": "template"}
    assert MessageDelivery.model_validate_json(delivery.model_dump_json()) == delivery
    assert json.loads(DeliveryReceipt(duplicate=False).model_dump_json()) == {"duplicate": False}


def test_values_other_than_the_default_are_written():
    form = FormLink(instrument_id="phq-9", expires=DUE + timedelta(days=1))
    delivery = MessageDelivery(enrollment_id="en_1", pathway_id="p", pathway_title="P", step_id="s", occurrence=1,
                               purpose="invitation", channel="sms", due=DUE, form=form, waits_for=["quiet_hours"])
    written = json.loads(delivery.model_dump_json())
    assert (written["purpose"], written["channel"], written["pathway_title"], written["waits_for"]) == (
        "invitation", "sms", "P", ["quiet_hours"])
    assert written["form"] == {"instrument_id": "phq-9", "expires": "2026-03-03T09:00:00Z"}
    receipt = DeliveryReceipt(duplicate=False, channel="sms", deferred_until=DUE, deferred_for="quiet_hours")
    assert DeliveryReceipt.model_validate_json(receipt.model_dump_json()) == receipt


def test_a_payload_written_in_full_before_decodes_the_same():
    full = ('{"enrollment_id":"en_1","pathway_id":"p","pathway_title":"P","step_id":"s","occurrence":1,'
            '"purpose":"scheduled","channel":null,"due":"2026-03-02T09:00:00Z","pathway_version":null,'
            '"template":null,"templates":{"en":{"subject":"Hi","body":"Hello"}},"form":null,"appointment":null,'
            '"reach":{"channels":{"en":["email"]},"call":null},"waits_for":[]}')
    delivery = MessageDelivery.model_validate_json(full)
    assert (delivery.pathway_title, delivery.reach.channels, delivery.templates["en"].subject) == (
        "P", {"en": ["email"]}, "Hi")
    assert MessageDelivery.model_validate_json(delivery.model_dump_json()) == delivery
    receipt = '{"duplicate":true,"channel":"email","passed_over":null,"deferred_until":null,"deferred_for":null}'
    assert DeliveryReceipt.model_validate_json(receipt) == DeliveryReceipt(duplicate=True, channel="email")


def delivery_under(run_version: int, rules_version: int) -> MessageDelivery:
    run = EnrollmentRun(enrollment_id="en_1", pathway=pathway(run_version), anchor=DUE, timezone="UTC")
    entry = TimelineEntry(step_id="hello", occurrence=1, kind="message", due=DUE)
    return message_delivery(run, pathway(rules_version), entry, purpose="scheduled", template="template", due=DUE,
                            form=None, waits_for=[])


def test_title_and_reach_go_by_reference_only_where_the_referenced_version_is_the_run_s():
    by_reference = delivery_under(2, 2)
    assert (by_reference.pathway_version, by_reference.pathway_title, by_reference.reach) == (2, None, None)
    # A touchpoint finishing under an older version after a migration: the run's title and reach, as before.
    migrated = delivery_under(3, 2)
    assert (migrated.pathway_version, migrated.pathway_title, migrated.reach.channels) == (
        2, "Compact v3", {"en": ["email"]})
