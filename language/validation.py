"""Turning YAML text into a validated Pathway, or into every problem it has, each with its place."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Collection, Mapping
from datetime import timedelta

from pydantic import ValidationError

from language import timing
from language.channel_checks import channel_problems
from language.events import event_problems
from language.holidays import HolidayCalendar
from language.instruments.checks import missing_text_problem
from language.instruments.model import Instrument
from language.loader import (
    DocumentInvalid,
    LoadedDocument,
    Location,
    Problem,
    load_document,
)
from language.messages import MessageTemplate
from language.model import (
    CRISIS_POLICY_NAME,
    FOLLOWABLE_STATES,
    LINK_PLACEHOLDERS,
    Actions,
    AppointmentStep,
    CallStep,
    MessageStep,
    Pathway,
    QuestionnaireStep,
    Rule,
)
from language.reach import step_channels
from language.rule_checks import RuleScope, rule_problems
from language.schema_errors import schema_problems
from language.templates import template_problems, variables_in
from language.timing import BIRTHDAY


def parse_pathway(text: str, file: str, instruments: Mapping[str, Instrument], teams: Collection[str],
                  calendars: Mapping[str, HolidayCalendar] | None = None) -> Pathway:
    """Validate a pathway document; raise DocumentInvalid listing every problem found.

    Like a compiler: first the shape of every field, then, on the typed pathway, what refers to what.
    `instruments` are those questionnaire and call steps may use, `teams` those escalations and calls may name,
    `calendars` the holiday calendars `at: holiday ...` may name.
    """
    document, pathway = _shaped(text, file)
    problems = (reference_problems(pathway, instruments) + escalation_problems(pathway, set(teams))
                + occasion_problems(pathway, calendars or {}) + event_problems(pathway, tags_set_by(pathway)))
    if problems:
        raise DocumentInvalid([document.problem(location, message) for location, message in problems])
    return pathway


def replaces_problems(text: str, file: str, pathway: Pathway, earlier: Collection[Pathway]) -> list[Problem]:
    """`replaces` against the earlier versions deployed: a renamed step names an id one of them has, or
    it would silently take over nothing. With no earlier version there is nothing to migrate from."""
    known = {step.id for version in earlier for step in version.steps}
    they_have = ", ".join(sorted(known))
    found = [(("steps", index, "replaces"),
              f"no earlier version of {pathway.id} has a step '{step.replaces}' (they have: {they_have})")
             for index, step in enumerate(pathway.steps) if earlier and step.replaces and step.replaces not in known]
    if not found:
        return []
    document = load_document(text, file)
    return [document.problem(location, message) for location, message in found]


def read_deployed(text: str, file: str) -> Pathway:
    """A deployed version read back: only its shape is checked. It passed every check when it was
    deployed, and enrollments on it keep running even if today's checks (or teams) would refuse it."""
    return _shaped(text, file)[1]


def _shaped(text: str, file: str) -> tuple[LoadedDocument, Pathway]:
    document = load_document(text, file)
    if not isinstance(document.data, dict):
        raise DocumentInvalid([document.problem((), "a pathway must be a mapping of fields (id, title, steps, ...)")])
    try:
        return document, Pathway.model_validate(document.data)
    except ValidationError as error:
        raise DocumentInvalid(schema_problems(document, error, Pathway)) from None


PathwayStep = MessageStep | QuestionnaireStep | CallStep | AppointmentStep


