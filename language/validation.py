"""Turning YAML text into a validated Pathway, or into every problem it has, each with its place."""

from __future__ import annotations

import difflib
from collections import Counter
from datetime import timedelta
from collections.abc import Collection, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, meta
from pydantic import ValidationError

from language import timing
from language.expressions import RESPONSE_NAMES, expression_problems
from language.instruments.checks import missing_text_problem
from language.instruments.model import Instrument
from language.model import CRISIS_POLICY_NAME, Pathway
from language.loader import DocumentInvalid, Location, load_document
from language.schema_errors import schema_problems
from language.templates import environment, template_problems


def parse_pathway(text: str, file: str, instruments: Mapping[str, Instrument], teams: Collection[str]) -> Pathway:
    """Validate a pathway document; raise DocumentInvalid listing every problem found.

    `instruments` are those questionnaire steps may use, `teams` those escalations and calls may name.
    """
    document = load_document(text, file)
    if not isinstance(document.data, dict):
        raise DocumentInvalid([document.problem((), "a pathway must be a mapping of fields (id, title, steps, ...)")])
    problems = [document.problem(location, message)
                for location, message in reference_problems(document.data, instruments)
                + escalation_problems(document.data, set(teams))]
    try:
        pathway = Pathway.model_validate(document.data)
    except ValidationError as error:
        problems += schema_problems(document, error, Pathway)
    if problems:
        raise DocumentInvalid(problems)
    return pathway


def escalation_problems(data: dict, teams: Collection[str]) -> list[tuple[Location, str]]:
    """Every escalation names a declared policy, every tier and call a known team, every `call:` a call step."""
    problems: list[tuple[Location, str]] = []
    policies = _mapping(data.get("escalation_policies"))
    known_teams = sorted(teams)

    def team_problem(where: Location, team: Any) -> None:
        if isinstance(team, str) and team not in teams:
            hint = difflib.get_close_matches(team, known_teams, n=1)
            problems.append((where, f"unknown team '{team}'; " + (f"did you mean '{hint[0]}'?" if hint else
                             f"teams: {', '.join(known_teams)} (pathways/site/teams.yaml or the /teams API)")))

    for name, policy in policies.items():
        tiers = _list(policy.get("tiers")) if isinstance(policy, dict) else []
        for number, tier in enumerate(tiers):
            if not isinstance(tier, dict):
                continue
            team_problem(("escalation_policies", name, "tiers", number, "notify"), tier.get("notify"))
            if number < len(tiers) - 1 and tier.get("ack_within") is None:
                problems.append((("escalation_policies", name, "tiers", number),
                                 "every tier but the last needs ack_within, or the next tier is never told"))
    steps = [(index, step) for index, step in enumerate(_list(data.get("steps"))) if isinstance(step, dict)]
    call_steps = {step.get("id") for _, step in steps if step.get("kind") == "call"}
    for index, step in steps:
        if step.get("kind") == "call":
            team_problem(("steps", index, "team"), step.get("team"))
        for place, actions in _actions_of(("steps", index), step):
            escalate = actions.get("escalate")
            if isinstance(escalate, dict):
                policy = escalate.get("policy", "default")
                if isinstance(policy, str) and policy not in policies and policy != CRISIS_POLICY_NAME:
                    declared = ", ".join(policies) or "none"
                    problems.append(((*place, "escalate", "policy") if "policy" in escalate else (*place, "escalate"),
                                     f"no escalation policy '{policy}' in escalation_policies (declared: {declared})"))
            targets = actions.get("call")
            for target in [targets] if isinstance(targets, str) else _list(targets):
                if isinstance(target, str) and target not in call_steps:
                    problems.append(((*place, "call"), f"'{target}' is not a call step of this pathway"))
    return problems


def _actions_of(where: Location, step: dict) -> list[tuple[Location, dict]]:
    found = [((*where, "on", number), rule) for number, rule in enumerate(_list(step.get("on")))]
    found += [((*where, key), step[key]) for key in ("on_expire", "on_not_reached") if key in step]
    return [(place, actions) for place, actions in found if isinstance(actions, dict)]


def reference_problems(data: dict, instruments: Mapping[str, Instrument]) -> list[tuple[Location, str]]:
    """Rules across fields that a schema cannot express, each with the field path it concerns.

    They read the raw document, not the model, so that they are reported together with schema
    errors elsewhere in the file: an author fixes everything in one pass.
    """
    problems: list[tuple[Location, str]] = []
    locales = [locale for locale in _list(data.get("locales")) if isinstance(locale, str)]
    steps = [(index, step) for index, step in enumerate(_list(data.get("steps"))) if isinstance(step, dict)]
    counts = Counter(step["id"] for _, step in steps if isinstance(step.get("id"), str))
    for index, step in steps:
        if isinstance(step.get("id"), str) and counts[step["id"]] > 1:
            problems.append((("steps", index, "id"),
                             f"step id '{step['id']}' is used by {counts[step['id']]} steps; ids must be unique"))
        problems += _timing_problems(index, step)
        for field in ("template", "reminder_template"):
            problems += _templates_problems(("steps", index, field), step.get(field), locales, step.get("kind"))
        if step.get("kind") == "questionnaire":
            problems += _questionnaire_problems(index, step, data, instruments)
    return problems


