"""The API application. Importing this module has no side effects; serve it through the factory:

    uvicorn api.main:create_app --factory
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api.body_limit import BodySizeLimit
from api.console.pages import install_error_pages
from api.console.router import router as console_router
from api.deps import Services
from api.metrics import instrument
from api.overload import Overload
from api.routes import (
    api_keys,
    appointments,
    audit,
    auth,
    codec,
    consent,
    enrollments,
    escalations,
    events,
    forms,
    health,
    inbound,
    migrations,
    pathways,
    patient_events,
    patients,
    preferences,
    receipts,
    reports,
    responses,
    staff,
    tasks,
    teams,
    unsubscribe,
    worklist,
)
from api.security import undeclared_routes
from services.identity import OidcVerifier
from services.links import form_links
from services.reconciler import reconciling
from services.registry import PathwayRegistry
from services.settings import Settings, get_settings
from services.site import load_site
from services.teams import seed_teams_file
from services.temporal import connect
from store.db import create_engine, session_factory
from store.schema import require_current_schema

api_router = APIRouter()
api_router.include_router(auth.router)
api_router.include_router(patients.router)
api_router.include_router(consent.router)
api_router.include_router(patient_events.router)
api_router.include_router(preferences.router)
api_router.include_router(pathways.router)
api_router.include_router(migrations.router)
api_router.include_router(enrollments.router)
api_router.include_router(appointments.router)
api_router.include_router(appointments.service_router)
api_router.include_router(events.router)
api_router.include_router(responses.router)
api_router.include_router(forms.router)
api_router.include_router(unsubscribe.router)
api_router.include_router(teams.router)
api_router.include_router(staff.router)
api_router.include_router(worklist.router)
api_router.include_router(escalations.router)
api_router.include_router(tasks.router)
api_router.include_router(api_keys.router)
api_router.include_router(audit.router)
api_router.include_router(codec.router)
api_router.include_router(receipts.router)
api_router.include_router(inbound.router)
api_router.include_router(health.router)
api_router.include_router(reports.router)
api_router.include_router(console_router)


class CodecCors:
    """Temporal's UI calls the codec endpoint from its own origin, with the user's credentials: CORS for
    /codec and for nothing else, so that origin's pages cannot read patient data from the other routes."""

    def __init__(self, app: ASGIApp, origins: list[str]):
        self.app = app
        self.cors = CORSMiddleware(app, allow_origins=origins, allow_credentials=True, allow_methods=["POST"],
                                   allow_headers=["Authorization", "Content-Type", "X-Namespace"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        codec = scope["type"] == "http" and scope["path"].startswith("/codec/")
        await (self.cors if codec else self.app)(scope, receive, send)


def generate_unique_id(route: APIRoute) -> str:
    """OpenAPI operation ids such as `enrollments-create_enrollment`, for clean generated clients."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.DATABASE_URL, pool_size=settings.DATABASE_POOL_SIZE,
                               pool_timeout=settings.DATABASE_POOL_TIMEOUT_SECONDS)
        try:
            await require_current_schema(engine)
            sessions = session_factory(engine)
            site = load_site(settings.PATHWAYS_DIR)
            # Teams before pathways: pathways name them.
            await seed_teams_file(sessions, site.roster, settings.webhook_problem)
            registry = PathwayRegistry(sessions, site.instruments, site.calendars)
            await registry.load_directory(site.folder)
            oidc = (OidcVerifier(settings.OIDC_ISSUER, settings.OIDC_AUDIENCE, settings.OIDC_JWKS_URL)
                    if settings.OIDC_ISSUER else None)
            temporal = await connect(settings)
            # The codec endpoint decrypts with the very codec the client encrypts with.
            app.state.services = Services(settings, sessions, temporal, registry, site.instruments, form_links(settings),
                                          temporal.data_converter.payload_codec, oidc)
            # Active enrollments left without a workflow (a crash between commit and start) get one.
            async with reconciling(settings.RECONCILE_INTERVAL_SECONDS, sessions, temporal, registry,
                                   settings.TASK_QUEUE):
                yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="carepath",
        summary="Care pathways as durable workflows: patients, pathway versions and enrollments; teams, staff and "
                "the worklist where escalations and call tasks reach them.",
        version="0.1.0",
        lifespan=lifespan,
        generate_unique_id_function=generate_unique_id,
    )
    app.include_router(api_router)
    install_error_pages(app)
    app.add_middleware(BodySizeLimit)
    # Outside the body limit: a request refused for overload is refused before its body is read.
    app.add_middleware(Overload, limit=settings.MAX_CONCURRENT_REQUESTS)
    if settings.CODEC_ORIGINS:
        app.add_middleware(CodecCors, origins=settings.CODEC_ORIGINS)
    # Outermost: the latency a client sees, and the requests refused for overload, are counted too.
    instrument(app)
    undeclared = undeclared_routes(app)
    if undeclared:
        # Deny by default: a route nobody decided the audience of must not be served at all.
        raise RuntimeError(f"routes without an access policy (see api/security.py): {', '.join(undeclared)}")
    return app