def escalation_problems(pathway: Pathway, teams: Collection[str]) -> list[tuple[Location, str]]:
    """Every escalation names a declared policy, every tier and call a known team, every `call:` a call step."""
    problems: list[tuple[Location, str]] = []
    known_teams = sorted(teams)

    def team_problem(where: Location, team: str) -> None:
        if team not in teams:
            hint = difflib.get_close_matches(team, known_teams, n=1)
            problems.append((where, f"unknown team '{team}'; " + (f"did you mean '{hint[0]}'?" if hint else
                             f"teams: {', '.join(known_teams)} (pathways/site/teams.yaml or the /teams API)")))

    for name, policy in pathway.escalation_policies.items():
        for number, tier in enumerate(policy.tiers):
            team_problem(("escalation_policies", name, "tiers", number, "notify"), tier.notify)
            if number < len(policy.tiers) - 1 and tier.ack_within is None:
                problems.append((("escalation_policies", name, "tiers", number),
                                 "every tier but the last needs ack_within, or the next tier is never told"))
            if number < len(policy.tiers) - 1 and tier.repeat is not None:
                problems.append((("escalation_policies", name, "tiers", number, "repeat"),
                                 "only the last tier may repeat (the others pass on after ack_within); "
                                 "move `repeat:` to the last tier"))
            if tier.repeat is not None and tier.repeat <= timedelta(0):
                problems.append((("escalation_policies", name, "tiers", number, "repeat"),
                                 "the time between pages must be longer than zero"))
    call_steps = {step.id for step in pathway.steps if isinstance(step, CallStep)}
    if pathway.reach is not None:
        problems += _reach_problems(pathway, call_steps)
    for index, step in enumerate(pathway.steps):
        if isinstance(step, CallStep):
            team_problem(("steps", index, "team"), step.team)
    for place, actions in every_action(pathway):
        escalate = actions.escalate
        if escalate is not None and any(mark in escalate.reason for mark in "\r\n"):
            problems.append(((*place, "escalate", "reason"),
                             "write the reason on one line: it becomes the subject of the team's email, and a "
                             "YAML `>` or `|` block keeps a line break (quote it, or fold it with `>-`)"))
        if escalate is not None and escalate.policy not in pathway.escalation_policies \
                and escalate.policy != CRISIS_POLICY_NAME:
            declared = ", ".join(pathway.escalation_policies) or "none"
            where = (*place, "escalate", "policy") if "policy" in escalate.model_fields_set else (*place, "escalate")
            problems.append((where, f"no escalation policy '{escalate.policy}' in escalation_policies "
                                    f"(declared: {declared})"))
        problems += [((*place, "call"), f"'{target}' is not a call step of this pathway")
                     for target in actions.call if target not in call_steps]
    return problems


def _reach_problems(pathway: Pathway, call_steps: set[str]) -> list[tuple[Location, str]]:
    reach = pathway.reach
    problems: list[tuple[Location, str]] = [
        (("reach", "channels", locale), f"'{locale}' is not one of the pathway's locales ({', '.join(pathway.locales)})")
        for locale in reach.channels if locale not in pathway.locales]
    if reach.call is not None and reach.call not in call_steps:
        problems.append((("reach", "call"), f"'{reach.call}' is not a call step of this pathway"))
    return problems


def _replaces_problems(index: int, step: PathwayStep, counts: Counter, replaced: Counter) -> list[tuple[Location, str]]:
    """`replaces` names what a renamed step was called in an earlier version: never a step of this one."""
    if step.replaces is None:
        return []
    where = ("steps", index, "replaces")
    if step.replaces in counts:
        return [(where, f"'{step.replaces}' is a step of this version; `replaces` names the id a renamed step had "
                        "in an earlier version")]
    if replaced[step.replaces] > 1:
        return [(where, f"'{step.replaces}' is replaced by {replaced[step.replaces]} steps; only one step may take "
                        "over an earlier step's occurrences")]
    return []


def actions_of(where: Location, step: PathwayStep) -> list[tuple[Location, Actions]]:
    """Every set of actions a step can take (its rules, then on_expire, on_not_reached or on_missed), with its place."""
    found: list[tuple[Location, Actions | None]] = [((*where, "on", number), rule)
                                                    for number, rule in enumerate(getattr(step, "on", []))]
    found += [((*where, key), getattr(step, key, None)) for key in ("on_expire", "on_not_reached", "on_missed")]
    return [(place, actions) for place, actions in found if actions is not None]


