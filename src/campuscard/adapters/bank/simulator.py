"""A bank simulator for the bank link: ISO 8583 over TCP with a MAC (see iso.py).

It keeps bank accounts (PAN, holder name, balance, token), the transactions it approved and
the reversals it received, and reports what it holds for the school: loads it debited from
cardholders minus payouts it credited to them, net of reversals — the amount the school's
bank_clearing account must mirror. A reversal that arrives before its original leaves a
marker, and the late original is refused (code 12).

Faults can be injected for the next requests of a message type:
  "drop"        process the request, then never answer (the bank debited, we time out)
  "drop_before" never answer and do nothing
  "delay:<s>"   answer after <s> seconds
It can also produce the bank's daily statement file (docs/bank-link.md).

``control_app()`` is a small HTTP interface (loopback only, beside the ISO port) through which
anyone can see the bank's state and rehearse a fault: ``campuscard sim bank --control-port``,
``campuscard sim bank-fault`` and ``campuscard sim bank-state`` use it (docs/bank-link.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from fastapi import FastAPI, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from campuscard.adapters.bank import iso

CHINA = timezone(timedelta(hours=8))
log = logging.getLogger("campuscard.bank_sim")


@dataclass
class BankAccount:
    pan: str
    name: str
    balance: int
    token: str = field(default_factory=lambda: "TK" + secrets.token_hex(10).upper())


@dataclass
class BankTxn:
    rrn: str
    stan: str
    kind: str  # LOAD | PAYOUT
    token: str
    amount: int
    auth_code: str
    at: datetime
    reversed_at: datetime | None = None


class BankSimulator:
    def __init__(self, mac_key: str, *, hours: tuple[int, int] | None = None) -> None:
        """``hours``: (open minute, close minute) of the day in China time, None = 24 h."""
        self.mac_key = mac_key
        self.hours = hours
        self.accounts: dict[str, BankAccount] = {}
        self.txns: dict[str, BankTxn] = {}
        self.refused: dict[str, str] = {}  # rrn -> code, for declined originals
        self.reversal_markers: set[str] = set()
        self.faults: dict[str, list[str]] = {}
        self.limit = 500_000  # per transaction, fen
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self.port = 0

    # ---- set-up and reports ----------------------------------------------------------
    def open_account(self, pan: str, name: str, balance: int) -> BankAccount:
        with self._lock:
            account = BankAccount(pan, name, balance)
            self.accounts[pan] = account
            return account

    def inject(self, mti: str, mode: str, times: int = 1) -> None:
        with self._lock:
            self.faults.setdefault(mti, []).extend([mode] * times)

    def held(self) -> int:
        """Net owed to the school: standing loads minus standing payouts."""
        with self._lock:
            total = 0
            for t in self.txns.values():
                if t.reversed_at is None:
                    total += t.amount if t.kind == "LOAD" else -t.amount
            return total

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def state(self) -> dict[str, object]:
        """What the bank holds, for the control interface: no card numbers in full."""
        with self._lock:
            return {
                "open_now": self._open_now(),
                "hours": None
                if self.hours is None
                else [f"{m // 60:02d}:{m % 60:02d}" for m in self.hours],
                "held_fen": sum(
                    (t.amount if t.kind == "LOAD" else -t.amount)
                    for t in self.txns.values()
                    if t.reversed_at is None
                ),
                "limit_fen": self.limit,
                "accounts": [
                    {"pan": iso.mask_pan(a.pan), "name": a.name, "balance_fen": a.balance}
                    for a in self.accounts.values()
                ],
                "transactions": [
                    {
                        "rrn": t.rrn,
                        "stan": t.stan,
                        "kind": t.kind,
                        "amount_fen": t.amount,
                        "auth_code": t.auth_code,
                        "at": t.at.isoformat(),
                        "reversed_at": t.reversed_at.isoformat() if t.reversed_at else None,
                    }
                    for t in sorted(self.txns.values(), key=lambda t: t.at)
                ],
                "refused": dict(self.refused),
                "reversal_markers": sorted(self.reversal_markers),
                "faults": {mti: list(q) for mti, q in self.faults.items() if q},
                "requests": len(self.requests),
            }

    def control_app(self) -> FastAPI:
        """State and fault controls over HTTP (see the module docstring)."""
        app = FastAPI(title="bank simulator controls", docs_url=None, redoc_url=None)

        @app.get("/state")
        async def state() -> dict[str, object]:
            return self.state()

        @app.post("/faults")
        async def add_fault(fault: FaultIn) -> dict[str, object]:
            self.inject(fault.mti, fault.mode, fault.times)
            return self.state()

        @app.delete("/faults")
        async def clear() -> dict[str, object]:
            self.clear_faults()
            return self.state()

        @app.put("/hours")
        async def set_hours(hours: HoursIn) -> dict[str, object]:
            with self._lock:
                self.hours = hours.minutes()
            return self.state()

        @app.get("/statement", response_class=PlainTextResponse)
        async def statement(day: str = Query(pattern=r"^20[0-9]{6}$")) -> str:
            return self.statement(day)

        return app

    def balance_of(self, pan: str) -> int:
        return self.accounts[pan].balance

    def statement(self, day: str) -> str:
        """The bank's statement for one China-time day (YYYYMMDD); see docs/bank-link.md."""
        lines: list[str] = []
        debits = credits = 0
        with self._lock:
            txns = sorted(self.txns.values(), key=lambda t: t.at)
        for t in txns:
            for kind, at, sign in (
                (t.kind, t.at, 1),
                (f"{t.kind}_REV", t.reversed_at, -1),
            ):
                if at is None or at.astimezone(CHINA).strftime("%Y%m%d") != day:
                    continue
                stamp = at.astimezone(CHINA).strftime("%Y%m%d%H%M%S")
                lines.append(f"D|{t.rrn}|{t.stan}|{kind}|{t.amount}|{t.auth_code}|{stamp}")
                if (t.kind == "LOAD") == (sign == 1):
                    debits += t.amount
                else:
                    credits += t.amount
        header = f"H|CAMPUSBANK|{day}|{len(lines)}"
        trailer = f"T|{debits}|{credits}|{debits - credits}"
        return "\n".join([header, *lines, trailer]) + "\n"

    # ---- serving ---------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._client, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def serve_forever(self, host: str = "127.0.0.1", port: int = 0) -> None:
        await self.start(host, port)
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[int]:
        """Serve on a free loopback port in a thread; yields the port."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        if not ready.wait(10):
            raise RuntimeError("bank simulator did not start")
        try:
            yield self.port
        finally:

            async def stop() -> None:
                if self._server is not None:
                    self._server.close()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._server.wait_closed(), 2)

            asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    raw = await iso.read_frame(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                try:
                    doc = iso.unpack(raw, self.mac_key)
                except iso.MacError:
                    continue  # a message that does not verify is ignored, as a bank would
                except Exception as err:  # garbage on the line is dropped, as a bank would
                    log.info("undecodable message dropped: %r", err)
                    continue
                fault = self._take_fault(doc["t"])
                if fault == "drop_before":
                    continue
                answer = self._handle(doc)
                if fault == "drop":
                    continue
                if fault and fault.startswith("delay:"):
                    await asyncio.sleep(float(fault.split(":", 1)[1]))
                writer.write(iso.pack(answer, self.mac_key))
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _take_fault(self, mti: str) -> str | None:
        with self._lock:
            queue = self.faults.get(mti)
            return queue.pop(0) if queue else None

    def _open_now(self) -> bool:
        if self.hours is None:
            return True
        now = datetime.now(CHINA)
        minute = now.hour * 60 + now.minute
        return self.hours[0] <= minute < self.hours[1]

    # ---- the bank's rules ------------------------------------------------------------
    def _handle(self, doc: dict[str, str]) -> dict[str, str]:
        with self._lock:
            self.requests.append(doc["t"])
            mti = doc["t"]
            reply = {
                "t": mti[:2] + str(int(mti[2]) + 1) + mti[3],
                "3": doc.get("3", "000000"),
                "7": time.strftime("%m%d%H%M%S"),
                "11": doc.get("11", "000000"),
            }
            if "37" in doc:
                reply["37"] = doc["37"]
            if mti == "0100":
                reply["39"] = self._verify(doc, reply)
            elif mti == "0200":
                reply["39"] = self._transfer(doc, reply)
            elif mti == "0400":
                reply["39"] = self._reverse(doc)
            elif mti == "0600":
                reply["39"] = self._inquire(doc, reply)
            else:
                reply["39"] = "12"
            return reply

    def _verify(self, doc: dict[str, str], reply: dict[str, str]) -> str:
        account = self.accounts.get(doc.get("2", ""))
        if account is None:
            return "14"
        if account.name != doc.get("48", ""):
            return "05"
        reply["102"] = account.token
        return iso.APPROVED

    def _by_token(self, token: str) -> BankAccount | None:
        return next((a for a in self.accounts.values() if a.token == token), None)

    def _transfer(self, doc: dict[str, str], reply: dict[str, str]) -> str:
        rrn = doc["37"]
        if rrn in self.reversal_markers:
            return iso.REVERSED  # the reversal came first: the late original is refused
        if rrn in self.txns:
            t = self.txns[rrn]
            reply["38"] = t.auth_code
            return iso.APPROVED  # a repeated original is answered, not booked twice
        if not self._open_now():
            return iso.CLOSED
        amount = int(doc["4"])
        load = doc["3"] == iso.PROC_LOAD
        account = self._by_token(doc.get("102" if load else "103", ""))
        if account is None:
            code = "14"
        elif amount <= 0 or amount > self.limit:
            code = "61"
        elif load and account.balance < amount:
            code = "51"
        else:
            account.balance += -amount if load else amount
            auth = f"{secrets.randbelow(10**6):06d}"
            self.txns[rrn] = BankTxn(
                rrn,
                doc["11"],
                "LOAD" if load else "PAYOUT",
                account.token,
                amount,
                auth,
                datetime.now(UTC),
            )
            reply["38"] = auth
            return iso.APPROVED
        self.refused[rrn] = code
        return code

    def _reverse(self, doc: dict[str, str]) -> str:
        rrn = doc["37"]
        t = self.txns.get(rrn)
        if t is None:
            self.reversal_markers.add(rrn)
            return iso.APPROVED  # nothing to undo; the marker refuses a late original
        if t.reversed_at is None:
            account = self._by_token(t.token)
            assert account is not None
            account.balance += t.amount if t.kind == "LOAD" else -t.amount
            t.reversed_at = datetime.now(UTC)
        return iso.APPROVED

    def _inquire(self, doc: dict[str, str], reply: dict[str, str]) -> str:
        rrn = doc["37"]
        t = self.txns.get(rrn)
        if t is None:
            return self.refused.get(rrn, iso.NOT_FOUND)
        reply["4"] = f"{t.amount:012d}"
        reply["38"] = t.auth_code
        return iso.REVERSED if t.reversed_at else iso.APPROVED


FAULT_MODES = ("drop", "drop_before")
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class FaultIn(BaseModel):
    """The next ``times`` requests of message type ``mti`` meet ``mode``."""

    model_config = ConfigDict(extra="forbid")
    mti: str = Field(pattern=r"^0[1246]00$", description="0100, 0200, 0400 or 0600")
    mode: str = Field(description="drop, drop_before or delay:<seconds up to 60>")
    times: int = Field(default=1, ge=1, le=100)

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, mode: str) -> str:
        if mode in FAULT_MODES:
            return mode
        if mode.startswith("delay:"):
            try:
                seconds = float(mode.split(":", 1)[1])
            except ValueError:
                seconds = -1.0
            if 0 < seconds <= 60:
                return mode
        raise ValueError("mode must be drop, drop_before or delay:<seconds, 0-60>")


class HoursIn(BaseModel):
    """Service hours in China time, or ``always`` for a bank open day and night."""

    model_config = ConfigDict(extra="forbid")
    always: bool = False
    open: str | None = Field(default=None, pattern=_HHMM)
    close: str | None = Field(default=None, pattern=_HHMM)

    @model_validator(mode="after")
    def _open_before_close(self) -> HoursIn:
        if self.always:
            return self
        if self.open is None or self.close is None:
            raise ValueError("give open and close (HH:MM), or always: true")
        if self.open >= self.close:
            raise ValueError("open must be before close")
        return self

    def minutes(self) -> tuple[int, int] | None:
        if self.always or self.open is None or self.close is None:
            return None
        return (
            int(self.open[:2]) * 60 + int(self.open[3:]),
            int(self.close[:2]) * 60 + int(self.close[3:]),
        )
