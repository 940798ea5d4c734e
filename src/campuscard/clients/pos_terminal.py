"""A POS terminal that signs like a real device (``campuscard sim pos ...``): check, pay,
reverse, refund, blacklist, heartbeat, key rotation, and the offline mode (store and forward:
approve within the risk limits of the last blacklist, sign and number each record, upload when
the server answers again). Tests drive it over HTTP, and device makers can read it as the
reference implementation of docs/terminal-protocol.md."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from campuscard.ledger.money import Money, fmt
from campuscard.offline import rules as offline_rules
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


# -- offline mode ---------------------------------------------------------------------------


@dataclass
class CardArea:
    """The offline area a till writes on the card (docs/terminal-protocol.md §10). The
    simulator has no card, so it keeps the areas of the cards it saw; tills sharing one dict
    behave like tills sharing the physical cards."""

    counter: int = 0
    count: int = 0
    total: int = 0


@dataclass
class OfflineState:
    """What the till keeps across restarts: its next sequence number, the last list and limits,
    and the records not uploaded yet."""

    next_seq: int = 1
    blacklist_version: int | None = None
    listed: dict[str, str] = field(default_factory=dict)  # card number -> reason
    limits: dict[str, Any] = field(default_factory=dict)
    queue: list[dict[str, Any]] = field(default_factory=list)
    cards: dict[str, CardArea] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OfflineState:
        cards = {k: CardArea(**v) for k, v in data.get("cards", {}).items()}
        return cls(**{**data, "cards": cards})


@dataclass
class OfflineSale:
    approved: bool
    code: str | None = None  # why not
    record: dict[str, Any] | None = None


@dataclass
class OfflineTill:
    """A till's offline mode over a ``PosTerminal``; ``path`` keeps its state on disk."""

    terminal: PosTerminal
    state: OfflineState = field(default_factory=OfflineState)
    path: Path | None = None
    online: bool = True

    @classmethod
    def load(cls, terminal: PosTerminal, path: Path) -> OfflineTill:
        state = OfflineState()
        if path.exists():
            state = OfflineState.from_json(json.loads(path.read_text()))
        return cls(terminal, state, path)

    def save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.state.to_json(), indent=1))

    async def refresh_list(self) -> DeviceAnswer:
        """Fetch the blacklist changes and the offline limits while the server answers."""
        answer = await self.terminal.blacklist(self.state.blacklist_version)
        if answer.ok:
            body = answer.body
            if body.get("full"):
                self.state.listed = {c["number"]: c["reason"] for c in body["cards"]}
            for c in body.get("added", []):
                self.state.listed[c["number"]] = c["reason"]
            for c in body.get("removed", []):
                self.state.listed.pop(c["number"], None)
            self.state.blacklist_version = int(body["version"])
            self.state.limits = dict(body["offline_limits"])
            self.save()
        return answer

    def _refusal(self, card_number: str, area: CardArea, fen: int) -> str | None:
        limits = self.state.limits
        if not limits:
            return "NO_OFFLINE_LIMITS"  # never fetched a list: a till does not guess
        if card_number in self.state.listed:
            return "CARD_LISTED"
        if fen > Money.parse(limits["per_tx_limit"], allow_zero=True).fen:
            return "OFFLINE_AMOUNT_LIMIT"
        if area.count + 1 > int(limits["max_consecutive"]):
            return "OFFLINE_COUNT_LIMIT"
        if area.total + fen > Money.parse(limits["max_total"], allow_zero=True).fen:
            return "OFFLINE_TOTAL_LIMIT"
        if len(self.state.queue) >= int(limits["max_stored"]):
            return "OFFLINE_STORE_FULL"
        return None

    def sell_offline(
        self, card_number: str, uid: str, amount: str, *, made_at: int | None = None
    ) -> OfflineSale:
        """Approve within the limits, write the card's area, sign and store the record."""
        fen = Money.parse(amount).fen
        area = self.state.cards.setdefault(card_number, CardArea())
        refusal = self._refusal(card_number, area, fen)
        if refusal is not None:
            return OfflineSale(False, refusal)
        t = self.terminal
        record = offline_rules.Record(
            seq=self.state.next_seq,
            card_number=card_number,
            card_uid=uid.upper(),
            amount=fen,
            made_at=int(time.time()) if made_at is None else made_at,
            card_counter=area.counter + 1,
            total_before=area.total,
            total_after=area.total + fen,
            key_version=t.key_version,
            signature="",
        )
        body = {
            "seq": record.seq,
            "card_number": card_number,
            "card_uid": record.card_uid,
            "amount": fmt(fen),
            "made_at": record.made_at,
            "card_counter": record.card_counter,
            "total_before": fmt(record.total_before),
            "total_after": fmt(record.total_after),
            "key_version": t.key_version,
            "signature": offline_rules.sign_record(t.key, t.sn, record),
        }
        # the record is stored before the customer goes: the card and the queue move together
        area.counter, area.count, area.total = (
            record.card_counter,
            area.count + 1,
            record.total_after,
        )
        self.state.next_seq += 1
        self.state.queue.append(body)
        self.save()
        return OfflineSale(True, record=body)

    def card_seen_online(self, card_number: str) -> None:
        """An online payment with the card: its offline count and total start again."""
        area = self.state.cards.setdefault(card_number, CardArea())
        area.count, area.total = 0, 0
        self.save()

    async def pay(
        self, card_number: str, uid: str, amount: str, *, made_at: int | None = None
    ) -> tuple[str, DeviceAnswer | OfflineSale]:
        """Pay online; when the server cannot be reached, sell offline. Returns ("online",
        answer) or ("offline", sale)."""
        if self.online:
            try:
                _, answer = await self.terminal.pay(card_number, uid, amount)
            except httpx.TransportError:
                self.online = False
            else:
                if answer.ok:
                    self.card_seen_online(card_number)
                return "online", answer
        return "offline", self.sell_offline(card_number, uid, amount, made_at=made_at)

    async def upload(self) -> list[DeviceAnswer]:
        """Send the queue in batches; drop every record an answer names (accepted, duplicate or
        refused). A lost answer leaves the queue as it was: the resend is a duplicate."""
        answers: list[DeviceAnswer] = []
        while self.state.queue:
            batch = self.state.queue[: offline_rules.MAX_BATCH]
            answer = await self.terminal.request(
                "POST", "/api/v1/terminal/offline/upload", {"records": batch}
            )
            answers.append(answer)
            if not answer.ok:
                break
            self.online = True
            done = {r["seq"] for r in batch}
            self.state.queue = [r for r in self.state.queue if r["seq"] not in done]
            self.save()
        return answers

    def status(self) -> dict[str, Any]:
        return {
            "online": self.online,
            "next_seq": self.state.next_seq,
            "stored": len(self.state.queue),
            "stored_amount": fmt(sum(Money.parse(r["amount"]).fen for r in self.state.queue)),
            "blacklist_version": self.state.blacklist_version,
            "limits": self.state.limits,
        }
