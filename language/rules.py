"""What a response or a call outcome triggers: a pure function of the rules and the values they see.

Deciding needs no clock, no I/O and no Temporal; the workflow applies a Decision (tags, sends,
calls, escalations, stop) at its own time, so the rules are tested as plain functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from language.expressions import evaluate
from language.model import CRISIS_POLICY_NAME, Actions, Escalate, Parameter, Rule

CRISIS_REASON = "Crisis language or a self-harm answer: assess suicide risk now"
CRISIS_ACTIONS = Actions(escalate=Escalate(reason=CRISIS_REASON, policy=CRISIS_POLICY_NAME, priority="urgent"))


@dataclass(frozen=True)
class Match:
    """Actions to take, and what triggered them in the words the timeline shows."""

    trigger: str
    actions: Actions


@dataclass(frozen=True)
class Decision:
    """Every match, in the order the author wrote the rules, and every rule that could not decide."""

    matches: tuple[Match, ...] = ()
    errors: tuple[str, ...] = ()

    @classmethod
    def always(cls, actions: Actions, trigger: str) -> Decision:
        """A block with no condition (on_expire, on_not_reached): its event is the trigger."""
        return cls(matches=(Match(trigger, actions),))

    def routes_to_crisis(self) -> bool:
        return any(m.actions.escalate is not None and m.actions.escalate.policy == CRISIS_POLICY_NAME
                   for m in self.matches)


def decide(rules: Sequence[Rule], names: Mapping[str, Any]) -> Decision:
    """Every rule whose `when` holds; all see the same names, so a tag added here counts from the next event."""
    matches, errors = [], []
    for number, rule in enumerate(rules, start=1):
        try:
            matched = bool(evaluate(rule.when, names))
        except Exception as error:  # a rule over an unanswered optional item (None >= 7) cannot decide
            errors.append(f"rule {number} ({rule.when}) not evaluated: {error}")
            continue
        if matched:
            matches.append(Match(f"rule {number}: {rule.when}", rule))
    return Decision(matches=tuple(matches), errors=tuple(errors))


def safety_net(decision: Decision, *, crisis_words: bool, flags: Iterable[str]) -> Decision:
    """The crisis route every pathway has: crisis words or a self-harm flag escalate urgently, once.

    Nothing more when the author's own rules already sent this response down the crisis route.
    """
    if decision.routes_to_crisis() or not (crisis_words or "self_harm" in flags):
        return Decision()
    return Decision.always(CRISIS_ACTIONS, "crisis language in free text" if crisis_words else "self-harm flag")


def parameter_names(parameters: Mapping[str, Parameter]) -> dict[str, Any]:
    return {name: parameter.value for name, parameter in parameters.items()}


def response_names(parameters: Mapping[str, Parameter], *, score: float | None, band: str | None,
                   flags: Iterable[str], items: Mapping[str, Any], tags: Iterable[str]) -> dict[str, Any]:
    """What questionnaire rules see: parameters, item values, then score, band, flags and tags so far."""
    return {**parameter_names(parameters), **items, "score": score, "band": band, "flags": list(flags),
            "tags": list(tags)}


def measured_names(parameters: Mapping[str, Parameter], values: Mapping[str, Any],
                   tags: Iterable[str]) -> dict[str, Any]:
    """What call rules see: parameters, the values staff measured, and the tags so far."""
    return {**parameter_names(parameters), **values, "tags": list(tags)}
