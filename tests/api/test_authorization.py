"""Who may call what: every route of the app × anonymous and each role, against the table below.

The table is written by hand, so it says what we decided rather than what the code happens to do;
a route added to the app without a line here fails `test_every_route_is_in_the_table`.
"""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.security import DOCUMENTATION_PATHS, served_routes, undeclared_routes
from services.principals import Role

ADMIN, MANAGER, CLINICIAN, INTEGRATION, AUDITOR = (Role.ADMIN, Role.CLINICAL_MANAGER, Role.CLINICIAN,
                                                    Role.INTEGRATION, Role.AUDITOR)
EVERYONE = frozenset(Role)
PUBLIC = None  # no account needed

# (method, path) → the roles admitted, or PUBLIC.
WHO_MAY = {
    ("POST", "/auth/token"): PUBLIC,
    ("POST", "/auth/session"): PUBLIC,
    ("DELETE", "/auth/session"): PUBLIC,
    ("GET", "/auth/me"): EVERYONE,
    ("POST", "/auth/password"): EVERYONE,
    ("POST", "/patients"): {CLINICIAN, INTEGRATION},
    ("PUT", "/patients/by-hospital-number/{hospital_number}"): {INTEGRATION},
    ("GET", "/patients/{patient_id}"): {CLINICIAN},
    ("GET", "/patients/{patient_id}/access-log"): {AUDITOR},
    ("GET", "/patients/{patient_id}/consent"): {CLINICIAN, INTEGRATION},
    ("POST", "/patients/{patient_id}/consent"): {CLINICIAN, INTEGRATION},
    ("GET", "/patients/{patient_id}/preferences"): {CLINICIAN, INTEGRATION},
    ("PUT", "/patients/{patient_id}/preferences"): {CLINICIAN, INTEGRATION},
    ("GET", "/pathways"): EVERYONE,
    ("GET", "/pathways/{pathway_id}"): EVERYONE,
    ("POST", "/pathways"): {MANAGER},
    ("POST", "/pathways/{pathway_id}/migrations"): {MANAGER},
    ("POST", "/pathways/{pathway_id}/migrations/rollback"): {MANAGER},
    ("POST", "/enrollments"): {CLINICIAN, INTEGRATION},
    ("GET", "/enrollments/{enrollment_id}"): {CLINICIAN, INTEGRATION},
    ("POST", "/enrollments/{enrollment_id}/cancel"): {CLINICIAN},
    ("POST", "/enrollments/{enrollment_id}/pause"): {CLINICIAN},
    ("POST", "/enrollments/{enrollment_id}/resume"): {CLINICIAN},
    ("POST", "/enrollments/{enrollment_id}/anchor"): {CLINICIAN},
    # Staff on the ward, and the hospital system's admission, discharge and death messages.
    ("POST", "/patients/{patient_id}/events"): {CLINICIAN, INTEGRATION},
    ("POST", "/enrollments/{enrollment_id}/appointments/{step_id}/{occurrence}/attendance"): {CLINICIAN},
    ("POST", "/appointments/attendance"): PUBLIC,
    ("POST", "/enrollments/{enrollment_id}/events"): {CLINICIAN, INTEGRATION},
    ("GET", "/enrollments/{enrollment_id}/events"): {CLINICIAN, INTEGRATION},
    ("POST", "/enrollments/{enrollment_id}/questionnaires/{step_id}/{occurrence}/responses"): {CLINICIAN},
    ("GET", "/f/{token}"): PUBLIC,
    ("POST", "/f/{token}"): PUBLIC,
    # The unsubscribe link in every email: the signed link is the patient's credential.
    ("GET", "/u/{token}"): PUBLIC,
    ("POST", "/u/{token}"): PUBLIC,
    ("POST", "/teams"): {ADMIN},
    ("GET", "/teams"): {ADMIN, MANAGER, CLINICIAN},
    ("GET", "/teams/{team_id}"): {ADMIN, MANAGER, CLINICIAN},
    ("PATCH", "/teams/{team_id}"): {ADMIN, MANAGER},
    ("POST", "/staff"): {ADMIN},
    ("GET", "/staff"): {ADMIN},
    ("GET", "/staff/{staff_id}"): {ADMIN},
    ("POST", "/staff/{staff_id}/deactivate"): {ADMIN},
    ("POST", "/staff/{staff_id}/reset-password"): {ADMIN},
    ("GET", "/worklist"): {CLINICIAN},
    ("GET", "/escalations/{escalation_id}"): {CLINICIAN},
    ("POST", "/escalations/{escalation_id}/acknowledge"): {CLINICIAN},
    ("POST", "/escalations/{escalation_id}/resolve"): {CLINICIAN},
    ("POST", "/escalations/{escalation_id}/reassign"): {CLINICIAN},
    ("GET", "/tasks"): {CLINICIAN},
    ("GET", "/tasks/{task_id}"): {CLINICIAN},
    ("POST", "/tasks/{task_id}/outcome"): {CLINICIAN},
    ("POST", "/api-keys"): {ADMIN},
    ("GET", "/api-keys"): {ADMIN},
    ("POST", "/api-keys/{key_id}/revoke"): {ADMIN},
    ("GET", "/audit"): {AUDITOR},
    ("POST", "/codec/decode"): {CLINICIAN, AUDITOR},
    # Delivery receipts from gateways: each checks the provider's signature or token (403 otherwise).
    ("POST", "/receipts/sms/webhook"): PUBLIC,
    ("POST", "/receipts/push"): PUBLIC,
    ("POST", "/receipts/sms/alibaba"): PUBLIC,
    ("POST", "/receipts/sms/tencent"): PUBLIC,
    ("GET", "/receipts/wechat"): PUBLIC,
    ("POST", "/receipts/wechat"): PUBLIC,
    # Patients' replies to SMS (STOP), checked like the receipts.
    ("POST", "/inbound/sms/webhook"): PUBLIC,
    ("POST", "/inbound/sms/alibaba"): PUBLIC,
    # The staff console (api/console/): pages over the same functions, with the same policies.
    ("GET", "/console/"): EVERYONE,
    ("GET", "/console/sign-in"): PUBLIC,
    ("POST", "/console/sign-in"): PUBLIC,
    ("POST", "/console/sign-out"): PUBLIC,
    ("POST", "/console/locale"): EVERYONE,
    ("GET", "/console/static/{name}"): PUBLIC,
    ("GET", "/console/worklist"): {CLINICIAN},
    ("GET", "/console/worklist/items"): {CLINICIAN},
    ("GET", "/console/escalations/{escalation_id}"): {CLINICIAN},
    ("POST", "/console/escalations/{escalation_id}/acknowledge"): {CLINICIAN},
    ("POST", "/console/escalations/{escalation_id}/resolve"): {CLINICIAN},
    ("POST", "/console/escalations/{escalation_id}/reassign"): {CLINICIAN},
    ("GET", "/console/tasks/{task_id}"): {CLINICIAN},
    ("POST", "/console/tasks/{task_id}/outcome"): {CLINICIAN},
    ("GET", "/console/patients"): {CLINICIAN},
    ("GET", "/console/patients/{patient_id}"): {CLINICIAN},
    ("POST", "/console/patients/{patient_id}/enroll"): {CLINICIAN},
    ("GET", "/console/enrollments/{enrollment_id}"): {CLINICIAN},
    ("POST", "/console/enrollments/{enrollment_id}/cancel"): {CLINICIAN},
    ("POST", "/console/enrollments/{enrollment_id}/pause"): {CLINICIAN},
    ("POST", "/console/enrollments/{enrollment_id}/resume"): {CLINICIAN},
    ("GET", "/console/enrollments/{enrollment_id}/questionnaires/{step_id}/{occurrence}"): {CLINICIAN},
    ("POST", "/console/enrollments/{enrollment_id}/questionnaires/{step_id}/{occurrence}"): {CLINICIAN},
    # Aggregates: a clinician gets their own teams' figures only (tests/api/test_reports_api.py).
    ("GET", "/reports"): {MANAGER, ADMIN, AUDITOR, CLINICIAN},
    ("GET", "/reports/{table}.csv"): {MANAGER, ADMIN, AUDITOR, CLINICIAN},
    ("GET", "/reports/pathway-versions"): {MANAGER, ADMIN, AUDITOR, CLINICIAN},
    ("GET", "/console/pathways"): {MANAGER, ADMIN, AUDITOR, CLINICIAN},
    ("GET", "/console/pathways/{pathway_id}"): {MANAGER, ADMIN, AUDITOR, CLINICIAN},
    ("GET", "/console/pathways/{pathway_id}/versions/{version}/preview"): {MANAGER, ADMIN, AUDITOR, CLINICIAN},
    ("GET", "/console/pathways/{pathway_id}/diff"): {MANAGER, ADMIN, AUDITOR, CLINICIAN},
    ("GET", "/console/reports"): {MANAGER, ADMIN, AUDITOR, CLINICIAN},
    ("GET", "/console/pathways/{pathway_id}/migration"): {MANAGER},
    ("POST", "/console/pathways/{pathway_id}/migration"): {MANAGER},
    # Patient data: a clinician whose teams are involved; audited.
    ("GET", "/console/enrollments/{enrollment_id}/summary"): {CLINICIAN},
    # For the orchestrator and the scraper: no patient data (keep /metrics inside the hospital network).
    ("GET", "/health/live"): PUBLIC,
    ("GET", "/health/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
}


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    return {(method, path) for path, route in served_routes(app) if isinstance(route, APIRoute)
            for method in route.methods - {"HEAD"}}


def concrete(path: str) -> str:
    """A path with made-up ids: authorization is decided before anything is looked up."""
    return re.sub(r"\{occurrence\}", "1", re.sub(r"\{(?!occurrence)[a-z_]+\}", "no-such-id", path))


def test_every_route_is_in_the_table(app: FastAPI):
    assert app_routes(app) == set(WHO_MAY), (
        "add the new route to WHO_MAY, with the roles it admits (and declare its policy, see api/security.py)")


def test_the_app_refuses_to_serve_a_route_without_a_policy(app: FastAPI):
    assert undeclared_routes(app) == []
    bare = FastAPI()

    @bare.get("/forgotten")
    async def forgotten() -> dict:
        return {}

    assert undeclared_routes(bare) == ["GET /forgotten"]
    assert {path for path, _ in served_routes(bare)} - {"/forgotten"} <= DOCUMENTATION_PATHS


@pytest.mark.parametrize(("method", "path"), sorted(WHO_MAY))
async def test_anonymous_callers_are_asked_to_sign_in(anonymous: httpx.AsyncClient, method: str, path: str):
    response = await anonymous.request(method, concrete(path))
    if WHO_MAY[(method, path)] is PUBLIC:
        # (A made-up form link is refused with 403 by the form itself: that is its signature check.)
        assert response.status_code != 401 and "WWW-Authenticate" not in response.headers, response.text
    else:
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("role", sorted(Role))
@pytest.mark.parametrize(("method", "path"), sorted((m, p) for (m, p), who in WHO_MAY.items() if who is not PUBLIC))
async def test_each_role_gets_in_only_where_admitted(as_role, role: Role, method: str, path: str):
    response = await (await as_role(role)).request(method, concrete(path))
    if role in WHO_MAY[(method, path)]:
        assert response.status_code not in (401, 403), f"{role} refused: {response.text}"
    else:
        assert response.status_code == 403, f"{role} let in: {response.status_code} {response.text}"
