"""Message templates: one sandboxed Jinja2 environment for checking and for rendering.

Authors' templates are untrusted text; the sandbox stops them reaching Python internals, and
StrictUndefined turns a misspelt variable into an error instead of an empty gap in a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

# What every message template may use; rendering supplies exactly these.
TEMPLATE_VARIABLES = {
    "patient": "patient.first_name",
    "pathway": "pathway.title, pathway.id",
    "step": "step.id, step.occurrence",
}


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def template_problems(source: str, extra_variables: Mapping[str, str] | None = None) -> list[str]:
    """Why a template cannot be used, or nothing if it can. `extra_variables`: what this kind of
    step supplies besides TEMPLATE_VARIABLES (a questionnaire's form link)."""
    variables = {**TEMPLATE_VARIABLES, **(extra_variables or {})}
    try:
        parsed = environment().parse(source)
    except TemplateSyntaxError as error:
        return [f"template error on its line {error.lineno}: {error.message}"]
    unknown = sorted(meta.find_undeclared_variables(parsed) - variables.keys())
    allowed = "; ".join(variables.values())
    return [f"unknown template variable '{name}'; available: {allowed}" for name in unknown]


def render(source: str, context: dict) -> str:
    return _compiled(source).render(context)


@lru_cache(maxsize=512)
def _compiled(source: str):
    # Compiling is most of a render's cost and a pathway has few templates: keep them compiled.
    return environment().from_string(source)
