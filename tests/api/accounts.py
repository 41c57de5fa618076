"""Signed-in clients for route tests: accounts are made the way a hospital makes them, through the API
as the first administrator, and sign in through POST /auth/token."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI
from services.identity import create_admin

from services.principals import Role

BASE_URL = "http://carepath.test"


def client_of(app: FastAPI, headers: dict[str, str] | None = None, address: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 123)), base_url=BASE_URL,
                             headers=headers)


class Accounts:
    def __init__(self, app: FastAPI, clients: AsyncExitStack):
        self._app = app
        self._clients = clients
        self.admin: httpx.AsyncClient | None = None
        self._by_role: dict[Role, httpx.AsyncClient] = {}

    @classmethod
    @asynccontextmanager
    async def of(cls, app: FastAPI) -> AsyncIterator[Accounts]:
        email = f"admin-{uuid.uuid4().hex[:8]}@staff.test"
        async with app.state.services.sessions() as session:
            password = await create_admin(session, email, "First administrator")
        async with AsyncExitStack() as clients:
            made = cls(app, clients)
            made.admin = await made.sign_in(email, password)
            yield made

    async def sign_in(self, email: str, password: str) -> httpx.AsyncClient:
        async with client_of(self._app) as anonymous:
            response = await anonymous.post("/auth/token", data={"username": email, "password": password})
        assert response.status_code == 200, response.text
        return await self._clients.enter_async_context(
            client_of(self._app, {"Authorization": f"Bearer {response.json()['access_token']}"}))

    async def staff(self, roles: Collection[Role], teams: Collection[str] = (),
                    name: str = "Test staff") -> tuple[str, httpx.AsyncClient]:
        """A new staff member with these roles and teams: their id, and a client signed in as them."""
        email = f"{uuid.uuid4().hex[:12]}@staff.test"
        created = await self.admin.post("/staff", json={"name": name, "email": email, "roles": sorted(roles),
                                                        "teams": sorted(teams)})
        assert created.status_code == 201, created.text
        return created.json()["id"], await self.sign_in(email, created.json()["one_time_password"])

    async def member_of(self, *teams: str, roles: Collection[Role] = (Role.CLINICIAN,)) -> httpx.AsyncClient:
        return (await self.staff(roles, teams))[1]

    async def with_role(self, role: Role) -> httpx.AsyncClient:
        """One principal per role, made once: integration is a hospital system's API key, the others staff."""
        if role not in self._by_role:
            if role == Role.INTEGRATION:
                created = await self.admin.post("/api-keys", json={"name": "test HIS", "roles": [role]})
                assert created.status_code == 201, created.text
                self._by_role[role] = await self._clients.enter_async_context(
                    client_of(self._app, {"Authorization": f"Bearer {created.json()['key']}"}))
            else:
                self._by_role[role] = (await self.staff([role]))[1]
        return self._by_role[role]

    async def everything(self) -> httpx.AsyncClient:
        """Every role at once (integration makes it hospital-wide, like a follow-up centre's account): for
        route tests about something other than access."""
        return (await self.staff(set(Role)))[1]