def reference_problems(pathway: Pathway, instruments: Mapping[str, Instrument]) -> list[tuple[Location, str]]:
    """Rules across fields that a schema cannot express, each with the field path it concerns."""
    problems: list[tuple[Location, str]] = after_problems(pathway)
    counts = Counter(step.id for step in pathway.steps)
    replaced = Counter(step.replaces for step in pathway.steps if step.replaces)
    for index, step in enumerate(pathway.steps):
        if counts[step.id] > 1:
            problems.append((("steps", index, "id"), f"step id '{step.id}' is used by {counts[step.id]} steps; "
                                                     "ids must be unique"))
        problems += _timing_problems(index, step)
        problems += _replaces_problems(index, step, counts, replaced)
        for field in ("template", "reminder_template"):
            if (templates := getattr(step, field, None)) is not None:
                problems += _templates_problems(("steps", index, field), templates, pathway.locales, step.kind)
                problems += channel_problems(("steps", index, field), templates, step_channels(pathway, step),
                                             _KIND_VARIABLES.get(step.kind, {}), pathway, step.id)
        if isinstance(step, (QuestionnaireStep, CallStep)):
            problems += _rules_problems(index, step, pathway, instruments)
        if isinstance(step, AppointmentStep):
            problems += _appointment_problems(index, step, pathway)
        if isinstance(step, QuestionnaireStep):
            problems += [(("steps", index, "remind", number),
                          f"a reminder {timing.format_duration(reminder)} after opening would come after the "
                          f"questionnaire expires ({timing.format_duration(step.expire)})")
                         for number, reminder in enumerate(step.remind) if reminder >= step.expire]
    return problems


def _appointment_problems(index: int, step: AppointmentStep, pathway: Pathway) -> list[tuple[Location, str]]:
    """The link's placeholders are ids carepath knows, reminders come before the visit, `send:` names messages."""
    where: Location = ("steps", index)
    problems: list[tuple[Location, str]] = []
    try:
        step.link.format_map({name: "x" for name in LINK_PLACEHOLDERS})
    except (KeyError, ValueError, IndexError) as error:
        problems.append(((*where, "link"), f"the link may use {', '.join('{' + n + '}' for n in LINK_PLACEHOLDERS)} "
                                           f"and nothing else in braces (found: {error})"))
    problems += [((*where, "remind", number), "a reminder comes some time before the visit: longer than zero")
                 for number, before in enumerate(step.remind) if before <= timedelta(0)]
    if step.record_within <= timedelta(0):
        problems.append(((*where, "record_within"), "staff need some time after the visit to record it: "
                                                    "longer than zero"))
    messages = {other.id for other in pathway.steps if isinstance(other, MessageStep)}
    if step.on_missed is not None:
        problems += [((*where, "on_missed", "send"), f"'{target}' is not a message step of this pathway")
                     for target in step.on_missed.send if target not in messages]
    return problems


def occasion_problems(pathway: Pathway, calendars: Mapping[str, HolidayCalendar]) -> list[tuple[Location, str]]:
    """`at: holiday <calendar>/<holiday>` names a holiday of a site calendar; birthdays and holidays do not repeat."""
    problems: list[tuple[Location, str]] = []
    for index, step in enumerate(pathway.steps):
        if step.at is None or not step.at.occasion:
            continue
        where: Location = ("steps", index, "at")
        if step.repeat is not None:
            problems.append((("steps", index, "repeat"), "a birthday or holiday step comes on each such day of the "
                                                         "enrollment by itself; leave out `repeat`"))
        if step.at.occasion == BIRTHDAY:
            continue
        calendar_id, holiday = step.at.occasion.removeprefix("holiday ").split("/")
        calendar = calendars.get(calendar_id)
        if calendar is None:
            problems.append((where, f"no holiday calendar '{calendar_id}' (calendars: "
                                    f"{', '.join(sorted(calendars)) or 'none'}; pathways/site/holidays/<id>.yaml)"))
        elif holiday not in calendar.holidays:
            hint = difflib.get_close_matches(holiday, sorted(calendar.holidays), n=1)
            problems.append((where, f"holiday calendar '{calendar_id}' has no '{holiday}'; " + (
                f"did you mean '{hint[0]}'?" if hint else f"it has: {', '.join(sorted(calendar.holidays))}")))
    return problems


