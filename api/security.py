"""Who may call what. Every route declares one policy; nothing is open by default.

A route names its policy in its signature, `access: Annotated[Access, Depends(allow(Role.CLINICIAN))]`,
or `Depends(public)` for what patients and sign-in use. `create_app` refuses to start if a route
declares none (`undeclared_routes`), and `tests/api/test_authorization.py` calls every route as
every role. The acting principal always comes from the credentials, never from a request body.

Credentials, in the order they are tried:
- `Authorization: Bearer cpk_…`: a hospital system's API key;
- `Authorization: Bearer <jwt>`: a staff token from `POST /auth/token`, or one from the hospital's
  single sign-on (OIDC) when an issuer is configured;
- the `carepath_session` cookie set by `POST /auth/session`, for the console; a state-changing request
  carried by the cookie must come from our own origin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import BaseRoute

from api.deps import Services, ServicesDep
from services.identity import (
    API_KEY_PREFIX,
    TokenInvalid,
    principal_for_api_key,
    principal_for_oidc,
    principal_for_staff,
    read_token,
)
from services.principals import Principal, Role
from store.db import AccessAudit, Enrollment

SESSION_COOKIE = "carepath_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# FastAPI's own pages: the schema is the published contract of an open-source product.
DOCUMENTATION_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

# Declared so OpenAPI shows how to authenticate; the checking is done by `Policy`.
bearer_scheme = HTTPBearer(auto_error=False, description="a staff token (POST /auth/token), an API key "
                                                          "(cpk_…) or a token from the hospital's sign-on")
cookie_scheme = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="the console's session")


@dataclass
class Access:
    """The authenticated principal of one request, and the means to write what it did to the audit."""

    principal: Principal
    client_ip: str | None
    reason: str | None = None

    async def record(self, session: AsyncSession, action: str, *, patient_id: str | None = None,
                     enrollment_id: str | None = None, target: str | None = None, outcome: str = "allowed") -> None:
        """Add one audit row to `session`: it commits with the change it describes, or with the read.
        The patient is found from the enrollment when not given: the access log is read by patient."""
        if patient_id is None and enrollment_id is not None:
            enrollment = await session.get(Enrollment, enrollment_id)
            patient_id = enrollment.patient_id if enrollment else None
        session.add(audit_row(self.principal, self.client_ip, self.reason, action, outcome=outcome,
                              patient_id=patient_id, enrollment_id=enrollment_id, target=target))

    async def read_list(self, session: AsyncSession, reads: list[tuple[str, str, str]]) -> None:
        """Audit a list's lines, each (action, enrollment id, target), committed; the patients in one query."""
        patients = dict((await session.execute(select(Enrollment.id, Enrollment.patient_id).where(
            Enrollment.id.in_({enrollment_id for _, enrollment_id, _ in reads})))).all())
        session.add_all(audit_row(self.principal, self.client_ip, self.reason, action, outcome="allowed",
                                  patient_id=patients.get(enrollment_id), enrollment_id=enrollment_id, target=target)
                        for action, enrollment_id, target in reads)
        await session.commit()

    async def read(self, session: AsyncSession, action: str, *, patient_id: str | None = None,
                   enrollment_id: str | None = None, target: str | None = None) -> None:
        """Audit a read of patient data, committed before the data is returned."""
        await self.record(session, action, patient_id=patient_id, enrollment_id=enrollment_id, target=target)
        await session.commit()


def audit_row(principal: Principal | None, client_ip: str | None, reason: str | None, action: str, *,
              outcome: str, patient_id: str | None = None, enrollment_id: str | None = None,
              target: str | None = None, actor_kind: str = "anonymous") -> AccessAudit:
    """One audit line; without a principal, `actor_kind` says who it was (a sign-in attempt, a form link)."""
    return AccessAudit(
        at=datetime.now(UTC), actor_kind=principal.kind.value if principal else actor_kind,
        actor_id=principal.id if principal else None,
        actor_roles=",".join(sorted(principal.roles)) if principal else "", action=action, outcome=outcome,
        patient_id=patient_id, enrollment_id=enrollment_id, target=target, client_ip=client_ip,
        reason=reason)


