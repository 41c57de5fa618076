"""GET/PUT /patients/{id}/preferences: read back as written, refused whole when a field is wrong, each
read and change in the patient's access log; on SQLite and PostgreSQL (the api fixtures run both)."""

import uuid

import httpx

from services.principals import Role
from tests.api.accounts import Accounts

WANTED = {"channels": ["wechat", "sms"], "quiet_hours": "22:00-07:30", "daily_budget": 3, "locale": "en"}


async def test_preferences_are_read_back_as_written_and_the_locale_is_the_patients(api: httpx.AsyncClient,
                                                                                   patient: dict):
    url = f"/patients/{patient['id']}/preferences"
    before = await api.get(url)
    assert before.status_code == 200, before.text
    assert before.json() == {"channels": [], "quiet_hours": None, "daily_budget": None, "locale": "zh-CN",
                             "daily_budget_in_force": 5}

    replaced = await api.put(url, json=WANTED)

    assert replaced.status_code == 200, replaced.text
    assert replaced.json() == WANTED | {"daily_budget_in_force": 3}
    assert (await api.get(url)).json() == replaced.json()
    assert (await api.get(f"/patients/{patient['id']}")).json()["locale"] == "en"
    without_budget = await api.put(url, json=WANTED | {"daily_budget": None})
    assert without_budget.json()["daily_budget_in_force"] == 5


async def test_wrong_preferences_are_refused_naming_the_field_and_nothing_changes(api: httpx.AsyncClient,
                                                                                  patient: dict):
    url = f"/patients/{patient['id']}/preferences"
    assert (await api.put(url, json=WANTED)).status_code == 200
    wrong = {"quiet_hours": ("25:00-07:00", "has a time outside 00:00-23:59"),
             "channels": (["sms", "fax", "sms"], "Input should be"),
             "daily_budget": (0, "greater than or equal to 1"),
             "locale": ("Chinese", "should match pattern")}
    for field, (value, problem) in wrong.items():
        refused = await api.put(url, json=WANTED | {"locale": "zh-CN", field: value})
        assert refused.status_code == 422, field
        assert any(error["loc"][:2] == ["body", field] and problem in error["msg"]
                   for error in refused.json()["detail"]), refused.json()
    twice = await api.put(url, json=WANTED | {"channels": ["sms", "wechat", "sms"]})
    assert "list each channel once (sms more than once)" in twice.json()["detail"][0]["msg"]

    assert (await api.get(url)).json() == WANTED | {"daily_budget_in_force": 3}


async def test_reading_and_changing_preferences_are_audited_and_scoped(api: httpx.AsyncClient, accounts: Accounts,
                                                                       patient: dict):
    url = f"/patients/{patient['id']}/preferences"
    system = await accounts.with_role(Role.INTEGRATION)
    assert (await system.put(url, json=WANTED)).status_code == 200
    assert (await system.get(url)).status_code == 200
    # A clinician whose teams follow no enrollment of this patient does not learn the patient exists.
    ward = f"ward-{uuid.uuid4().hex[:6]}"
    assert (await api.post("/teams", json={"id": ward, "name": ward, "email": f"{ward}@hospital.test"})).status_code == 201
    stranger = await accounts.member_of(ward)
    assert (await stranger.get(url)).status_code == 404

    log = (await (await accounts.with_role(Role.AUDITOR)).get(f"/patients/{patient['id']}/access-log")).json()
    assert [line["action"] for line in log if line["action"].startswith("patient.preferences")][:2] == [
        "patient.preferences.read", "patient.preferences.update"]
