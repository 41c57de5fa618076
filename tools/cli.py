"""`carepath`: the command line for authors and operators."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Annotated

import typer
import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from language.loader import DocumentInvalid, Problem
from language.timing import parse_anchor
from services.identity import create_admin
from services.settings import SiteSettings, load_settings
from services.site import Site, SiteIncomplete, load_site
from store.db import create_engine, session_factory
from store.schema import (
    SchemaNotCurrent,
    current_revision,
    head_revision,
    migrate,
    require_current_schema,
)
from tools.migrate_cli import migrate_app

app = typer.Typer(help="carepath: care pathways as durable workflows.", no_args_is_help=True,
                  add_completion=False)

EXIT_INVALID = 1
EXIT_UNREADABLE = 2


def _parse_anchor(text: str) -> date | datetime:
    try:
        return parse_anchor(text)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


@cache
def _site() -> Site:
    """The pathways folder (CAREPATH_PATHWAYS_DIR) whose instruments and roster pathways are checked against."""
    folder = SiteSettings().PATHWAYS_DIR
    try:
        return load_site(folder)
    except SiteIncomplete as incomplete:
        typer.echo(str(incomplete), err=True)
    except DocumentInvalid as invalid:
        typer.echo(f"{folder}: the site's own files have problems:\n{invalid}", err=True)
    raise typer.Exit(EXIT_UNREADABLE)


def _load_or_exit(path: Path):
    try:
        return _site().load_pathway(path)
    except OSError as error:
        typer.echo(f"{path}: cannot read: {error.strerror or error}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None
    except DocumentInvalid as invalid:
        for problem in invalid.problems:
            typer.echo("\n".join([str(problem), *source_excerpt(problem)]), err=True)
        count = len(invalid.problems)
        typer.echo(f"{path}: {count} problem{'s' if count != 1 else ''}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


@app.command()
def validate(paths: Annotated[list[Path], typer.Argument(help="pathway YAML files")]) -> None:
    """Check pathway files; print every problem as file:line:col: field: message, its line and a caret."""
    worst = 0
    for path in paths:
        try:
            _load_or_exit(path)
            typer.echo(f"{path}: ok")
        except typer.Exit as failed:
            worst = max(worst, failed.exit_code)
        except Exception as error:  # noqa: BLE001 - a bug of ours must not look like the author's mistake, nor a traceback
            typer.echo(f"{path}: carepath could not check this file ({type(error).__name__}: {error}); "
                       "please report it", err=True)
            worst = max(worst, EXIT_UNREADABLE)
    raise typer.Exit(worst)


# YAML's line breaks (PyYAML counts these when it numbers lines), so excerpts match the numbers.
_YAML_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def source_excerpt(problem: Problem) -> list[str]:
    """The problem's source line and a caret under its column, as actionlint and rustc print them.

    Invisible characters are shown (a control character as its symbol, others as <U+XXXX>), and the
    caret allows for tabs and for wide CJK characters, so it stands under the right place in a terminal.
    """
    try:
        raw = Path(problem.file).read_bytes()
    except OSError:
        return []
    try:
        lines = _YAML_LINE_BREAK.split(raw.decode("utf-8"))
        line = lines[problem.line - 1] if 1 <= problem.line <= len(lines) else ""
        column = problem.column - 1
    except UnicodeDecodeError:  # the problem's column counts bytes: the file is not UTF-8
        lines_bytes = raw.split(b"\n")
        line_bytes = lines_bytes[problem.line - 1].rstrip(b"\r") if 1 <= problem.line <= len(lines_bytes) else b""
        line = line_bytes.decode("utf-8", "replace")
        column = len(line_bytes[:problem.column - 1].decode("utf-8", "replace"))
    if not line.strip():
        return []
    column = min(max(column, 0), len(line))
    # Underline the key the problem names (`at`, `times`); elsewhere a caret alone, never a guess.
    key = re.match(r"[\w-]*", line[column:]).group()
    named = problem.field.rsplit(".", 1)[-1].split("[", 1)[0]
    underline = "^" + "~" * (len(key) - 1) if key and key == named else "^"
    shown = "".join(_visible(character) for character in line)
    padding = "".join("\t" if character == "\t" else " " * _width(character) for character in line[:column])
    gutter = len(str(problem.line))
    return [f" {problem.line} | {shown}", f" {' ' * gutter} | {padding}{underline}"]


def _visible(character: str) -> str:
    if character == "\t" or character.isprintable():
        return character
    if ord(character) < 0x20:
        return chr(0x2400 + ord(character))  # the Unicode control picture, e.g. ␇ for U+0007
    return f"<U+{ord(character):04X}>"


def _width(character: str) -> int:
    """Terminal columns a character takes once shown by _visible."""
    if unicodedata.combining(character):
        return 0
    if unicodedata.east_asian_width(character) in ("W", "F"):
        return 2
    return len(_visible(character))


@app.command()
def simulate(
    path: Annotated[Path, typer.Argument(help="pathway YAML file")],
    anchor: Annotated[str, typer.Option(help="anchor date YYYY-MM-DD or date-time")],
    tz: Annotated[str | None, typer.Option("--tz", help="patient time zone (default: the pathway's)")] = None,
    locale: Annotated[str | None, typer.Option(help="patient locale (default: the pathway's first)")] = None,
    answers: Annotated[Path | None, typer.Option(
        help="YAML: {questionnaire step id: [{answers: {...}, after: 2h} | 'no answer', ...]} per occurrence")] = None,
    calls: Annotated[str | None, typer.Option(
        help="reached or not_reached (every call attempt, 1h after it opens), or a YAML file: "
             "{call step id: [not_reached, {outcome: reached, values: {systolic: 150}, after: 2h}, ...]} per attempt")
                     ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """Run one enrollment on the time-skipping Temporal server and print every message delivered.

    It runs until the enrollment ends, or until it waits for staff (a call with no scripted outcome):
    then it says what it waits for and exits 0."""
    from tools.driver import PlayFailed, Script, parse_answer_script, parse_call_script
    from tools.simulation import simulate as run_simulation

    pathway = _load_or_exit(path)
    script = Script()
    if answers is not None:
        script.answers = _read_script(answers, parse_answer_script)
    if calls in ("reached", "not_reached"):
        script.calls = parse_call_script(calls)
    elif calls is not None:
        script.calls = _read_script(Path(calls), parse_call_script)
    try:
        simulated = asyncio.run(run_simulation(pathway, _parse_anchor(anchor), timezone=tz, locale=locale,
                                               script=script, site=_site()))
    except PlayFailed as failed:
        typer.echo(f"{path}: {failed}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    timeline, delivered = simulated.timeline, simulated.delivered
    if as_json:
        json.dump([{"step": d.step, "occurrence": d.occurrence, "purpose": d.purpose, "due": d.due.isoformat(),
                    "channel": d.channel, "subject": d.subject} for d in delivered],
                  sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        for waiting in simulated.waiting_for:
            typer.echo(f"waiting for staff: {waiting}", err=True)
        return
    for d in delivered:
        typer.echo(f"{d.due:%Y-%m-%d %H:%M %Z}  {d.channel:<8} {f'{d.step}#{d.occurrence}':<28} "
                   f"{d.purpose:<11} {d.subject}")
    for entry in timeline.entries:
        if entry.kind == "questionnaire":
            typer.echo(f"{entry.step_id}#{entry.occurrence}: {_questionnaire_summary(entry)}")
        elif entry.kind == "call" and entry.status in ("reached", "not_reached"):
            typer.echo(f"{entry.key}: {entry.status.replace('_', ' ')} after {entry.attempts} attempt(s)")
    for happened in simulated.happened:
        if happened.kind != "staff":
            typer.echo(f"{happened.kind}: {happened.text}")
    for event in timeline.events:
        typer.echo(f"{event.kind}: {event.detail}")
    typer.echo(f"{len(delivered)} messages delivered; enrollment {timeline.status}"
               + (f" ({timeline.cancel_reason})" if timeline.cancel_reason else "")
               + (f"; tags: {', '.join(timeline.tags)}" if timeline.tags else ""))
    for waiting in simulated.waiting_for:
        typer.echo(f"waiting for staff: {waiting}")


def _read_script(path: Path, parse):
    """A scripted answers or calls file, or exit 2 saying what is wrong with it."""
    try:
        return parse(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValueError) as error:
        typer.echo(f"{path}: {getattr(error, 'strerror', None) or error}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None


def _questionnaire_summary(entry) -> str:
    if entry.response is None:
        return entry.status
    response = entry.response
    summary = f"answered: score {response.score:g}" if response.score is not None else "answered"
    summary += f", band {response.band}" if response.band else ""
    summary += f", flags {', '.join(response.flags)}" if response.flags else ""
    outcome = entry.outcome
    actions = [*(f"tag {t}" for t in outcome.tags), *(f"send {s}" for s in outcome.sent),
               *(f"escalate '{e}'" for e in outcome.escalations), *(["stop"] if outcome.stopped else [])]
    return summary + (f" -> {'; '.join(actions)}" if actions else " -> no rule matched")


@app.command()
def up(
    var_dir: Annotated[Path | None, typer.Option(envvar="CAREPATH_DEV_VAR_DIR",
                                                 help="state and mail [default: var/ in the project]")] = None,
    temporal_port: Annotated[int, typer.Option(envvar="CAREPATH_DEV_TEMPORAL_PORT", help="Temporal gRPC")] = 7233,
    temporal_ui_port: Annotated[int, typer.Option(envvar="CAREPATH_DEV_TEMPORAL_UI_PORT", help="Temporal web UI")] = 8233,
    smtp_port: Annotated[int, typer.Option(envvar="CAREPATH_DEV_SMTP_PORT", help="the SMTP sink")] = 1025,
    api_port: Annotated[int, typer.Option(envvar="CAREPATH_DEV_API_PORT", help="the HTTP API")] = 8000,
    postgres: Annotated[bool, typer.Option("--postgres", help="store in an embedded PostgreSQL (data in var/postgres) "
                                           "instead of SQLite")] = False,
) -> None:
    """Run Temporal, an SMTP sink, the worker and the API on this machine until Ctrl-C."""
    from services.settings import PROJECT_ROOT
    from tools.devstack import DevStack, Ports

    ports = Ports(temporal=temporal_port, temporal_ui=temporal_ui_port, smtp=smtp_port, api=api_port)
    raise typer.Exit(DevStack((var_dir or PROJECT_ROOT / "var").resolve(), ports, postgres=postgres).run())


# --- authoring tools: schema, preview, test --------------------------------------------------------

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "pathways" / "pathway.schema.json"


def pathway_schema_text() -> str:
    """The JSON Schema editors use while authors type (`# yaml-language-server: $schema=...`)."""
    from language.model import Pathway

    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              **Pathway.model_json_schema(mode="validation")}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


@app.command()
def schema(
    check: Annotated[bool, typer.Option("--check", help="only compare; exit 1 if the file is stale")] = False,
    output: Annotated[Path, typer.Option(help="where the schema goes")] = SCHEMA_FILE,
) -> None:
    """Write pathways/pathway.schema.json from the pathway models (run it after changing language/model.py)."""
    text = pathway_schema_text()
    try:
        current = output.read_text(encoding="utf-8")
    except OSError:
        current = None
    shown = _relative(output)
    if check:
        if current != text:
            typer.echo(f"{shown} is stale: run `carepath schema` and commit it", err=True)
            raise typer.Exit(EXIT_INVALID)
        typer.echo(f"{shown}: up to date")
        return
    if current == text:
        typer.echo(f"{shown}: up to date")
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"{shown}: written")


def _relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path



class PreviewFormat(str, Enum):
    text = "text"
    json = "json"
    html = "html"


@app.command()
def preview(
    path: Annotated[Path, typer.Argument(help="pathway YAML file")],
    anchor: Annotated[str, typer.Option(help="anchor date YYYY-MM-DD or date-time")],
    tz: Annotated[str | None, typer.Option("--tz", help="patient time zone (default: the pathway's)")] = None,
    output_format: Annotated[PreviewFormat, typer.Option("--format", help="text, json, or a self-contained html page")
                             ] = PreviewFormat.text,
    output: Annotated[Path | None, typer.Option(help="write to this file instead of the terminal")] = None,
) -> None:
    """Show every planned message, questionnaire window and reminder by day and local time, without running anything."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from language.preview import preview as plan_preview
    from language.preview import render

    pathway = _load_or_exit(path)
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise typer.BadParameter(f"'{tz}' is not an IANA time zone (e.g. Asia/Shanghai)", param_hint="--tz") from None
    text = render(plan_preview(pathway, _parse_anchor(anchor), tz), output_format.value)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        typer.echo(f"{output}: cannot write: {error.strerror or error}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None
    typer.echo(f"{output}: written")



@app.command("test")
def run_scenarios(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="scenario files (default: every pathways/tests/*.yaml)", show_default=False)] = None,
    update: Annotated[bool, typer.Option("--update", help="write what happened as the new golden files")] = False,
) -> None:
    """Run pathway scenarios on the time-skipping server; show a diff of dated events where they differ."""
    from tools import scenarios
    from tools.scenario_format import load_scenarios
    if not paths:
        paths = scenarios.default_paths(SiteSettings().PATHWAYS_DIR)
        if not paths:
            typer.echo("no scenario files in pathways/tests/")
            return
    worst, loaded_files = 0, []
    for path in paths:
        try:
            loaded_files.append(load_scenarios(path, _site()))
        except OSError as error:
            typer.echo(f"{path}: cannot read: {error.strerror or error}", err=True)
            worst = EXIT_UNREADABLE
        except DocumentInvalid as invalid:
            for problem in invalid.problems:
                typer.echo("\n".join([str(problem), *source_excerpt(problem)]), err=True)
            worst = max(worst, EXIT_INVALID)

    def report(loaded, result, diff: str) -> None:
        failed = bool(result.failures) or (bool(diff) and not update)
        typer.echo(f"  {'FAILED' if failed else 'ok':<7} {result.name}")
        for failure in result.failures:
            typer.echo(f"          {failure}")
        if diff and not update:
            typer.echo("".join(f"          {line}" for line in diff.splitlines(keepends=True)).rstrip("\n"))
            typer.echo("          (if this is intended: carepath test --update, and commit the golden file)")

    passed = failed = 0
    current: list[Path] = []

    def announce(loaded, result, diff: str) -> None:
        if current[-1:] != [loaded.path]:
            current.append(loaded.path)
            typer.echo(f"{_relative(loaded.path)} ({loaded.pathway.id} v{loaded.pathway.version})")
        report(loaded, result, diff)

    outcomes = asyncio.run(scenarios.run_files(loaded_files, on_result=announce)) if loaded_files else []
    for outcome in outcomes:
        for result in outcome.results:
            if result.failures or (outcome.diffs.get(result.name) and not update):
                failed += 1
            else:
                passed += 1
        if update:
            text = scenarios.golden_text(outcome.loaded, outcome.results)
            golden = outcome.loaded.golden
            if not golden.exists() or golden.read_text(encoding="utf-8") != text:
                golden.write_text(text, encoding="utf-8")
                changed = sum(1 for diff in outcome.diffs.values() if diff) + len(outcome.stale)
                typer.echo(f"wrote {_relative(golden)} ({changed} scenario{'s' if changed != 1 else ''} changed)")
        elif outcome.stale:
            failed += len(outcome.stale)
            for name in outcome.stale:
                typer.echo(f"  FAILED  {outcome.loaded.golden.name} has '{name}', which is no longer a scenario "
                           "(carepath test --update removes it)")
    typer.echo(f"{passed + failed} scenarios: {passed} passed, {failed} failed")
    raise typer.Exit(max(worst, EXIT_INVALID if failed else 0))


