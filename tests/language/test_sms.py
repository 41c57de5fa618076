"""SMS segments as carriers count them: GSM-7 160 / 153, UCS-2 70 / 67, extension characters twice."""

from __future__ import annotations

import pytest

from language.sms import sms_size


@pytest.mark.parametrize(("text", "encoding", "units", "segments"), [
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("€" * 80, "GSM-7", 160, 1),  # each an escape and the character
    ("{" * 81, "GSM-7", 162, 2),
    ("您" * 70, "UCS-2", 70, 1),
    ("您" * 71, "UCS-2", 71, 2),
    ("您" * 134, "UCS-2", 134, 2),
    ("您" * 135, "UCS-2", 135, 3),
    ("a" * 69 + "您", "UCS-2", 70, 1),  # one Chinese character makes the whole text UCS-2
    ("🙂" * 35, "UCS-2", 70, 1),  # beyond the Basic Multilingual Plane: two units each
])
def test_segments(text: str, encoding: str, units: int, segments: int):
    size = sms_size(text)
    assert (size.encoding, size.units, size.segments) == (encoding, units, segments)


def test_the_shortening_named_fits_exactly():
    size = sms_size("您" * 140)
    assert size.segments == 3
    assert size.shortening_to(2) == 140 - 2 * 67
    assert sms_size("您" * (140 - size.shortening_to(2))).segments == 2
    assert sms_size("a" * 170).shortening_to(1) == 10
