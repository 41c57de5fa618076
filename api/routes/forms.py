"""The patient's questionnaire form, reached through a signed link: server-rendered, no JavaScript.

Every refusal (tampered link, closed questionnaire) is a polite page with 403 or 410 and changes
nothing; invalid answers come back with messages next to the questions and nothing lost.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import ServicesDep
from api.security import audit_row, public
from api.throttle import form_throttle
from language.instruments.model import Instrument
from language.instruments.scoring import AnswersInvalid
from services.links import FormClaims, LinkExpired, LinkInvalid
from services.responses import QuestionnaireClosed, open_questionnaire, submit_response
from store.db import Enrollment, Patient, QuestionnaireRecord

# The signed link is the patient's credential: no account, and nothing but that link's questionnaire.
router = APIRouter(prefix="/f", tags=["forms"], include_in_schema=False,
                   dependencies=[Depends(public), Depends(form_throttle)])
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")

UI = {
    "en": {
        "product": "Your care team", "submit": "Send my answers", "optional": "optional", "yes": "Yes", "no": "No",
        "fix_errors": "Please check the questions marked below.", "closes": "This form closes on",
        "required": "Please answer this question.", "invalid": "Please check this answer",
        "thanks": "Thank you", "thanks_text": "Your answers have reached your care team.",
        "received": "Received, thank you", "received_text":
            "Your answers are saved and will reach your care team shortly; there is no need to send them again. "
            "If you feel unwell, contact your care team directly; in an emergency, call your local emergency number.",
        "closed": "This form is closed",
        "invalid_link": "This link does not work", "invalid_link_text":
            "Please use the link from your most recent message, or contact your care team.",
    },
    "zh-CN": {
        "product": "您的医护团队", "submit": "提交我的回答", "optional": "选填", "yes": "是", "no": "否",
        "fix_errors": "请检查下面标出的问题。", "closes": "本问卷截止时间：",
        "required": "请回答此问题。", "invalid": "请检查此回答",
        "thanks": "谢谢您", "thanks_text": "您的回答已送达您的医护团队。",
        "received": "已收到，谢谢您", "received_text":
            "您的回答已保存，很快会送达您的医护团队，无需再次提交。如有不适，请直接联系您的医护团队；如遇紧急情况，请拨打当地急救电话。",
        "closed": "本问卷已关闭",
        "invalid_link": "此链接无效", "invalid_link_text": "请使用最近一条消息中的链接，或联系您的医护团队。",
    },
}
# By QuestionnaireClosed.why; the enrollment's reason is written by staff for staff and is not shown.
CLOSED_TEXT = {
    "en": {"answered": "You have already answered this questionnaire. Thank you.",
           "expired": "The time to answer this questionnaire has passed. If you have concerns, contact your care team.",
           "ended": "This questionnaire has closed: your follow-up by this care pathway has ended, and your answers "
                    "are no longer needed here. If you have questions or feel unwell, contact your care team "
                    "directly; in an emergency, call your local emergency number."},
    "zh-CN": {"answered": "您已经回答过这份问卷，谢谢。", "expired": "这份问卷的填写时间已过。如有不适，请联系您的医护团队。",
              "ended": "这份问卷已关闭：本随访计划已结束，无需再填写。如有疑问或身体不适，请直接联系您的医护团队；"
                       "如遇紧急情况，请拨打当地急救电话。"},
}


def _ui(locale: str) -> dict[str, str]:
    return UI.get(locale, UI["en"])


def _notice(request: Request, status: int, locale: str, heading: str, message: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "notice.html", {"locale": locale, "ui": _ui(locale), "heading": heading,
                                                               "message": message}, status_code=status)


def _closed(request: Request, locale: str, closed: QuestionnaireClosed) -> HTMLResponse:
    texts = CLOSED_TEXT.get(locale, CLOSED_TEXT["en"])
    return _notice(request, 410, locale, _ui(locale)["closed"], texts.get(closed.why, texts["expired"]))


def _invalid_link(request: Request) -> HTMLResponse:
    # The link names no trustworthy patient, so no locale either: both languages.
    return _notice(request, 403, "en", f"{UI['en']['invalid_link']} · {UI['zh-CN']['invalid_link']}",
                   f"{UI['en']['invalid_link_text']} {UI['zh-CN']['invalid_link_text']}")


async def _patient_for(session: AsyncSession, claims: FormClaims) -> Patient:
    enrollment = await session.get(Enrollment, claims.enrollment_id)
    return await session.get(Patient, enrollment.patient_id)


def _form_items(instrument: Instrument, locale: str, ui: dict[str, str]) -> list[dict]:
    items = []
    for item in instrument.items:
        view = {"id": item.id, "kind": item.kind, "required": item.required, "text": item.text.get(locale, "")}
        if item.kind == "single_choice":
            view["choices"] = [(option.id, option.label.get(locale, option.id)) for option in item.options]
        elif item.kind == "yes_no":
            view["choices"] = [("yes", ui["yes"]), ("no", ui["no"])]
        elif item.kind == "scale":
            view |= {"choices": [(str(n), str(n)) for n in range(item.min, item.max + 1)], "min": item.min,
                     "max": item.max, "low_label": item.low_label.get(locale, ""),
                     "high_label": item.high_label.get(locale, "")}
        elif item.kind == "number":
            view |= {"min": f"{item.min:g}", "max": f"{item.max:g}", "unit": item.unit,
                     "step": "1" if item.decimals == 0 else f"{10 ** -item.decimals:.{item.decimals}f}"}
        else:
            view["max_length"] = item.max_length
        items.append(view)
    return items


def _render_form(request: Request, token: str, instrument: Instrument, questionnaire: QuestionnaireRecord,
                 patient: Patient, values: dict, errors: dict[str, str], status: int = 200) -> HTMLResponse:
    locale = patient.locale if instrument.text_available(patient.locale) else instrument.locales[0]
    ui = _ui(locale)
    items = _form_items(instrument, locale, ui)
    closes = questionnaire.expires_at.astimezone(ZoneInfo(patient.timezone))
    # The instrument's messages are for staff; the patient reads short ones in their own language.
    patient_errors = {item_id: ui["required"] if message.startswith("please answer") else f"{ui['invalid']}: {message}"
                      for item_id, message in errors.items()}
    return templates.TemplateResponse(request, "form.html", {
        "locale": locale, "ui": ui, "title": instrument.title.get(locale, instrument.id),
        "instructions": instrument.instructions.get(locale), "attribution": instrument.attribution,
        "items": items, "numbers": {item["id"]: index for index, item in enumerate(items, start=1)},
        "values": values, "errors": patient_errors, "action": f"/f/{token}", "closes": f"{closes:%Y-%m-%d %H:%M}",
    }, status_code=status)


async def _open_form(request: Request, services, token: str):
    """The link's claims, patient and open questionnaire, or the page that says why not."""
    try:
        claims = services.links.read(token)
    except LinkInvalid:
        return _invalid_link(request)
    except LinkExpired as expired:
        async with services.sessions() as session:
            patient = await _patient_for(session, expired.claims)
        return _closed(request, patient.locale, QuestionnaireClosed("the link has expired", "expired"))
    async with services.sessions() as session:
        patient = await _patient_for(session, claims)
        try:
            questionnaire = await open_questionnaire(session, claims.enrollment_id, claims.step_id, claims.occurrence)
        except QuestionnaireClosed as closed:
            return _closed(request, patient.locale, closed)
        # The link is the patient's credential; whoever holds it used their data, and the access log says so.
        session.add(audit_row(None, request.client.host if request.client else None, None,
                              f"form.{'submit' if request.method == 'POST' else 'open'}", outcome="allowed",
                              patient_id=patient.id, enrollment_id=claims.enrollment_id,
                              target=f"{claims.step_id}/{claims.occurrence}", actor_kind="form_link"))
        await session.commit()
    return claims, patient, questionnaire


