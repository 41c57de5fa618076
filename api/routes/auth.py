"""Signing in: a bearer token for programs, a session cookie for the console, and who you are.

Hospital systems use API keys (see api_keys.py) and single sign-on users send their identity
provider's token; neither signs in here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from api.deps import ServicesDep, SessionDep
from api.schemas import Message
from api.security import SESSION_COOKIE, Access, allow, audit_row, public
from api.throttle import sign_in_throttle
from services.identity import (
    PasswordRefused,
    SignInRefused,
    change_password,
    issue_token,
    sign_in,
)
from services.principals import Principal, PrincipalKind, Role

router = APIRouter(prefix="/auth", tags=["auth"])

Public = Annotated[None, Depends(public)]
Throttled = Annotated[None, Depends(sign_in_throttle)]
SignedIn = Annotated[Access, Depends(allow(*Role))]
SIGN_IN_RESPONSES = {401: {"model": Message, "description": "Wrong email or password, or the account is locked."},
                     429: {"model": Message, "description": "Too many attempts from this address; wait."}}


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds until it must be renewed by signing in again")


class Me(BaseModel):
    kind: PrincipalKind
    id: str
    name: str
    roles: list[Role]
    teams: list[str]


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=12, max_length=1024)


@router.post("/token", response_model=Token, responses=SIGN_IN_RESPONSES)
async def sign_in_for_token(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request,
                            services: ServicesDep, _: Public, __: Throttled) -> Token:
    """Exchange a staff email and password for a bearer token (the OAuth2 password flow)."""
    _, token, ttl = await _sign_in(request, services, form.username, form.password)
    return Token(access_token=token, expires_in=int(ttl.total_seconds()))


@router.post("/session", response_model=Me, responses=SIGN_IN_RESPONSES)
async def sign_in_to_console(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request,
                             response: Response, services: ServicesDep, _: Public, __: Throttled) -> Me:
    """Sign in to the console: the session lives in a secure, HttpOnly, SameSite=Strict cookie."""
    principal, token, ttl = await _sign_in(request, services, form.username, form.password)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(ttl.total_seconds()), httponly=True, samesite="strict",
                        secure=services.settings.PUBLIC_BASE_URL.startswith("https://"), path="/")
    return present(principal)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(response: Response, _: Public) -> None:
    """End the console's session."""
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me", response_model=Me)
async def who_am_i(access: SignedIn) -> Me:
    """The signed-in principal: roles and teams decide what it may see and do."""
    return present(access.principal)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT,
             responses={403: {"model": Message}, 422: {"model": Message}})
async def change_own_password(body: PasswordChange, session: SessionDep, access: SignedIn) -> None:
    """Change your own password (a one-time password from an administrator, too)."""
    if access.principal.kind != PrincipalKind.STAFF:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "an API key has no password")
    try:
        await change_password(session, access.principal.id, body.current_password, body.new_password)
    except PasswordRefused as refused:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(refused)) from None
    await access.record(session, "auth.password_change", target=access.principal.id)
    await session.commit()


async def _sign_in(request: Request, services: ServicesDep, email: str,
                   password: str) -> tuple[Principal, str, timedelta]:
    now = datetime.now(UTC)
    client_ip = request.client.host if request.client else None
    async with services.sessions() as session:
        try:
            principal = await sign_in(session, email, password, now)
        except SignInRefused as refused:
            session.add(audit_row(None, client_ip, None, "auth.sign_in", outcome="denied", target=email[:200]))
            await session.commit()
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(refused),
                                headers={"WWW-Authenticate": "Bearer"}) from None
        session.add(audit_row(principal, client_ip, None, "auth.sign_in", outcome="allowed"))
        await session.commit()
    ttl = timedelta(minutes=services.settings.TOKEN_TTL_MINUTES)
    return principal, issue_token(principal, services.settings.secret_keys, ttl, now), ttl


def present(principal: Principal) -> Me:
    return Me(kind=principal.kind, id=principal.id, name=principal.name, roles=sorted(principal.roles),
              teams=sorted(principal.teams))
