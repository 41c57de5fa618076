"""What routes depend on, as annotated aliases so that signatures read like prose."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.converter import PayloadCodec

from language.instruments.model import Instrument
from services.identity import OidcVerifier
from services.links import FormLinks
from services.registry import PathwayRegistry
from services.settings import Settings


@dataclass(frozen=True)
class Services:
    """Built once by the application's lifespan; see api.main."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    temporal: Client
    registry: PathwayRegistry
    instruments: dict[str, Instrument]
    links: FormLinks
    # Decrypts workflow payloads for the codec endpoint.
    codec: PayloadCodec
    # The hospital's single sign-on, when one is configured.
    oidc: OidcVerifier | None = None


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.sessions() as session:
        yield session


def get_settings(services: ServicesDep) -> Settings:
    return services.settings


def get_temporal(services: ServicesDep) -> Client:
    return services.temporal


def get_registry(services: ServicesDep) -> PathwayRegistry:
    return services.registry


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
RegistryDep = Annotated[PathwayRegistry, Depends(get_registry)]
