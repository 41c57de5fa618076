import asyncio
import uuid

import httpx
from sqlalchemy import func, select

from services.principals import Role
from store.db import AccessAudit, Patient

NEW_PATIENT = {"given_name": "Mei", "family_name": "Chen", "email": "mei.chen@example.test", "phone": "+86 138 0013 8000",
               "locale": "zh-CN", "timezone": "Asia/Shanghai"}


async def test_a_created_patient_can_be_read_back(api: httpx.AsyncClient):
    created = await api.post("/patients", json=NEW_PATIENT)
    assert created.status_code == 201, created.text
    patient = created.json()
    assert patient["id"].startswith("pt_")
    assert {key: patient[key] for key in NEW_PATIENT} == NEW_PATIENT | {"phone": "+8613800138000"}

    read = await api.get(f"/patients/{patient['id']}")
    assert read.status_code == 200
    assert read.json() == patient


async def test_an_unknown_patient_is_404(api: httpx.AsyncClient):
    response = await api.get("/patients/pt_nobody")
    assert response.status_code == 404
    assert response.json() == {"detail": "patient 'pt_nobody' not found"}


async def test_time_zones_must_be_iana_names(api: httpx.AsyncClient):
    response = await api.post("/patients", json=NEW_PATIENT | {"timezone": "China Standard Time"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "timezone"]
    assert "'China Standard Time' is not an IANA time zone" in error["msg"]


async def test_locales_must_be_language_tags(api: httpx.AsyncClient):
    for locale in ("zh_CN", "Chinese", "ZH-cn"):
        response = await api.post("/patients", json=NEW_PATIENT | {"locale": locale})
        assert response.status_code == 422, locale
        assert [error["loc"] for error in response.json()["detail"]] == [["body", "locale"]]
    for locale in ("en", "zh-CN", "zh-Hant"):
        assert (await api.post("/patients", json=NEW_PATIENT | {"locale": locale})).status_code == 201, locale


async def test_names_and_email_are_checked(api: httpx.AsyncClient):
    response = await api.post("/patients", json=NEW_PATIENT | {"given_name": "  ", "email": "not an address"})
    assert response.status_code == 422
    assert sorted(error["loc"][-1] for error in response.json()["detail"]) == ["email", "given_name"]


async def test_a_hospital_system_upserts_patients_by_their_hospital_number(api: httpx.AsyncClient, as_role):
    system = await as_role(Role.INTEGRATION)
    number = f"MRN-{uuid.uuid4().hex[:8]}"
    url = f"/patients/by-hospital-number/{number}"

    created = await system.put(url, json=NEW_PATIENT)
    assert created.status_code == 201, created.text
    assert created.json()["hospital_number"] == number
    moved = await system.put(url, json=NEW_PATIENT | {"phone": "+86 139 0000 0000", "hospital_number": number})
    assert moved.status_code == 200 and moved.json()["id"] == created.json()["id"]
    assert (await api.get(f"/patients/{created.json()['id']}")).json()["phone"] == "+8613900000000"

    other = await system.put(url, json=NEW_PATIENT | {"hospital_number": "MRN-SOMEONE-ELSE"})
    assert other.status_code == 422 and "MRN-SOMEONE-ELSE" in other.json()["detail"]
    taken = await api.post("/patients", json=NEW_PATIENT | {"hospital_number": number})
    assert taken.status_code == 409


async def test_a_patient_may_be_reached_on_wechat(api: httpx.AsyncClient):
    openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    created = await api.post("/patients", json=NEW_PATIENT | {"wechat_openid": openid})
    assert created.status_code == 201, created.text
    assert (await api.get(f"/patients/{created.json()['id']}")).json()["wechat_openid"] == openid
    refused = await api.post("/patients", json=NEW_PATIENT | {"wechat_openid": "not an openid"})
    assert refused.status_code == 422
    assert [error["loc"] for error in refused.json()["detail"]] == [["body", "wechat_openid"]]


async def test_phones_are_stored_in_e164_national_ones_read_in_the_sites_region(api: httpx.AsyncClient):
    # The site's region is CN unless CAREPATH_DEFAULT_PHONE_REGION says otherwise.
    for typed, stored in (("138-0013-8000", "+8613800138000"), ("+44 20 7946 0958", "+442079460958"),
                          ("(+86) 13800138000", "+8613800138000")):
        created = await api.post("/patients", json=NEW_PATIENT | {"phone": typed})
        assert created.status_code == 201, created.text
        assert created.json()["phone"] == stored, typed


async def test_a_number_that_is_no_phone_is_refused_naming_the_field(api: httpx.AsyncClient, as_role, app):
    system = await as_role(Role.INTEGRATION)
    number = f"MRN-{uuid.uuid4().hex[:8]}"
    for typed in ("12345", "call me", "+86 138 0013", "+86 10 6552 9988 ext. 12"):
        for refused in (await api.post("/patients", json=NEW_PATIENT | {"phone": typed}),
                        await system.put(f"/patients/by-hospital-number/{number}", json=NEW_PATIENT | {"phone": typed})):
            assert refused.status_code == 422, (typed, refused.text)
            [error] = refused.json()["detail"]
            assert error["loc"] == ["body", "phone"] and f"'{typed}'" in error["msg"]
    async with app.state.services.sessions() as session:
        assert await session.scalar(select(Patient).where(Patient.hospital_number == number)) is None


async def test_concurrent_upserts_of_one_hospital_number_make_one_patient(api: httpx.AsyncClient, as_role, app):
    """Two interfaces of the hospital (admission and the lab, say) send the same new patient at once."""
    systems = [await as_role(Role.INTEGRATION) for _ in range(2)]
    number = f"MRN-{uuid.uuid4().hex[:8]}"
    sent = [NEW_PATIENT | {"phone": f"+86 138 0013 80{index:02d}"} for index in range(8)]
    answers = await asyncio.gather(*(systems[index % 2].put(f"/patients/by-hospital-number/{number}", json=body)
                                     for index, body in enumerate(sent)))

    assert sorted(answer.status_code for answer in answers) == [200] * 7 + [201], [a.text for a in answers]
    assert len({answer.json()["id"] for answer in answers}) == 1
    async with app.state.services.sessions() as session:
        [patient] = await session.scalars(select(Patient).where(Patient.hospital_number == number))
        actions = list(await session.scalars(select(AccessAudit.action).where(AccessAudit.patient_id == patient.id)
                                             .order_by(AccessAudit.id)))
        assert await session.scalar(select(func.count()).select_from(Patient)
                                    .where(Patient.hospital_number == number)) == 1
    assert actions == ["patient.create"] + ["patient.update"] * 7
    # The last write wins, whole: the stored phone is one that was sent.
    assert patient.phone in {f"+86138001380{index:02d}" for index in range(8)}
