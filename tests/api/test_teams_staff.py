"""Teams and staff through the API, and the roster file seeding the teams table at start-up."""

import logging
import uuid
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from services.settings import Settings
from services.site import SiteIncomplete
from tests.api.accounts import Accounts

ROSTER = """\
teams:
  - id: exfiltrated
    name: Not really a team
    webhook: http://169.254.169.254/latest/meta-data
  - id: ward-a
    name: Ward A nurses
    email: ward-a@hospital.test
  - id: pager-only
    name: Night registrar
    webhook: https://pager.hospital.test/hooks/carepath
"""


def new_team(**fields) -> dict:
    """A team of this test's own: the route tests share one database."""
    team_id = f"team-{uuid.uuid4().hex[:8]}"
    return {"id": team_id, "name": "Community midwives", "email": f"{team_id}@hospital.test", "webhook": None} | fields


async def add_team(api: httpx.AsyncClient, **fields) -> dict:
    response = await api.post("/teams", json=new_team(**fields))
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_created_team_can_be_read_back_and_is_listed(api: httpx.AsyncClient):
    team = new_team(webhook="https://pager.hospital.test/hooks/carepath")
    created = await api.post("/teams", json=team)
    assert created.status_code == 201, created.text
    assert created.json() == team

    assert (await api.get(f"/teams/{team['id']}")).json() == team
    listed = (await api.get("/teams")).json()
    assert team in listed and [t["id"] for t in listed] == sorted(t["id"] for t in listed)


async def test_a_team_id_is_taken_once(api: httpx.AsyncClient):
    team = await add_team(api)
    again = await api.post("/teams", json=team | {"name": "Someone else"})
    assert (again.status_code, again.json()) == (
        409, {"detail": f"team '{team['id']}' already exists; change it with PATCH /teams/{team['id']}"})
    assert (await api.get(f"/teams/{team['id']}")).json()["name"] == "Community midwives"


async def test_a_team_needs_a_channel_and_well_formed_fields(api: httpx.AsyncClient):
    silent = new_team(email=None)
    response = await api.post("/teams", json=silent)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert f"team '{silent['id']}' needs an email or a webhook, or nobody is ever told" in error["msg"]

    response = await api.post("/teams", json=new_team(id="Midwives Team", email="not an address",
                                                        webhook="ftp://pager.example"))
    assert response.status_code == 422
    assert sorted(error["loc"][-1] for error in response.json()["detail"]) == ["email", "id", "webhook"]
    assert (await api.get(f"/teams/{silent['id']}")).status_code == 404


async def test_a_webhook_goes_only_to_an_allowed_host(api: httpx.AsyncClient):
    team = await add_team(api)
    for url, because in (("https://[pager.hospital.test/hook", "is not a valid address (Invalid IPv6 URL)"),
                         ("http://169.254.169.254/latest/meta-data", "webhook host '169.254.169.254' is not allowed"),
                         ("https://pager.elsewhere.example/hook", "webhook host 'pager.elsewhere.example' is not allowed")):
        created = await api.post("/teams", json=new_team(webhook=url))
        assert created.status_code == 422 and because in created.json()["detail"], created.text
        changed = await api.patch(f"/teams/{team['id']}", json={"webhook": url})
        assert changed.status_code == 422 and because in changed.json()["detail"], changed.text
    assert "(CAREPATH_WEBHOOK_ALLOWED_HOSTS): pager.hospital.test, 127.0.0.1" in changed.json()["detail"]
    assert (await api.get(f"/teams/{team['id']}")).json() == team


async def test_an_unknown_team_is_404(api: httpx.AsyncClient):
    for response in (await api.get("/teams/no-such-team"), await api.patch("/teams/no-such-team", json={"name": "X"})):
        assert (response.status_code, response.json()) == (404, {"detail": "team 'no-such-team' not found"})


