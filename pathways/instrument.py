"""Questionnaire instruments as data: what is asked, in which words, and how answers are scored.

One YAML file per instrument in pathways/instruments/, named after its id. Where the licence lets
us publish the wording (PHQ-9, GAD-7, our own check-ins) the file holds it in every locale. Where it
does not (EPDS), the file holds structure and scoring only, and a hospital that holds a licence puts
the text in pathways/local/instruments/<id>.<locale>.yaml, which git ignores; it is merged in at load.

Answers are keyed by item id:

    single_choice  the option id ("several_days")
    scale          a whole number within the scale (7)
    number         a number within min..max with at most `decimals` decimals (37.8)
    yes_no         True or False
    free_text      a string, at most max_length long; never scored and never part of a ScoreResult

Form posts may give the same as text ("7", "37,8", "yes"); None, "" and missing mean unanswered.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationError

from pathways import expressions
from pathways.loader import DocumentInvalid, Location, Problem, load_document_file
from pathways.model import LanguageModel, Locale, Slug
from pathways.schema_errors import schema_problems

INSTRUMENTS_DIR = Path(__file__).parent / "instruments"
TEXT_TEMPLATES_DIR = INSTRUMENTS_DIR / "text-templates"


def local_text_dir(instruments_dir: Path | str) -> Path:
    """Where licensed text for the instruments in `instruments_dir` lives: pathways/local/instruments."""
    return Path(instruments_dir).parent / "local" / "instruments"


NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


def _check_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(f"'{name}' cannot be an id here: use lower-case letters, digits and '_', "
                         "starting with a letter (ids are names in conditions such as q9 >= 1)")
    if keyword.iskeyword(name) or name == "total":
        raise ValueError(f"'{name}' is a word of the expression language; choose another id")
    return name


Name = Annotated[
    str,
    AfterValidator(_check_name),
    Field(max_length=40, json_schema_extra={"pattern": NAME_PATTERN}, examples=["q9", "temperature"],
          description="lower-case letters, digits and '_', starting with a letter: usable in expressions"),
]
Text = Annotated[str, Field(min_length=1)]
LocalText = Annotated[
    dict[Locale, Text],
    Field(description="the same text in each locale of the instrument",
          examples=[{"en": "Not at all", "zh-CN": "完全不会"}]),
]
Number = int | float


class Licence(LanguageModel):
    """Under what terms the instrument is used, and whether its wording may be published here."""

    terms: str = Field(min_length=1, description="the licence or copyright terms, with their holder",
                       examples=["No permission required to reproduce, translate, display or distribute."])
    text_public: bool = Field(
        description="whether the wording of items and options may be committed to this repository; if not, the "
                    "file holds structure and scoring only and the licensed text comes from pathways/local/")


class Range(LanguageModel):
    """A named range of whole numbers, both ends included: a band of the total or a category of an answer."""

    id: Name = Field(description="what rules and reports use", examples=["moderate", "promoter"])
    min: int = Field(description="lowest value in the range", examples=[10])
    max: int = Field(description="highest value in the range", examples=[14])
    label: LocalText = Field(description="what staff read, per locale")


class ChoiceOption(LanguageModel):
    """One answer of a single-choice item, in display order."""

    id: Name = Field(description="the answer as stored and as rules see it (for unscored items)",
                     examples=["several_days", "heavy"])
    score: int | None = Field(default=None, description="points for this answer; every option of a scored item has one",
                              examples=[1])
    label: LocalText = Field(default_factory=dict,
                             description="what the patient reads, per locale (left out when the licence forbids)")
    category: Name | None = Field(default=None, description="optional group for reports, e.g. positive / negative",
                                  examples=["positive"])


class _Item(LanguageModel):
    id: Name = Field(description="unique within the instrument; answers, flags and pathway rules use it",
                     examples=["q9", "temperature"])
    text: LocalText = Field(default_factory=dict,
                            description="the question per locale (left out when the licence forbids publishing it)")
    required: bool = Field(default=True, description="whether the form insists on an answer")

    def read(self, raw: Any) -> Any:
        """The answer in its stored form; raises ValueError with a short message for the form."""
        raise NotImplementedError

    def value(self, answer: Any) -> bool | int | float | str | None:
        """What flags, rules and ScoreResult.items see for this answer (None: nothing)."""
        return answer

    def points(self, answer: Any) -> int | None:
        """The answer's contribution to the total, if the item is scored."""
        return None

    def point_range(self) -> tuple[int, int] | None:
        return None

    def category(self, answer: Any) -> str | None:
        return None


