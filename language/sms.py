"""How many SMS segments a text takes (3GPP TS 23.038): the cost and the carriers' limits authors must see.

A text of only GSM-7 characters (its basic set; the extension set counts twice, an escape and the
character) fits 160 in one message, 153 per segment once split. Any other character, Chinese
among them, sends the whole text as UCS-2: 70 in one message, 67 per segment (a character beyond
the Basic Multilingual Plane, an emoji, counts twice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsSize:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets or UTF-16 code units
    segments: int
    single_limit: int  # what fits in one message
    segment_limit: int  # what each segment of a split message holds

    def shortening_to(self, segments: int) -> int:
        """How many units must go for the text to fit in `segments`."""
        room = self.single_limit if segments == 1 else self.segment_limit * segments
        return max(self.units - room, 0)


def sms_size(text: str) -> SmsSize:
    if all(character in GSM7_BASIC or character in GSM7_EXTENSION for character in text):
        units = sum(2 if character in GSM7_EXTENSION else 1 for character in text)
        encoding, single, segment = "GSM-7", 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        encoding, single, segment = "UCS-2", 70, 67
    segments = 1 if units <= single else math.ceil(units / segment)
    return SmsSize(encoding, units, segments, single, segment)
