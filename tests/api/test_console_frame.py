"""The console's frame over real HTTP: sign-in with the staff accounts, the member's language, the
vendored htmx, and HTML error pages that keep the API's statuses."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from api.console.i18n import WORDS
from services.accounts import STAFF_LOCALES
from store.db import StaffMember
from tests.api.accounts import Accounts, client_of


async def new_member(accounts: Accounts, name: str = "Zhang Min") -> tuple[str, str]:
    email = f"{uuid.uuid4().hex[:12]}@staff.test"
    created = await accounts.admin.post("/staff", json={"name": name, "email": email, "roles": ["clinician"],
                                                        "teams": []})
    assert created.status_code == 201, created.text
    return email, created.json()["one_time_password"]


def test_every_word_is_in_every_language_the_console_speaks():
    missing = {key: sorted(set(STAFF_LOCALES) - set(entry)) for key, entry in WORDS.items()
               if set(entry) != set(STAFF_LOCALES)}
    assert missing == {}


async def test_a_page_asks_an_anonymous_visitor_to_sign_in_in_their_browsers_language(anonymous: httpx.AsyncClient):
    chinese = await anonymous.get("/console/", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    english = await anonymous.get("/console/", headers={"Accept-Language": "en-GB,en;q=0.8"})

    assert chinese.status_code == english.status_code == 401
    assert '<html lang="zh-CN">' in chinese.text and "登录" in chinese.text
    assert '<html lang="en">' in english.text and "Sign in" in english.text
    assert 'name="next" value="/console/"' in english.text


async def test_signing_in_sets_the_session_cookie_and_a_wrong_password_says_so(app: FastAPI, accounts: Accounts):
    email, password = await new_member(accounts)
    async with client_of(app) as browser:
        wrong = await browser.post("/console/sign-in", data={"username": email, "password": "not it",
                                                              "next": "/console/patients"})
        assert wrong.status_code == 401 and 'role="alert"' in wrong.text
        assert "carepath_session" not in browser.cookies

        signed_in = await browser.post("/console/sign-in", data={"username": email, "password": password,
                                                                  "next": "https://elsewhere.test/console/"})
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/console/", "never sent to another site after sign-in"
        assert "carepath_session" in browser.cookies

        signed_out = await browser.post("/console/sign-out")
        assert signed_out.status_code == 303 and "carepath_session" not in browser.cookies


async def test_the_chosen_language_is_kept_on_the_account(app: FastAPI, accounts: Accounts):
    email, password = await new_member(accounts, name="Chen Jing")
    async with client_of(app) as browser:
        await browser.post("/console/sign-in", data={"username": email, "password": password})
        chosen = await browser.post("/console/locale", data={"locale": "en", "back": "/console/patients"})
        assert chosen.status_code == 303 and chosen.headers["location"] == "/console/patients"
        refused = await browser.post("/console/locale", data={"locale": "fr"})
        assert refused.status_code == 422 and "not &#39;fr&#39;" in refused.text

    async with app.state.services.sessions() as session:
        member = await session.scalar(select(StaffMember).where(StaffMember.email == email))
    assert member.locale == "en"


async def test_htmx_is_served_from_the_repository_with_its_licence(anonymous: httpx.AsyncClient):
    script = await anonymous.get("/console/static/htmx.min.js")
    licence = await anonymous.get("/console/static/htmx.LICENSE.txt")
    elsewhere = await anonymous.get("/console/static/..%2Fpages.py")

    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "htmx" in script.text[:2000]
    assert licence.status_code == 200 and licence.text.startswith("Zero-Clause BSD")
    assert elsewhere.status_code == 404