class SingleChoiceItem(_Item):
    """Pick one option. Scored items give each option its score, so reverse scoring is data."""

    kind: Literal["single_choice"] = Field(description="what sort of question this is")
    options: list[ChoiceOption] = Field(min_length=2, description="the answers, in display order")
    scored: bool = Field(default=True, description="whether the chosen option's score counts (and is reported)")
    reverse: bool = Field(default=False, description="scores fall from the first option to the last (checked)")

    def option(self, option_id: str) -> ChoiceOption:
        return next(option for option in self.options if option.id == option_id)

    def read(self, raw: Any) -> str:
        if isinstance(raw, str) and any(option.id == raw for option in self.options):
            return raw
        raise ValueError(f"choose one of: {', '.join(option.id for option in self.options)}")

    def value(self, answer: str) -> int | str | None:
        return self.option(answer).score if self.scored else answer

    def points(self, answer: str) -> int | None:
        return self.option(answer).score if self.scored else None

    def point_range(self) -> tuple[int, int] | None:
        scores = [option.score for option in self.options if option.score is not None]
        return (min(scores), max(scores)) if self.scored and scores else None

    def category(self, answer: str) -> str | None:
        return self.option(answer).category


class ScaleItem(_Item):
    """A numeric rating scale (0-10 by default) with words at both ends."""

    kind: Literal["scale"] = Field(description="what sort of question this is")
    min: int = Field(default=0, description="lowest rating", examples=[0])
    max: int = Field(default=10, description="highest rating", examples=[10])
    low_label: LocalText = Field(default_factory=dict, description="what the lowest rating means, per locale",
                                 examples=[{"en": "No pain", "zh-CN": "无痛"}])
    high_label: LocalText = Field(default_factory=dict, description="what the highest rating means, per locale",
                                  examples=[{"en": "Worst pain imaginable", "zh-CN": "能想象的最剧烈疼痛"}])
    scored: bool = Field(default=True, description="whether the rating counts towards the total")
    reverse: bool = Field(default=False, description="the rating counts as max + min - rating (high is good)")
    categories: list[Range] = Field(default_factory=list,
                                    description="optional named ranges of the rating, covering min..max without gaps",
                                    examples=[[{"id": "detractor", "min": 0, "max": 6, "label": {"en": "Detractor"}}]])

    def read(self, raw: Any) -> int:
        number = _whole_number(raw)
        if number is None or not self.min <= number <= self.max:
            raise ValueError(f"choose a whole number from {self.min} to {self.max}")
        return number

    def value(self, answer: int) -> int:
        return self.points(answer) if self.scored else answer

    def points(self, answer: int) -> int | None:
        if not self.scored:
            return None
        return self.max + self.min - answer if self.reverse else answer

    def point_range(self) -> tuple[int, int] | None:
        return (self.min, self.max) if self.scored else None

    def category(self, answer: int) -> str | None:
        return next((c.id for c in self.categories if c.min <= answer <= c.max), None)


class NumberItem(_Item):
    """A measurement the patient types in, such as a temperature."""

    kind: Literal["number"] = Field(description="what sort of question this is")
    unit: str = Field(min_length=1, description="shown next to the box", examples=["°C", "kg", "mmHg"])
    min: float = Field(description="lowest plausible value", examples=[34])
    max: float = Field(description="highest plausible value", examples=[43])
    decimals: int = Field(default=0, ge=0, le=3, description="how many decimals may be given", examples=[1])

    def read(self, raw: Any) -> Number:
        if isinstance(raw, str):
            try:
                exact = Decimal(raw.strip().replace(",", "."))
            except InvalidOperation:
                exact = None
        elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
            exact = Decimal(str(raw))
        else:
            exact = None
        if exact is None or not exact.is_finite() or not self.min <= exact <= self.max:
            raise ValueError(f"enter a number from {self.min:g} to {self.max:g}")
        if exact != round(exact, self.decimals):
            raise ValueError("enter a whole number" if self.decimals == 0 else
                             f"use at most {self.decimals} decimal{'s' if self.decimals > 1 else ''}")
        return int(exact) if self.decimals == 0 else float(exact)


