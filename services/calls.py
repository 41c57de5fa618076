"""What staff measured on a call, read by the call step's form (its instrument).

The worklist API and the scenario driver both record call outcomes; both read the values here, so a
value the form does not have is refused the same way everywhere: under another name it would
silently never meet the rule written for it. All of them are recorded on the task; the workflow is
given only those the call step's rules compare (`values_for_rules`), as its Update stays in history.
"""

from __future__ import annotations

from collections.abc import Mapping

from language.instruments.model import Instrument
from language.instruments.scoring import score
from language.model import Pathway
from language.reads import values_read


class CallValuesInvalid(ValueError):
    """Values the call step's form cannot take; `errors` maps each value's name to what is wrong."""

    def __init__(self, message: str, errors: Mapping[str, str] | None = None):
        self.message, self.errors = message, dict(errors or {})
        super().__init__(message + "".join(f"; {name}: {why}" for name, why in self.errors.items()))


def read_call_values(pathway: Pathway, step_id: str, values: Mapping[str, object],
                     instruments: Mapping[str, Instrument]) -> dict:
    """The values as the call step's form reads them (numbers as numbers, yes/no as booleans)."""
    if not values:
        return {}
    form = pathway.step(step_id).instrument
    if form is None:
        raise CallValuesInvalid(f"call step {step_id} has no form to record values on; put what was said in notes")
    errors = instruments[form].validate_answers(values)
    if errors:
        raise CallValuesInvalid(f"some values do not fit the {form} form", errors)
    return dict(score(instruments[form], values).items)


def values_for_rules(pathway: Pathway, step_id: str, values: Mapping[str, object]) -> dict:
    """Of the values read (`read_call_values`), those the call step's rules compare: what goes into the
    workflow's CallOutcome. The rest stay with the task in the database."""
    return values_read(pathway, step_id, values)
