"""Settings, read from the environment (prefix CAMPUSCARD_) and an optional .env file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAMPUSCARD_", env_file=".env", extra="ignore")

    # An external PostgreSQL >= 15; when empty the embedded server is started.
    database_url: str = ""
    data_dir: Path = Path(".campuscard")
    embedded_port: int = 55432
    # fsync off only for throw-away test clusters; never for data you keep.
    embedded_fsync: bool = True

    pool_min_size: int = 2
    pool_max_size: int = 20

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    public_url: str = "http://127.0.0.1:8000"

    # Master key: terminal, device and pickup-code secrets are derived from or sealed with it.
    master_key: SecretStr = Field(default=SecretStr("dev-only-master-key-change-me-in-production"))

    # payment codes: a phone's code changes every this many seconds (stored per binding, so a
    # change applies to phones bound afterwards); a server-minted code lives this long
    paycode_step_seconds: int = Field(default=60, ge=15, le=600)
    paycode_minted_ttl_seconds: int = Field(default=120, ge=30, le=3600)

    session_idle_minutes: int = 30
    api_token_hours: int = 12
    login_max_failures: int = 5
    login_lock_minutes: int = 15

    log_json: bool = True
    # run outbox delivery and periodic jobs inside the web process (each uvicorn worker);
    # turn off when a separate `campuscard worker` runs them
    run_worker: bool = True

    @property
    def pgdata(self) -> Path:
        return self.data_dir.resolve() / "pgdata"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