def _questionnaire_problems(index: int, step: dict, data: dict,
                            instruments: Mapping[str, Instrument]) -> list[tuple[Location, str]]:
    """The instrument exists and speaks every locale; rules name real things; reminders come before expiry."""
    where: Location = ("steps", index)
    problems: list[tuple[Location, str]] = []
    instrument = instruments.get(step.get("instrument")) if isinstance(step.get("instrument"), str) else None
    if isinstance(step.get("instrument"), str) and instrument is None:
        hint = difflib.get_close_matches(step["instrument"], sorted(instruments), n=1)
        problems.append(((*where, "instrument"), f"unknown instrument '{step['instrument']}'; " + (
            f"did you mean '{hint[0]}'?" if hint else f"available: {', '.join(sorted(instruments))}")))
    if instrument is not None:
        for locale in _list(data.get("locales")):
            if isinstance(locale, str) and (missing := missing_text_problem(instrument, locale)):
                problems.append(((*where, "instrument"), missing))
    names = set(RESPONSE_NAMES) | set(_mapping(data.get("parameters")))
    if instrument is not None:
        names |= {item.id for item in instrument.items if item.kind != "free_text"}
    message_steps = {s.get("id") for s in _list(data.get("steps")) if isinstance(s, dict) and s.get("kind") == "message"}
    for place, rule in _actions_of(where, step):
        if isinstance(rule.get("when"), str) and (instrument is not None or step.get("instrument") is None):
            problems += [((*place, "when"), message) for message in expression_problems(rule["when"], names)]
        targets = rule.get("send")
        for target in [targets] if isinstance(targets, str) else _list(targets):
            if isinstance(target, str) and target not in message_steps:
                problems.append(((*place, "send"), f"'{target}' is not a message step of this pathway"))
    try:
        expire = timing.parse_duration(step["expire"]) if "expire" in step else None
        reminders = [timing.parse_duration(r) for r in _list(step.get("remind"))]
    except ValueError:
        return problems  # the schema reports it
    for number, reminder in enumerate(reminders):
        if expire is not None and reminder >= expire:
            problems.append(((*where, "remind", number), f"a reminder {timing.format_duration(reminder)} after opening "
                             f"would come after the questionnaire expires ({timing.format_duration(expire)})"))
    return problems


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


# What a template may use beyond templates.TEMPLATE_VARIABLES, by step kind: delivery supplies it.
_KIND_VARIABLES = {"questionnaire": {"link": "link (the questionnaire's web form)"}}


def _templates_problems(where: Location, templates: Any, locales: list[str], kind: Any) -> list[tuple[Location, str]]:
    """One template per declared locale, each renderable with what delivery supplies for this kind of step."""
    if not isinstance(templates, dict):
        return []
    problems = [(where, f"no template for locale '{locale}', which the pathway declares")
                for locale in locales if locale not in templates]
    extra = _KIND_VARIABLES.get(kind, {}) if isinstance(kind, str) else {}
    for locale, template in templates.items():
        if locales and locale not in locales:
            problems.append(((*where, locale), f"locale '{locale}' is not among the pathway's locales ({', '.join(locales)})"))
        if not isinstance(template, dict):
            continue
        used: set[str] = set()
        for part, source in template.items():
            if part in ("subject", "body") and isinstance(source, str):
                problems += [((*where, locale, part), message) for message in template_problems(source, extra)]
                used |= _variables_in(source)
        for name in extra.keys() - used:
            if any(isinstance(template.get(part), str) for part in ("subject", "body")):
                problems.append(((*where, locale), f"the message must contain {{{{ {name} }}}}, "
                                                   "or the patient has no way to reach the form"))
    return problems


def _variables_in(source: str) -> set[str]:
    try:
        return meta.find_undeclared_variables(environment().parse(source))
    except TemplateSyntaxError:
        return set()


def _timing_problems(index: int, step: dict) -> list[tuple[Location, str]]:
    """A repeat must move forward in time, and the last occurrence must stay within the calendar."""
    try:
        first = timing.parse_timing(step["at"]) if isinstance(step.get("at"), str) else None
    except ValueError:
        first = None  # the schema reports it
    repeat = step.get("repeat") if isinstance(step.get("repeat"), dict) else {}
    try:
        every = timing.parse_duration(repeat["every"]) if "every" in repeat else None
    except ValueError:
        every = None
    if every is not None and every <= timedelta(0):
        return [(("steps", index, "repeat", "every"), "the time between occurrences must be longer than zero")]
    if first is None:
        return []
    # Whole seconds in Python ints: `times` may be absurd, and timedelta arithmetic would overflow.
    clock = first.clock.hour * 3600 + first.clock.minute * 60 if first.clock is not None else 0
    last = first.days * 86_400 + clock + int(first.offset.total_seconds())
    times, where = repeat.get("times"), ("steps", index, "at")
    if every is not None and isinstance(times, int) and not isinstance(times, bool) and times >= 2:
        last, where = last + int(every.total_seconds()) * (times - 1), ("steps", index, "repeat")
    if last // 86_400 > timing.MAX_DAYS:
        return [(where, f"the last occurrence would fall on day {last // 86_400}; "
                        f"a pathway may span at most {timing.MAX_DAYS} days")]
    return []


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []
