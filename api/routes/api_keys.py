"""API keys for hospital systems: shown once, stored hashed, scoped to roles, revocable, last use recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import SessionDep
from api.paging import PageDep
from api.schemas import Message, Name
from api.security import Access, allow
from language.model import Slug
from services.identity import create_api_key, revoke_api_key
from services.principals import Role
from store.db import ApiKey

router = APIRouter(prefix="/api-keys", tags=["api-keys"])
Admin = Annotated[Access, Depends(allow(Role.ADMIN))]
# A key acts for a system, not a person: it can never administer carepath or read the audit.
SYSTEM_ROLES = (Role.INTEGRATION,)


class ApiKeyCreate(BaseModel):
    name: Name = Field(examples=["HIS discharge feed"])
    roles: list[Role] = Field(default=[Role.INTEGRATION], min_length=1,
                              description=f"what the key may do; one of: {', '.join(SYSTEM_ROLES)}")
    teams: list[Slug] = Field(default=[], description="for a role bound to teams, which")


class ApiKeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str = Field(description="the first characters of the key, to tell keys apart")
    roles: list[str]
    teams: list[str]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="the key itself: shown this once, never again; send it as `Authorization: Bearer <key>`")


@router.post("", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED,
             responses={422: {"description": "A role an API key may not have."}})
async def create_key(body: ApiKeyCreate, session: SessionDep, access: Admin) -> ApiKeyCreated:
    """Issue a key for a hospital system. Store it in the system's secret store: it is not shown again."""
    refused = sorted(set(body.roles) - set(SYSTEM_ROLES))
    if refused:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"an API key may not have the roles {', '.join(refused)}; only {', '.join(SYSTEM_ROLES)}")
    record, key = await create_api_key(session, body.name, [role.value for role in body.roles], body.teams,
                                       access.principal.id)
    await access.record(session, "api_key.create", target=record.id)
    await session.commit()
    return ApiKeyCreated(**ApiKeyPublic.model_validate(record).model_dump(), key=key)


@router.get("", response_model=list[ApiKeyPublic])
async def list_keys(session: SessionDep, access: Admin, page: PageDep) -> list[ApiKey]:
    """Every key, newest first, revoked ones included, with when each was last used."""
    return list(await session.scalars(page.apply(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id))))


@router.post("/{key_id}/revoke", response_model=ApiKeyPublic, responses={404: {"model": Message}})
async def revoke_key(key_id: str, session: SessionDep, access: Admin) -> ApiKey:
    """Revoke a key at once: the next request with it is refused."""
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"API key '{key_id}' not found")
    await revoke_api_key(session, key_id, datetime.now(UTC))
    await access.record(session, "api_key.revoke", target=key_id)
    await session.commit()
    await session.refresh(key)
    return key
