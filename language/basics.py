"""The words every part of the pathway language is built from: strict models, durations, times of day,
send windows, time zones, ids, locales and channels. Text is parsed once, at load.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from language import timing


class LanguageModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{name}' is not an IANA time zone (e.g. Asia/Shanghai, Europe/London)") from None
    return name


def _parsed_with(parser, parsed: type, help_text: str):
    """Text is parsed once, at load; a value already parsed (a model built in code) passes as it is."""
    def parse(value: Any) -> Any:
        if isinstance(value, parsed):
            return value
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return parser(str(value))
        raise ValueError(f"expected text: {help_text}")

    return parse


Duration = Annotated[
    timedelta,
    BeforeValidator(timing.parse_duration),
    PlainSerializer(timing.format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "description": timing.DURATION_HELP, "examples": ["30s", "2h", "1d"]}),
]
# Held parsed, written back as the author's words: a pathway survives the JSON of workflow input.
At = Annotated[
    timing.Timing,
    BeforeValidator(_parsed_with(timing.parse_timing, timing.Timing, timing.AT_HELP)),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "description": timing.AT_HELP,
                    "examples": ["day 3 09:00", "day -1 18:00", "day 0 +2h", "30s"]}),
]
SendWindow = Annotated[
    timing.SendWindow,
    BeforeValidator(_parsed_with(timing.parse_send_window, timing.SendWindow, timing.WINDOW_HELP)),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "description": timing.WINDOW_HELP, "examples": ["09:00-20:00"]}),
]
ZoneName = Annotated[str, AfterValidator(_check_zone), Field(examples=["Asia/Shanghai", "Europe/London"])]
Slug = Annotated[
    str,
    Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64, examples=["post-surgery-recovery"],
          description="lower-case letters, digits, '-' and '_'"),
]
Locale = Annotated[
    str,
    Field(pattern=r"^[a-z]{2,3}(-[A-Z][A-Za-z]{1,3})?$", examples=["zh-CN", "en"],
          description="a BCP 47 language tag such as zh-CN or en"),
]
Channel = Literal["email", "console", "sms", "wechat", "push"]
