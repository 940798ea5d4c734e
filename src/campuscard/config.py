"""Settings, read from the environment (prefix CAMPUSCARD_) and an optional .env file."""

from __future__ import annotations

import os
import secrets
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
    # proxies whose X-Forwarded-Proto/-For uvicorn believes (TLS terminated in front of us):
    # comma-separated addresses, "*" for any (docs/security.md)
    forwarded_allow_ips: str = "127.0.0.1"

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
    # Sign-in, lockouts and limits (docs/security.md): argon2id parameters of new hashes (a
    # stored hash keeps its own and is redone at the next sign-in when these change); threads
    # hashing passwords (0: half the cores), so a sign-in flood cannot take the payment path's CPU
    argon2_time_cost: int = Field(default=3, ge=1, le=20)
    argon2_memory_kib: int = Field(default=65536, ge=8192, le=1048576)
    argon2_parallelism: int = Field(default=4, ge=1, le=16)
    password_hash_threads: int = Field(default=0, ge=0, le=64)
    # the share of wall-clock time one process may spend hashing passwords and pickup codes,
    # and how many hashes may wait for it before a sign-in is told to come back (auth.py)
    password_hash_cpu_share: float = Field(default=0.25, gt=0, le=1)
    password_hash_max_waiting: int = Field(default=32, ge=1, le=10_000)
    # request bodies: at most this many bytes; an upload route declares its own limit
    # (edge/limits.py); the files' byte, row and column limits: docs/security.md
    max_json_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # a slow client must send its request headers within this; idle keep-alive closes after
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    keep_alive_seconds: int = Field(default=5, ge=1)
    # with several workers, one holding more than its share of the kept-alive connections
    # closes some after their answer, so they reconnect to another (edge/balance.py)
    balance_connections: bool = True
    # open live-event streams one user may hold (pages reconnect; a tab holds one); a comment
    # line this often keeps proxies from closing a quiet stream; a client that takes no data
    # for this long is dropped (api/routes/live.py)
    live_streams_per_user: int = Field(default=5, ge=1)
    live_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    live_send_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    # `serve` at SIGTERM: live streams end at once; requests still running after this many
    # seconds are cancelled (their transactions roll back, clients retry with the same id)
    shutdown_timeout_seconds: float = Field(default=4.0, gt=0, le=120)

    # group commit of payments (payments/batching.py, decision 0170): at most this many
    # bookings in one database call and commit (1: every payment alone), and at most this
    # many such calls in flight per process and channel; a payment arriving while all are busy
    # waits for the next call with the others that arrived meanwhile (no timer: a lone payment
    # books at once). One lane per channel: larger batches and less CPU per payment than two
    # (decision 0402, measured again in interleaved runs with decision 0412's seed)
    payment_batch_max: int = Field(default=32, ge=1, le=200)
    payment_batch_lanes: int = Field(default=1, ge=1, le=32)

    # per-channel admission limits of the payment API (api/admission.py, docs/channels.md):
    # JSON like {"tuition": {"concurrent": 3, "queue": 30, "wait_seconds": 2}}
    channel_limits: dict[str, dict[str, float]] = Field(default_factory=dict)

    # JSON lines (production) or readable lines; unset: JSON for serve and worker, readable
    # for the demo
    log_json: bool | None = None
    log_level: str = "INFO"
    # run outbox delivery and periodic jobs inside the web process (each uvicorn worker);
    # turn off when a separate `campuscard worker` runs them
    run_worker: bool = True
    # /metrics answers only "Authorization: Bearer <this>"; empty: /metrics is off (404)
    metrics_token: SecretStr = Field(default=SecretStr(""))
    # /api/ready answers 503 when no job worker recorded a heartbeat within this many seconds
    ready_worker_seconds: int = Field(default=60, ge=10)

    # Online payment provider (WeChat-Pay/Alipay-like; adapters/provider). The defaults talk
    # to the bundled simulator (`campuscard sim provider`).
    provider_url: str = "http://127.0.0.1:8601"
    provider_app_id: str = "wxcampuscard"
    provider_mch_id: str = "1900000109"
    provider_key: SecretStr = Field(default=SecretStr("dev-only-provider-key-change-me"))
    provider_timeout_seconds: float = 5.0
    provider_order_minutes: int = 15  # an unpaid order expires (and is closed) after this
    provider_query_after_seconds: int = 60  # query orders whose callback has not come by then

    # Bank link (圈存, ISO 8583 over TCP; adapters/bank). Defaults: the bundled simulator.
    bank_host: str = "127.0.0.1"
    bank_port: int = 8602
    bank_mac_key: SecretStr = Field(default=SecretStr("dev-only-bank-mac-key-change-me"))
    bank_timeout_seconds: float = 5.0
    bank_reversal_attempts: int = 3  # immediate reversal tries after a timeout
    # The bank's service hours for transfers, local time "HH:MM-HH:MM" (end may be 24:00)
    bank_hours: str = "00:00-24:00"
    bank_timezone: str = "Asia/Shanghai"
    bank_acquirer_id: str = "CAMPUSCARD00001"  # field 42
    bank_terminal_id: str = "CCPLAT01"  # field 41

    # SMS gateway (adapters/sms): empty URL = the simulator the demo mounts at /dev/sms
    sms_gateway_url: str = ""
    sms_key_id: str = "campuscard"
    sms_api_secret: SecretStr = Field(default=SecretStr("dev-only-sms-secret"))
    sms_timeout_seconds: float = 10.0

    # Dorm utility vendor (prepaid electricity and water meters; adapters/utility): empty URL =
    # the simulator the demo mounts at /dev/utility
    utility_url: str = ""
    utility_key_id: str = "campuscard"
    utility_secret: SecretStr = Field(default=SecretStr("dev-only-utility-secret"))
    utility_timeout_seconds: float = 5.0
    # a top-up whose answer was lost is asked about again after this long
    utility_retry_seconds: int = 30

    # Getting a card (issue 7): pickup codes live this long; one kiosk session (one person's
    # visit) or one pickup code takes this many wrong codes per window, a whole kiosk the
    # higher kiosk limit (so one person cannot lock it for the next; docs/security.md)
    pickup_code_days: int = 7
    pickup_guess_limit: int = 5
    pickup_kiosk_guess_limit: int = 30
    pickup_guess_window_minutes: int = 10
    # an authorization a kiosk neither completes nor releases is released after this long
    pickup_authorization_minutes: int = 10

    @property
    def sms_base_url(self) -> str:
        return self.sms_gateway_url or self.public_url.rstrip("/") + "/dev/sms"

    @property
    def utility_base_url(self) -> str:
        return self.utility_url or self.public_url.rstrip("/") + "/dev/utility"

    @property
    def pgdata(self) -> Path:
        return self.data_dir.resolve() / "pgdata"


