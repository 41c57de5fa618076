"""Consent decisions: the newest per channel holds, they are never changed or deleted, and a STOP reply
finds its patients by phone however the number was written."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from services.consent import (
    CHANNELS,
    Recorder,
    is_stop_word,
    record_decision,
    same_phone,
    stop_sms_for,
)
from store.consent import allowed_channels, consent_decisions
from store.db import AccessAudit, ConsentRecord, Patient

NURSE = Recorder("staff", "st_nurse")


async def add_patient(sessions, patient_id: str, phone: str | None) -> None:
    async with sessions.begin() as session:
        session.add(Patient(id=patient_id, given_name="芳", family_name="王", phone=phone, email=None,
                            locale="zh-CN", timezone="Asia/Shanghai"))


@pytest.mark.parametrize("reply", ["STOP", "stop", " Stop.", "退订", "td", "T", "t\n"])
def test_stop_words_in_any_case(reply: str):
    assert is_stop_word(reply)


@pytest.mark.parametrize("reply", ["", "yes", "stop it please", "退订了吗", "top", "谢谢"])
def test_other_replies_are_not_stop_words(reply: str):
    assert not is_stop_word(reply)


@pytest.mark.parametrize(("stored", "sender", "same"), [
    ("+86 139 0000 0000", "13900000000", True),
    ("+8613900000000", "+86 139-0000-0000", True),
    ("13900000000", "8613900000000", True),
    ("+44 20 7946 0000", "020 7946 0000", True),  # the national trunk prefix
    ("+8613900000000", "008613900000000", True),  # the international prefix
    ("+8613900000000", "13900000001", False),
    ("+8613900000000", "0000000", False),  # too short a tail to say it is the patient's
    ("+44 20 7946 0000", "13900000000", False),
])
def test_a_phone_is_the_same_with_or_without_its_country_code(stored: str, sender: str, same: bool):
    assert same_phone(stored, sender) is same


async def test_the_newest_decision_per_channel_holds(database):
    await add_patient(database, "pt_1", None)
    async with database.begin() as session:
        record_decision(session, "pt_1", "all", "granted", "written", NURSE)
        record_decision(session, "pt_1", "sms", "withdrawn", "verbal", NURSE)
    async with database() as session:
        decisions = await consent_decisions(session, "pt_1")
        assert {channel: row.decision for channel, row in decisions.items()} == {
            channel: "withdrawn" if channel == "sms" else "granted" for channel in CHANNELS}
        assert await allowed_channels(session, "pt_1", ["wechat", "sms", "email"], require_consent=True) == [
            "wechat", "email"]
        # Another patient: nothing recorded, so open unless the site requires consent.
        assert await allowed_channels(session, "pt_other", ["sms"], require_consent=False) == ["sms"]
        assert await allowed_channels(session, "pt_other", ["sms"], require_consent=True) == []


async def test_a_stop_reply_stops_sms_for_every_patient_with_that_phone_and_no_other(database):
    # A mother and her baby share her phone; a neighbour's number differs by one digit.
    await add_patient(database, "pt_mother", "+86 139 0000 0000")
    await add_patient(database, "pt_baby", "13900000000")
    await add_patient(database, "pt_neighbour", "+8613900000001")
    async with database() as session:
        assert await stop_sms_for(session, "13900000000", "sms-alibaba", "203.0.113.7") == 2
    async with database() as session:
        rows = list(await session.scalars(select(ConsentRecord).order_by(ConsentRecord.patient_id)))
        audits = list(await session.scalars(select(AccessAudit).order_by(AccessAudit.patient_id)))
    assert [(row.patient_id, row.channel, row.decision, row.method, row.actor_kind) for row in rows] == [
        ("pt_baby", "sms", "withdrawn", "sms-reply", "patient"), ("pt_mother", "sms", "withdrawn", "sms-reply", "patient")]
    assert [(audit.patient_id, audit.actor_kind, audit.action, audit.target, audit.reason) for audit in audits] == [
        ("pt_baby", "patient", "consent.withdraw", "sms", "replied STOP (sms-alibaba)"),
        ("pt_mother", "patient", "consent.withdraw", "sms", "replied STOP (sms-alibaba)")]


async def test_a_stop_reply_from_an_unknown_number_changes_nothing(database):
    await add_patient(database, "pt_1", "+8613900000000")
    async with database() as session:
        assert await stop_sms_for(session, "13800138000", "sms-webhook", None) == 0
        assert list(await session.scalars(select(ConsentRecord))) == []


async def test_consent_decisions_are_never_changed_or_deleted(database):
    await add_patient(database, "pt_1", None)
    async with database.begin() as session:
        record_decision(session, "pt_1", "email", "granted", "written", NURSE)
    for statement in ("UPDATE consents SET decision = 'withdrawn'", "DELETE FROM consents"):
        with pytest.raises(DBAPIError, match="consents are append-only"):
            async with database.begin() as session:
                await session.execute(text(statement))
    async with database() as session:
        assert [row.decision for row in await session.scalars(select(ConsentRecord))] == ["granted"]
