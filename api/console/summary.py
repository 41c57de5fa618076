"""The stage summary of an enrollment (随访小结), one printable page for the patient's chart.

Patient data: only for a clinician whose teams are involved in the enrollment (others are told it does
not exist, as the API tells them), and every reading is written to the access log before it is shown.
Printed from the browser (print CSS, one A4 page; the print dialog's "Save as PDF" gives the PDF). The
server makes no PDF of its own: WeasyPrint, the well-kept HTML-to-PDF library, needs Pango, HarfBuzz and
fontconfig installed on the host; the pure-Python ones (xhtml2pdf on ReportLab, fpdf2) lay out little of
CSS and show Chinese only from a CJK font file we would have to ship. The browser already has all three.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from api.console.report_pages import render
from api.deps import SessionDep
from api.security import Access, allow
from services.principals import Role
from services.scope import may_see_enrollment
from services.stage_summary import UnknownEnrollment, stage_summary

router = APIRouter(prefix="/console/enrollments", include_in_schema=False)

Clinician = Annotated[Access, Depends(allow(Role.CLINICIAN))]


@router.get("/{enrollment_id}/summary", response_class=HTMLResponse)
async def summary_page(request: Request, enrollment_id: str, session: SessionDep, access: Clinician) -> HTMLResponse:
    """What was sent, answered, flagged and done for one enrollment."""
    if not await may_see_enrollment(session, access.principal, enrollment_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"enrollment '{enrollment_id}' not found")
    try:
        summary = await stage_summary(session, enrollment_id)
    except UnknownEnrollment as unknown:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(unknown)) from None
    await access.read(session, "enrollment.summary", enrollment_id=enrollment_id)
    return render(request, access, "summary.html", {"summary": summary, "zone": ZoneInfo(summary.timezone),
                                                     "now": datetime.now(UTC)})