def after_problems(pathway: Pathway) -> list[tuple[Location, str]]:
    """`after` follows one state of an existing step that a touchpoint of its kind can reach, instead of
    `at`, once per occurrence (no repeat), and no chain of `after` comes back to where it started."""
    problems: list[tuple[Location, str]] = []
    kinds = {step.id: step.kind for step in pathway.steps}
    for index, step in enumerate(pathway.steps):
        where: Location = ("steps", index)
        if step.after is None:
            if isinstance(step, QuestionnaireStep) and step.at is None:
                problems.append((where, "a questionnaire needs `at` (when it opens) or `after` (the step it follows)"))
            continue
        if step.at is not None:
            problems.append(((*where, "at"), "write `at` or `after`, not both: a step follows the anchor or another step"))
        if step.repeat is not None:
            problems.append(((*where, "repeat"), ("a step written `after` another comes once for each occurrence of "
                                                  "that step reaching the state; leave out `repeat`")))
        states = list(step.after.states)
        if len(states) != 1:
            problems.append(((*where, "after"), ("name one state with its delay, e.g. answered: 2d "
                                                 f"(found {', '.join(states) or 'none'})")))
        source = kinds.get(step.after.step)
        if source is None:
            hint = difflib.get_close_matches(step.after.step, sorted(kinds), n=1)
            problems.append(((*where, "after", "step"), f"no step '{step.after.step}' in this pathway"
                             + (f"; did you mean '{hint[0]}'?" if hint else "")))
        elif len(states) == 1 and states[0] not in FOLLOWABLE_STATES[source]:
            problems.append(((*where, "after", states[0]), (f"'{step.after.step}' is a {source} step: it can be "
                             f"followed once {' or '.join(FOLLOWABLE_STATES[source])}, never {states[0]}")))
    return problems + _after_cycle_problems(pathway)


def _after_cycle_problems(pathway: Pathway) -> list[tuple[Location, str]]:
    """A step that (through others) follows itself never comes: each waits for the one before it."""
    follows = {step.id: step.after.step for step in pathway.steps if step.after is not None}
    problems = []
    for index, step in enumerate(pathway.steps):
        chain, current = [step.id], follows.get(step.id)
        while current is not None and current not in chain:
            chain.append(current)
            current = follows.get(current)
        if current == step.id:
            problems.append((("steps", index, "after", "step"), ("these steps wait for each other and none would "
                             f"ever come: {' -> '.join([*chain, step.id])}")))
    return problems


def _rules_problems(index: int, step: QuestionnaireStep | CallStep, pathway: Pathway,
                    instruments: Mapping[str, Instrument]) -> list[tuple[Location, str]]:
    """The instrument exists and speaks every locale; rules name what it gives; `send:` names message steps."""
    where: Location = ("steps", index)
    problems: list[tuple[Location, str]] = []
    instrument = instruments.get(step.instrument) if step.instrument is not None else None
    if step.instrument is not None and instrument is None:
        hint = difflib.get_close_matches(step.instrument, sorted(instruments), n=1)
        problems.append(((*where, "instrument"), f"unknown instrument '{step.instrument}'; " + (
            f"did you mean '{hint[0]}'?" if hint else f"available: {', '.join(sorted(instruments))}")))
    if instrument is not None:
        problems += [((*where, "instrument"), missing) for locale in pathway.locales
                     if (missing := missing_text_problem(instrument, locale))]
    scope = RuleScope(kind=step.kind, instrument=instrument, tags=tags_set_by(pathway),
                      parameters={name: parameter.value for name, parameter in pathway.parameters.items()})
    message_steps = {other.id for other in pathway.steps if isinstance(other, MessageStep)}
    for place, actions in actions_of(where, step):
        if isinstance(actions, Rule) and (instrument is not None or step.instrument is None):
            problems += [((*place, "when"), message) for message in rule_problems(actions.when, scope)]
        problems += [((*place, "send"), f"'{target}' is not a message step of this pathway")
                     for target in actions.send if target not in message_steps]
    return problems


