"""The stage summary of an enrollment (随访小结), one printable page for the patient's chart.

Patient data: only for a clinician whose teams are involved in the enrollment (another team's gets the
console's 403 page, logged as denied, as on the enrollment page), and every reading is written to the access log before it is shown.
Printed from the browser (print CSS, one A4 page; the print dialog's "Save as PDF" gives the PDF). The
server makes no PDF of its own: WeasyPrint, the well-kept HTML-to-PDF library, needs Pango, HarfBuzz and
fontconfig installed on the host; the pure-Python ones (xhtml2pdf on ReportLab, fpdf2) lay out little of
CSS and show Chinese only from a CJK font file we would have to ship. The browser already has all three.
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from api.console.pages import PREFIX, page
from api.console.patients import refuse_unless_theirs
from api.deps import SessionDep
from api.routes.enrollments import enrollment_or_404
from api.security import Access, allow
from services.principals import Role
from services.stage_summary import stage_summary

router = APIRouter(prefix=f"{PREFIX}/enrollments", include_in_schema=False)

Clinician = Annotated[Access, Depends(allow(Role.CLINICIAN))]


@router.get("/{enrollment_id}/summary", response_class=HTMLResponse)
async def summary_page(request: Request, enrollment_id: str, session: SessionDep, access: Clinician) -> Response:
    """What was sent, answered, flagged and done for one enrollment."""
    if refused := await refuse_unless_theirs(request, session, access, enrollment_id=enrollment_id):
        return refused
    enrollment = await enrollment_or_404(session, enrollment_id, access)
    summary = await stage_summary(session, enrollment.id)
    await access.read(session, "enrollment.summary", patient_id=enrollment.patient_id, enrollment_id=enrollment.id)
    return await page(request, "summary.html", access, section="patients", summary=summary,
                      zone=ZoneInfo(summary.timezone))
