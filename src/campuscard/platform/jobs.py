"""Deliver ``topic="sms"`` outbox rows through the SMS gateway (at least once; the gateway
drops a repeat of the same outbox row by its ``client_ref``).

Payload: ``{"phone", "text"}``, or ``{"phone", "sealed_text"}`` for a message carrying a secret
(a pickup code), sealed with a key derived from the master key so the outbox never holds it in
clear (platform/sealing.py).
"""

from __future__ import annotations

from typing import Any

from campuscard.adapters.sms import SmsGateway
from campuscard.adapters.sms.http import HttpSmsGateway
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.platform.errors import ValidationFailed
from campuscard.platform.sealing import is_current, open_legacy, seal, unseal
from campuscard.platform.tasks import outbox_handler, periodic

SEAL_PURPOSE = "sms"


def sms_gateway(settings: Settings) -> SmsGateway:
    return HttpSmsGateway(
        settings.sms_base_url,
        key_id=settings.sms_key_id,
        secret=settings.sms_api_secret.get_secret_value().encode(),
        timeout=settings.sms_timeout_seconds,
    )


def message_text(settings: Settings, payload: dict[str, Any]) -> str:
    if "sealed_text" in payload:
        master = settings.master_key.get_secret_value().encode()
        sealed = str(payload["sealed_text"])
        if not is_current(sealed):  # written by a process not yet upgraded
            return open_legacy(master, SEAL_PURPOSE, sealed)
        return unseal(master, SEAL_PURPOSE, sealed)
    return str(payload["text"])


async def reseal_sms_outbox(pool: PgPool, settings: Settings) -> int:
    """Seal again with AES-GCM every SMS sealed by the former hand-written scheme (delivered or
    not: the outbox keeps them). Each row changes only if it still holds what was read, so
    several workers may run this at once. Returns how many rows were sealed again."""
    master = settings.master_key.get_secret_value().encode()
    rows = await pool.fetch(
        """SELECT id, payload->>'sealed_text' AS sealed FROM outbox
            WHERE topic = 'sms' AND payload ? 'sealed_text'
              AND payload->>'sealed_text' NOT LIKE 'v2.%'"""
    )
    done = 0
    for row in rows:
        try:
            text = open_legacy(master, SEAL_PURPOSE, row["sealed"])
        except ValidationFailed:  # damaged, or sealed under another master key: left as is
            continue
        status = await pool.execute(
            """UPDATE outbox SET payload = jsonb_set(payload, '{sealed_text}', to_jsonb($2::text))
                WHERE id = $1 AND payload->>'sealed_text' = $3""",
            row["id"],
            seal(master, SEAL_PURPOSE, text),
            row["sealed"],
        )
        done += status == "UPDATE 1"
    return done


@outbox_handler("sms")
async def deliver_sms(pool: PgPool, settings: Settings, payload: dict[str, Any]) -> None:
    await sms_gateway(settings).send(
        phone=str(payload["phone"]),
        text=message_text(settings, payload),
        client_ref=f"outbox-{payload['outbox_id']}",
    )


@periodic("forget-login-throttle", seconds=3600)
async def forget_login_throttle(pool: PgPool, settings: Settings) -> int:
    """Failed sign-ins at made-up names are kept a day, then forgotten (the lock is shorter)."""
    async with pool.acquire() as conn:
        done = await conn.execute(
            "DELETE FROM login_throttle WHERE updated_at < now() - interval '1 day'"
        )
    return int(done.split()[-1])
