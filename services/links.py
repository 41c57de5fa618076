"""Signed links for patients: to a questionnaire form (bound to one enrollment, step and occurrence),
and to stop a channel (bound to one patient and channel: the unsubscribe link in every email).

itsdangerous signs the claims; a form link carries its own expiry so a stale email cannot be used
even before the database says the questionnaire has expired. An unsubscribe link never expires: an
old email must still let the patient stop the next ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from itsdangerous import BadSignature, URLSafeSerializer

from services.settings import Settings

_SALT = "carepath.questionnaire-form.v1"
_UNSUBSCRIBE_SALT = "carepath.unsubscribe.v1"


class LinkInvalid(Exception):
    """Tampered with, signed by another key, or not a form link at all."""


class LinkExpired(Exception):
    """Genuinely signed, but past its expiry: the claims are still trustworthy (to say so politely)."""

    def __init__(self, claims: FormClaims):
        self.claims = claims
        super().__init__("this questionnaire has closed")


@dataclass(frozen=True)
class FormClaims:
    enrollment_id: str
    step_id: str
    occurrence: int
    expires: datetime


class FormLinks:
    def __init__(self, secret_keys: list[str], base_url: str):
        # The last key signs; every key verifies, so links signed before a rotation still open.
        self._serializer = URLSafeSerializer(secret_keys, salt=_SALT)
        self._base_url = base_url.rstrip("/")

    def url(self, enrollment_id: str, step_id: str, occurrence: int, expires: datetime) -> str:
        token = self._serializer.dumps([enrollment_id, step_id, occurrence, int(expires.timestamp())])
        return f"{self._base_url}/f/{token}"

    def read(self, token: str, now: datetime | None = None) -> FormClaims:
        try:
            enrollment_id, step_id, occurrence, expires = self._serializer.loads(token)
            claims = FormClaims(str(enrollment_id), str(step_id), int(occurrence),
                                datetime.fromtimestamp(int(expires), tz=UTC))
        except (BadSignature, ValueError, TypeError):
            raise LinkInvalid("this link is not valid") from None
        if (now or datetime.now(UTC)) > claims.expires:
            raise LinkExpired(claims)
        return claims


def form_links(settings: Settings) -> FormLinks:
    return FormLinks(settings.secret_keys, settings.PUBLIC_BASE_URL)


@dataclass(frozen=True)
class UnsubscribeClaims:
    patient_id: str
    channel: str


class UnsubscribeLinks:
    def __init__(self, secret_keys: list[str], base_url: str):
        # A salt of its own: a form link's token is never read as an unsubscribe link, nor the reverse.
        self._serializer = URLSafeSerializer(secret_keys, salt=_UNSUBSCRIBE_SALT)
        self._base_url = base_url.rstrip("/")

    def url(self, patient_id: str, channel: str) -> str:
        return f"{self._base_url}/u/{self._serializer.dumps([patient_id, channel])}"

    def read(self, token: str) -> UnsubscribeClaims:
        try:
            patient_id, channel = self._serializer.loads(token)
        except (BadSignature, ValueError, TypeError):
            raise LinkInvalid("this link is not valid") from None
        return UnsubscribeClaims(str(patient_id), str(channel))


def unsubscribe_links(settings: Settings) -> UnsubscribeLinks:
    return UnsubscribeLinks(settings.secret_keys, settings.PUBLIC_BASE_URL)
