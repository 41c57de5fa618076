"""Agenda items as a long enrollment's next run receives them (continue-as-new), and back.

An item refers to its touchpoint by position in the carried entries, so that after the handover the
item and the timeline share one entry again, as they did before it.
"""

from __future__ import annotations

from collections.abc import Iterable

from workflows.agenda import (
    AgendaItem,
    Expire,
    OpenCall,
    OpenQuestionnaire,
    Remind,
    SendMessage,
    StartEscalation,
)
from workflows.appointments import APPOINTMENT_ITEMS
from workflows.contracts import CarriedAgendaItem, TimelineEntry

_CARRIED_KINDS: dict[type[AgendaItem], str] = {
    SendMessage: "send", OpenQuestionnaire: "open_questionnaire", Remind: "remind", Expire: "expire",
    OpenCall: "open_call", StartEscalation: "escalate", **{item: kind for kind, item in APPOINTMENT_ITEMS.items()}}


def carried_items(items: Iterable[AgendaItem], entries: list[TimelineEntry]) -> list[CarriedAgendaItem]:
    position = {id(entry): index for index, entry in enumerate(entries)}
    return [CarriedAgendaItem(kind=_CARRIED_KINDS[type(item)], due=item.due, entry=position[id(item.entry)],
                              sent_by_rule=getattr(item, "sent_by_rule", False),
                              trigger=getattr(item, "trigger", None), escalate=getattr(item, "escalate", None))
            for item in items]


def restored(item: CarriedAgendaItem, entries: list[TimelineEntry]) -> AgendaItem:
    entry = entries[item.entry]
    match item.kind:
        case "send":
            return SendMessage(item.due, entry, sent_by_rule=item.sent_by_rule)
        case "escalate":
            return StartEscalation(item.due, entry, item.trigger or "", item.escalate)
        case kind:
            return {"open_questionnaire": OpenQuestionnaire, "remind": Remind, "expire": Expire,
                    "open_call": OpenCall, **APPOINTMENT_ITEMS}[kind](item.due, entry)
