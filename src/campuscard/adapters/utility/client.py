"""The utility vendor adapter: signed HTTP calls to the vendor of the dorms' prepaid meters.

``recharge`` is idempotent by our ``request_id``: sending it again (after a timeout) never
credits a meter twice, the vendor answers the first outcome. ``cancel`` makes a request id
unusable, so a request that may still be in flight can be given up safely: after a confirmed
cancel the vendor will never apply it. Production and tests use this class; tests and the demo
talk to adapters/utility/simulator.py. Every answer's signature is checked before it is
believed; anything else is ``VendorUnavailable`` (the outcome is unknown).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx

from campuscard.adapters.utility import signing
from campuscard.config import Settings


class VendorError(Exception):
    """The vendor answered and refused (``code``: METER_NOT_FOUND, AMOUNT_INVALID, ...)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class VendorUnavailable(Exception):
    """No trustworthy answer (timeout, network, bad status or signature): outcome unknown."""


@dataclass(frozen=True)
class Recharge:
    request_id: str
    status: str  # APPLIED | NOT_FOUND | CANCELLED
    meter_no: str
    amount: int
    balance: int  # the meter's prepaid balance after it, fen
    vendor_txn: str


@dataclass(frozen=True)
class MeterState:
    meter_no: str
    kind: str  # electricity | water
    unit: str  # kWh | m3
    balance: int  # fen
    price: int  # fen per unit
    used_today: str  # units, decimal text
    days: list[dict[str, Any]]  # {"date", "used", "cost"} of the month asked for


class UtilityClient:
    def __init__(
        self,
        base_url: str,
        *,
        key_id: str,
        secret: bytes,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key_id = key_id
        self.secret = secret
        self.timeout = timeout
        self.transport = transport

    @classmethod
    def from_settings(
        cls, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> UtilityClient:
        return cls(
            settings.utility_base_url,
            key_id=settings.utility_key_id,
            secret=settings.utility_secret.get_secret_value().encode(),
            timeout=settings.utility_timeout_seconds,
            transport=transport,
        )

    async def _call(self, method: str, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":")).encode() if payload is not None else b""
        ts, nonce = str(int(time.time())), secrets.token_hex(12)
        headers = {
            "Content-Type": "application/json",
            "X-Vendor-Key": self.key_id,
            "X-Vendor-Timestamp": ts,
            "X-Vendor-Nonce": nonce,
            "X-Vendor-Signature": signing.request_signature(
                self.secret, method, path, ts, nonce, body
            ),
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as c:
                r = await c.request(method, f"{self.base_url}{path}", content=body, headers=headers)
        except httpx.HTTPError as err:
            raise VendorUnavailable(f"{path}: {err!r}") from err
        sig = r.headers.get("x-vendor-signature", "")
        expected = signing.answer_signature(
            self.secret,
            r.status_code,
            path,
            r.headers.get("x-vendor-timestamp", ""),
            nonce,
            r.content,
        )
        if r.headers.get("x-vendor-nonce") != nonce or not signing.same(sig, expected):
            raise VendorUnavailable(f"{path}: the answer's signature does not verify")
        try:
            answer = r.json()
        except ValueError as err:
            raise VendorUnavailable(f"{path}: the answer is not JSON") from err
        if r.status_code >= 500 or not isinstance(answer, dict):
            raise VendorUnavailable(f"{path}: HTTP {r.status_code}")
        if r.status_code >= 400:
            raise VendorError(str(answer.get("code", "REFUSED")), str(answer.get("message", "")))
        return answer

    @staticmethod
    def _recharge(a: dict[str, Any]) -> Recharge:
        return Recharge(
            str(a["request_id"]),
            str(a["status"]),
            str(a.get("meter_no", "")),
            int(a.get("amount_fen", 0)),
            int(a.get("balance_fen", 0)),
            str(a.get("vendor_txn", "")),
        )

    async def recharge(self, *, request_id: str, meter_no: str, amount: int) -> Recharge:
        """Credit ``amount`` fen to the meter, once per ``request_id``."""
        a = await self._call(
            "POST",
            "/v1/recharges",
            {"request_id": request_id, "meter_no": meter_no, "amount_fen": amount},
        )
        return self._recharge(a)

    async def query(self, request_id: str) -> Recharge:
        """What became of a request: APPLIED, CANCELLED or NOT_FOUND (never reached the vendor)."""
        return self._recharge(await self._call("GET", f"/v1/recharges/{request_id}", None))

    async def cancel(self, request_id: str) -> Recharge:
        """Make the request id unusable; answers APPLIED when it was applied before."""
        return self._recharge(await self._call("POST", f"/v1/recharges/{request_id}/cancel", {}))

    async def meter(self, meter_no: str, month: str) -> MeterState:
        """The meter's balance, today's use and each day's use of ``month`` (YYYY-MM)."""
        a = await self._call("GET", f"/v1/meters/{meter_no}?month={month}", None)
        return MeterState(
            str(a["meter_no"]),
            str(a["kind"]),
            str(a["unit"]),
            int(a["balance_fen"]),
            int(a["price_fen"]),
            str(a["used_today"]),
            list(a.get("days", [])),
        )
