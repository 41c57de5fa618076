"""Checks across an instrument's fields that its schema cannot express, and parsing one instrument."""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from language import expressions
from language.instruments.model import (
    Instrument,
    Item,
    NumberItem,
    Range,
    ScaleItem,
    SingleChoiceItem,
    YesNoItem,
    text_slots,
)
from language.loader import DocumentInvalid, Location, load_document
from language.schema_errors import schema_problems


def missing_text_problem(instrument: Instrument, locale: str) -> str:
    """Why the instrument cannot be shown in `locale`, and exactly where its text must go; '' if it can."""
    if locale not in instrument.locales:
        return f"{instrument.id} is not offered in '{locale}'; its locales are {', '.join(instrument.locales)}"
    missing = instrument.missing_text(locale)
    if not missing:
        return ""
    local_dir, template = instrument._text_files
    path = f"{local_dir}/{instrument.id}.{locale}.yaml"
    shape = (f"copy {template} and fill in every entry" if template else
             "YAML with `instructions:` and `items:` <item id>: {text:, options: {<option id>: label}} "
             "(scales: low_label, high_label)")
    more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
    why = ("its licence does not allow publishing it" if not instrument.licence.text_public else "it is incomplete")
    return (f"{instrument.id} has no {locale} wording here: {why} "
            f"({instrument.licence.terms.strip()}) Put the hospital's licensed {locale} text in {path}: {shape}. "
            f"Missing: {', '.join(missing[:6])}{more}.")


def instrument_problems(instrument: Instrument) -> list[tuple[Location, str]]:
    """Rules across fields that the schema cannot express, each with the field path it concerns."""
    problems: list[tuple[Location, str]] = []
    item_counts = Counter(item.id for item in instrument.items)
    for index, item in enumerate(instrument.items):
        if item_counts[item.id] > 1:
            problems.append((("items", index, "id"), f"item id '{item.id}' is used by {item_counts[item.id]} items; "
                                                     "ids must be unique"))
        if item.id in instrument.scoring.parameters:
            problems.append((("items", index, "id"), f"'{item.id}' is also a parameter name; rename one"))
        problems += [(("items", index, *location), message) for location, message in _item_problems(item)]
        if instrument.scoring.total and item.point_range() is not None and not item.required:
            problems.append((("items", index, "required"), "an item in the total must be required "
                                                           "(a total of some answers is not the instrument's total)"))
    total = instrument.total_range()
    if instrument.scoring.total and not any(item.point_range() for item in instrument.items):
        problems.append((("scoring", "total"), "no item is scored, so there is nothing to sum"))
    if instrument.scoring.bands and total is None:
        problems.append((("scoring", "bands"), "bands divide the total: add `total: sum`"))
    elif total is not None:
        problems += _coverage_problems(instrument.scoring.bands, total, ("scoring", "bands"), "band", "total")
    problems += _flag_problems(instrument)
    problems += _text_problems(instrument)
    return problems


def _item_problems(item: Item) -> Iterator[tuple[Location, str]]:
    if isinstance(item, (ScaleItem, NumberItem)) and item.min >= item.max:
        yield ("max",), f"max ({item.max:g}) must be above min ({item.min:g})"
    if isinstance(item, ScaleItem):
        if item.reverse and not item.scored:
            yield ("reverse",), "only a scored item can be reverse-scored"
        if item.categories and item.min < item.max:
            yield from _coverage_problems(item.categories, (item.min, item.max), ("categories",), "category", "rating")
    if not isinstance(item, SingleChoiceItem):
        return
    counts = Counter(option.id for option in item.options)
    for index, option in enumerate(item.options):
        if counts[option.id] > 1:
            yield ("options", index, "id"), f"option id '{option.id}' appears {counts[option.id]} times in this item"
        if item.scored and option.score is None:
            yield ("options", index), "every option of a scored item needs a score (or set scored: false)"
        if not item.scored and option.score is not None:
            yield ("options", index, "score"), "this item is not scored (scored: false); remove the score"
    if item.reverse and not item.scored:
        yield ("reverse",), "only a scored item can be reverse-scored"
    scores = [(index, option.score) for index, option in enumerate(item.options) if option.score is not None]
    for (_, before), (index, after) in zip(scores, scores[1:]):
        if item.reverse and after >= before:
            yield ("options", index, "score"), (f"with reverse: true scores must fall from the first option to the "
                                                f"last; {after} follows {before}")
            break
        if not item.reverse and after <= before:
            yield ("options", index, "score"), (f"scores must rise from the first option to the last; {after} "
                                                f"follows {before} (for a reverse-scored item, set reverse: true)")
            break


