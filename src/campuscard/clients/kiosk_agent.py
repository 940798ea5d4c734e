"""The self-service kiosk's software (seed 004 step 5): keep the school's pickup codes (as this
kiosk's hashes) in step with the platform, check a typed code locally, ask the platform for the
authorization, drive the card dispenser, and report the card number.

Every request is signed with the kiosk's terminal key (docs/terminal-protocol.md).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from campuscard.adapters.dispenser import CardDispenser, DispensedCard, DispenseError
from campuscard.issuing import pickup_code as codes
from campuscard.platform.signing import signed_headers

INVALID = "取卡注册码无效 / invalid pickup code"
ISSUED = "IC卡已完成发卡 / this card has already been issued"
EXPIRED = "取卡注册码已过期 / the pickup code has expired"
LOCKED = "错误次数过多，请稍后再试 / too many wrong codes, try again later"
FAILED = "发卡失败，请联系卡务中心 / the card could not be issued; please ask the card center"
_RESULT_KEYS = (
    (INVALID, "k.result.invalid"),
    (ISSUED, "k.result.issued"),
    (EXPIRED, "k.result.expired"),
    (LOCKED, "k.result.locked"),
    (FAILED, "k.result.failed"),
)
RETRYABLE_DISPENSE = frozenset({"JAM", "LINE_ERROR"})


@dataclass
class PickupResult:
    ok: bool
    message: str
    card_number: str | None = None
    student: dict[str, Any] | None = None
    asked_platform: bool = False

    @property
    def key(self) -> str:
        """The kiosk page's catalog key for this outcome (the page speaks one language)."""
        if self.ok:
            return "k.result.ok"
        for text, key in _RESULT_KEYS:
            if self.message.startswith(text):
                return key
        return "k.result.failed"


@dataclass
class KioskAgent:
    client: httpx.AsyncClient  # base_url = the platform
    sn: str
    terminal_key: bytes
    dispenser: CardDispenser
    key_version: int = 1
    dispense_attempts: int = 2
    version: int = 0
    pickup_key: bytes | None = None
    local: dict[str, dict[str, Any]] = field(default_factory=dict)  # kiosk_hash -> item

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        content = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = signed_headers(
            sn=self.sn,
            key=self.terminal_key,
            key_version=self.key_version,
            method=method,
            path=path,
            body=content,
            timestamp=int(time.time()),
            nonce=secrets.token_urlsafe(18),
        )
        if body is not None:
            headers["Content-Type"] = "application/json"
        return await self.client.request(method, path, content=content, headers=headers)

    async def sync(self) -> int:
        """Pull every change since the version held; returns how many codes are live here."""
        if self.pickup_key is None:
            r = await self._call("GET", "/api/v1/kiosk/pickup-key")
            r.raise_for_status()
            self.pickup_key = bytes.fromhex(r.json()["key"])
        while True:
            r = await self._call("GET", f"/api/v1/kiosk/pickups?since={self.version}")
            r.raise_for_status()
            feed = r.json()
            for item in feed["items"]:
                for key in [
                    k for k, v in self.local.items() if v["pickup_id"] == item["pickup_id"]
                ]:
                    del self.local[key]
                if item["live"] and item["kiosk_hash"]:
                    self.local[item["kiosk_hash"]] = item
            self.version = feed["version"]
            if not feed["more"]:
                return len(self.local)

    def check_locally(self, typed: str) -> dict[str, Any] | None:
        code = codes.normalize(typed)
        if code is None or self.pickup_key is None:
            return None
        return self.local.get(codes.kiosk_hash(self.pickup_key, code)) or self.local.get(
            codes.legacy_kiosk_hash(self.pickup_key, code)
        )

    async def pickup(self, typed: str, session_id: str | None = None) -> PickupResult:
        """``session_id``: this person's visit (a new one for each person), so that one
        person's wrong codes do not lock the kiosk for the next."""
        local = self.check_locally(typed)
        if local is None:
            await self.sync()  # a code made a moment ago may not be here yet
            local = self.check_locally(typed)
            if local is None:
                return PickupResult(False, INVALID)
        ask: dict[str, Any] = {"code": typed, "pickup_id": local["pickup_id"]}
        if session_id is not None:
            ask["session_id"] = session_id
        r = await self._call("POST", "/api/v1/kiosk/pickups/authorize", ask)
        if r.status_code != 200:
            message = {409: ISSUED, 410: EXPIRED, 429: LOCKED}.get(r.status_code, INVALID)
            if r.status_code in (409, 410):
                await self.sync()
            return PickupResult(False, message, asked_platform=True)
        authorization = r.json()
        pickup_id = authorization["pickup_id"]
        card = await self._dispense(pickup_id, authorization["card_data"])
        if card is None:
            return PickupResult(False, FAILED, asked_platform=True)
        try:
            await self._report(pickup_id, card)
        except (RuntimeError, httpx.HTTPError) as err:
            return PickupResult(False, f"{FAILED} ({err})", card.number, asked_platform=True)
        await self.sync()
        return PickupResult(
            True,
            f"取卡成功，卡号 {card.number} / card issued, number {card.number}",
            card_number=card.number,
            student=authorization["card_data"],
            asked_platform=True,
        )

    async def _dispense(self, pickup_id: int, card_data: dict[str, str]) -> DispensedCard | None:
        for attempt in range(1, self.dispense_attempts + 1):
            try:
                return await self.dispenser.dispense(card_data)
            except DispenseError as err:
                retry = err.reason in RETRYABLE_DISPENSE and attempt < self.dispense_attempts
                r = await self._call(
                    "POST",
                    f"/api/v1/kiosk/pickups/{pickup_id}/failure",
                    {"reason": f"{err.reason}: {err}"[:200], "release": not retry},
                )
                r.raise_for_status()
                if not retry:
                    return None
        return None

    async def _report(self, pickup_id: int, card: DispensedCard) -> None:
        """Report the card; the id is fixed by the card, so a retry after a lost answer replays."""
        body = {
            "client_id": f"{self.sn}-{pickup_id}-{card.number}"[:64],
            "card_number": card.number,
            "card_uid": card.uid,
        }
        last: Exception | None = None
        for _ in range(3):
            try:
                r = await self._call("POST", f"/api/v1/kiosk/pickups/{pickup_id}/complete", body)
            except httpx.HTTPError as err:
                last = err
                continue
            if r.status_code >= 500:
                last = RuntimeError(r.text)
                continue
            r.raise_for_status()
            return
        raise RuntimeError(f"could not report card {card.number}: {last!r}")

    # ------------------------------------------------------------ self-service (seed 002)

    async def self_service(self, action: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Call ``/api/v1/kiosk/self-service/<action>``; (status, JSON answer)."""
        r = await self._call("POST", f"/api/v1/kiosk/self-service/{action}", body)
        try:
            data = r.json()
        except ValueError:
            data = {"error": {"code": "BAD_ANSWER", "message": r.text[:200]}}
        return r.status_code, data if isinstance(data, dict) else {"items": data}
