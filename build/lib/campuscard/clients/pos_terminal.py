"""A POS terminal that signs like a real device (``campuscard sim pos ...``): check, pay,
reverse, refund, blacklist, heartbeat, key rotation. Tests drive it over HTTP, and device makers
can read it as the reference implementation of docs/terminal-protocol.md."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from campuscard.platform import signing


@dataclass
class DeviceAnswer:
    status: int
    body: dict[str, Any]
    replayed: bool

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def error_code(self) -> str | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return None if error is None else str(error.get("code"))


@dataclass
class PosTerminal:
    base_url: str
    sn: str
    key: bytes
    key_version: int = 1
    # a real device persists its sequence so client ids never repeat across restarts
    sequence: int = field(default_factory=lambda: int(time.time() * 1000) % 10**10)
    transport: httpx.AsyncBaseTransport | None = None
    timeout: float = 10.0

    def next_client_id(self) -> str:
        self.sequence += 1
        return f"{self.sn}-{self.sequence:010d}"

    async def request(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        bearer: str | None = None,
    ) -> DeviceAnswer:
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        headers = signing.signed_headers(
            sn=self.sn,
            key=self.key,
            key_version=self.key_version,
            method=method,
            path=path,
            body=body,
            timestamp=int(time.time()),
            nonce=secrets.token_urlsafe(18),
        )
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        async with httpx.AsyncClient(
            base_url=self.base_url, transport=self.transport, timeout=self.timeout
        ) as client:
            r = await client.request(method, path, content=body, headers=headers)
        try:
            data = r.json()
        except ValueError:
            data = {"error": {"code": "NOT_JSON", "message": r.text[:200], "field": None}}
        return DeviceAnswer(r.status_code, data, r.headers.get("idempotent-replayed") == "true")

    async def check(self, card_number: str, uid: str, amount: str) -> DeviceAnswer:
        return await self.request(
            "POST",
            "/api/v1/terminal/pay/check",
            {"card_number": card_number, "card_uid": uid, "amount": amount},
        )

    async def pay(
        self,
        card_number: str,
        uid: str,
        amount: str,
        *,
        pin: str | None = None,
        client_id: str | None = None,
    ) -> tuple[str, DeviceAnswer]:
        """Book a payment; returns the client id used (keep it to retry or reverse)."""
        client_id = client_id or self.next_client_id()
        payload: dict[str, Any] = {
            "client_id": client_id,
            "card_number": card_number,
            "card_uid": uid,
            "amount": amount,
        }
        if pin is not None:
            payload["pin"] = pin
        return client_id, await self.request("POST", "/api/v1/terminal/pay", payload)

    async def reverse(self, client_id: str) -> DeviceAnswer:
        return await self.request("POST", "/api/v1/terminal/pay/reverse", {"client_id": client_id})

    async def refund(
        self,
        payment_id: int,
        amount: str,
        *,
        bearer: str,
        reason: str = "",
        client_id: str | None = None,
    ) -> DeviceAnswer:
        return await self.request(
            "POST",
            "/api/v1/terminal/refunds",
            {
                "client_id": client_id or self.next_client_id(),
                "payment_id": payment_id,
                "amount": amount,
                "reason": reason,
            },
            bearer=bearer,
        )

    async def blacklist(self, since: int | None = None) -> DeviceAnswer:
        path = "/api/v1/terminal/blacklist" + ("" if since is None else f"?since={since}")
        return await self.request("GET", path)

    async def heartbeat(self, *, blacklist_version: int | None = None) -> DeviceAnswer:
        return await self.request(
            "POST",
            "/api/v1/terminal/heartbeat",
            {"app_version": "sim-1.0", "blacklist_version": blacklist_version},
        )

    async def rotate_key(self) -> DeviceAnswer:
        answer = await self.request("POST", "/api/v1/terminal/key/rotate")
        if answer.ok:
            self.key = bytes.fromhex(answer.body["key"])
            self.key_version = int(answer.body["key_version"])
        return answer

    async def sign_in(self, username: str, password: str, school: str) -> str:
        """The cashier signs in on the device (needed for refunds)."""
        async with httpx.AsyncClient(
            base_url=self.base_url, transport=self.transport, timeout=self.timeout
        ) as client:
            r = await client.post(
                "/api/v1/auth/login",
                json={"username": username, "password": password, "school": school},
            )
        if r.status_code != 200:
            raise RuntimeError(f"sign-in refused: {r.text[:200]}")
        return str(r.json()["token"])