def every_action(pathway: Pathway) -> list[tuple[Location, Actions]]:
    """The actions of every step, then those of every on_event rule, each with its place."""
    return [*(found for index, step in enumerate(pathway.steps) for found in actions_of(("steps", index), step)),
            *((("on_event", number), rule) for number, rule in enumerate(pathway.on_event))]


def tags_set_by(pathway: Pathway) -> frozenset[str]:
    """Every tag some rule, on_expire, on_not_reached or on_event rule of the pathway can set."""
    return frozenset(tag for _, actions in every_action(pathway) for tag in actions.tag)


# What a template may use beyond templates.TEMPLATE_VARIABLES, by step kind: delivery supplies it.
_KIND_VARIABLES = {"questionnaire": {"link": "link (the questionnaire's web form)"},
                   "appointment": {"link": "link (the booking or video service)",
                                   "visit": "visit (the visit's local date and time)"}}
# Of those, what the message cannot do without: the way to the form, or to the visit.
_REQUIRED_VARIABLES = {"link"}
_LINK_LEADS_TO = {"questionnaire": "the form", "appointment": "the booking or video service"}


def _templates_problems(where: Location, templates: Mapping[str, MessageTemplate], locales: list[str],
                        kind: str) -> list[tuple[Location, str]]:
    """One template per declared locale, each renderable with what delivery supplies for this kind of step."""
    problems = [(where, f"no template for locale '{locale}', which the pathway declares")
                for locale in locales if locale not in templates]
    extra = _KIND_VARIABLES.get(kind, {})
    for locale, template in templates.items():
        if locale not in locales:
            problems.append(((*where, locale), f"locale '{locale}' is not among the pathway's locales ({', '.join(locales)})"))
        used: set[str] = set()
        for part in ("subject", "body"):
            source = getattr(template, part)
            problems += [((*where, locale, part), message) for message in template_problems(source, extra)]
            used |= variables_in(source)
        problems += [((*where, locale), f"the message must contain {{{{ {name} }}}}, "
                                        f"or the patient has no way to reach {_LINK_LEADS_TO[kind]}")
                     for name in (extra.keys() & _REQUIRED_VARIABLES) - used]
    return problems


def _timing_problems(index: int, step: PathwayStep) -> list[tuple[Location, str]]:
    """A repeat must move forward in time, and the last occurrence must stay within the calendar."""
    if step.repeat is not None and step.repeat.every <= timedelta(0):
        return [(("steps", index, "repeat", "every"), "the time between occurrences must be longer than zero")]
    if step.at is None:
        return []
    spread = getattr(step, "spread", None)
    if spread is not None and spread <= timedelta(0):
        return [(("steps", index, "spread"), "the spread must be longer than zero (e.g. 30m), or left out")]
    if spread is not None and step.repeat is not None and spread >= step.repeat.every:
        return [(("steps", index, "spread"), f"the spread ({timing.format_duration(spread)}) must be shorter than "
                                             f"the time between occurrences ({timing.format_duration(step.repeat.every)})")]
    first = step.at
    # Whole seconds in Python ints: `times` may be absurd, and timedelta arithmetic would overflow.
    clock = first.clock.hour * 3600 + first.clock.minute * 60 if first.clock is not None else 0
    last = first.days * 86_400 + clock + int(first.offset.total_seconds())
    where: Location = ("steps", index, "at")
    if step.repeat is not None:
        last, where = last + int(step.repeat.every.total_seconds()) * (step.repeat.times - 1), ("steps", index, "repeat")
    if last // 86_400 > timing.MAX_DAYS:
        return [(where, f"the last occurrence would fall on day {last // 86_400}; "
                        f"a pathway may span at most {timing.MAX_DAYS} days")]
    return []
