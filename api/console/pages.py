"""Rendering console pages: the templates, the signed-in member's language, and error pages.

Console routes call the JSON routes' own functions (api/routes/*), which check scope, audit the read
and call the services; a refusal they raise as HTTPException becomes an HTML page here, with the
same status and headers (so the authorization matrix sees the same answers as for the API).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.console.i18n import best_locale, translator
from api.deps import Services
from api.routes.forms import UI, _form_items
from api.security import SESSION_COOKIE, Access, authenticate
from language.instruments.model import Instrument
from services.accounts import STAFF_LOCALES
from services.principals import PrincipalKind
from store.db import StaffMember

PREFIX = "/console"
M = TypeVar("M", bound=BaseModel)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
# Staff read times in the hospital's zone, whatever the server's.
SHOWN_ZONE = ZoneInfo("Asia/Shanghai")


def shown_time(moment: datetime | None) -> str:
    return moment.astimezone(SHOWN_ZONE).strftime("%Y-%m-%d %H:%M") if moment else ""


templates.env.filters["when"] = shown_time


async def locale_of(services: Services, access: Access | None, request: Request) -> str:
    """The member's own choice once signed in (an API key has none); the browser's before."""
    if access is not None and access.principal.kind == PrincipalKind.STAFF:
        async with services.sessions() as session:
            member = await session.get(StaffMember, access.principal.id)
            if member is not None:
                return member.locale
    return best_locale(request.headers.get("Accept-Language"))


async def page(request: Request, template: str, access: Access | None, status_code: int = 200,
               headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    locale = await locale_of(request.app.state.services, access, request)
    return templates.TemplateResponse(request, template, {
        "locale": locale, "t": translator(locale), "me": access.principal if access else None,
        "locales": STAFF_LOCALES, "now": datetime.now(UTC), **context}, status_code=status_code, headers=headers)


async def instrument_items(request: Request, services: Services, access: Access,
                           instrument: Instrument) -> list[dict]:
    """An instrument's items as the patient's form shows them (api/routes/forms.py), in the member's
    language when the instrument has its text in it."""
    locale = await locale_of(services, access, request)
    shown = locale if instrument.text_available(locale) else instrument.locales[0]
    return _form_items(instrument, shown, UI[shown] if shown in UI else UI["en"])


def form_body(model: type[M], **fields: Any) -> M:
    """A JSON route's body from form fields: the same validation, its problems on the console's 422 page."""
    try:
        return model(**fields)
    except ValidationError as invalid:
        problems = "; ".join(f"{'.'.join(str(part) for part in error['loc']) or 'form'}: {error['msg']}"
                             for error in invalid.errors())
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problems) from None


def is_console(request: Request) -> bool:
    return request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/")


async def _signed_in(request: Request) -> Access | None:
    """Who is signed in, for an error page in their language and with their navigation (no audit: nothing is read)."""
    principal = await authenticate(request.app.state.services, None, request.cookies.get(SESSION_COOKIE))
    return Access(principal, None) if principal else None


async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
    if not is_console(request):
        return await http_exception_handler(request, error)
    signed_in = None if error.status_code == 401 else await _signed_in(request)
    template = "sign_in.html" if error.status_code == 401 else "error.html"
    return await page(request, template, signed_in, error.status_code, error.headers,
                      message=error.detail if isinstance(error.detail, str) else str(error.detail),
                      # Back to the very page, its filters included, once signed in.
                      next=f"{request.url.path}?{request.url.query}" if request.url.query else request.url.path)


class _EscapedJSONResponse(JSONResponse):
    """A 422 echoes the input it refused; a lone surrogate there cannot be written as UTF-8 (a 500 from
    FastAPI's own handler), but escaped JSON carries it."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


async def _invalid_request(request: Request, error: RequestValidationError) -> Response:
    if not is_console(request):
        return _EscapedJSONResponse(status_code=422, content={"detail": jsonable_encoder(error.errors())})
    problems = "; ".join(f"{'.'.join(str(part) for part in problem['loc'][1:])}: {problem['msg']}"
                         for problem in error.errors())
    return await page(request, "error.html", await _signed_in(request), 422, message=problems)


def install_error_pages(app: FastAPI) -> None:
    """Console paths get HTML pages for errors; everything else keeps FastAPI's JSON answers."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
