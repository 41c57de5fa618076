"""The pathway's agenda: typed things due at given times, earliest first.

Each item carries what performing it needs; PathwayWorkflow dispatches on the type. Plain data
and ordering only, so the module is deterministic and has no import side effects.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from language.model import Escalate
from workflows.contracts import TimelineEntry


@dataclass(frozen=True, eq=False)
class AgendaItem:
    due: datetime
    entry: TimelineEntry

    @property
    def outlives_end(self) -> bool:
        """Whether it still happens after the enrollment is cancelled or stopped."""
        return False


@dataclass(frozen=True, eq=False)
class SendMessage(AgendaItem):
    # What a rule decided (advice to the patient) happens even if the same rule, or staff, end
    # the pathway a moment later; a message of the plan does not.
    sent_by_rule: bool = False

    @property
    def outlives_end(self) -> bool:
        return self.sent_by_rule


@dataclass(frozen=True, eq=False)
class OpenQuestionnaire(AgendaItem):
    pass


@dataclass(frozen=True, eq=False)
class Remind(AgendaItem):
    pass


@dataclass(frozen=True, eq=False)
class Expire(AgendaItem):
    pass


@dataclass(frozen=True, eq=False)
class OpenCall(AgendaItem):
    """An attempt of a call step: the first, or a retry after the patient was not reached."""


@dataclass(frozen=True, eq=False)
class StartEscalation(AgendaItem):
    trigger: str
    escalate: Escalate

    @property
    def outlives_end(self) -> bool:
        return True  # someone must still look at the patient, whatever happens to the enrollment


_FIRST_ITEM = {"message": SendMessage, "questionnaire": OpenQuestionnaire, "call": OpenCall}


def first_item(entry: TimelineEntry) -> AgendaItem:
    """What a touchpoint of the plan starts with, at its due time."""
    return _FIRST_ITEM[entry.kind](entry.due, entry)


class Agenda:
    """Items in due order; those due at the same instant in the order they were added."""

    def __init__(self) -> None:
        self._items: list[AgendaItem] = []
        # Moves on every change, so a loop sleeping until the first item knows to look again.
        self.changes = 0

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[AgendaItem]:
        return iter(self._items)

    def first(self) -> AgendaItem | None:
        return self._items[0] if self._items else None

    def add(self, item: AgendaItem) -> None:
        insort(self._items, item, key=lambda queued: queued.due)  # after the items due at the same instant
        self.changes += 1

    def remove(self, item: AgendaItem) -> None:
        self._items.remove(item)

    def keep_only(self, wanted: Callable[[AgendaItem], bool]) -> None:
        self._items = [item for item in self._items if wanted(item)]
        self.changes += 1
