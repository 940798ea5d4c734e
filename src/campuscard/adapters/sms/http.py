"""HTTP client for the SMS gateway's signed send API (the production adapter)."""

from __future__ import annotations

import json
import secrets
import time

import httpx

from campuscard.adapters.sms import SmsError, SmsReceipt
from campuscard.platform.signing import sign

SEND_PATH = "/v1/sms/send"


class HttpSmsGateway:
    """Sends through ``POST {base_url}/v1/sms/send`` with an HMAC-SHA256 signature over method,
    path, timestamp, nonce and body hash (headers X-Sms-Key/-Timestamp/-Nonce/-Signature)."""

    def __init__(
        self,
        base_url: str,
        *,
        key_id: str,
        secret: bytes,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key_id = key_id
        self._secret = secret
        self._timeout = timeout
        self._transport = transport

    async def send(self, *, phone: str, text: str, client_ref: str) -> SmsReceipt:
        body = json.dumps(
            {"to": phone, "text": text, "client_ref": client_ref}, ensure_ascii=False
        ).encode()
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        headers = {
            "Content-Type": "application/json",
            "X-Sms-Key": self.key_id,
            "X-Sms-Timestamp": timestamp,
            "X-Sms-Nonce": nonce,
            "X-Sms-Signature": sign(self._secret, "POST", SEND_PATH, timestamp, nonce, body),
        }
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout, transport=self._transport
            ) as client:
                response = await client.post(
                    self.base_url + SEND_PATH, content=body, headers=headers
                )
        except httpx.HTTPError as err:
            raise SmsError(f"SMS gateway unreachable: {err!r}") from err
        if response.status_code != 200:
            raise SmsError(f"SMS gateway answered {response.status_code}: {response.text[:200]}")
        data = response.json()
        return SmsReceipt(message_id=str(data["message_id"]), duplicate=bool(data["duplicate"]))
