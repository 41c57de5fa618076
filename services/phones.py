"""Patient phone numbers, stored in E.164 (+8613800138000): the one form SMS gateways take and an
inbound reply (a STOP) is matched by. A number typed without its country code is read as one of the
site's region (CAREPATH_DEFAULT_PHONE_REGION)."""

from __future__ import annotations

import phonenumbers


class PhoneRefused(ValueError):
    pass


def to_e164(text: str, region: str) -> str:
    """The number in E.164, read in `region` (ISO 3166 code, e.g. CN) unless it starts with +;
    PhoneRefused saying why when it is no possible number."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as refused:
        raise PhoneRefused(f"'{text}' is not a phone number: {refused.args[0]}") from None
    if number.extension:
        # E.164 has no extension, and no message reaches one: storing the number without it would lose it.
        raise PhoneRefused(f"'{text}' has an extension ({number.extension}); give a number that reaches the patient")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not phonenumbers.is_valid_number(number):
        raise PhoneRefused(f"'{text}' is not a valid phone number (read as {e164}, without a country code as "
                           f"one of region {region}); give it with its country code, e.g. +86 138 0013 8000")
    return e164


def is_region(code: str) -> bool:
    return code in phonenumbers.SUPPORTED_REGIONS
