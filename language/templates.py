"""Message templates: one sandboxed Jinja2 environment for checking and for rendering.

Authors' templates are untrusted text; the sandbox stops them reaching Python internals, and
StrictUndefined turns a misspelt variable into an error instead of an empty gap in a message.
A message needs names, conditions and a few text filters, nothing that multiplies: no calls (so no
`range`), no loops, no `*`, `**` or `%`, and only filters that cannot grow text. So a template
that validates renders in time and size proportional to its source; rendering applies the same
check (a snapshot deployed before it may not have had it) and caps the output.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

# What every message template may use; rendering supplies exactly these.
TEMPLATE_VARIABLES = {
    "patient": "patient.first_name",
    "pathway": "pathway.title, pathway.id",
    "step": "step.id, step.occurrence",
}


MAXIMUM_SOURCE = 20_000
MAXIMUM_OUTPUT = 64 * 1024
# Filters that keep text as long as it is, or shorten it.
SAFE_FILTERS = frozenset({"upper", "lower", "title", "capitalize", "trim", "default", "d", "truncate", "string"})
_MULTIPLYING = (nodes.Call, nodes.For, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.Mul, nodes.Pow,
                nodes.Mod, nodes.FloorDiv, nodes.Div)


class TemplateRefused(ValueError):
    """A template that could take unbounded time or memory to render, or rendered too long a message."""


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    sandbox = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    sandbox.globals.clear()  # range, lipsum, cycler, dict...: nothing a message needs
    return sandbox


def bound_problems(parsed: nodes.Template) -> list[str]:
    """What in a parsed template could multiply work or text."""
    problems = []
    for node in parsed.find_all(_MULTIPLYING):
        problems.append(f"'{_ACTIONS[type(node)]}' is not allowed in a message (it could make the message "
                        f"arbitrarily long or slow); write the text out instead")
    for node in parsed.find_all(nodes.Filter):
        if node.name not in SAFE_FILTERS:
            problems.append(f"filter '{node.name}' is not allowed in a message; these are: "
                            f"{', '.join(sorted(SAFE_FILTERS))}")
    return sorted(set(problems))


_ACTIONS = {nodes.Call: "a call", nodes.For: "a for loop", nodes.Macro: "a macro", nodes.CallBlock: "a call block",
            nodes.FilterBlock: "a filter block", nodes.Mul: "*", nodes.Pow: "**", nodes.Mod: "%",
            nodes.FloorDiv: "//", nodes.Div: "/"}


def template_problems(source: str, extra_variables: Mapping[str, str] | None = None) -> list[str]:
    """Why a template cannot be used, or nothing if it can. `extra_variables`: what this kind of
    step supplies besides TEMPLATE_VARIABLES (a questionnaire's form link)."""
    variables = {**TEMPLATE_VARIABLES, **(extra_variables or {})}
    if len(source) > MAXIMUM_SOURCE:
        return [f"a template of {len(source)} characters is too long for a message; at most {MAXIMUM_SOURCE}"]
    try:
        parsed = environment().parse(source)
    except TemplateSyntaxError as error:
        return [f"template error on its line {error.lineno}: {error.message}"]
    # Before anything compiles it: Jinja's compiler folds constants, and `9 ** 3999999` is one.
    bounds = bound_problems(parsed)
    if bounds:
        return bounds
    unknown = sorted(meta.find_undeclared_variables(parsed) - variables.keys())
    allowed = "; ".join(variables.values())
    return [f"unknown template variable '{name}'; available: {allowed}" for name in unknown]


def variables_in(source: str) -> set[str]:
    """The variables a template uses (none for one that does not parse or is refused: nothing compiles it)."""
    try:
        parsed = environment().parse(source)
    except TemplateSyntaxError:
        return set()
    return set() if bound_problems(parsed) else meta.find_undeclared_variables(parsed)


def render(source: str, context: dict) -> str:
    """The message, or TemplateRefused: for a template the checks refuse, or output past MAXIMUM_OUTPUT."""
    rendered, length = [], 0
    for chunk in _compiled(source).generate(context):
        length += len(chunk)
        if length > MAXIMUM_OUTPUT:
            raise TemplateRefused(f"the message would be longer than {MAXIMUM_OUTPUT} characters")
        rendered.append(chunk)
    return "".join(rendered)


@lru_cache(maxsize=512)
def _compiled(source: str):
    # Compiling is most of a render's cost and a pathway has few templates: keep them compiled.
    if len(source) > MAXIMUM_SOURCE:
        raise TemplateRefused(f"a template of {len(source)} characters is too long for a message")
    problems = bound_problems(environment().parse(source))
    if problems:
        raise TemplateRefused("; ".join(problems))
    return environment().from_string(source)
