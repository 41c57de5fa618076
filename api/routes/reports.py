"""Reports per pathway, team and period, as JSON and as one CSV per table (services/reports.py computes them).

Aggregates only: counts, rates and times over many enrollments, so reading them is not a read of
patient data and is not written to the access log. Clinical managers, administrators and auditors
see every team's figures; a clinician their own teams'.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import typing
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import BeforeValidator
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import RegistryDep, Services, ServicesDep, SessionDep
from api.routes.teams import team_or_404
from api.schemas import Message
from api.security import Access, allow
from language.model import Slug
from services.principals import Role
from services.registry import PathwayRegistry
from services.reports import (
    TABLES,
    NotYourTeam,
    Report,
    ReportFilter,
    ReportPeriodInvalid,
    VersionUse,
    report,
    teams_for,
    version_use,
)
from store.db import utcnow

router = APIRouter(prefix="/reports", tags=["reports"])

Reader = Annotated[Access, Depends(allow(Role.CLINICAL_MANAGER, Role.ADMIN, Role.AUDITOR, Role.CLINICIAN))]
Table = Literal["enrollments", "touchpoints", "response_rates", "response_times", "satisfaction", "cohort"]
assert set(Table.__args__) == set(TABLES), "the CSV route offers every table the report has"
DEFAULT_DAYS = 30
# A form's "all" choice sends the field empty: the same as leaving it out.
EVERY = BeforeValidator(lambda value: value or None)


@dataclass(frozen=True)
class ReportQuery:
    """What a report request asks for, as the console's form and the API's query both say it."""

    start: date
    end: date
    timezone: str
    pathway: str | None
    team: str | None

    def query_string(self) -> str:
        return urlencode({name: value for name, value in dataclasses.asdict(self).items() if value is not None})


def report_query(
    start: Annotated[date | None, Query(description="first day of the period (default: the 30 days up to `end`)")] = None,
    end: Annotated[date | None, Query(description="last day of the period, included (default: today)")] = None,
    timezone: Annotated[str, Query(description="where the period's days begin and end", max_length=64,
                                   examples=["Asia/Shanghai"])] = "UTC",
    pathway: Annotated[Slug | None, EVERY, Query(description="one pathway's figures; all without it")] = None,
    team: Annotated[Slug | None, EVERY, Query(description="one team's figures; a clinician's own teams without it, "
                                                           "every team for others")] = None,
) -> ReportQuery:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"unknown time zone '{timezone}': give an IANA name such as Asia/Shanghai") from None
    end = end or datetime.now(zone).date()
    return ReportQuery(start or end - timedelta(days=DEFAULT_DAYS - 1), end, timezone, pathway, team)


ReportQueryDep = Annotated[ReportQuery, Depends(report_query)]


async def figures(services: ServicesDep, session: SessionDep, registry: RegistryDep, access: Reader,
                  asked: ReportQueryDep) -> Report:
    return await read_figures(services, session, registry, access, asked)


async def read_figures(services: Services, session: AsyncSession, registry: PathwayRegistry, access: Access,
                       asked: ReportQuery) -> Report:
    """The report a request asks for, within what its principal may read; 403, 404 or 422 otherwise."""
    if asked.team is not None:
        await team_or_404(session, asked.team)
    try:
        teams = teams_for(access.principal, asked.team)
        zone = ZoneInfo(asked.timezone)
        scope = ReportFilter(datetime.combine(asked.start, time(), zone),
                             datetime.combine(asked.end + timedelta(days=1), time(), zone), asked.pathway, teams)
    except NotYourTeam as refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(refused)) from None
    except ReportPeriodInvalid as invalid:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(invalid)) from None
    return await report(session, registry, services.instruments, scope, utcnow())


FiguresDep = Annotated[Report, Depends(figures)]
REFUSALS = {403: {"model": Message, "description": "A clinician asked for another team's figures."},
            404: {"model": Message, "description": "Unknown team."},
            422: {"model": Message, "description": "A period that ends before it starts, or an unknown time zone."}}


@router.get("", response_model=Report, responses=REFUSALS)
async def read_report(figures: FiguresDep) -> Report:
    """Every table of the report for one pathway (or all), one team (or all you may see) and one period."""
    return figures


@router.get("/pathway-versions", response_model=list[VersionUse])
async def read_version_use(session: SessionDep, access: Reader) -> list[VersionUse]:
    """How many patients each pathway version runs for now, and how many enrollments it has had."""
    return sorted((await version_use(session)).values(), key=lambda use: (use.pathway_id, use.version))


@router.get("/{table}.csv", response_class=Response, responses={
    **REFUSALS, 200: {"content": {"text/csv": {}}, "description": "One table, a header row first."}})
async def download_table(table: Table, figures: FiguresDep, asked: ReportQueryDep) -> Response:
    """One table of the report as CSV, for a spreadsheet."""
    name = f"carepath-{table}-{asked.pathway or 'all'}-{asked.team or 'teams'}-{asked.start}-{asked.end}.csv"
    return Response(to_csv(table, getattr(figures, table)), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def row_type(table: str) -> type:
    """The dataclass of one table's rows: its fields are the table's columns, in order."""
    return typing.get_args(typing.get_type_hints(Report)[table])[0]


def to_csv(table: Table, rows: list) -> str:
    """A header of the table's column names (even with no rows), then a row per figure; an empty cell for a
    figure with no value. A byte-order mark first, so that a spreadsheet opens Chinese text as UTF-8."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(field.name for field in dataclasses.fields(row_type(table)))
    writer.writerows(dataclasses.astuple(row) for row in rows)
    return out.getvalue()
