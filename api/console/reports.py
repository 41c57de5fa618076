"""The reports page: the tables of GET /reports for the filter in its form, each with its CSV download,
and the cohort chart. The figures come from the same function as the JSON and CSV routes."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import get_type_hints

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from api.console.cohort_chart import cohort_charts
from api.console.pages import PREFIX, locale_of, page
from api.console.pathways import Staff
from api.deps import RegistryDep, ServicesDep, SessionDep
from api.routes.reports import ReportQueryDep, read_figures, row_type
from services.reports import OVERSEERS, TABLES
from store.db import TeamRecord

router = APIRouter(prefix=f"{PREFIX}/reports", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
async def reports_page(request: Request, asked: ReportQueryDep, services: ServicesDep, registry: RegistryDep,
                       session: SessionDep, access: Staff) -> HTMLResponse:
    """Figures per pathway, team and period."""
    figures = await read_figures(services, session, registry, access, asked)
    teams = list(await session.scalars(select(TeamRecord.id).order_by(TeamRecord.id)))
    if not access.principal.has_any(OVERSEERS):
        teams = [team for team in teams if team in access.principal.teams]
    return await page(
        request, "reports.html", access, section="reports", tables=TABLES, query=asked.query_string(), asked=asked,
        rows={name: [asdict(row) for row in getattr(figures, name)] for name in TABLES},
        columns={name: [field.name for field in fields(row_type(name))] for name in TABLES},
        numeric={name for table in TABLES for name, hint in get_type_hints(row_type(table)).items() if hint is not str},
        teams=teams, pathways=[deployed.pathway.id for deployed in await registry.latest()],
        charts=cohort_charts(figures.cohort, services.instruments, await locale_of(services, access, request)))