class Policy:
    """A route's declared audience: the roles admitted. Returns the request's `Access`."""

    def __init__(self, roles: frozenset[Role]):
        self.roles = roles

    def __repr__(self) -> str:
        return f"allow({', '.join(sorted(self.roles))})"

    async def __call__(self, request: Request, services: ServicesDep,
                       bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
                       cookie: Annotated[str | None, Depends(cookie_scheme)]) -> Access:
        principal = await authenticate(services, bearer, cookie)
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first: send a bearer token or API key",
                                headers={"WWW-Authenticate": "Bearer"})
        access = Access(principal, request.client.host if request.client else None,
                        request.headers.get("X-Access-Reason"))
        if bearer is None and request.method not in SAFE_METHODS:
            _refuse_cross_site(request, services)
        if not principal.has_any(self.roles):
            async with services.sessions() as session:
                await access.record(session, f"{request.method} {request.scope['route'].path}", outcome="denied")
                await session.commit()
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"this needs one of the roles: {', '.join(sorted(self.roles))}")
        return access


class Public:
    """Declared on what needs no account: the patient's form link (the signature is the credential) and sign-in."""

    def __repr__(self) -> str:
        return "public"

    async def __call__(self) -> None:
        return None


public = Public()


def allow(*roles: Role) -> Policy:
    return Policy(frozenset(roles))


async def authenticate(services: Services, bearer: HTTPAuthorizationCredentials | None,
                       cookie: str | None) -> Principal | None:
    now = datetime.now(UTC)
    async with services.sessions() as session:
        if bearer is not None and bearer.scheme.lower() == "bearer":
            token = bearer.credentials
            if token.startswith(API_KEY_PREFIX):
                principal = await principal_for_api_key(session, token, now)
                await session.commit()
                return principal
            staff_id = _staff_id(token, services)
            if staff_id is not None:
                return await principal_for_staff(session, staff_id)
            if services.oidc is not None:
                identity = await services.oidc.identity(token)
                if identity is not None:
                    principal = await principal_for_oidc(session, identity)
                    await session.commit()
                    return principal
            return None
        if cookie:
            staff_id = _staff_id(cookie, services)
            return await principal_for_staff(session, staff_id) if staff_id else None
    return None


def _staff_id(token: str, services: Services) -> str | None:
    try:
        return read_token(token, services.settings.secret_keys)
    except TokenInvalid:
        return None


def _refuse_cross_site(request: Request, services: Services) -> None:
    """A cookie rides along on any request the browser makes; only our own pages may change things with it."""
    origin = request.headers.get("Origin")
    allowed = {services.settings.PUBLIC_BASE_URL.rstrip("/")}
    if request.url.path.startswith("/codec/"):
        allowed |= {codec_origin.rstrip("/") for codec_origin in services.settings.CODEC_ORIGINS}
    if origin is not None and origin.rstrip("/") not in allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"cross-site request from {origin} refused")
    if origin is None and request.headers.get("Sec-Fetch-Site") not in (None, "same-origin", "none"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused")


def policy_of(route: APIRoute) -> Policy | Public | None:
    """The one policy a route declares, found among its dependencies (however deeply declared)."""
    found: list[Policy | Public] = []
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        if isinstance(dependant.call, Policy | Public):
            found.append(dependant.call)
        pending.extend(dependant.dependencies)
    return found[0] if len(found) == 1 else None


def served_routes(app: FastAPI) -> list[tuple[str, BaseRoute]]:
    """Every route the app serves, with its full path, however deeply its router was included."""
    return [(context.path, context.original_route) for context in iter_route_contexts(app.routes)]


def undeclared_routes(app: FastAPI) -> list[str]:
    """Routes that declare no policy, or more than one: the app must not serve them."""
    problems = []
    for path, route in served_routes(app):
        if isinstance(route, APIRoute):
            if policy_of(route) is None:
                problems.append(f"{','.join(sorted(route.methods))} {path}")
        elif path not in DOCUMENTATION_PATHS:
            problems.append(f"{path} (not an API route)")
    return problems
