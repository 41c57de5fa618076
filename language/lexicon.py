"""Safety nets every pathway gets: the crisis-language lexicon and its matching."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from pydantic import Field, ValidationError

from language.loader import DocumentInvalid, load_document
from language.model import LanguageModel, Locale
from language.schema_errors import schema_problems


class LexiconFile(LanguageModel):
    version: int = Field(ge=1, description="raise it when phrases change, for the audit trail")
    phrases: dict[Locale, list[str]] = Field(description="phrases per language; each is searched in every text")


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()


@dataclass(frozen=True)
class CrisisLexicon:
    version: int
    phrases: tuple[str, ...]

    def matches(self, text: str) -> list[str]:
        """The lexicon's phrases found in `text`; the text itself is never kept or logged."""
        normal = _normal(text)
        return [phrase for phrase in self.phrases if phrase in normal]


def parse_crisis_lexicon(text: str, file: str) -> CrisisLexicon:
    document = load_document(text, file)
    try:
        lexicon = LexiconFile.model_validate(document.data)
    except ValidationError as error:
        raise DocumentInvalid(schema_problems(document, error, LexiconFile)) from None
    phrases = tuple(dict.fromkeys(_normal(p) for texts in lexicon.phrases.values() for p in texts if p.strip()))
    return CrisisLexicon(lexicon.version, phrases)