@router.get("/{token}", response_class=HTMLResponse)
async def show_form(token: str, request: Request, services: ServicesDep) -> HTMLResponse:
    """The questionnaire form for the occurrence this link is bound to."""
    opened = await _open_form(request, services, token)
    if isinstance(opened, HTMLResponse):
        return opened
    _, patient, questionnaire = opened
    instrument = services.instruments[questionnaire.instrument_id]
    return _render_form(request, token, instrument, questionnaire, patient, {}, {})


@router.post("/{token}", response_class=HTMLResponse)
async def submit_form(token: str, request: Request, services: ServicesDep) -> HTMLResponse:
    """Take the patient's answers: re-show the form with messages, or thank them."""
    opened = await _open_form(request, services, token)
    if isinstance(opened, HTMLResponse):
        return opened
    claims, patient, questionnaire = opened
    instrument = services.instruments[questionnaire.instrument_id]
    known = {item.id for item in instrument.items}
    values = {key: str(value) for key, value in (await request.form()).items() if key in known and str(value).strip()}
    try:
        accepted = await submit_response(services.sessions, services.temporal, services.instruments,
                                         enrollment_id=claims.enrollment_id, step_id=claims.step_id,
                                         occurrence=claims.occurrence, answers=values, source="patient")
    except AnswersInvalid as invalid:
        return _render_form(request, token, instrument, questionnaire, patient, values, invalid.errors, 422)
    except QuestionnaireClosed as closed:
        return _closed(request, patient.locale, closed)
    ui = _ui(patient.locale)
    if accepted.outcome is None:
        # Stored, but the pathway has not seen it yet (the outbox delivers it): no claim it reached anyone.
        return _notice(request, 202, patient.locale, ui["received"], ui["received_text"])
    return _notice(request, 200, patient.locale, ui["thanks"], ui["thanks_text"])