class YesNoItem(_Item):
    """A yes-or-no question; rules see True or False."""

    kind: Literal["yes_no"] = Field(description="what sort of question this is")

    def read(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("yes", "no"):
            return raw.strip().lower() == "yes"
        raise ValueError("answer yes or no")


class FreeTextItem(_Item):
    """Words in the patient's own words. Never scored, never shown to rules, never in workflow history."""

    kind: Literal["free_text"] = Field(description="what sort of question this is")
    max_length: int = Field(default=1000, ge=1, le=10_000, description="longest answer accepted, in characters")

    def read(self, raw: Any) -> str:
        if not isinstance(raw, str):
            raise ValueError("enter text")
        if len(raw) > self.max_length:
            raise ValueError(f"at most {self.max_length} characters, please")
        return raw

    def value(self, answer: str) -> None:
        return None


def _item_kind(value: Any) -> str | None:
    return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)


Item = Annotated[
    Union[
        Annotated[SingleChoiceItem, Tag("single_choice")],
        Annotated[ScaleItem, Tag("scale")],
        Annotated[NumberItem, Tag("number")],
        Annotated[YesNoItem, Tag("yes_no")],
        Annotated[FreeTextItem, Tag("free_text")],
    ],
    Discriminator(_item_kind),
]


class Parameter(LanguageModel):
    """A threshold flags may use by name, with where it comes from."""

    value: Number = Field(description="the number", examples=[10])
    source: str = Field(min_length=1, description="the citation that justifies it",
                        examples=["Cox, Holden & Sagovsky, Br J Psychiatry 1987;150:782-6"])


class Scoring(LanguageModel):
    """How answers become a total, a band and flags."""

    total: Literal["sum"] | None = Field(default=None, description="'sum': the total is the sum of the scored items")
    bands: list[Range] = Field(default_factory=list,
                               description="named ranges of the total, lowest first, covering every possible total")
    parameters: dict[Name, Parameter] = Field(default_factory=dict, description="named thresholds for the flags")
    flags: dict[Name, Annotated[str, Field(min_length=1)]] = Field(
        default_factory=dict,
        description="flag name: condition over item ids, total and parameters; raised when true",
        examples=[{"self_harm": "q9 >= 1", "fever": "temperature >= 38.0"}],
    )


class Instrument(LanguageModel):
    """A questionnaire: its items, in which words, and how the answers are scored."""

    id: Slug = Field(description="stable identifier; the file is named <id>.yaml and pathways refer to it",
                     examples=["phq-9"])
    version: int = Field(ge=1, description="raise it for every change to items or scoring")
    title: LocalText = Field(description="the instrument's name per locale")
    source: str = Field(min_length=1, description="citation of the instrument (or 'carepath' for our own)",
                        examples=["Kroenke K, Spitzer RL, Williams JB. J Gen Intern Med 2001;16:606-13."])
    licence: Licence = Field(description="terms of use, and whether the wording may be published here")
    attribution: str | None = Field(default=None, description="a line that must be shown with the instrument")
    locales: list[Locale] = Field(min_length=1, description="languages the instrument is offered in")
    instructions: LocalText = Field(default_factory=dict,
                                    description="what the patient reads first, e.g. the time frame, per locale")
    items: list[Item] = Field(min_length=1, description="the questions, in display order")
    scoring: Scoring = Field(default_factory=Scoring, description="total, bands, parameters and flags")

    _local_text_dir: Path = PrivateAttr(default=local_text_dir(INSTRUMENTS_DIR))

    def item(self, item_id: str) -> Item:
        return next(item for item in self.items if item.id == item_id)

    def total_range(self) -> tuple[int, int] | None:
        """Lowest and highest possible total, or None if the instrument has no total."""
        if self.scoring.total is None:
            return None
        ranges = [r for item in self.items if (r := item.point_range()) is not None]
        return sum(low for low, _ in ranges), sum(high for _, high in ranges)

    def validate_answers(self, answers: Mapping[str, object]) -> dict[str, str]:
        """Item id -> short English message, for every answer the form must ask again; empty if all is well."""
        return self._read(answers)[1]

    def text_available(self, locale: str) -> bool:
        """Whether every question, option and label can be shown in this locale."""
        return locale in self.locales and not self.missing_text(locale)

    def missing_text(self, locale: str) -> list[str]:
        """Where text for this locale is missing, as paths in a local text file (items.q1.options.a, ...)."""
        return [path for _, path, text, _ in _text_slots(self) if locale not in text]

    def _read(self, answers: Mapping[str, object]) -> tuple[dict[str, Any], dict[str, str]]:
        values: dict[str, Any] = {}
        errors = {key: "not a question of this form" for key in answers if key not in {i.id for i in self.items}}
        for item in self.items:
            raw = answers.get(item.id)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                if item.required:
                    errors[item.id] = "please answer this question"
                continue
            try:
                values[item.id] = item.read(raw)
            except ValueError as error:
                errors[item.id] = str(error)
        return values, errors


