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
from campuscard.platform.sealing import unseal
from campuscard.platform.tasks import outbox_handler

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
        return unseal(master, SEAL_PURPOSE, str(payload["sealed_text"]))
    return str(payload["text"])


@outbox_handler("sms")
async def deliver_sms(pool: PgPool, settings: Settings, payload: dict[str, Any]) -> None:
    await sms_gateway(settings).send(
        phone=str(payload["phone"]),
        text=message_text(settings, payload),
        client_ref=f"outbox-{payload['outbox_id']}",
    )
