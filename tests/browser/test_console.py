"""The staff console in real Chromium (Playwright driving Debian's chromium) against the real stack:
the API under uvicorn, a worker, Temporal's dev server and an SMTP inbox (tests/stack.py).
Each test saves a screenshot under pytest's tmp dir and prints its path."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, FLAGS

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium: `make browser` as root in CI")]

MOOD = """\
id: console-mood
version: 1
title: Mood follow-up (console test)
anchor: start
locales: [en, zh-CN]
parameters:
  phq9_referral_score: {value: 10, source: "Kroenke, Spitzer & Williams 2001: PHQ-9 >= 10 moderate depression"}
escalation_policies:
  mood:
    priority: urgent
    tiers:
      - {notify: midwives, ack_within: 10m}
steps:
  - kind: questionnaire
    id: phq9
    instrument: phq-9
    at: 1s
    expire: 1h
    template:
      en: {subject: "How have you been feeling?", body: "Please answer here: {{ link }}"}
      zh-CN: {subject: "近况如何？", body: "请在此填写：{{ link }}"}
    on:
      - when: score >= phq9_referral_score
        escalate: {policy: mood, reason: "PHQ-9 10 or more"}
"""
BLOOD_PRESSURE_CALL = """\
id: console-bp-call
version: 1
title: Blood pressure call (console test)
anchor: start
locales: [en, zh-CN]
parameters:
  bp_systolic_mmhg: {value: 140, source: "WHO 2022 postnatal recommendations: 140/90 mmHg or more"}
  bp_diastolic_mmhg: {value: 90, source: "WHO 2022 postnatal recommendations: 140/90 mmHg or more"}
steps:
  - kind: call
    id: bp-call
    at: 1s
    team: midwives
    instrument: blood-pressure
    script:
      en: Ask how she is and take her blood pressure.
      zh-CN: 询问近况并测量血压。
    on:
      - when: systolic >= bp_systolic_mmhg or diastolic >= bp_diastolic_mmhg
        tag: raised-bp
