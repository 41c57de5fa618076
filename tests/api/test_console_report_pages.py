"""The console's pathways, reports and stage-summary pages, as HTML from the real app (see conftest).

What they look like in a browser is tests/browser/test_console_reports.py; here, what they contain,
who gets them, and that reading a stage summary is in the patient's access log.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from services.principals import Role
from store.db import AccessAudit, Enrollment, EnrollmentTeam, Patient
from tests.api.accounts import Accounts
from tests.api.conftest import SHIPPED_PATHWAY


async def test_the_pathways_page_lists_every_version_with_its_patients(api: httpx.AsyncClient):
    page = await api.get("/console/pathways")

    assert page.status_code == 200
    assert "API follow-up" in page.text
    assert re.search(r'<tr data-version="1">.*?<td class="num" data-active>\d+</td>', page.text, re.DOTALL)


async def test_a_version_shows_its_preview_and_two_versions_compare_side_by_side(api: httpx.AsyncClient):
    pathway_id = f"console-{uuid.uuid4().hex[:8]}"
    first = SHIPPED_PATHWAY.replace("api-follow-up", pathway_id)
    second = first.replace("version: 1", "version: 2").replace("times: 3", "times: 5")
    for source in (first, second):
        deployed = await api.post("/pathways", content=source, headers={"Content-Type": "application/yaml"})
        assert deployed.status_code == 201, deployed.text

    page = await api.get(f"/console/pathways/{pathway_id}", params={"anchor": "2026-03-02"})
    picture = await api.get(f"/console/pathways/{pathway_id}/versions/2/preview", params={"anchor": "2026-03-02"})
    diff = await api.get(f"/console/pathways/{pathway_id}/diff", params={"old": 1, "new": 2, "anchor": "2026-03-02"})

    assert page.status_code == 200
    assert f'src="/console/pathways/{pathway_id}/versions/2/preview?anchor=2026-03-02"' in page.text
    assert picture.status_code == 200 and "<svg" in picture.text and "5 messages" in picture.text
    assert diff.status_code == 200
    text = diff.text[diff.text.index('data-diff="text"'):]
    assert 'times:&nbsp;<span class="diff_chg">3</span>' in text and 'times:&nbsp;<span class="diff_chg">5</span>' in text
    plan = diff.text[diff.text.index('data-diff="plan"'):diff.text.index('data-diff="text"')]
    assert plan.count('class="diff_add"') >= 2, "the two more messages are in the new plan"
    assert (await api.get(f"/console/pathways/{pathway_id}/diff", params={"old": 1, "new": 9})).status_code == 404


async def test_the_reports_page_has_every_table_with_its_csv_link(api: httpx.AsyncClient):
    page = await api.get("/console/reports", params={"start": "2026-01-01", "end": "2026-01-31"})

    assert page.status_code == 200
    for table in ("enrollments", "touchpoints", "response_rates", "response_times", "satisfaction", "cohort"):
        assert f'data-table="{table}"' in page.text
        assert f'href="/reports/{table}.csv?start=2026-01-01&amp;end=2026-01-31&amp;timezone=UTC"' in page.text
    assert "统计报表" in page.text and "该期间无数据。" in page.text


async def test_the_stage_summary_is_for_involved_clinicians_and_audited(app: FastAPI, accounts: Accounts):
    tag = uuid.uuid4().hex[:8]
    team, other_team = f"summary-{tag}", f"other-{tag}"
    for made in (team, other_team):
        created = await accounts.admin.post("/teams", json={"id": made, "name": made, "email": f"{made}@hospital.test"})
        assert created.status_code == 201, created.text
    anchor = datetime.now(UTC) - timedelta(days=3)
    async with app.state.services.sessions.begin() as session:
        session.add(Patient(id=f"pt_{tag}", given_name="Wei", family_name="Li", locale="zh-CN",
                            timezone="Asia/Shanghai"))
        await session.flush()
        session.add(Enrollment(id=f"en_{tag}", patient_id=f"pt_{tag}", pathway_id="api-follow-up", pathway_version=1,
                               anchor=anchor, timezone="Asia/Shanghai", status="completed", request_fingerprint="t",
                               created_at=anchor, ended_at=anchor + timedelta(days=1)))
        await session.flush()
        session.add(EnrollmentTeam(enrollment_id=f"en_{tag}", team_id=team))
    nurse_id, nurse = await accounts.staff([Role.CLINICIAN], [team], name="Nurse Zhang")
    outsider_id, outsider = await accounts.staff([Role.CLINICIAN], [other_team])

    page = await nurse.get(f"/console/enrollments/en_{tag}/summary")
    refused = await outsider.get(f"/console/enrollments/en_{tag}/summary")

    assert page.status_code == 200
    assert "随访小结" in page.text and "<dd data-patient>LiWei</dd>" in page.text, "family name first in Chinese"
    assert "打印人：Nurse Zhang" in page.text
    assert refused.status_code == 403 and "LiWei" not in refused.text
    async with app.state.services.sessions() as session:
        lines = (await session.execute(select(AccessAudit.actor_id, AccessAudit.action, AccessAudit.outcome).where(
            AccessAudit.enrollment_id == f"en_{tag}"))).all()
    assert sorted(lines) == sorted([(nurse_id, "enrollment.summary", "allowed"),
                                    (outsider_id, f"GET /console/enrollments/en_{tag}/summary", "denied")])
    assert (await nurse.get("/console/enrollments/en_nobody/summary")).status_code == 404
