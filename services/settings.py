"""One Settings object, read from CAREPATH_* environment variables (or a .env file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEVELOPMENT_SECRET = "development-only-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREPATH_", env_file=".env", extra="ignore")

    ENVIRONMENT: Literal["development", "test", "production"] = "development"
    DATABASE_URL: str = f"sqlite+aiosqlite:///{PROJECT_ROOT / 'var' / 'store.db'}"
    TEMPORAL_ADDRESS: str = "127.0.0.1:7233"
    TEMPORAL_NAMESPACE: str = "default"
    TASK_QUEUE: str = "carepath"
    SMTP_HOST: str = "127.0.0.1"
    SMTP_PORT: int = 1025
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_STARTTLS: bool = False
    SMTP_SENDER: str = "carepath <no-reply@carepath.localhost>"
    # What clinical managers and the site write: pathways, instruments, roster, crisis lexicon.
    PATHWAYS_DIR: Path = PROJECT_ROOT / "pathways"
    PUBLIC_BASE_URL: str = "http://127.0.0.1:8000"
    SECRET_KEY: str = DEVELOPMENT_SECRET

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> "Settings":
        if self.ENVIRONMENT == "production" and self.SECRET_KEY == DEVELOPMENT_SECRET:
            raise ValueError("CAREPATH_SECRET_KEY must be set to a private value in production")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