async def test_updating_a_team_changes_only_what_is_given(api: httpx.AsyncClient):
    team = await add_team(api)
    renamed = await api.patch(f"/teams/{team['id']}", json={"name": "Midwives (north)"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json() == team | {"name": "Midwives (north)"}

    hook = "https://pager.hospital.test/hooks/north"
    swapped = await api.patch(f"/teams/{team['id']}", json={"webhook": hook, "email": None})
    assert swapped.json() == team | {"name": "Midwives (north)", "webhook": hook, "email": None}
    assert (await api.get(f"/teams/{team['id']}")).json() == swapped.json()


async def test_an_update_may_not_leave_a_team_unreachable_or_nameless(api: httpx.AsyncClient):
    team = await add_team(api)
    silenced = await api.patch(f"/teams/{team['id']}", json={"email": None})
    assert (silenced.status_code, silenced.json()) == (
        422, {"detail": f"team '{team['id']}' needs an email or a webhook, or nobody is ever told"})
    nameless = await api.patch(f"/teams/{team['id']}", json={"name": None})
    assert nameless.status_code == 422
    assert "a team's name can be changed, not removed" in nameless.json()["detail"][0]["msg"]
    assert (await api.patch(f"/teams/{team['id']}", json={"email": "nope"})).status_code == 422
    assert (await api.get(f"/teams/{team['id']}")).json() == team


async def test_staff_accounts_have_roles_and_teams(accounts: Accounts):
    admin = accounts.admin
    team, other_team = (await add_team(admin))["id"], (await add_team(admin))["id"]
    email = f"wang.fang.{uuid.uuid4().hex[:6]}@hospital.test"
    member = {"name": "Wang Fang", "email": email.upper(), "job_title": "midwife", "roles": ["clinician"],
              "teams": [team, other_team]}
    created = await admin.post("/staff", json=member)
    assert created.status_code == 201, created.text
    staff = created.json()
    password = staff.pop("one_time_password")
    assert staff["id"].startswith("st_") and len(password) >= 16
    assert {key: staff[key] for key in member} == member | {"email": email, "teams": sorted([team, other_team])}
    assert (staff["active"], staff["locked_until"], staff["last_sign_in_at"]) == (True, None, None)

    assert (await admin.get(f"/staff/{staff['id']}")).json() == staff
    assert [s["id"] for s in (await admin.get("/staff", params={"team": other_team})).json()] == [staff["id"]]
    again = await admin.post("/staff", json=member | {"name": "Someone else"})
    assert (again.status_code, again.json()) == (409, {"detail": f"an account with the email {email} exists"})

    signed_in = await accounts.sign_in(email, password)
    me = (await signed_in.get("/auth/me")).json()
    assert (me["id"], me["roles"], me["teams"]) == (staff["id"], ["clinician"], sorted([team, other_team]))
    assert (await admin.get(f"/staff/{staff['id']}")).json()["last_sign_in_at"] is not None


async def test_staff_need_known_teams_and_well_formed_fields(accounts: Accounts):
    admin = accounts.admin
    member = {"name": "Wang Fang", "email": "wang.fang@hospital.test", "roles": ["clinician"], "teams": ["no-such-team"]}
    unknown = await admin.post("/staff", json=member)
    assert (unknown.status_code, unknown.json()) == (422, {"detail": "no team no-such-team; see GET /teams"})

    malformed = await admin.post("/staff", json=member | {"name": " ", "email": "wang", "roles": ["superuser"]})
    assert malformed.status_code == 422
    assert sorted(str(error["loc"][1]) for error in malformed.json()["detail"]) == ["email", "name", "roles"]
    assert (await admin.post("/staff", json=member | {"roles": []})).status_code == 422

    missing = await admin.get("/staff/st_nobody")
    assert (missing.status_code, missing.json()) == (404, {"detail": "staff member 'st_nobody' not found"})
    listed = await admin.get("/staff", params={"team": "no-such-team"})
    assert (listed.status_code, listed.json()) == (404, {"detail": "team 'no-such-team' not found"})


async def test_a_new_password_replaces_the_one_time_password(accounts: Accounts, anonymous: httpx.AsyncClient):
    email = f"{uuid.uuid4().hex[:10]}@hospital.test"
    created = (await accounts.admin.post("/staff", json={"name": "Li Na", "email": email, "roles": ["clinician"]})).json()
    nurse = await accounts.sign_in(email, created["one_time_password"])
    short = await nurse.post("/auth/password", json={"current_password": created["one_time_password"],
                                                     "new_password": "short"})
    assert short.status_code == 422
    wrong = await nurse.post("/auth/password", json={"current_password": "not it at all",
                                                     "new_password": "a long new pass phrase"})
    assert wrong.status_code == 422
    changed = await nurse.post("/auth/password", json={"current_password": created["one_time_password"],
                                                       "new_password": "a long new pass phrase"})
    assert changed.status_code == 204, changed.text
    for password, expected in ((created["one_time_password"], 401), ("a long new pass phrase", 200)):
        response = await anonymous.post("/auth/token", data={"username": email, "password": password})
        assert response.status_code == expected, response.text


@pytest.fixture
def site(site_folder: Path, settings: Settings, own_database_url: str) -> Settings:
    """An application of its own, with a roster file and a fresh database, on the shared Temporal."""
    folder = site_folder
    (folder / "site").mkdir()
    (folder / "site" / "teams.yaml").write_text(ROSTER, encoding="utf-8")
    return settings.model_copy(update={"DATABASE_URL": own_database_url,
                                       "PATHWAYS_DIR": folder})


def _started(settings: Settings):
    app = create_app(settings)
    return app, app.router.lifespan_context(app)


async def _teams(app) -> dict[str, dict]:
    async with Accounts.of(app) as accounts:
        return {team["id"]: team for team in (await accounts.admin.get("/teams")).json()}


async def test_the_roster_file_seeds_teams_and_never_overwrites_a_change_made_through_the_api(site: Settings,
                                                                                               caplog):
    app, lifespan = _started(site)
    async with lifespan:
        assert await _teams(app) == {
            "ward-a": {"id": "ward-a", "name": "Ward A nurses", "email": "ward-a@hospital.test", "webhook": None},
            "pager-only": {"id": "pager-only", "name": "Night registrar", "email": None,
                           "webhook": "https://pager.hospital.test/hooks/carepath"},
        }
        async with Accounts.of(app) as accounts:
            changed = await accounts.admin.patch("/teams/ward-a", json={"email": "ward-a-desk@hospital.test"})
            assert changed.status_code == 200, changed.text

    # The file grows a team; the team changed through the API is still as the API left it.
    roster = site.PATHWAYS_DIR / "site" / "teams.yaml"
    roster.write_text(ROSTER + "  - id: ward-b\n    name: Ward B nurses\n    email: ward-b@hospital.test\n")
    app, lifespan = _started(site)
    with caplog.at_level(logging.INFO, logger="services.teams"):
        async with lifespan:
            teams = await _teams(app)
    assert teams["ward-a"]["email"] == "ward-a-desk@hospital.test"
    assert teams["ward-b"] == {"id": "ward-b", "name": "Ward B nurses", "email": "ward-b@hospital.test",
                               "webhook": None}
    [kept] = [record.getMessage() for record in caplog.records
              if record.levelno == logging.WARNING and record.name == "services.teams"]
    assert kept.startswith("team ward-a differs from the roster file; keeping the database's version")
    assert "email 'ward-a-desk@hospital.test' (file: 'ward-a@hospital.test')" in kept
    assert "teams.yaml: 4 team(s), 1 added, 1 kept as changed through the API, 1 refused" in caplog.text
    [refused] = {record.getMessage() for record in caplog.records  # at each start
                 if record.levelno == logging.ERROR and record.name == "services.teams"}
    assert refused.startswith("team exfiltrated from the roster file was not loaded: webhook host '169.254.169.254'")
    assert "exfiltrated" not in teams


async def test_a_broken_roster_file_is_reported_and_the_api_still_starts(site: Settings, caplog):
    (site.PATHWAYS_DIR / "site" / "teams.yaml").write_text(ROSTER.replace("    email: ward-a@hospital.test\n", ""))
    app, lifespan = _started(site)
    with caplog.at_level(logging.INFO, logger="services.teams"):
        async with lifespan:
            assert await _teams(app) == {}
    [error] = [record.getMessage() for record in caplog.records
               if record.levelno == logging.ERROR and record.name == "services.teams"]
    assert "teams.yaml was not loaded; it has 1 problem(s)" in error
    assert "team 'ward-a' needs an email or a webhook" in error


async def test_a_custom_pathways_folder_without_its_site_files_is_refused_by_name(tmp_path: Path, settings: Settings,
                                                                               own_database_url: str):
    folder = tmp_path / "hospital-pathways"
    (folder / "site").mkdir(parents=True)
    (folder / "site" / "teams.yaml").write_text(ROSTER, encoding="utf-8")
    app, lifespan = _started(settings.model_copy(update={
        "DATABASE_URL": own_database_url, "PATHWAYS_DIR": folder}))

    with pytest.raises(SiteIncomplete) as refused:
        async with lifespan:
            pass

    message = str(refused.value)
    assert f"{folder / 'instruments'}, {folder / 'safety' / 'crisis-lexicon.yaml'} are missing" in message
