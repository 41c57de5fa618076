"""The console's frame: sign-in and sign-out, the member's language, the vendored static files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.security import OAuth2PasswordRequestForm

from api.console.pages import PREFIX, page
from api.deps import ServicesDep, SessionDep
from api.routes.auth import sign_in_to_console, sign_out
from api.security import Access, allow, public
from api.throttle import sign_in_throttle
from services.accounts import LocaleRefused, set_locale
from services.principals import PrincipalKind, Role

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Public = Annotated[None, Depends(public)]
SignedIn = Annotated[Access, Depends(allow(*Role))]
STATIC = Path(__file__).parent / "static"
# Served by name from this list only: nothing else under the folder is reachable.
STATIC_FILES = {"htmx.min.js": "text/javascript", "htmx.LICENSE.txt": "text/plain", "console.css": "text/css",
                "reports.css": "text/css"}


def local_path(next_path: str | None) -> str:
    """Where to go after signing in: a console page of ours, never another site."""
    return next_path if next_path and next_path.startswith(PREFIX + "/") and "//" not in next_path else f"{PREFIX}/"


@router.get("/", response_class=RedirectResponse)
async def console_home(_: SignedIn) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/worklist", status.HTTP_303_SEE_OTHER)


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, _: Public, next: str | None = None) -> HTMLResponse:
    return await page(request, "sign_in.html", None, next=local_path(next))


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], services: ServicesDep,
                  _: Public, __: Annotated[None, Depends(sign_in_throttle)],
                  next: Annotated[str | None, Form()] = None) -> Response:
    """The API's own console sign-in (POST /auth/session), which sets the session cookie on this redirect."""
    redirect = RedirectResponse(local_path(next), status.HTTP_303_SEE_OTHER)
    try:
        await sign_in_to_console(form, request, redirect, services, None, None)
    except HTTPException as refused:
        if refused.status_code != status.HTTP_401_UNAUTHORIZED:
            raise
        return await page(request, "sign_in.html", None, status.HTTP_401_UNAUTHORIZED, message=refused.detail,
                          next=local_path(next))
    return redirect


@router.post("/sign-out", response_class=RedirectResponse)
async def sign_out_of_console(_: Public) -> RedirectResponse:
    redirect = RedirectResponse(f"{PREFIX}/sign-in", status.HTTP_303_SEE_OTHER)
    await sign_out(redirect, None)
    return redirect


@router.post("/locale", response_class=RedirectResponse)
async def choose_locale(locale: Annotated[str, Form()], session: SessionDep, access: SignedIn,
                        back: Annotated[str | None, Form()] = None) -> RedirectResponse:
    """Keep the member's language on their account (an API key has no account to keep it on)."""
    if access.principal.kind != PrincipalKind.STAFF:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "an API key has no account to keep a language on")
    try:
        await set_locale(session, access.principal.id, locale)
    except LocaleRefused as refused:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(refused)) from None
    await access.record(session, "staff.locale", target=access.principal.id)
    await session.commit()
    return RedirectResponse(local_path(back), status.HTTP_303_SEE_OTHER)


@router.get("/static/{name}", response_class=FileResponse)
async def static_file(name: str, _: Public) -> FileResponse:
    if name not in STATIC_FILES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no static file {name}")
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name],
                        headers={"Cache-Control": "public, max-age=3600"})

