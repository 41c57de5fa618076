"""The worklist and what staff do from it: escalations (acknowledge, resolve, hand over) and call
tasks (the script, and the outcome form). Every action is the JSON route's own function."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.console.pages import PREFIX, form_body, instrument_items, page
from api.deps import RegistryDep, ServicesDep, SessionDep, TemporalDep
from api.paging import MAXIMUM_PAGE, Page
from api.routes import escalations, tasks, worklist
from api.routes.teams import teams_to_show
from api.schemas import CallOutcomeBody, ReassignBody, ResolveBody
from api.security import Access, allow
from services.accounts import names_of
from services.overdue import acknowledgement_due
from services.patients import patient_names
from services.principals import Role
from services.registry import PathwayRegistry
from store.db import Enrollment, TeamRecord

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Clinician = Annotated[Access, Depends(allow(Role.CLINICIAN))]
WHOLE_LIST = Page(MAXIMUM_PAGE, 0)
# How often an open worklist asks for news: an urgent escalation shows within this, well inside 5 s.
POLL_SECONDS = 2


@router.get("/worklist", response_class=HTMLResponse)
async def worklist_page(request: Request, session: SessionDep, registry: RegistryDep,
                        access: Clinician) -> HTMLResponse:
    return await _worklist(request, session, registry, access, "worklist.html")


@router.get("/worklist/items", response_class=HTMLResponse)
async def worklist_items(request: Request, session: SessionDep, registry: RegistryDep, access: Clinician,
                         seen: str | None = None) -> Response:
    """What the open page asks every POLL_SECONDS (htmx): 204 while the list is as `seen` (nothing read,
    nothing to audit, so an open console does not fill the access log), else the list, read and audited."""
    if seen is not None and seen == await _fingerprint(session, access):
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return await _worklist(request, session, registry, access, "worklist_items.html")


async def _worklist(request: Request, session: AsyncSession, registry: PathwayRegistry, access: Access,
                    template: str) -> HTMLResponse:
    fingerprint = await _fingerprint(session, access)
    items = await worklist.read_worklist(session, access, WHOLE_LIST, None, None, None)
    # A call is due at its time; an escalation when its current tier's acknowledgement is.
    due = {item.id: item.due for item in items if item.kind == "call"} | await acknowledgement_due(
        session, registry, [item.id for item in items if item.kind == "escalation"])
    return await page(request, template, access, section="worklist", items=items, poll=POLL_SECONDS,
                      fingerprint=fingerprint, due=due,
                      patients=await patient_names(session, {item.enrollment_id for item in items}))


async def _fingerprint(session: AsyncSession, access: Access) -> str:
    """Which items are open, and in what state, as one opaque digest: ids and statuses only, never shown."""
    teams = await teams_to_show(session, access, None)
    items = await worklist._escalations(session, teams, None, None) + await worklist._call_tasks(session, teams)
    state = sorted(f"{item.kind}:{item.id}:{item.status}:{item.team}:{item.tier}" for item in items)
    return hashlib.sha256("\n".join(state).encode()).hexdigest()[:32]


@router.get("/escalations/{escalation_id}", response_class=HTMLResponse)
async def escalation_page(escalation_id: str, request: Request, session: SessionDep, temporal: TemporalDep,
                          access: Clinician, message: str | None = None) -> HTMLResponse:
    detail = await escalations.read_escalation(escalation_id, session, temporal, access)
    return await _escalation(request, session, access, detail, message)


@router.post("/escalations/{escalation_id}/acknowledge", response_class=RedirectResponse)
async def acknowledge(escalation_id: str, session: SessionDep, temporal: TemporalDep,
                      access: Clinician) -> RedirectResponse:
    await escalations.acknowledge_escalation(escalation_id, session, temporal, access)
    return _back_to_escalation(escalation_id)


@router.post("/escalations/{escalation_id}/resolve", response_class=RedirectResponse)
async def resolve(escalation_id: str, outcome: Annotated[str, Form()], session: SessionDep, temporal: TemporalDep,
                  access: Clinician) -> RedirectResponse:
    await escalations.resolve_escalation(escalation_id, form_body(ResolveBody, outcome=outcome), session, temporal, access)
    return _back_to_escalation(escalation_id)


@router.post("/escalations/{escalation_id}/reassign", response_class=RedirectResponse)
async def reassign(escalation_id: str, to_team: Annotated[str, Form()], session: SessionDep, temporal: TemporalDep,
                   access: Clinician) -> RedirectResponse:
    await escalations.reassign_escalation(escalation_id, form_body(ReassignBody, to_team=to_team), session, temporal,
                                          access)
    return _back_to_escalation(escalation_id)


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(task_id: str, request: Request, session: SessionDep, services: ServicesDep,
                    access: Clinician) -> HTMLResponse:
    task = await tasks.read_task(task_id, session, access)
    return await _task(request, session, services, access, task)


@router.post("/tasks/{task_id}/outcome", response_class=HTMLResponse)
async def record_outcome(task_id: str, request: Request, session: SessionDep, temporal: TemporalDep,
                         services: ServicesDep, access: Clinician) -> HTMLResponse:
    """The outcome form: `outcome`, `notes`, and `value.<name>` for each measured value filled in."""
    form = await request.form()
    values = {key.removeprefix("value."): str(value).strip() for key, value in form.items()
              if key.startswith("value.") and str(value).strip()}
    notes = str(form.get("notes", "")).strip() or None
    body = form_body(CallOutcomeBody, outcome=form.get("outcome"), notes=notes, values=values)
    recorded = await tasks.record_task_outcome(task_id, body, session, temporal, services, access)
    return await _task(request, session, services, access, recorded.task, rules=recorded.rules)


def _back_to_escalation(escalation_id: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/escalations/{escalation_id}", status.HTTP_303_SEE_OTHER)


async def _escalation(request: Request, session: AsyncSession, access: Access, detail,
                      message: str | None) -> HTMLResponse:
    names = await names_of(session, {line.actor for line in detail.audit}
                           | {detail.acknowledged_by, detail.resolved_by} - {None})
    teams = list(await session.scalars(select(TeamRecord.id).order_by(TeamRecord.id)))
    return await page(request, "escalation.html", access, section="worklist", escalation=detail, names=names,
                      teams=teams, message=message)


async def _task(request: Request, session: AsyncSession, services, access: Access, task, rules=None) -> HTMLResponse:
    enrollment = await session.get(Enrollment, task.enrollment_id)
    deployed = await services.registry.get(enrollment.pathway_id, enrollment.pathway_version)
    form_id = deployed.pathway.step(task.step_id).instrument
    items = await instrument_items(request, services, access, services.instruments[form_id]) if form_id else []
    names = await names_of(session, {task.recorded_by} - {None})
    return await page(request, "task.html", access, section="worklist", task=task, items=items, rules=rules,
                      names=names)