"""
FREQUENCY = ["not_at_all", "several_days", "more_than_half_the_days", "nearly_every_day"]
PHQ9_OF_15 = {f"q{n}": FREQUENCY[v] for n, v in enumerate((2, 2, 2, 2, 2, 2, 2, 1, 0), start=1)}
LINK = re.compile(r"http://[^\s]+/f/[A-Za-z0-9_.\-]+")
APPEARS_WITHIN_MS = 5000


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator:
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                    args=[flag for flag in FLAGS if flag != "--headless"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="module")
async def deployed(stack) -> None:
    for source in (MOOD, BLOOD_PRESSURE_CALL):
        response = await stack.http.post("/pathways", content=source.encode(),
                                         headers={"Content-Type": "application/yaml"})
        assert response.status_code in (201, 409), response.text


async def staff_member(stack, name: str, teams: list[str]) -> tuple[str, str, str]:
    """A clinician made by the administrator: id, email and one-time password, to type into the sign-in form."""
    email = f"{uuid.uuid4().hex[:12]}@staff.test"
    created = await stack.admin.post("/staff", json={"name": name, "email": email, "roles": ["clinician"],
                                                     "teams": teams})
    assert created.status_code == 201, created.text
    return created.json()["id"], email, created.json()["one_time_password"]


async def signed_in_page(browser, stack, email: str, password: str):
    # The API's own address, which is its CAREPATH_PUBLIC_BASE_URL too: the cookie's origin check passes.
    context = await browser.new_context(base_url=str(stack.http.base_url).rstrip("/"),
                                        viewport={"width": 1280, "height": 1000})
    page = await context.new_page()
    await page.goto("/console/")
    await page.fill("#username", email)
    await page.fill("#password", password)
    await page.press("#password", "Enter")  # the keyboard alone signs in
    await page.wait_for_url("**/console/worklist")
    return page


async def enroll(stack, pathway_id: str, **patient_fields) -> tuple[dict, str]:
    patient = await stack.add_patient(**patient_fields)
    enrolled = await stack.http.post("/enrollments", json={
        "patient_id": patient["id"], "pathway_id": pathway_id, "anchor": datetime.now(UTC).isoformat()},
        headers={"Idempotency-Key": str(uuid.uuid4())})
    assert enrolled.status_code == 201, enrolled.text
    return patient, enrolled.json()["id"]


async def screenshot(page, tmp_path: Path, name: str) -> Path:
    png = tmp_path / f"{name}.png"
    await page.screenshot(path=str(png), full_page=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {png}")
    return png


async def test_a_phq9_of_15_reaches_the_nurses_worklist_within_5_seconds_and_her_acknowledgement_names_her(
        stack, deployed, browser, tmp_path: Path):
    marker = uuid.uuid4().hex[:6]
    nurse_name = f"王芳{marker}"
    _, email, password = await staff_member(stack, nurse_name, ["midwives"])
    nurse = await signed_in_page(browser, stack, email, password)
    assert await nurse.get_attribute("html", "lang") == "zh-CN", "a new account's console speaks Chinese"

    patient, enrollment_id = await enroll(stack, "console-mood", locale="en")
    [invitation] = await stack.until_mail(patient["email"], 1)
    link = LINK.search(invitation.body).group(0)

    # The patient answers in her own browser, by keyboard-free clicks on the real form.
    patient_context = await browser.new_context()
    form = await patient_context.new_page()
    await form.goto(link)
    for item, answer in PHQ9_OF_15.items():
        await form.check(f'input[name="{item}"][value="{answer}"]')
    await form.click('button[type="submit"]')
    await form.wait_for_selector("text=Thank you")
    submitted = time.monotonic()

    row = nurse.locator(f'tr[data-kind="escalation"]:has(a[href="/console/enrollments/{enrollment_id}"])')
    await row.wait_for(timeout=APPEARS_WITHIN_MS)
    appeared_after = time.monotonic() - submitted
    assert appeared_after <= APPEARS_WITHIN_MS / 1000, f"appeared after {appeared_after:.1f}s, without a reload"
    assert await row.get_attribute("data-priority") == "urgent"
    assert "紧急" in await row.inner_text()
    await screenshot(nurse, tmp_path, "worklist-zh-CN")

    await row.locator("td:nth-child(4) a").click()
    await nurse.wait_for_url("**/console/escalations/**")
    await nurse.get_by_role("button", name="确认接手").click()
    await nurse.wait_for_selector('[data-testid="status"]:has-text("已确认")')
    acknowledged = nurse.locator('[data-testid="audit"] tr[data-action="acknowledged"]')
    assert nurse_name in await acknowledged.inner_text(), "the audit names who acknowledged"
    await screenshot(nurse, tmp_path, "escalation-acknowledged-zh-CN")
    await patient_context.close()
    await nurse.context.close()


async def test_a_call_outcome_entered_through_the_form_reaches_the_workflows_rules(stack, deployed, browser,
                                                                                   tmp_path: Path):
    _, email, password = await staff_member(stack, "Li Na", ["midwives"])
    nurse = await signed_in_page(browser, stack, email, password)
    # Her language, chosen with the keyboard and kept on her account.
    await nurse.select_option("#locale", "en")
    await nurse.get_by_role("button", name="切换").click()
    await nurse.wait_for_url("**/console/worklist")
    assert await nurse.get_attribute("html", "lang") == "en"

    _, enrollment_id = await enroll(stack, "console-bp-call")
    row = nurse.locator(f'tr[data-kind="call"]:has(a[href="/console/enrollments/{enrollment_id}"])')
    await row.wait_for(timeout=20_000)
    await row.locator("td:nth-child(4) a").click()
    await nurse.wait_for_url("**/console/tasks/**")
    assert "take her blood pressure" in await nurse.locator("pre.script").inner_text()

    await nurse.check('input[name="outcome"][value="reached"]')
    await nurse.fill('input[name="value.systolic"]', "152")
    await nurse.fill('input[name="value.diastolic"]', "88")
    await nurse.fill("#notes", "Headache since yesterday.")
    await nurse.get_by_role("button", name="Record").click()
    rules = nurse.locator('[data-testid="rules"]')
    await rules.wait_for()
    assert "tag: raised-bp" in await rules.inner_text()

    timeline = (await stack.enrollment(enrollment_id))["timeline"]
    assert "raised-bp" in timeline["tags"], "the workflow's rules saw the values"
    await nurse.goto(f"/console/enrollments/{enrollment_id}")
    chart = nurse.locator('figure.chart[data-name="systolic"]')
    assert await chart.locator("circle.point").count() == 1
    assert await chart.locator('line.threshold[data-parameter="bp_systolic_mmhg"]').count() == 1
    await screenshot(nurse, tmp_path, "call-outcome-en")
    await nurse.context.close()


async def test_a_clinician_of_another_team_is_refused_the_patient_with_a_403_page(stack, deployed, browser,
                                                                                 tmp_path: Path):
    patient, _ = await enroll(stack, "console-mood")
    surgeon_id, email, password = await staff_member(stack, "Zhao Lei", ["surgical-ward"])
    surgeon = await signed_in_page(browser, stack, email, password)

    response = await surgeon.goto(f"/console/patients/{patient['id']}")

    assert response.status == 403
    assert "您无权查看" in await surgeon.locator("h1").inner_text()
    assert patient["family_name"] not in await surgeon.content()
    log = (await stack.http.get(f"/patients/{patient['id']}/access-log")).json()
    assert any(line["actor_id"] == surgeon_id and line["outcome"] == "denied" for line in log)
    await screenshot(surgeon, tmp_path, "refused-403-zh-CN")
    await surgeon.context.close()
