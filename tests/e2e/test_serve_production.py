"""`campuscard serve` is production: it refuses development or short secrets, naming each
variable, and serves no simulator."""

import os
import signal
import subprocess
import sys
import time

import httpx

from campuscard.db.embedded import free_port

CLI = [sys.executable, "-m", "campuscard.cli"]
REAL_SECRETS = {
    "CAMPUSCARD_MASTER_KEY": "e2e-master-key-0123456789abcdefghij",
    "CAMPUSCARD_PROVIDER_KEY": "e2e-provider-key-0123456789abcdefgh",
    "CAMPUSCARD_BANK_MAC_KEY": "e2e-bank-mac-key-0123456789abcdefgh",
    "CAMPUSCARD_SMS_API_SECRET": "e2e-sms-secret-0123456789abcdefghij",
    "CAMPUSCARD_UTILITY_SECRET": "e2e-utility-secret-0123456789abcdefg",
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPUSCARD_")}
    return env | extra


def production_env(db_url: str, port: int, **extra: str) -> dict[str, str]:
    """`serve` on ``port`` with real secrets and no job worker in the web process."""
    return _env(
        CAMPUSCARD_DATABASE_URL=db_url,
        CAMPUSCARD_PORT=str(port),
        CAMPUSCARD_PUBLIC_URL=f"http://127.0.0.1:{port}",
        CAMPUSCARD_RUN_WORKER="false",
        **REAL_SECRETS,
        **extra,
    )


def test_serve_refuses_development_and_short_secrets_naming_each(db_url: str) -> None:
    # given: the repository's development defaults, except one real and one short secret
    env = _env(
        CAMPUSCARD_DATABASE_URL=db_url,
        CAMPUSCARD_PORT=str(free_port()),
        CAMPUSCARD_PROVIDER_KEY=REAL_SECRETS["CAMPUSCARD_PROVIDER_KEY"],
        CAMPUSCARD_BANK_MAC_KEY="short-mac-key",
    )
    # when
    run = subprocess.run(
        [*CLI, "serve"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    # then: nothing served, every unsafe secret named, the real one not
    assert run.returncode != 0
    assert "CAMPUSCARD_MASTER_KEY holds the development default" in run.stderr
    assert "CAMPUSCARD_SMS_API_SECRET holds the development default" in run.stderr
    assert "CAMPUSCARD_BANK_MAC_KEY is too short (13 characters, at least 32)" in run.stderr
    assert "CAMPUSCARD_PROVIDER_KEY" not in run.stderr


def test_serve_with_real_secrets_serves_and_mounts_no_simulator(db_url: str) -> None:
    port = free_port()
    env = production_env(db_url, port)
    proc = subprocess.Popen(
        [*CLI, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        healthy = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                healthy = httpx.get(f"{base}/api/health", timeout=1).status_code == 200
                if healthy:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert healthy, "serve did not answer its health check"
        # the SMS simulator's inbox (pickup codes in plain text) is not part of production
        assert httpx.get(f"{base}/dev/sms/inbox", timeout=10).status_code == 404
        assert httpx.get(f"{base}/dev/sms/inbox/13900000001", timeout=10).status_code == 404
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
