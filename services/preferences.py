"""A patient's preferences for being reached: the channels they want first, their quiet hours, their
daily budget of messages, and their language (the patient's own `locale`, which every message and
form already follows). Read at send time by the delivery activity (activities/reach.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from language.model import Channel, Locale
from language.reach import QUIET_HOURS_HELP, parse_quiet_hours
from store.db import Patient, PatientPreferences, utcnow

MAX_DAILY_BUDGET = 50


class Preferences(BaseModel):
    """How one patient wants to be reached. PUT replaces them whole."""

    model_config = ConfigDict(extra="forbid")

    channels: list[Channel] = Field(
        default_factory=list, max_length=5, examples=[["wechat", "sms"]],
        description="channels to try first, most wanted first; then the pathway's own order. A channel that "
                    "cannot reach the patient passes the message to the next; after the last, staff call")
    quiet_hours: str | None = Field(
        default=None, examples=["22:00-07:00"],
        description=f"no message in these local hours: it waits until they end; {QUIET_HOURS_HELP}. Advice a "
                    "rule sends on an answer is not held")
    daily_budget: int | None = Field(
        default=None, ge=1, le=MAX_DAILY_BUDGET, examples=[3],
        description="scheduled messages a local day across all the patient's enrollments; past it, the next waits "
                    "for the next day (questionnaires and rules' advice are counted, never held). None: the site's")
    locale: Locale = Field(description="the patient's language: messages and forms in it where the pathway has it")

    @field_validator("channels")
    @classmethod
    def _each_once(cls, channels: list[str]) -> list[str]:
        twice = sorted({channel for channel in channels if channels.count(channel) > 1})
        if twice:
            raise ValueError(f"list each channel once ({', '.join(twice)} more than once)")
        return channels

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_readable(cls, text: str | None) -> str | None:
        return None if text is None else str(parse_quiet_hours(text))


class PreferencesInForce(Preferences):
    daily_budget_in_force: int = Field(description="the patient's daily budget, or the site's when they have none")


def preferences_of(patient: Patient, stored: PatientPreferences | None, site_budget: int) -> PreferencesInForce:
    return PreferencesInForce(
        channels=stored.channels if stored else [], quiet_hours=stored.quiet_hours if stored else None,
        daily_budget=stored.daily_budget if stored else None, locale=patient.locale,
        daily_budget_in_force=stored.daily_budget if stored and stored.daily_budget else site_budget)


def apply_preferences(patient: Patient, stored: PatientPreferences | None, wanted: Preferences) -> PatientPreferences:
    """The patient's row and their preferences' row changed to `wanted`; the caller adds and commits them."""
    patient.locale = wanted.locale
    stored = stored or PatientPreferences(patient_id=patient.id)
    stored.channels, stored.quiet_hours, stored.daily_budget = wanted.channels, wanted.quiet_hours, wanted.daily_budget
    stored.updated_at = utcnow()
    return stored
