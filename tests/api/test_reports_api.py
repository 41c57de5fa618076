"""The report routes: JSON and CSV of the same figures, each caller within what they may read.

The figures themselves are checked against an independent computation in tests/services/test_reports.py;
here, a few ended enrollments of a pathway of this test's own (ended, so no workflow is started for
them) show what reaches a client, and who gets which teams.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from services.principals import Role
from store.db import (
    Enrollment,
    EnrollmentTeam,
    EscalationRecord,
    Patient,
    QuestionnaireRecord,
    ResponseRecord,
)
from tests.api.accounts import Accounts


@pytest.fixture
async def pathway_figures(app: FastAPI, api: httpx.AsyncClient) -> dict:
    """Two ended enrollments of a pathway only this test uses, one per team, anchored two days ago."""
    tag = uuid.uuid4().hex[:8]
    pathway, team_a, team_b = f"reports-{tag}", f"team-a-{tag}", f"team-b-{tag}"
    for team in (team_a, team_b):
        created = await api.post("/teams", json={"id": team, "name": team, "email": f"{team}@hospital.test"})
        assert created.status_code == 201, created.text
    anchor = datetime.now(UTC) - timedelta(days=2)
    async with app.state.services.sessions.begin() as session:
        for number, (team, recommend, experience) in enumerate([(team_a, 10, "very_good"), (team_b, 3, "poor")]):
            enrollment_id = f"en_{tag}{number}"
            session.add(Patient(id=f"pt_{tag}{number}", given_name="Wei", family_name="Li", locale="zh-CN",
                                timezone="Asia/Shanghai"))
            await session.flush()
            session.add(Enrollment(id=enrollment_id, patient_id=f"pt_{tag}{number}", pathway_id=pathway,
                                   pathway_version=1, anchor=anchor, timezone="Asia/Shanghai", status="completed",
                                   request_fingerprint="test", created_at=anchor, ended_at=anchor + timedelta(days=1)))
            await session.flush()
            session.add(EnrollmentTeam(enrollment_id=enrollment_id, team_id=team))
            questionnaire = QuestionnaireRecord(enrollment_id=enrollment_id, step_id="experience", occurrence=1,
                                                instrument_id="satisfaction", status="answered", opens_at=anchor,
                                                expires_at=anchor + timedelta(days=3))
            session.add(questionnaire)
            await session.flush()
            session.add(ResponseRecord(questionnaire_id=questionnaire.id, instrument_id="satisfaction", source="form",
                                       answers={"recommend": recommend, "overall_experience": experience},
                                       status="accepted", submitted_at=anchor + timedelta(hours=3)))
            session.add(EscalationRecord(id=f"{enrollment_id}-1", enrollment_id=enrollment_id, step_id="experience",
                                         occurrence=1, trigger="rule", reason="test", priority="high", team=team,
                                         tier=1, status="resolved", opened_at=anchor,
                                         acknowledged_at=anchor + timedelta(minutes=10 * (number + 1)),
                                         resolved_at=anchor + timedelta(hours=number + 1)))
    return {"pathway": pathway, "teams": (team_a, team_b), "start": (anchor - timedelta(days=1)).date().isoformat(),
            "end": datetime.now(UTC).date().isoformat()}


async def test_the_report_as_json_and_each_table_as_csv(api: httpx.AsyncClient, pathway_figures: dict):
    query = {"pathway": pathway_figures["pathway"], "start": pathway_figures["start"], "end": pathway_figures["end"]}

    response = await api.get("/reports", params=query)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["enrollments"] == [{"pathway_id": pathway_figures["pathway"], "started": 2, "completed": 2,
                                    "cancelled": 0, "stopped": 0}]
    satisfaction = body["satisfaction"][0]
    assert (satisfaction["promoters"], satisfaction["detractors"], satisfaction["recommend_score"],
            satisfaction["percent_positive"]) == (1, 1, 0.0, 50.0)
    assert [(row["team"], row["acknowledge_p50"]) for row in body["response_times"]] == [
        (pathway_figures["teams"][0], 10.0), (pathway_figures["teams"][1], 20.0)]

    download = await api.get("/reports/satisfaction.csv", params=query)

    assert download.status_code == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert f"carepath-satisfaction-{pathway_figures['pathway']}" in download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.text.removeprefix("\ufeff"))))
    assert rows == [{key: "" if value is None else str(value) for key, value in satisfaction.items()}]
    empty = await api.get("/reports/cohort.csv", params={**query, "start": "2001-01-01", "end": "2001-01-31"})
    assert empty.text == "\ufeffinstrument_id,day,responses,mean_score\r\n", "the header, even with no rows"


async def test_a_clinician_gets_their_teams_figures_and_is_refused_another_teams(accounts: Accounts,
                                                                                 pathway_figures: dict):
    team_a, team_b = pathway_figures["teams"]
    clinician = await accounts.member_of(team_a)
    query = {"pathway": pathway_figures["pathway"], "start": pathway_figures["start"], "end": pathway_figures["end"]}

    own = await clinician.get("/reports", params=query)
    other = await clinician.get("/reports", params={**query, "team": team_b})

    assert own.status_code == 200, own.text
    assert [row["team"] for row in own.json()["response_times"]] == [team_a]
    assert own.json()["enrollments"][0]["started"] == 1
    assert other.status_code == 403
    assert other.json()["detail"] == f"you are not a member of team '{team_b}': ask a clinical manager for its figures"
    manager = await accounts.with_role(Role.CLINICAL_MANAGER)
    assert (await manager.get("/reports", params={**query, "team": team_b})).json()["enrollments"][0]["started"] == 1


@pytest.mark.parametrize(("query", "problem"), [
    ({"start": "2026-03-10", "end": "2026-03-01"}, "must come before its end"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
])
async def test_a_bad_period_is_refused_with_what_is_wrong(api: httpx.AsyncClient, query: dict, problem: str):
    response = await api.get("/reports", params=query)

    assert response.status_code == 422
    assert problem in response.json()["detail"]


async def test_an_unknown_team_or_table_is_not_found(api: httpx.AsyncClient):
    assert (await api.get("/reports", params={"team": "no-such-team"})).status_code == 404
    assert (await api.get("/reports/everything.csv")).status_code == 422
