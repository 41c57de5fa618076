"""Form links: bound to one questionnaire occurrence, dated, and still valid across a key rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.links import FormLinks, LinkExpired, LinkInvalid

OLD, NEW = "the key links were signed with, 32+ chars", "the key after the rotation, 32+ characters"
BASE = "https://carepath.hospital.example"
EXPIRES = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def token_of(url: str) -> str:
    return url.rsplit("/f/", 1)[1]


def test_a_link_signed_before_a_rotation_still_opens():
    before = token_of(FormLinks([OLD], BASE).url("en_1", "phq9", 2, EXPIRES))
    rotated = FormLinks([OLD, NEW], BASE)
    claims = rotated.read(before, now=EXPIRES - timedelta(days=1))
    assert (claims.enrollment_id, claims.step_id, claims.occurrence, claims.expires) == ("en_1", "phq9", 2, EXPIRES)
    after = token_of(rotated.url("en_1", "phq9", 2, EXPIRES))
    assert FormLinks([NEW], BASE).read(after, now=EXPIRES - timedelta(days=1)).enrollment_id == "en_1"
    # Once the old key is dropped, its links stop working: that is how a leaked key is retired.
    with pytest.raises(LinkInvalid):
        FormLinks([NEW], BASE).read(before, now=EXPIRES - timedelta(days=1))


def test_a_link_expires_and_cannot_be_altered():
    links = FormLinks([NEW], BASE)
    token = token_of(links.url("en_1", "phq9", 2, EXPIRES))
    with pytest.raises(LinkExpired):
        links.read(token, now=EXPIRES + timedelta(seconds=1))
    payload, signature = token.rsplit(".", 1)
    tampered = payload + "." + signature[::-1]
    with pytest.raises(LinkInvalid):
        links.read(tampered, now=EXPIRES - timedelta(days=1))
