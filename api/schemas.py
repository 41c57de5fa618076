"""What the API accepts and returns. Database rows and domain models stay behind these shapes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainValidator, StringConstraints, WithJsonSchema

from pathways.model import Locale, Pathway, Slug, ZoneName
from workflows.contracts import EnrollmentStatus, Timeline

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
                  Field(examples=["li.wei@example.com"])]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 ()-]{3,38}$"),
                  Field(examples=["+86 138 0013 8000"])]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]

ANCHOR_HELP = "a date (2026-12-01: the start of that day in the enrollment's time zone) or a date-time with its UTC offset (2026-12-01T09:30:00+08:00)"


def _parse_anchor(value: object) -> date | datetime:
    if isinstance(value, date):
        moment = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text) if "T" in text or " " in text else date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"'{value}' is not {ANCHOR_HELP}") from None
    else:
        raise ValueError(f"expected {ANCHOR_HELP}")
    if isinstance(moment, datetime) and moment.tzinfo is None:
        raise ValueError(f"'{value}' has no UTC offset; add one (e.g. +08:00 or Z) or give a date only")
    return moment


Anchor = Annotated[
    date | datetime,
    PlainValidator(_parse_anchor),
    WithJsonSchema({"type": "string", "description": ANCHOR_HELP, "examples": ["2026-12-01", "2026-12-01T09:30:00+08:00"]}),
]


class PatientCreate(BaseModel):
    given_name: Name
    family_name: Name
    email: Email | None = None
    phone: Phone | None = None
    locale: Locale = Field(description="the language messages are sent in, e.g. zh-CN or en")
    timezone: ZoneName = Field(description="IANA time zone; pathway times are the patient's local times")


class PatientPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    given_name: str
    family_name: str
    email: str | None
    phone: str | None
    locale: str
    timezone: str
    created_at: datetime


class PathwaySummary(BaseModel):
    id: str
    version: int
    title: str
    anchor: str = Field(description="the named date the schedule hangs on")
    locales: list[str]


class PathwayDetail(PathwaySummary):
    versions: list[int] = Field(description="every deployed version of this pathway")
    sha256: str = Field(description="of the YAML source exactly as deployed")
    deployed_at: datetime
    source: str = Field(description="the YAML source exactly as deployed")
    definition: Pathway


class InvalidPathwayDetail(BaseModel):
    message: str
    problems: list[str] = Field(description="file:line:col: field: message", examples=[
        ["<body>:12:9: steps[1].at: 'day three' is not 'day N HH:MM' ..."]])


class InvalidPathway(BaseModel):
    detail: InvalidPathwayDetail


class Message(BaseModel):
    detail: str


class EnrollmentCreate(BaseModel):
    patient_id: str
    pathway_id: Slug
    pathway_version: int | None = Field(default=None, ge=1, description="default: the newest deployed version")
    anchor: Anchor
    timezone: ZoneName | None = Field(default=None, description="default: the patient's time zone")


class CancelBody(BaseModel):
    reason: Reason = Field(examples=["patient readmitted"])


class EnrollmentPublic(BaseModel):
    id: str
    patient_id: str
    pathway_id: str
    pathway_version: int
    anchor: AwareDatetime = Field(description="in the enrollment's time zone")
    timezone: str
    status: EnrollmentStatus
    status_reason: str | None
    created_at: datetime
    ended_at: datetime | None
    workflow_id: str
    timeline: Timeline | None = Field(
        description="every touchpoint and what became of it; null when no worker answered in time")
