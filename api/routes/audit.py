"""The access audit, for auditors: every read of patient data and every change, and refused attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from api.deps import SessionDep
from api.paging import PageDep
from api.schemas import AccessLogLine
from api.security import Access, allow
from services.principals import Role
from store.db import AccessAudit

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AccessLogLine])
async def read_audit(session: SessionDep, access: Annotated[Access, Depends(allow(Role.AUDITOR))], page: PageDep,
                     actor: Annotated[str | None, Query(description="one staff member's or key's id")] = None,
                     action: Annotated[str | None, Query(examples=["patient.read"])] = None,
                     outcome: Annotated[str | None, Query(examples=["denied"])] = None,
                     since: datetime | None = None) -> list[AccessAudit]:
    """Search the audit, newest first. A patient's own log is GET /patients/{id}/access-log."""
    query = select(AccessAudit).order_by(AccessAudit.at.desc(), AccessAudit.id.desc())
    for column, value in ((AccessAudit.actor_id, actor), (AccessAudit.action, action), (AccessAudit.outcome, outcome)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AccessAudit.at >= since)
    lines = list(await session.scalars(page.apply(query)))
    await access.read(session, "audit.read")
    return lines
