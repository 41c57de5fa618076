"""The console's migration page: the dry run drawn per patient, then applied, over the API's own route
(real Temporal dev server and worker: see conftest)."""

import uuid

import httpx

from tests.api.test_migrations_api import ANCHOR
from tests.api.test_migrations_api import VERSION_1 as API_VERSION_1
from tests.api.test_pathways import deploy

# The migration API's pathway under an id of its own, so neither test finds the other's enrollments.
VERSION_1 = API_VERSION_1.replace("id: api-migrated", "id: console-migrated")
VERSION_2 = VERSION_1.replace("version: 1", "version: 2").replace("id: goodbye\n    at: day 9", "id: goodbye\n    at: day 10") + """\
  - kind: message
    id: week-two
    at: day 14 09:00
    template: {en: {subject: "Week two", body: "Dear {{ patient.first_name }}"}}
"""


async def test_the_page_draws_each_patients_changes_and_applying_moves_them_audited(api: httpx.AsyncClient,
                                                                                  patient: dict):
    assert (await deploy(api, VERSION_1)).status_code in (200, 201)
    enrolled = await api.post("/enrollments", headers={"Idempotency-Key": str(uuid.uuid4())}, json={
        "patient_id": patient["id"], "pathway_id": "console-migrated", "pathway_version": 1,
        "anchor": ANCHOR.isoformat()})
    assert enrolled.status_code == 201, enrolled.text
    enrollment_id = enrolled.json()["id"]
    assert (await deploy(api, VERSION_2)).status_code in (200, 201)

    planned = await api.get("/console/pathways/console-migrated/migration", params={"to": 2})

    assert planned.status_code == 200, planned.text
    row = planned.text.split(f'data-enrollment="{enrollment_id}"')[1].split("</tr>")[0]
    assert '<circle' in row and "+ week-two #1" in row          # added, drawn
    assert 'marker-end="url(#arrow)"' in row and "goodbye → goodbye #1" in row  # moved, drawn as an arrow
    assert "data-result" not in row                                # a dry run changes nothing
    assert (await api.get(f"/enrollments/{enrollment_id}")).json()["pathway_version"] == 1
    reads = (await api.get("/audit", params={"action": "enrollment.migration_plan"})).json()
    assert "console-migrated -> v2" in [line["target"] for line in reads if line["enrollment_id"] == enrollment_id]

    applied = await api.post("/console/pathways/console-migrated/migration", data={"to_version": "2"})

    assert applied.status_code == 200, applied.text
    row = applied.text.split(f'data-enrollment="{enrollment_id}"')[1].split("</tr>")[0]
    assert "<td data-result>migrated</td>" in row
    assert (await api.get(f"/enrollments/{enrollment_id}")).json()["pathway_version"] == 2
    changes = (await api.get("/audit", params={"action": "enrollment.migrate"})).json()
    assert [line["target"] for line in changes if line["enrollment_id"] == enrollment_id] == [
        "console-migrated v1 -> v2"]
    again = await api.get("/console/pathways/console-migrated/migration", params={"to": 2})
    assert f'data-enrollment="{enrollment_id}"' not in again.text
