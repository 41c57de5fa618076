"""CAREPATH_CHANNEL_RATE_LIMITS: a gateway's rate per channel, refused with a clear error when unreadable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.settings import Settings


def test_a_rate_per_channel_is_read():
    assert Settings(ENVIRONMENT="test", CHANNEL_RATE_LIMITS={"email": "50/second"}).CHANNEL_RATE_LIMITS == {
        "email": "50/second"}


@pytest.mark.parametrize(("limits", "problem"), [
    ({"fax": "5/second"}, "there is no channel 'fax' (channels: email, console, sms, wechat, push)"),
    ({"email": "fifty"}, "'fifty' for channel 'email' is not a rate such as 50/second"),
])
def test_an_unknown_channel_or_unreadable_rate_is_refused_by_name(limits, problem):
    with pytest.raises(ValidationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        Settings(ENVIRONMENT="test", CHANNEL_RATE_LIMITS=limits)
