"""The unsubscribe link at the foot of every email (and in its List-Unsubscribe header): the patient's
way to stop emails, with no account.

A GET only asks to confirm, for mail scanners and link previews open every link in a message; the
POST (the page's button, or a mail client's one-click unsubscribe, RFC 8058) withdraws the patient's
consent to email, audited as the patient.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from api.deps import ServicesDep
from api.routes.forms import _invalid_link, _notice, templates
from api.security import public
from api.throttle import form_throttle
from services.consent import PATIENT, patient_audit, record_decision
from services.links import LinkInvalid, UnsubscribeClaims, unsubscribe_links
from store.consent import WITHDRAWN, consent_decisions
from store.db import Patient

router = APIRouter(prefix="/u", tags=["unsubscribe"], include_in_schema=False,
                   dependencies=[Depends(public), Depends(form_throttle)])

TEXT = {
    "en": {"heading": "Stop emails from your care team?",
           "text": "You will receive no more emails about your follow-up. Your care team may still contact you "
                   "in other ways.",
           "confirm": "Stop emails",
           "keep": "To keep receiving emails, close this page.",
           "done": "You will receive no more emails",
           "done_text": "Your choice is recorded. If you feel unwell, contact your care team directly; in an "
                        "emergency, call your local emergency number."},
    "zh-CN": {"heading": "不再接收医护团队的邮件？",
              "text": "您将不再收到有关随访的邮件。您的医护团队仍可能通过其他方式联系您。",
              "confirm": "退订邮件",
              "keep": "如需继续接收邮件，请关闭此页面。",
              "done": "您将不再收到邮件",
              "done_text": "已记录您的选择。如有不适，请直接联系您的医护团队；如遇紧急情况，请拨打当地急救电话。"},
}


def _text(locale: str) -> dict[str, str]:
    return TEXT.get(locale, TEXT["en"])


async def _claims_and_patient(request: Request, services: ServicesDep, token: str) -> tuple[UnsubscribeClaims, Patient] | HTMLResponse:
    try:
        claims = unsubscribe_links(services.settings).read(token)
    except LinkInvalid:
        claims = None
    async with services.sessions() as session:
        patient = await session.get(Patient, claims.patient_id) if claims else None
    if patient is None:
        return _invalid_link(request)
    return claims, patient


@router.get("/{token}", response_class=HTMLResponse)
async def confirm_unsubscribe(token: str, request: Request, services: ServicesDep) -> HTMLResponse:
    """Ask the patient to confirm; nothing changes."""
    found = await _claims_and_patient(request, services, token)
    if isinstance(found, HTMLResponse):
        return found
    _, patient = found
    text = _text(patient.locale)
    return templates.TemplateResponse(request, "unsubscribe.html", {
        "locale": patient.locale if patient.locale in TEXT else "en", "ui": text, "action": f"/u/{token}"})


@router.post("/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, request: Request, services: ServicesDep) -> HTMLResponse:
    """Withdraw the patient's consent to the link's channel; repeating it changes nothing more."""
    found = await _claims_and_patient(request, services, token)
    if isinstance(found, HTMLResponse):
        return found
    claims, patient = found
    async with services.sessions() as session:
        current = (await consent_decisions(session, patient.id)).get(claims.channel)
        if current is None or current.decision != WITHDRAWN:
            record_decision(session, patient.id, claims.channel, WITHDRAWN, "link", PATIENT)
            session.add(patient_audit("consent.withdraw", patient.id, claims.channel,
                                      request.client.host if request.client else None, "unsubscribe link"))
            await session.commit()
    text = _text(patient.locale)
    return _notice(request, 200, patient.locale, text["done"], text["done_text"])
