"""Signed links to a patient's questionnaire form: bound to one enrollment, step and occurrence.

itsdangerous signs the claims; the link carries its own expiry so a stale email cannot be used
even before the database says the questionnaire has expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from itsdangerous import BadSignature, URLSafeSerializer

from services.settings import Settings

_SALT = "carepath.questionnaire-form.v1"


class LinkInvalid(Exception):
    """Tampered with, signed by another key, or not a form link at all."""


class LinkExpired(Exception):
    """Genuinely signed, but past its expiry: the claims are still trustworthy (to say so politely)."""

    def __init__(self, claims: "FormClaims"):
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
                                datetime.fromtimestamp(int(expires), tz=timezone.utc))
        except (BadSignature, ValueError, TypeError):
            raise LinkInvalid("this link is not valid") from None
        if (now or datetime.now(timezone.utc)) > claims.expires:
            raise LinkExpired(claims)
        return claims


def form_links(settings: Settings) -> FormLinks:
    return FormLinks(settings.secret_keys, settings.PUBLIC_BASE_URL)
