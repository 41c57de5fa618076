"""Licensed wording a hospital supplies for one instrument in one locale, merged over the shipped file."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field, ValidationError

from language.instruments.model import Instrument, Name, ScaleItem, SingleChoiceItem, Text
from language.loader import DocumentInvalid, Location, load_document
from language.model import LanguageModel
from language.schema_errors import schema_problems

class LocalItemText(LanguageModel):
    """The licensed wording of one item in one locale."""

    text: Text | None = Field(default=None, description="the question")
    options: dict[Name, Text] = Field(default_factory=dict, description="option id: label, for single-choice items")
    low_label: Text | None = Field(default=None, description="what the lowest rating means, for scales")
    high_label: Text | None = Field(default=None, description="what the highest rating means, for scales")


class LocalInstrumentText(LanguageModel):
    """pathways/local/instruments/<id>.<locale>.yaml: a hospital's licensed wording for one locale."""

    title: Text | None = Field(default=None, description="the title, if the licensed one differs")
    instructions: Text | None = Field(default=None, description="what the patient reads first")
    items: dict[Name, LocalItemText] = Field(default_factory=dict, description="item id: its wording")


def with_local_text(instrument: Instrument, source: str, file: str, locale: str) -> Instrument:
    """The instrument with one locale's licensed text merged in; its text wins over anything shipped."""
    document = load_document(source, file)
    try:
        text = LocalInstrumentText.model_validate(document.data)
    except ValidationError as error:
        raise DocumentInvalid(schema_problems(document, error, LocalInstrumentText)) from None
    problems = [document.problem(location, message) for location, message in _local_text_problems(instrument, text)]
    if locale not in instrument.locales:
        problems.append(document.problem((), f"'{locale}' (from the file name) is not among the locales of "
                                             f"{instrument.id} ({', '.join(instrument.locales)})"))
    if problems:
        raise DocumentInvalid(problems)
    data = instrument.model_dump()
    if text.title:
        data["title"][locale] = text.title
    if text.instructions:
        data["instructions"][locale] = text.instructions
    for item in data["items"]:
        wording = text.items.get(item["id"])
        if wording is None:
            continue
        for part in ("text", "low_label", "high_label"):
            if getattr(wording, part):
                item[part][locale] = getattr(wording, part)
        for option in item.get("options", []):
            if option["id"] in wording.options:
                option["label"][locale] = wording.options[option["id"]]
    return Instrument.model_validate(data)


def _local_text_problems(instrument: Instrument, text: LocalInstrumentText) -> Iterator[tuple[Location, str]]:
    items = {item.id: item for item in instrument.items}
    for item_id, wording in text.items.items():
        item = items.get(item_id)
        if item is None:
            yield ("items", item_id), f"{instrument.id} has no item '{item_id}' (it has {', '.join(items)})"
            continue
        options = [option.id for option in item.options] if isinstance(item, SingleChoiceItem) else []
        for option_id in wording.options:
            if option_id not in options:
                yield ("items", item_id, "options", option_id), (
                    f"item '{item_id}' has no option '{option_id}'" + (f" (it has {', '.join(options)})" if options else ""))
        if not isinstance(item, ScaleItem):
            for part in ("low_label", "high_label"):
                if getattr(wording, part):
                    yield ("items", item_id, part), f"item '{item_id}' is not a scale; only scales have {part}"


