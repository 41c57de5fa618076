"""The worklist and what staff do from it: escalations (acknowledge, resolve, hand over) and call
tasks (the script, and the outcome form). Every action is the JSON route's own function."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.console.pages import PREFIX, form_body, instrument_items, page
from api.deps import ServicesDep, SessionDep, TemporalDep
from api.paging import MAXIMUM_PAGE, Page
from api.routes import escalations, tasks, worklist
from api.schemas import CallOutcomeBody, ReassignBody, ResolveBody
from api.security import Access, allow
from services.accounts import names_of
from services.principals import Role
from store.db import Enrollment, TeamRecord

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Clinician = Annotated[Access, Depends(allow(Role.CLINICIAN))]
WHOLE_LIST = Page(MAXIMUM_PAGE, 0)
# How often an open worklist asks for news: an urgent escalation shows within this, well inside 5 s.
POLL_SECONDS = 2


@router.get("/worklist", response_class=HTMLResponse)
async def worklist_page(request: Request, session: SessionDep, access: Clinician) -> HTMLResponse:
    items = await worklist.read_worklist(session, access, WHOLE_LIST, None, None, None)
    return await page(request, "worklist.html", access, section="worklist", items=items, poll=POLL_SECONDS)


@router.get("/worklist/items", response_class=HTMLResponse)
async def worklist_items(request: Request, session: SessionDep, access: Clinician) -> HTMLResponse:
    """The list alone, which the open page fetches every POLL_SECONDS (htmx); read and audited like the page."""
    items = await worklist.read_worklist(session, access, WHOLE_LIST, None, None, None)
    return await page(request, "worklist_items.html", access, items=items)


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