db = typer.Typer(help="the schema of the database CAREPATH_DATABASE_URL names", no_args_is_help=True)
app.add_typer(db, name="db")


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the schema to what this code needs: once per release, before the API and the worker start."""
    settings = load_settings()
    url = settings.DATABASE_URL
    with _database_errors(url):
        migrate(url, phone_region=settings.DEFAULT_PHONE_REGION)
        typer.echo(f"database schema is at {asyncio.run(_current_revision(url))} (head)")


@db.command("current")
def db_current() -> None:
    """Say which migration the schema is at; exit 1 unless it is the one this code needs."""
    url = load_settings().DATABASE_URL
    with _database_errors(url):
        current = asyncio.run(_current_revision(url))
    if current != head_revision():
        typer.echo(str(SchemaNotCurrent.between(current, head_revision())), err=True)
        raise typer.Exit(EXIT_INVALID)
    typer.echo(f"database schema is at {current} (head)")


async def _current_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


@contextmanager
def _database_errors(url: str) -> Iterator[None]:
    """A database that cannot be reached, or refuses a migration, as one line naming it (password hidden)."""
    try:
        yield
    except (DBAPIError, OSError) as error:
        cause = getattr(error, "orig", None) or error
        typer.echo(f"database {make_url(url).render_as_string(hide_password=True)}: {cause}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None

app.add_typer(migrate_app, name="migrate")

users = typer.Typer(help="staff accounts on the database CAREPATH_DATABASE_URL names", no_args_is_help=True)
app.add_typer(users, name="users")


@users.command("create-admin")
def create_admin_account(
    email: Annotated[str, typer.Option(help="what the administrator signs in with")],
    name: Annotated[str, typer.Option(help="shown in the audit")] = "Administrator",
) -> None:
    """Create an administrator and print a one-time password, once (for production: `carepath up` makes one)."""
    settings = load_settings()
    try:
        password = asyncio.run(_create_admin(settings.DATABASE_URL, email, name))
    except SchemaNotCurrent as refused:
        typer.echo(str(refused), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except IntegrityError:
        typer.echo(f"an account with the email {email.strip().lower()} exists; reset its password through "
                   "POST /staff/{id}/reset-password instead", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    typer.echo(f"administrator {email.strip().lower()} created; one-time password (shown only now, change it "
               f"with POST /auth/password):\n{password}")


async def _create_admin(database_url: str, email: str, name: str) -> str:
    engine = create_engine(database_url)
    try:
        # Migrating is `carepath db upgrade`'s alone (compose runs it once), never a side effect of this.
        await require_current_schema(engine)
        async with session_factory(engine)() as session:
            return await create_admin(session, email, name)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    app()