# The secrets `campuscard serve` refuses to start with while they hold a development default
# or are shorter than MIN_SECRET_LENGTH (docs/security.md says how to generate them).
SECRETS = (
    "master_key",
    "provider_key",
    "bank_mac_key",
    "sms_api_secret",
    "utility_secret",
)
DEVELOPMENT_PREFIX = "dev-only-"
MIN_SECRET_LENGTH = 32


def env_name(field: str) -> str:
    return "CAMPUSCARD_" + field.upper()


def unsafe_secrets(settings: Settings) -> list[str]:
    """One line per secret that must not guard a production server, naming its variable."""
    problems = []
    for name in SECRETS:
        value: str = getattr(settings, name).get_secret_value()
        if (
            value.startswith(DEVELOPMENT_PREFIX)
            or value == Settings.model_fields[name].default.get_secret_value()
        ):
            problems.append(f"{env_name(name)} holds the development default")
        elif len(value) < MIN_SECRET_LENGTH:
            problems.append(
                f"{env_name(name)} is too short ({len(value)} characters, "
                f"at least {MIN_SECRET_LENGTH})"
            )
    return problems


DEMO_SECRETS_FILE = "secrets.env"


def with_demo_secrets(settings: Settings, *, create: bool = True) -> Settings:
    """The demo's secrets: random ones made on its first run and kept in its data directory
    (``secrets.env``, readable by the owner only), so no two demos share a key and a restart
    keeps what was derived from them. A secret set in the environment is kept as it is. The
    values are exported so the server processes the demo starts read the same ones. With
    ``create`` false (the simulators and device tools of the demo) nothing new is made."""
    path = settings.data_dir / DEMO_SECRETS_FILE
    if not create and not path.exists():
        return settings
    kept: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and value:
                kept[name.strip()] = value.strip()
    update: dict[str, SecretStr] = {}
    for name in SECRETS:
        default = Settings.model_fields[name].default.get_secret_value()
        if getattr(settings, name).get_secret_value() != default:
            continue
        variable = env_name(name)
        value = kept.setdefault(variable, secrets.token_urlsafe(32))
        os.environ[variable] = value
        update[name] = SecretStr(value)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("".join(f"{name}={value}\n" for name, value in sorted(kept.items())))
    return settings.model_copy(update=update)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
