"""A patient's date of birth through the API: kept and shown, and refused when it is not in the past."""

from datetime import date, timedelta

import httpx

PATIENT = {"given_name": "Mei", "family_name": "Chen", "locale": "zh-CN", "timezone": "Asia/Shanghai"}


async def test_a_date_of_birth_is_kept_and_shown(api: httpx.AsyncClient):
    created = await api.post("/patients", json=PATIENT | {"birth_date": "1990-03-14"})
    assert created.status_code == 201, created.text

    read = await api.get(f"/patients/{created.json()['id']}")

    assert read.json()["birth_date"] == "1990-03-14"


async def test_a_date_of_birth_in_the_future_is_refused_naming_the_field(api: httpx.AsyncClient):
    tomorrow = date.today() + timedelta(days=1)

    refused = await api.post("/patients", json=PATIENT | {"birth_date": tomorrow.isoformat()})

    assert refused.status_code == 422
    [problem] = refused.json()["detail"]
    assert problem["loc"][-1] == "birth_date" and "in the past" in problem["msg"]
