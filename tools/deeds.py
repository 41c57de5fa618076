"""What staff do during a played enrollment, at fixed moments (tools/driver.py plays them).

A deed that is one of the enrollment workflow's updates says which, with what, and how the run's
account tells it (`update()`); the driver sends it and records a refusal in the workflow's words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from language.model import Pathway
from workflows.contracts import AnchorMove, CancelRequest, PauseRequest, ResumeRequest
from workflows.pathway import PathwayWorkflow

STAFF_ID = "simulated-staff"


@dataclass(frozen=True)
class Cancel:
    reason: str
    name = "cancel"

    def update(self, show_time: Callable[[datetime], str]) -> tuple[Callable, BaseModel, str]:
        """The workflow update staff send, and how the run's account says it, times by `show_time` (also of the
        deeds below)."""
        return PathwayWorkflow.cancel, CancelRequest(reason=self.reason), f"cancel: {self.reason}"


@dataclass(frozen=True)
class Pause:
    reason: str
    name = "pause"

    def update(self, show_time: Callable[[datetime], str]) -> tuple[Callable, BaseModel, str]:
        return PathwayWorkflow.pause, PauseRequest(reason=self.reason, actor=STAFF_ID), f"pause: {self.reason}"


@dataclass(frozen=True)
class Resume:
    name = "resume"

    def update(self, show_time: Callable[[datetime], str]) -> tuple[Callable, BaseModel, str]:
        return PathwayWorkflow.resume, ResumeRequest(actor=STAFF_ID), "resume"


@dataclass(frozen=True)
class MoveAnchor:
    anchor: datetime
    reason: str
    name = "anchor"

    def update(self, show_time: Callable[[datetime], str]) -> tuple[Callable, BaseModel, str]:
        return (PathwayWorkflow.move_anchor, AnchorMove(anchor=self.anchor, reason=self.reason, actor=STAFF_ID),
                f"anchor moved to {show_time(self.anchor)}: {self.reason}")


@dataclass(frozen=True)
class RecordCallOutcome:
    """The outcome of whichever attempt of the call step is open at that moment."""

    step_id: str
    outcome: Literal["reached", "not_reached"]
    values: dict = field(default_factory=dict)
    name = "call_outcome"


@dataclass(frozen=True)
class Acknowledge:
    """Acknowledge the open escalation with this reason, for the latest team told."""

    reason: str
    name = "acknowledge"


@dataclass(frozen=True)
class Migrate:
    """Move the enrollment to this (newer) version of its pathway, as `carepath migrate apply` does."""

    pathway: Pathway
    name = "migrate_to"


@dataclass(frozen=True)
class RecordAttendance:
    """Whether the patient came to the appointment step's visit waiting for it."""

    step_id: str
    outcome: Literal["attended", "missed"]
    name = "attendance"


@dataclass(frozen=True)
class SendEvent:
    """An event into the enrollment (a lab result), as POST /enrollments/{id}/events sends it."""

    type: str
    values: dict = field(default_factory=dict)


StaffDeed = (Cancel | Pause | Resume | MoveAnchor | RecordCallOutcome | Acknowledge | Migrate | RecordAttendance
             | SendEvent)


@dataclass(frozen=True)
class Planned:
    moment: datetime
    deed: StaffDeed
