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

import keyword
import math
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Discriminator, Field, PrivateAttr, Tag

from language.loader import Location
from language.model import LanguageModel, Locale, Slug

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

    # Where a hospital's licensed wording goes, and the file to copy for it: named in messages
    # about missing text. The loader that read the instrument knows; the language does not look.
    _text_files: tuple[str, str | None] = PrivateAttr(default=("pathways/local/instruments", None))

    def with_text_files(self, local_dir: str, template: str | None) -> Instrument:
        self._text_files = (local_dir, template)
        return self

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
        return [path for _, path, text, _ in text_slots(self) if locale not in text]

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




def text_slots(instrument: Instrument) -> Iterator[tuple[Location, str, dict[str, str], bool]]:
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
