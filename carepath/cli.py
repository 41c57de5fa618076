"""`carepath`: the command line for authors and operators."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
import yaml

from pathways.loader import DocumentInvalid
from pathways.validation import load_pathway_file

app = typer.Typer(help="carepath: care pathways as durable workflows.", no_args_is_help=True,
                  add_completion=False)

EXIT_INVALID = 1
EXIT_UNREADABLE = 2


def _parse_anchor(text: str) -> date | datetime:
    try:
        return datetime.fromisoformat(text) if "T" in text or " " in text else date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM[+08:00])") from None


def _load_or_exit(path: Path):
    try:
        return load_pathway_file(path)
    except OSError as error:
        typer.echo(f"{path}: cannot read: {error.strerror or error}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None
    except DocumentInvalid as invalid:
        for problem in invalid.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(EXIT_INVALID) from None


@app.command()
def validate(paths: Annotated[list[Path], typer.Argument(help="pathway YAML files")]) -> None:
    """Check pathway files and print every problem as file:line:col: field: message."""
    worst = 0
    for path in paths:
        try:
            _load_or_exit(path)
            typer.echo(f"{path}: ok")
        except typer.Exit as failed:
            worst = max(worst, failed.exit_code)
    raise typer.Exit(worst)


@app.command()
def simulate(
    path: Annotated[Path, typer.Argument(help="pathway YAML file")],
    anchor: Annotated[str, typer.Option(help="anchor date YYYY-MM-DD or date-time")],
    tz: Annotated[str | None, typer.Option("--tz", help="patient time zone (default: the pathway's)")] = None,
    locale: Annotated[str | None, typer.Option(help="patient locale (default: the pathway's first)")] = None,
    answers: Annotated[Path | None, typer.Option(
        help="YAML: {questionnaire step id: [{answers: {...}, after: 2h} | 'no answer', ...]} per occurrence")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """Run one enrollment on the time-skipping Temporal server and print every message delivered."""
    from carepath.simulation import parse_answer_script
    from carepath.simulation import simulate as run_simulation

    pathway = _load_or_exit(path)
    script = None
    if answers is not None:
        try:
            script = parse_answer_script(yaml.safe_load(answers.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError, ValueError) as error:
            typer.echo(f"{answers}: {error}", err=True)
            raise typer.Exit(EXIT_UNREADABLE) from None
    timeline, delivered = asyncio.run(run_simulation(pathway, _parse_anchor(anchor), timezone=tz, locale=locale,
                                                     script=script))
    if as_json:
        json.dump([{"step": d.step, "occurrence": d.occurrence, "purpose": d.purpose, "due": d.due.isoformat(),
                    "channel": d.channel, "subject": d.subject} for d in delivered],
                  sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return
    for d in delivered:
        typer.echo(f"{d.due:%Y-%m-%d %H:%M %Z}  {d.channel:<8} {f'{d.step}#{d.occurrence}':<28} "
                   f"{d.purpose:<11} {d.subject}")
    for entry in timeline.entries:
        if entry.kind == "questionnaire":
            typer.echo(f"{entry.step_id}#{entry.occurrence}: {_questionnaire_summary(entry)}")
    for event in timeline.events:
        typer.echo(f"{event.kind}: {event.detail}")
    typer.echo(f"{len(delivered)} messages delivered; enrollment {timeline.status}"
               + (f" ({timeline.cancel_reason})" if timeline.cancel_reason else "")
               + (f"; tags: {', '.join(timeline.tags)}" if timeline.tags else ""))


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
) -> None:
    """Run Temporal, an SMTP sink, the worker and the API on this machine until Ctrl-C."""
    from carepath.devstack import DevStack, Ports
    from carepath.settings import PROJECT_ROOT

    ports = Ports(temporal=temporal_port, temporal_ui=temporal_ui_port, smtp=smtp_port, api=api_port)
    raise typer.Exit(DevStack((var_dir or PROJECT_ROOT / "var").resolve(), ports).run())


if __name__ == "__main__":
    app()