def _coverage_problems(ranges: list[Range], span: tuple[int, int], where: Location, what: str,
                       of: str) -> Iterator[tuple[Location, str]]:
    """Ranges must be listed lowest first and cover span exactly: no gaps, no overlaps."""
    if not ranges:
        return
    low, high = span
    counts = Counter(r.id for r in ranges)
    expected = low
    for index, r in enumerate(ranges):
        if counts[r.id] > 1:
            yield (*where, index, "id"), f"{what} id '{r.id}' is used {counts[r.id]} times"
        if r.min > r.max:
            yield (*where, index, "max"), f"max ({r.max}) is below min ({r.min})"
        if index == 0 and r.min != low:
            yield (*where, index, "min"), f"the first {what} must start at {low}, the lowest possible {of}"
        elif r.min > expected:
            yield (*where, index, "min"), (f"{what} '{r.id}' starts at {r.min}, but the one before ends at "
                                           f"{expected - 1}: {_numbers(expected, r.min - 1)} would be in no {what}")
        elif r.min < expected:
            yield (*where, index, "min"), (f"{what} '{r.id}' starts at {r.min}, but the one before ends at "
                                           f"{expected - 1}: {_numbers(r.min, expected - 1)} would be in two {what}s")
        expected = max(expected, r.max + 1)
    if ranges[-1].max != high:
        yield (*where, len(ranges) - 1, "max"), f"the last {what} must end at {high}, the highest possible {of}"


def _numbers(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _flag_problems(instrument: Instrument) -> Iterator[tuple[Location, str]]:
    """Flags must parse, name only known items and parameters, compare like with like, and be true or false."""
    samples: dict[str, Any] = {name: p.value for name, p in instrument.scoring.parameters.items()}
    for item in instrument.items:
        if isinstance(item, SingleChoiceItem):
            samples[item.id] = item.point_range()[0] if item.point_range() else item.options[0].id
        elif isinstance(item, ScaleItem):
            samples[item.id] = item.value(item.min)
        elif isinstance(item, NumberItem):
            samples[item.id] = item.min
        elif isinstance(item, YesNoItem):
            samples[item.id] = False
    if instrument.total_range() is not None:
        samples["total"] = instrument.total_range()[0]
    for name, condition in instrument.scoring.flags.items():
        where = ("scoring", "flags", name)
        found = expressions.expression_problems(condition, samples)
        if found:
            yield from ((where, message) for message in found)
            continue
        found = list(_comparison_problems(instrument, condition))
        if found:
            yield from ((where, message) for message in found)
            continue
        try:
            result = expressions.evaluate(condition, samples)
        except Exception as error:  # simpleeval's and Python's own: '>=' between text and a number, ...
            yield where, f"'{condition}' cannot be evaluated: {error}"
            continue
        if not isinstance(result, bool):
            yield where, f"'{condition}' must be true or false, like 'q9 >= 1' or 'bleeding'"


def _comparison_problems(instrument: Instrument, condition: str) -> Iterator[str]:
    """Text compared with an item must be one of its option ids: 'heavy', not 'haevy', never 'yes'."""
    items = {item.id: item for item in instrument.items}
    for node in ast.walk(ast.parse(condition.strip(), mode="eval")):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        words = [c.value for o in operands for c in ast.walk(o) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
        for operand in operands:
            item = items.get(operand.id) if isinstance(operand, ast.Name) else None
            if item is None or not words:
                continue
            if isinstance(item, SingleChoiceItem) and not item.scored:
                ids = [option.id for option in item.options]
                yield from (f"'{word}' is not an option of {item.id} ({', '.join(ids)})" for word in words
                            if word not in ids)
            elif isinstance(item, YesNoItem):
                yield f"{item.id} is true or false: write '{item.id}' or 'not {item.id}', not a comparison with text"
            else:
                yield f"{item.id} is a number (for a scored choice, the option's score), not text"



def _text_problems(instrument: Instrument) -> Iterator[tuple[Location, str]]:
    public = instrument.licence.text_public
    for location, _, text, licensed in text_slots(instrument):
        for locale in text:
            if locale not in instrument.locales:
                yield (*location, locale), (f"locale '{locale}' is not among the instrument's locales "
                                            f"({', '.join(instrument.locales)})")
        if licensed and not public:
            if text:
                yield location, ("the licence does not allow publishing the wording (text_public: false); "
                                 f"remove it here: it belongs in pathways/local/instruments/{instrument.id}.<locale>.yaml")
            continue
        missing = [locale for locale in instrument.locales if locale not in text]
        if missing:
            yield location, f"no text for locale {', '.join(repr(m) for m in missing)}"




def parse_instrument(text: str, file: str, expected_id: str | None = None) -> Instrument:
    """Validate one instrument document; raise DocumentInvalid listing every problem, each with its line.

    `expected_id`: the id the file name promises (instruments are found by file name).
    """
    document = load_document(text, file)
    if not isinstance(document.data, dict):
        raise DocumentInvalid([document.problem((), "an instrument must be a mapping of fields (id, title, items, ...)")])
    problems = []
    if expected_id is not None and isinstance(document.data.get("id"), str) and document.data["id"] != expected_id:
        problems.append(document.problem(("id",), f"the file must be named after the id: {document.data['id']}.yaml"))
    try:
        instrument = Instrument.model_validate(document.data)
    except ValidationError as error:
        # Cross-field rules need typed values (scores, ranges); they run once the schema holds.
        raise DocumentInvalid(problems + schema_problems(document, error, Instrument)) from None
    problems += [document.problem(location, message) for location, message in instrument_problems(instrument)]
    if problems:
        raise DocumentInvalid(problems)
    return instrument
