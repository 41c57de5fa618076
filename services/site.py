"""A site's folder of what clinical managers write, read from disk and parsed by the language.

The folder (`pathways/`, or CAREPATH_PATHWAYS_DIR) holds the pathway files at its top and, beside
them, everything the pathways refer to:

    instruments/<id>.yaml               questionnaires (text-templates/ shows where licensed text goes)
    local/instruments/<id>.<locale>.yaml  a hospital's licensed wording (git-ignored)
    site/teams.yaml                     the team roster that seeds the database (optional)
    site/holidays/<id>.yaml             holiday calendars for `at: holiday <id>/<holiday> HH:MM` (optional)
    safety/crisis-lexicon.yaml          the crisis words every free-text answer is screened for

The language never touches a file: this module reads them and hands it text.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from language.holidays import HolidayCalendar, parse_calendar
from language.instruments.checks import parse_instrument
from language.instruments.local_text import with_local_text
from language.instruments.model import Instrument
from language.lexicon import CrisisLexicon, parse_crisis_lexicon
from language.loader import DocumentInvalid, LoadedDocument, Problem, decode_source, load_document
from language.model import Pathway
from language.teams import Team, parse_roster
from language.validation import parse_pathway

INSTRUMENTS = Path("instruments")
TEXT_TEMPLATES = INSTRUMENTS / "text-templates"
LOCAL_TEXT = Path("local") / "instruments"
ROSTER = Path("site") / "teams.yaml"
HOLIDAYS = Path("site") / "holidays"
LEXICON = Path("safety") / "crisis-lexicon.yaml"
REQUIRED = (INSTRUMENTS, LEXICON)  # the roster may be left out: teams can come from the API alone

_LOCAL_NAME = re.compile(r"^(?P<id>[^.]+)\.(?P<locale>.+)\.yaml$")


class SiteIncomplete(Exception):
    """A pathways folder lacks what every site needs; the message names each missing file."""


def read_source(path: Path | str) -> str:
    """A file's text; OSError if it cannot be read, DocumentInvalid (with the place) if it is not UTF-8."""
    return decode_source(Path(path).read_bytes(), str(path))


def load_document_file(path: Path | str) -> LoadedDocument:
    return load_document(read_source(path), str(path))


def load_pathway_file(path: Path | str, instruments: Mapping[str, Instrument], teams: Collection[str],
                      calendars: Mapping[str, HolidayCalendar] | None = None) -> Pathway:
    return parse_pathway(read_source(path), str(path), instruments, teams, calendars)


def load_calendars(directory: Path | str) -> dict[str, HolidayCalendar]:
    """Every <id>.yaml holiday calendar in `directory` by id (none if there is no such folder); all problems at once."""
    calendars: dict[str, HolidayCalendar] = {}
    problems: list[Problem] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            calendars[path.stem] = parse_calendar(read_source(path), str(path), expected_id=path.stem)
        except DocumentInvalid as error:
            problems += error.problems
    if problems:
        raise DocumentInvalid(problems)
    return calendars


def local_text_dir(instruments_dir: Path | str) -> Path:
    """Where licensed text for the instruments in `instruments_dir` lives: <site>/local/instruments."""
    return Path(instruments_dir).parent / LOCAL_TEXT


def load_instrument(path: Path | str, local_dir: Path | str | None = None) -> Instrument:
    """Load and check one instrument file, merging licensed text from `local_dir`.

    `local_dir` defaults to local/instruments beside the instruments folder. Raises
    DocumentInvalid listing every problem, each with its file and line.
    """
    path = Path(path)
    instrument = parse_instrument(read_source(path), str(path), expected_id=path.stem)
    local_dir = Path(local_dir) if local_dir is not None else local_text_dir(path.parent)
    problems: list[Problem] = []
    for text_file in sorted(local_dir.glob(f"{instrument.id}.*.yaml")):
        try:
            instrument = with_local_text(instrument, read_source(text_file), str(text_file),
                                         _LOCAL_NAME.match(text_file.name)["locale"])
        except DocumentInvalid as error:
            problems += error.problems
    if problems:
        raise DocumentInvalid(problems)
    template = path.parent / TEXT_TEMPLATES.name / f"{instrument.id}.yaml"
    return instrument.with_text_files(str(local_dir), str(template) if template.exists() else None)


def load_instruments(directory: Path | str, local_dir: Path | str | None = None) -> dict[str, Instrument]:
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


def load_teams(path: Path | str) -> dict[str, Team]:
    return parse_roster(read_source(path), str(path))


def load_crisis_lexicon(path: Path | str) -> CrisisLexicon:
    return parse_crisis_lexicon(read_source(path), str(path))


@dataclass(frozen=True)
class Site:
    """What a site's pathways refer to, loaded and checked; the roster is read where it is used
    (the API seeds the database from it and keeps going if it is broken; the CLI checks against it)."""

    folder: Path
    instruments: dict[str, Instrument]
    lexicon: CrisisLexicon
    calendars: dict[str, HolidayCalendar]

    @property
    def roster(self) -> Path:
        return self.folder / ROSTER

    def teams(self) -> dict[str, Team]:
        return load_teams(self.roster) if self.roster.exists() else {}

    def load_pathway(self, path: Path | str) -> Pathway:
        """A pathway file checked against this site's instruments and roster file (the CLI's view;
        the API checks teams against the database, where teams can also be added)."""
        return load_pathway_file(path, self.instruments, self.teams(), self.calendars)


def load_site(folder: Path | str) -> Site:
    """Read a pathways folder; SiteIncomplete names what is missing, DocumentInvalid what is wrong."""
    folder = Path(folder)
    missing = [str(folder / part) for part in REQUIRED if not (folder / part).exists()]
    if missing:
        raise SiteIncomplete(
            f"{folder} is not a complete pathways folder: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing. A site's folder holds its pathways and, beside them, "
            f"{INSTRUMENTS}/ and {LEXICON} (and usually {ROSTER}); copy them from carepath's own pathways/ and "
            "adapt them.")
    return Site(folder, load_instruments(folder / INSTRUMENTS), load_crisis_lexicon(folder / LEXICON),
                load_calendars(folder / HOLIDAYS))
