"""The site's teams: who escalations and call tasks go to, and how each team is told.

`pathways/site/teams.yaml` is the roster pathways are checked against; the API loads it into the
database at start, where staff members are added to teams.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, model_validator

from language.loader import DocumentInvalid, load_document
from language.model import CallStep, LanguageModel, Pathway, Slug
from language.schema_errors import schema_problems



class Team(LanguageModel):
    """A team that can be notified. Notifications to a shared channel never carry answers' free text."""

    id: Slug = Field(description="what pathways name in `notify:` and `team:`", examples=["midwives"])
    name: str = Field(min_length=1, description="shown to staff", examples=["Community midwives"])
    email: str | None = Field(default=None, description="the team's shared mailbox", examples=["midwives@hospital.example"])
    webhook: str | None = Field(default=None, description="a pager or IM bridge that takes a JSON POST",
                                examples=["https://pager.hospital.example/hooks/carepath"])

    @model_validator(mode="after")
    def _reachable(self) -> "Team":
        if not self.email and not self.webhook:
            raise ValueError(f"team '{self.id}' needs an email or a webhook, or nobody is ever told")
        return self


class Roster(LanguageModel):
    teams: list[Team] = Field(min_length=1, description="every team of the site")


def parse_roster(text: str, file: str) -> dict[str, Team]:
    """The teams of a roster document by id; DocumentInvalid lists every problem at its line."""
    document = load_document(text, file)
    try:
        roster = Roster.model_validate(document.data)
    except ValidationError as error:
        raise DocumentInvalid(schema_problems(document, error, Roster)) from None
    teams: dict[str, Team] = {}
    for index, team in enumerate(roster.teams):
        if team.id in teams:
            raise DocumentInvalid([document.problem(("teams", index, "id"), f"team '{team.id}' is listed twice")])
        teams[team.id] = team
    return teams


def teams_named(pathway: Pathway) -> set[str]:
    """The teams a pathway puts work to: every escalation tier's and every call step's."""
    return ({tier.notify for policy in pathway.escalation_policies.values() for tier in policy.tiers}
            | {step.team for step in pathway.steps if isinstance(step, CallStep)})


def webhook_problem(url: str, allowed_hosts: Collection[str], require_https: bool) -> str | None:
    """Why carepath must not POST an escalation to `url`, or None. Only hosts the operator listed
    (`*.hospital.example` for a domain's hosts): a webhook is where a patient's escalation goes, and an
    address such as http://169.254.169.254/ would reach the machine's own secrets."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError as malformed:  # an unclosed "[" of an IPv6 host, a port that is not a number
        return f"webhook {url!r} is not a valid address ({malformed})"
    if parts.scheme not in ("https", "http") or not host:
        return f"webhook {url!r} is not an http(s) address"
    if require_https and parts.scheme != "https":
        return f"webhook {url!r} must use https"
    if not any(host == allowed.lower() or (allowed.startswith("*.") and host.endswith(allowed[1:].lower()))
               for allowed in allowed_hosts):
        listed = ", ".join(allowed_hosts) or "none yet"
        return f"webhook host {host!r} is not allowed; allowed hosts (CAREPATH_WEBHOOK_ALLOWED_HOSTS): {listed}"
    return None
