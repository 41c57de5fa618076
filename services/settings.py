"""One Settings object, read from CAREPATH_* environment variables (or a .env file).

Secrets are `SecretStr` so they never print. Outside `development` and `test` (which `carepath up`
and the tests set explicitly) the service refuses a missing, published or short secret.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from limits import parse as parse_rate_limit
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from language.model import Channel
from language.reach import DEFAULT_DAILY_BUDGET
from language.teams import webhook_problem

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEVELOPMENT_SECRET = "development-only-secret-change-me"
MINIMUM_SECRET_LENGTH = 32


class SiteSettings(BaseSettings):
    """What the authoring tools need, and nothing secret: they run on a clinical manager's laptop."""

    model_config = SettingsConfigDict(env_prefix="CAREPATH_", env_file=".env", extra="ignore")

    # What clinical managers and the site write: pathways, instruments, roster, crisis lexicon.
    PATHWAYS_DIR: Path = PROJECT_ROOT / "pathways"


class Settings(SiteSettings):
    # Production unless said otherwise: a forgotten variable must not quietly weaken a deployment.
    ENVIRONMENT: Literal["development", "test", "production"] = "production"
    DATABASE_URL: str = f"sqlite+aiosqlite:///{PROJECT_ROOT / 'var' / 'store.db'}"
    # Connections each API process keeps open (SQLAlchemy may open up to 10 more in a burst), and how long
    # a request waits for one before it is answered 503 with Retry-After (api/overload.py) instead of hanging.
    DATABASE_POOL_SIZE: int = 10
    DATABASE_POOL_TIMEOUT_SECONDS: float = 5.0
    # Requests one API process serves at once; the next is answered 503 with Retry-After, not queued.
    MAX_CONCURRENT_REQUESTS: int = 64
    TEMPORAL_ADDRESS: str = "127.0.0.1:7233"
    TEMPORAL_NAMESPACE: str = "default"
    # TLS to Temporal: on with TEMPORAL_TLS, or with any file below. The CA that signed the server's
    # certificate (else the system's roots), and the name it holds if not the address's host; for mutual
    # TLS, our client certificate and its key (PEM files, both or neither).
    TEMPORAL_TLS: bool = False
    TEMPORAL_TLS_CA_FILE: Path | None = None
    TEMPORAL_TLS_SERVER_NAME: str | None = None
    TEMPORAL_TLS_CERT_FILE: Path | None = None
    TEMPORAL_TLS_KEY_FILE: Path | None = None
    TASK_QUEUE: str = "carepath"
    # Workflow runs a worker keeps in memory between their tasks. A run not kept is rebuilt from its history
    # on its next task (a timer firing, an answer): CPU instead of memory. Size it to the active enrollments
    # each replica serves, within its memory (docs/deploy.md gives the cost per run).
    WORKER_CACHED_WORKFLOWS: int = Field(default=1000, ge=0)
    SMTP_HOST: str = "127.0.0.1"
    SMTP_PORT: int = 1025
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: SecretStr | None = None
    SMTP_STARTTLS: bool = False
    SMTP_SENDER: str = "carepath <no-reply@carepath.localhost>"
    # A gateway's limit per channel, counted in each worker process ("<count>/<second|minute|hour>"),
    # e.g. {"email": "50/second"}: a burst waits for room instead of being refused. N workers: 1/N each.
    CHANNEL_RATE_LIMITS: dict[str, str] = {}
    # Messages a patient takes in a local day across all their enrollments (a patient's preferences may set
    # their own): a scheduled message past it waits for the next day; questionnaires and rules' advice do not.
    DAILY_CONTACT_BUDGET: int = Field(default=DEFAULT_DAILY_BUDGET, ge=1)
    PUBLIC_BASE_URL: str = "http://127.0.0.1:8000"
    # Signs form links and staff tokens. Rotate by moving the old value to PREVIOUS_SECRET_KEYS:
    # links signed with it stay valid until they expire.
    SECRET_KEY: SecretStr | None = None
    # Where Temporal's UI is served from, if it should show decrypted payloads (its codec endpoint is
    # <PUBLIC_BASE_URL>/codec): those origins may call /codec from the browser of a signed-in user.
    CODEC_ORIGINS: list[str] = []
    PREVIOUS_SECRET_KEYS: list[SecretStr] = []
    # Per client address and API process ("<count>/<second|minute|hour>"): sign-in attempts, and
    # patient form requests (a form link is a credential too).
    SIGN_IN_RATE_LIMIT: str = "20/minute"
    FORM_RATE_LIMIT: str = "60/minute"
    # Who is told what only a person can fix: a message that finally could not go, our database not
    # answering for BOOKKEEPING_STALL. Unset, such alerts are only logged (at ERROR).
    OPERATIONS_EMAIL: str | None = None
    # No message on a channel without the patient's recorded consent to it (POST /patients/{id}/consent):
    # for sites whose rules require consent first. Off, a channel is open until the patient withdraws.
    REQUIRE_CONSENT: bool = False
    # Hosts team webhooks may point at (exact, or "*.hospital.example"); none by default. In development
    # and test, loopback is allowed besides, and plain http.
    WEBHOOK_ALLOWED_HOSTS: list[str] = []
    # How long a staff token or console session lasts before signing in again.
    TOKEN_TTL_MINUTES: int = 60
    # The hospital's single sign-on (OpenID Connect): its issuer, the audience its tokens name for
    # carepath, and where its signing keys are published. Accounts are matched by subject, then email.
    OIDC_ISSUER: str | None = None
    OIDC_AUDIENCE: str | None = None
    OIDC_JWKS_URL: str | None = None
    # Encrypts what Temporal stores (services/payload_codec.py): "<id>:<base64 of 32 bytes>,<id>:<base64>",
    # the first encrypts, all decrypt. Required outside development and test, where a key is derived.
    PAYLOAD_KEYS: SecretStr | None = None
    # How often the API starts the workflow of any active enrollment that has none (services/reconciler.py),
    # first at start-up; 0 disables it.
    RECONCILE_INTERVAL_SECONDS: int = 300
    # Where the worker serves its Prometheus metrics: carepath's at METRICS_PORT, the Temporal SDK's at
    # TEMPORAL_METRICS_PORT. Off (0) unless a deployment sets them (docker-compose.yml: 9464, 9465), so
    # that several workers on one machine do not fight over a port; loopback unless opened to a scraper:
    # the numbers hold no patient data, but they describe the hospital's activity.
    METRICS_HOST: str = "127.0.0.1"
    METRICS_PORT: int = 0
    TEMPORAL_METRICS_PORT: int = 0

    # Patient channels besides email (activities/gateways/, docs/deploy.md); a channel is offered to the
    # worker only when its settings are complete. SMS goes through Alibaba Cloud or the hospital's own
    # gateway (SMS_PROVIDER); Alibaba's status reports come to /receipts/sms/alibaba?token=<ALIBABA_SMS_REPORT_TOKEN>,
    # for Alibaba signs neither its reports nor lets us sign the address: the token is the credential.
    SMS_PROVIDER: Literal["alibaba", "tencent", "webhook"] | None = None
    ALIBABA_SMS_ACCESS_KEY_ID: str | None = None
    ALIBABA_SMS_ACCESS_KEY_SECRET: SecretStr | None = None
    ALIBABA_SMS_SIGN_NAME: str | None = None
    ALIBABA_SMS_ENDPOINT: str = "https://dysmsapi.aliyuncs.com/"
    ALIBABA_SMS_REPORT_TOKEN: SecretStr | None = None
    # Tencent Cloud SMS (SendSms 2021-01-11): the API key, the SMS application's SdkAppId, the approved
    # signature; its region and endpoint (a proxy, say).
    TENCENT_SMS_SECRET_ID: str | None = None
    TENCENT_SMS_SECRET_KEY: SecretStr | None = None
    TENCENT_SMS_SDK_APP_ID: str | None = None
    TENCENT_SMS_SIGN_NAME: str | None = None
    # Tencent signs nothing it pushes either: its status callbacks come to
    # /receipts/sms/tencent?token=<TENCENT_SMS_REPORT_TOKEN>, set as the callback address in its console.
    TENCENT_SMS_REPORT_TOKEN: SecretStr | None = None
    TENCENT_SMS_REGION: str = "ap-guangzhou"
    TENCENT_SMS_ENDPOINT: str = "https://sms.tencentcloudapi.com"
    # The hospital's SMS gateway and app push service: JSON POSTs signed with HMAC-SHA256 of the secret,
    # and their receipts signed back with the same secret.
    SMS_WEBHOOK_URL: str | None = None
    SMS_WEBHOOK_SECRET: SecretStr | None = None
    PUSH_WEBHOOK_URL: str | None = None
    PUSH_WEBHOOK_SECRET: SecretStr | None = None
    # The hospital's video visit service: it reports attendance at video appointments to
    # /appointments/attendance, signed like the webhook receipts with this secret.
    VIDEO_SERVICE_SECRET: SecretStr | None = None
    # The hospital's WeChat Official Account: its AppID and AppSecret, and the Token set in its server
    # configuration, which signs the events (TEMPLATESENDJOBFINISH) WeChat pushes to /receipts/wechat.
    WECHAT_APP_ID: str | None = None
    WECHAT_APP_SECRET: SecretStr | None = None
    WECHAT_TOKEN: SecretStr | None = None
    WECHAT_API_BASE: str = "https://api.weixin.qq.com"
    # Where a phone number given without its country code is from (ISO 3166 code): patients' numbers
    # are stored in E.164 (services/phones.py), and `carepath db upgrade` reads old rows the same way.
    DEFAULT_PHONE_REGION: str = "CN"

    @model_validator(mode="after")
    def _single_sign_on_complete(self) -> "Settings":
        if bool(self.OIDC_ISSUER) != bool(self.OIDC_JWKS_URL):
            raise ValueError("single sign-on needs both CAREPATH_OIDC_ISSUER and CAREPATH_OIDC_JWKS_URL")
        return self

    @model_validator(mode="after")
    def _patient_channels_complete(self) -> Settings:
        required = {"alibaba": ("ALIBABA_SMS_ACCESS_KEY_ID", "ALIBABA_SMS_ACCESS_KEY_SECRET", "ALIBABA_SMS_SIGN_NAME",
                                "ALIBABA_SMS_REPORT_TOKEN"),
                    "tencent": ("TENCENT_SMS_SECRET_ID", "TENCENT_SMS_SECRET_KEY", "TENCENT_SMS_SDK_APP_ID",
                                "TENCENT_SMS_SIGN_NAME", "TENCENT_SMS_REPORT_TOKEN"),
                    "webhook": ("SMS_WEBHOOK_URL", "SMS_WEBHOOK_SECRET")}.get(self.SMS_PROVIDER or "", ())
        pairs = [("WECHAT_APP_ID", "WECHAT_APP_SECRET", "WECHAT_TOKEN"), ("PUSH_WEBHOOK_URL", "PUSH_WEBHOOK_SECRET")]
        required += tuple(name for group in pairs if any(getattr(self, name) for name in group) for name in group)
        missing = [f"CAREPATH_{name}" for name in required if not getattr(self, name)]
        if missing:
            raise ValueError(f"a patient channel's settings are incomplete: set {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _phone_region_known(self) -> Settings:
        from services.phones import is_region

        if not is_region(self.DEFAULT_PHONE_REGION):
            raise ValueError(f"CAREPATH_DEFAULT_PHONE_REGION is '{self.DEFAULT_PHONE_REGION}', which is not a region "
                             "code phone numbers know (ISO 3166, upper case: CN, HK, SG, GB)")
        return self

    @model_validator(mode="after")
    def _temporal_tls_files_readable(self) -> Settings:
        if bool(self.TEMPORAL_TLS_CERT_FILE) != bool(self.TEMPORAL_TLS_KEY_FILE):
            raise ValueError("mutual TLS to Temporal needs both CAREPATH_TEMPORAL_TLS_CERT_FILE and "
                             "CAREPATH_TEMPORAL_TLS_KEY_FILE")
        for name in ("TEMPORAL_TLS_CA_FILE", "TEMPORAL_TLS_CERT_FILE", "TEMPORAL_TLS_KEY_FILE"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"CAREPATH_{name} is {path}, which is not a readable file")
        return self

    @model_validator(mode="after")
    def _channel_rate_limits_readable(self) -> Settings:
        for channel, limit in self.CHANNEL_RATE_LIMITS.items():
            if channel not in get_args(Channel):
                raise ValueError(f"CAREPATH_CHANNEL_RATE_LIMITS: there is no channel '{channel}' "
                                 f"(channels: {', '.join(get_args(Channel))})")
            try:
                parse_rate_limit(limit)
            except ValueError:
                raise ValueError(f"CAREPATH_CHANNEL_RATE_LIMITS: '{limit}' for channel '{channel}' is not a rate "
                                 "such as 50/second, 600/minute") from None
        return self

    @model_validator(mode="after")
    def _refuse_weak_secrets_outside_development(self) -> "Settings":
        if self.ENVIRONMENT in ("development", "test"):
            if self.SECRET_KEY is None:
                self.SECRET_KEY = SecretStr(DEVELOPMENT_SECRET)
            return self
        secret = self.SECRET_KEY.get_secret_value() if self.SECRET_KEY else ""
        if not secret:
            raise ValueError("CAREPATH_SECRET_KEY is not set (generate one: python -c 'import secrets; "
                             "print(secrets.token_urlsafe(48))')")
        if secret == DEVELOPMENT_SECRET:
            raise ValueError("CAREPATH_SECRET_KEY is the published development secret; set a private one")
        if len(secret) < MINIMUM_SECRET_LENGTH:
            raise ValueError(f"CAREPATH_SECRET_KEY is {len(secret)} characters; use at least {MINIMUM_SECRET_LENGTH}")
        return self

    @model_validator(mode="after")
    def _refuse_unencrypted_temporal_payloads_outside_development(self) -> Settings:
        # Imported here: SiteSettings (the authoring tools) need neither cryptography nor temporalio.
        from services.payload_codec import check_payload_keys

        check_payload_keys(self.PAYLOAD_KEYS, required=self.ENVIRONMENT not in ("development", "test"))
        return self

    @property
    def webhook_hosts(self) -> list[str]:
        loopback = ["127.0.0.1", "localhost", "::1"] if self.ENVIRONMENT in ("development", "test") else []
        return [*self.WEBHOOK_ALLOWED_HOSTS, *loopback]

    def webhook_problem(self, url: str) -> str | None:
        return webhook_problem(url, self.webhook_hosts, require_https=self.ENVIRONMENT == "production")

    @property
    def secret_keys(self) -> list[str]:
        """The signing secret last, older ones before it: the order itsdangerous rotates keys in."""
        return [key.get_secret_value() for key in self.PREVIOUS_SECRET_KEYS] + [self.SECRET_KEY.get_secret_value()]


class SettingsRefused(SystemExit):
    """Raised instead of a pydantic traceback: one line saying what to fix, and a non-zero exit."""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(detail["msg"].removeprefix("Value error, ") for detail in error.errors())
        raise SettingsRefused(f"carepath: refusing to start: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