class ScoreResult(BaseModel):
    """What scoring tells the workflow. No free text: it must never enter workflow history."""

    model_config = ConfigDict(frozen=True)

    instrument: str = Field(description="the instrument's id")
    version: int = Field(description="the instrument's version")
    total: int | None = Field(description="the sum of the scored items, if the instrument has a total")
    band: str | None = Field(description="id of the band the total falls in")
    band_label: str | None = Field(description="the band's label in the requested locale")
    flags: list[str] = Field(description="names of the flags raised, in the instrument's order")
    items: dict[str, bool | int | float | str] = Field(
        description="per answered item: the score of scored items, the value of scales, numbers and yes/no, the "
                    "option id of unscored choices; free text never")
    categories: dict[str, str] = Field(description="item id -> category id, for items with categories")


class AnswersInvalid(ValueError):
    """Answers that cannot be scored, with the message for each item."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{item}: {message}" for item, message in errors.items()))


def score(instrument: Instrument, answers: Mapping[str, object], *, locale: str | None = None,
          parameters: Mapping[str, Number] | None = None) -> ScoreResult:
    """Score a complete set of answers; raises AnswersInvalid if validate_answers finds anything.

    `parameters` overrides the instrument's named thresholds (a pathway's own cut-offs, say);
    `locale` chooses the band label's language (default: the instrument's first locale).
    """
    answered, errors = instrument._read(answers)
    if errors:
        raise AnswersInvalid(errors)
    unknown = sorted(set(parameters or {}) - set(instrument.scoring.parameters))
    if unknown:
        raise ValueError(f"unknown parameters for {instrument.id}: {', '.join(unknown)}")
    items = {item.id: value for item in instrument.items if item.id in answered
             and (value := item.value(answered[item.id])) is not None}
    total = None
    if instrument.scoring.total == "sum":
        total = sum(points for item in instrument.items
                    if item.id in answered and (points := item.points(answered[item.id])) is not None)
    band = next((b for b in instrument.scoring.bands if total is not None and b.min <= total <= b.max), None)
    names: dict[str, Any] = {name: p.value for name, p in instrument.scoring.parameters.items()}
    names.update(parameters or {})
    names.update(items)
    if total is not None:
        names["total"] = total
    # A flag whose condition names an unanswered item is not raised: missing is not abnormal.
    flags = [name for name, condition in instrument.scoring.flags.items()
             if expressions.names_in(condition) <= names.keys() and expressions.evaluate(condition, names) is True]
    categories = {item.id: category for item in instrument.items if item.id in answered
                  and (category := item.category(answered[item.id])) is not None}
    return ScoreResult(
        instrument=instrument.id, version=instrument.version, total=total,
        band=band.id if band else None,
        band_label=band.label.get(locale or instrument.locales[0]) if band else None,
        flags=flags, items=items, categories=categories,
    )


def missing_text_problem(instrument: Instrument, locale: str) -> str:
    """Why the instrument cannot be shown in `locale`, and exactly where its text must go; '' if it can."""
    if locale not in instrument.locales:
        return f"{instrument.id} is not offered in '{locale}'; its locales are {', '.join(instrument.locales)}"
    missing = instrument.missing_text(locale)
    if not missing:
        return ""
    path = instrument._local_text_dir / f"{instrument.id}.{locale}.yaml"
    template = TEXT_TEMPLATES_DIR / f"{instrument.id}.yaml"
    shape = (f"copy {template} and fill in every entry" if template.exists() else
             "YAML with `instructions:` and `items:` <item id>: {text:, options: {<option id>: label}} "
             "(scales: low_label, high_label)")
    more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
    why = ("its licence does not allow publishing it" if not instrument.licence.text_public else "it is incomplete")
    return (f"{instrument.id} has no {locale} wording here: {why} "
            f"({instrument.licence.terms.strip()}) Put the hospital's licensed {locale} text in {path}: {shape}. "
            f"Missing: {', '.join(missing[:6])}{more}.")


# --- loading ------------------------------------------------------------------------------------


def load_instrument(path: Path | str, local_dir: Path | str | None = None) -> Instrument:
    """Load and check one instrument file, merging licensed text from `local_dir`.

    `local_dir` defaults to pathways/local/instruments beside the instruments folder. Raises
    DocumentInvalid listing every problem, each with its file and line.
    """
    path = Path(path)
    document = load_document_file(path)
    if not isinstance(document.data, dict):
        raise DocumentInvalid([document.problem((), "an instrument must be a mapping of fields (id, title, items, ...)")])
    problems = []
    if isinstance(document.data.get("id"), str) and document.data["id"] != path.stem:
        problems.append(document.problem(("id",), f"the file must be named after the id: {document.data['id']}.yaml"))
    try:
        instrument = Instrument.model_validate(document.data)
    except ValidationError as error:
        # Cross-field rules need typed values (scores, ranges); they run once the schema holds.
        raise DocumentInvalid(problems + schema_problems(document, error, Instrument)) from None
    problems += [document.problem(location, message) for location, message in instrument_problems(instrument)]
    if problems:
        raise DocumentInvalid(problems)
    local_dir = Path(local_dir) if local_dir is not None else local_text_dir(path.parent)
    for text_file in sorted(local_dir.glob(f"{instrument.id}.*.yaml")):
        try:
            instrument = _with_local_text(instrument, text_file)
        except DocumentInvalid as error:
            problems += error.problems
    if problems:
        raise DocumentInvalid(problems)
    instrument._local_text_dir = local_dir
    return instrument


def load_instruments(directory: Path | str = INSTRUMENTS_DIR, local_dir: Path | str | None = None) -> dict[str, Instrument]:
    """Every <id>.yaml in `directory` by id, with local text merged; all problems of all files at once."""
    directory = Path(directory)
    local_dir = Path(local_dir) if local_dir is not None else local_text_dir(directory)
    instruments: dict[str, Instrument] = {}
    problems: list[Problem] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            instruments[path.stem] = load_instrument(path, local_dir)
        except DocumentInvalid as error:
            problems += error.problems
    for stray in sorted(local_dir.glob("*.yaml")):
        name = _LOCAL_NAME.match(stray.name)
        if name is None or not (directory / f"{name['id']}.yaml").exists():
            problems.append(Problem(str(stray), 1, 1, "", f"not the text of an instrument in {directory}: local text "
                                                          "files are named <instrument id>.<locale>.yaml"))
    if problems:
        raise DocumentInvalid(problems)
    return instruments


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


def _text_slots(instrument: Instrument) -> Iterator[tuple[Location, str, dict[str, str], bool]]:
    """Every piece of text: where it is in the instrument file, where in a local text file, its
    per-locale text, and whether it is the instrument's licensed wording (titles and our own band
    and category labels are always ours to publish)."""
    yield ("title",), "title", instrument.title, False
    yield ("instructions",), "instructions", instrument.instructions, True
    for index, item in enumerate(instrument.items):
        yield ("items", index, "text"), f"items.{item.id}.text", item.text, True
        if isinstance(item, SingleChoiceItem):
            for number, option in enumerate(item.options):
                yield (("items", index, "options", number, "label"), f"items.{item.id}.options.{option.id}",
                       option.label, True)
        if isinstance(item, ScaleItem):
            for part in ("low_label", "high_label"):
                yield ("items", index, part), f"items.{item.id}.{part}", getattr(item, part), True
            for number, category in enumerate(item.categories):
                yield (("items", index, "categories", number, "label"), f"items.{item.id}.categories.{category.id}",
                       category.label, False)
    for number, band in enumerate(instrument.scoring.bands):
        yield ("scoring", "bands", number, "label"), f"scoring.bands.{band.id}", band.label, False


def _text_problems(instrument: Instrument) -> Iterator[tuple[Location, str]]:
    public = instrument.licence.text_public
    for location, _, text, licensed in _text_slots(instrument):
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


# --- licensed text from pathways/local/ ---------------------------------------------------------


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


_LOCAL_NAME = re.compile(r"^(?P<id>[^.]+)\.(?P<locale>.+)\.yaml$")


def _with_local_text(instrument: Instrument, path: Path) -> Instrument:
    """The instrument with one local text file merged in; its text wins over anything shipped."""
    document = load_document_file(path)
    locale = _LOCAL_NAME.match(path.name)["locale"]
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


def _whole_number(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d{1,6}\s*", raw):
        return int(raw)
    return None
