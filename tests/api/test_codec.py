"""Temporal's UI shows decrypted payloads only to signed-in staff allowed to read them, through
POST /codec/decode; each use is in the audit."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payloads
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from services.principals import Role
from tests.api.accounts import Accounts, client_of
from workflows.contracts import workflow_id_for


async def started_input(temporal: WorkflowEnvironment, enrollment_id: str) -> dict:
    """The enrollment workflow's input as Temporal's UI sees it: the codec-server request body."""
    history = await temporal.client.get_workflow_handle(workflow_id_for(enrollment_id)).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    return MessageToDict(Payloads(payloads=started.input.payloads))


async def test_the_codec_endpoint_decodes_for_clinicians_only(api: httpx.AsyncClient, accounts: Accounts,
                                                             anonymous: httpx.AsyncClient, patient: dict,
                                                             temporal: WorkflowEnvironment):
    anchor = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    enrollment = await api.post("/enrollments", json={"patient_id": patient["id"], "pathway_id": "api-follow-up",
                                                      "anchor": anchor})
    assert enrollment.status_code == 201, enrollment.text
    body = await started_input(temporal, enrollment.json()["id"])
    assert anchor not in json.dumps(body)  # as stored: encrypted

    assert (await anonymous.post("/codec/decode", json=body)).status_code == 401
    manager = await accounts.with_role(Role.CLINICAL_MANAGER)
    assert (await manager.post("/codec/decode", json=body)).status_code == 403

    clinician_id, clinician = await accounts.staff([Role.CLINICIAN])
    decoded = await clinician.post("/codec/decode", json=body, headers={"X-Namespace": "default"})
    assert decoded.status_code == 200, decoded.text
    [payload] = decoded.json()["payloads"]
    assert anchor in base64.b64decode(payload["data"]).decode()

    garbage = await clinician.post("/codec/decode", content=b"{not json", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400
    auditor = await accounts.with_role(Role.AUDITOR)
    lines = (await auditor.get("/audit", params={"actor": clinician_id})).json()
    assert [(line["action"], line["target"]) for line in lines] == [("temporal.payloads.decode", "default"),
                                                                    ("auth.sign_in", None)]


async def test_only_the_codec_answers_temporal_s_ui_across_origins(settings, own_database_url):
    ui = "http://127.0.0.1:8233"
    app = create_app(settings.model_copy(update={"DATABASE_URL": own_database_url,
                                                 "CODEC_ORIGINS": [ui]}))
    preflight = {"Origin": ui, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    async with app.router.lifespan_context(app), client_of(app) as browser:
        codec = await browser.options("/codec/decode", headers=preflight)
        assert codec.status_code == 200 and codec.headers["access-control-allow-origin"] == ui
        assert codec.headers["access-control-allow-credentials"] == "true"
        for path in ("/patients/pt_x", "/audit"):
            other = await browser.options(path, headers=preflight)
            assert "access-control-allow-origin" not in other.headers, path
