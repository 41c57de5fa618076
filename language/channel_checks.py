"""What each channel needs of a message's templates, and the limits it sets (SMS segments).

A step on `sms` needs an `sms:` text in every locale, one on `wechat` a `wechat:` template; either,
when given, is checked like subject and body (renderable, the form link in a questionnaire's SMS).
An SMS text, and each field of a WeChat subscription notification, is sized with a sample patient: its
first name counts as SAMPLE_FIRST_NAME, the form link as SAMPLE_LINK (a signed link under a site
address of about 30 characters), so the count is what a real patient's message takes, give or take a
long name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from language.loader import Location
from language.messages import MessageTemplate
from language.model import Pathway
from language.sms import sms_size
from language.templates import render, template_problems, variables_in

SAMPLE_FIRST_NAME = "Xxxxxxxxxx"
# An appointment's time as its reminders say it (`{{ visit }}`: the local date and time).
SAMPLE_VISIT = "2026-12-11 15:00"
SAMPLE_LINK = "https://" + "x" * 132
# The channels whose form of the message is a field of the template of the same name.
EXAMPLES = {"sms": "sms: {text: '...'}", "wechat": "wechat: {template_id: ..., fields: {...}}"}
# A subscription notification's field is named by its type and a number (thing1, time2); WeChat refuses a
# value longer than its type allows (47003), so the longest each takes, in characters; None: no length of
# its own (a time, a date, an amount, a value of the template's enumeration), WeChat checks the form.
SUBSCRIBE_FIELD_LIMITS = {"thing": 20, "number": 32, "letter": 32, "symbol": 5, "character_string": 32,
                          "phone_number": 17, "car_number": 8, "name": 20, "phrase": 5,
                          "time": None, "date": None, "amount": None, "enum": None}
SUBSCRIBE_FIELD = re.compile(rf"^({'|'.join(SUBSCRIBE_FIELD_LIMITS)})[0-9]+$")
# A name of Chinese characters takes at most 10 (one of Latin letters 20).
CHINESE_NAME_LIMIT = 10


def channel_problems(where: Location, templates: Mapping[str, MessageTemplate], channels: Mapping[str, list[str]],
                     extra: Mapping[str, str], pathway: Pathway, step_id: str) -> list[tuple[Location, str]]:
    """`channels`: per locale, the channels the message may go by (language/reach.step_channels)."""
    problems: list[tuple[Location, str]] = []
    for locale, template in templates.items():
        place: Location = (*where, locale)
        problems += [(place, (f"channel {channel} needs a {channel} form of the message in every locale; "
                              f"add {EXAMPLES[channel]}"))
                     for channel in channels.get(locale, []) if channel in EXAMPLES and getattr(template, channel) is None]
        if template.sms is not None:
            problems += _sms_problems((*place, "sms"), template, extra, pathway, step_id)
        if template.wechat is not None:
            for name, source in template.wechat.fields.items():
                field_problems = template_problems(source, extra)
                if not field_problems and template.wechat.kind == "subscribe":
                    field_problems = _subscribe_field_problems(name, _sample(source, pathway, step_id))
                problems += [((*place, "wechat", "fields", name), message) for message in field_problems]
    return problems


def _sample(source: str, pathway: Pathway, step_id: str) -> str:
    """The text as the sample patient gets it."""
    return render(source, {"patient": {"first_name": SAMPLE_FIRST_NAME}, "pathway": {"id": pathway.id, "title": pathway.title},
                           "step": {"id": step_id, "occurrence": 1}, "link": SAMPLE_LINK, "visit": SAMPLE_VISIT}).strip()


def _subscribe_field_problems(name: str, sample: str) -> list[str]:
    named = SUBSCRIBE_FIELD.match(name)
    if named is None:
        return [(f"a subscription notification's field is named by its type and number as the template declares "
                 f"it (thing1, time2, ...); '{name}' names no type ({', '.join(SUBSCRIBE_FIELD_LIMITS)})")]
    kind = named.group(1)
    limit = SUBSCRIBE_FIELD_LIMITS[kind]
    if kind == "name" and any(not character.isascii() for character in sample):
        limit = CHINESE_NAME_LIMIT
    if limit is None or len(sample) <= limit:
        return []
    counted = f" (counting the first name as {len(SAMPLE_FIRST_NAME)})" if SAMPLE_FIRST_NAME in sample else ""
    return [(f"WeChat takes at most {limit} characters in a {kind} field; this one takes {len(sample)}{counted}: "
             f"shorten it by {len(sample) - limit}")]


def _sms_problems(place: Location, template: MessageTemplate, extra: Mapping[str, str], pathway: Pathway,
                  step_id: str) -> list[tuple[Location, str]]:
    sms = template.sms
    text_problems = [((*place, "text"), message) for message in template_problems(sms.text, extra)]
    problems = text_problems + [((*place, "params", name), message) for name, source in sms.params.items()
                                for message in template_problems(source, extra)]
    for name in extra:
        if name not in variables_in(sms.text):
            problems.append(((*place, "text"), (f"the SMS must contain {{{{ {name} }}}}, "
                                               "or the patient has no way to reach the form")))
        if sms.template_code and not any(name in variables_in(source) for source in sms.params.values()):
            problems.append(((*place, "params"), (f"one of the registered template's params must be {{{{ {name} }}}}, "
                                                 "or the patient has no way to reach the form")))
    if text_problems:
        return problems
    size = sms_size(_sample(sms.text, pathway, step_id))
    if size.segments > pathway.sms_max_segments:
        problems.append(((*place, "text"), (
            f"this SMS takes {size.segments} {size.encoding} segments ({size.units} characters, counting the "
            f"first name as {len(SAMPLE_FIRST_NAME)} and a form link as {len(SAMPLE_LINK)}); the pathway allows "
            f"{pathway.sms_max_segments}: shorten it by {size.shortening_to(pathway.sms_max_segments)} characters, "
            f"or raise sms_max_segments")))
    return problems
