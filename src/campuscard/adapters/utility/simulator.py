"""A utility vendor simulator speaking the signed API the adapter expects (client.py).

  POST /v1/recharges                   {"request_id", "meter_no", "amount_fen"}: credit a meter,
                                       once per request_id (the same id again: the first answer;
                                       another meter or amount under it: 409 REQUEST_ID_REUSED)
  GET  /v1/recharges/{request_id}      APPLIED | CANCELLED | NOT_FOUND
  POST /v1/recharges/{request_id}/cancel  the id can never be applied (APPLIED if it was)
  GET  /v1/meters/{meter_no}?month=YYYY-MM  balance, price, today's use, each day's use
Every request and answer is signed (signing.py). Meters use a little each day, so balances
fall and the automatic top-up has something to do. Rehearsal controls (not the vendor's API):
  POST /sim/control {"fail_next": n}   the next n recharges are refused with 503, not applied
                    {"lose_next": n}   the next n recharges are applied, then answered 504
                                       (the answer is lost: the caller cannot know)
                    {"delay_seconds": s}  every answer waits s seconds (a real timeout)
  POST /sim/meters  {"meter_no", "kind", "balance_fen"}  add or set a meter
  GET  /sim/state   meters and recharges
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from campuscard.adapters.utility import signing

CHINA = timezone(timedelta(hours=8))
PRICES = {"electricity": (56, "kWh"), "water": (350, "m3")}  # fen per unit


@dataclass
class SimMeter:
    meter_no: str
    kind: str
    balance: int
    history: dict[str, int] = field(default_factory=dict)  # day -> use in 1/100 units


@dataclass
class SimRecharge:
    request_id: str
    meter_no: str
    amount: int
    status: str
    balance: int
    vendor_txn: str


class UtilitySimulator:
    def __init__(self, keys: dict[str, bytes], *, known_meters: bool = False) -> None:
        """``known_meters``: every well-formed meter number exists (E… electricity, W…
        water), as at a real vendor that has all the campus's meters; else only those added."""
        self.keys = keys
        self.known_meters = known_meters
        self.meters: dict[str, SimMeter] = {}
        self.recharges: dict[str, SimRecharge] = {}
        self.nonces: set[str] = set()
        self.fail_next = 0
        self.lose_next = 0
        self.delay_seconds = 0.0
        self._lock = threading.Lock()
        self._seq = 0
        self.app = self._build()

    def add_meter(self, meter_no: str, kind: str, balance: int) -> SimMeter:
        with self._lock:
            m = self.meters.get(meter_no) or SimMeter(meter_no, kind, balance)
            m.kind, m.balance = kind, balance
            self.meters[meter_no] = m
            return m

    def _find(self, meter_no: str) -> SimMeter | None:
        m = self.meters.get(meter_no)
        if m is None and self.known_meters and meter_no[:1] in ("E", "W") and len(meter_no) <= 32:
            kind = "electricity" if meter_no.startswith("E") else "water"
            m = self.meters[meter_no] = SimMeter(meter_no, kind, 3_000)
        return m

    def _use(self, m: SimMeter, day: date) -> int:
        """A room's use on a day, in 1/100 units: the same every time it is asked."""
        key = day.isoformat()
        if key not in m.history:
            h = int(hashlib.sha256(f"{m.meter_no}{key}".encode()).hexdigest()[:6], 16)
            m.history[key] = (300 + h % 900) if m.kind == "electricity" else (10 + h % 40)
        return m.history[key]

    def _catch_up(self, m: SimMeter, today: date) -> None:
        """Take today's use off the balance once (a meter runs until its balance is zero)."""
        key = f"charged:{today.isoformat()}"
        if key in m.history:
            return
        price, _ = PRICES[m.kind]
        m.balance = max(0, m.balance - self._use(m, today) * price // 100)
        m.history[key] = 1

    # ---- the API -------------------------------------------------------------------------
    def _build(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/recharges", self._recharge, methods=["POST"]),
                Route("/v1/recharges/{rid}", self._query, methods=["GET"]),
                Route("/v1/recharges/{rid}/cancel", self._cancel, methods=["POST"]),
                Route("/v1/meters/{meter_no}", self._meter, methods=["GET"]),
                Route("/sim/control", self._control, methods=["POST"]),
                Route("/sim/meters", self._sim_meter, methods=["POST"]),
                Route("/sim/state", self._state, methods=["GET"]),
            ]
        )

    async def _verify(self, request: Request) -> tuple[bytes, str, bytes] | Response:
        body = await request.body()
        h = request.headers
        key = self.keys.get(h.get("x-vendor-key", ""))
        nonce, ts = h.get("x-vendor-nonce", ""), h.get("x-vendor-timestamp", "")
        path = _own_path(request) + (f"?{request.url.query}" if request.url.query else "")
        if key is None:
            return JSONResponse({"code": "KEY_UNKNOWN"}, status_code=401)
        expected = signing.request_signature(key, request.method, path, ts, nonce, body)
        if not signing.same(h.get("x-vendor-signature", ""), expected):
            return self._answer(key, 401, path, nonce, {"code": "SIGNATURE_INVALID"})
        if not ts.isdigit() or abs(time.time() - int(ts)) > signing.MAX_SKEW_SECONDS:
            return self._answer(key, 401, path, nonce, {"code": "TIMESTAMP_STALE"})
        with self._lock:
            if nonce in self.nonces or not 8 <= len(nonce) <= 64:
                return self._answer(key, 401, path, nonce, {"code": "NONCE_REUSED"})
            self.nonces.add(nonce)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        return key, path, body

    def _answer(
        self, key: bytes, status: int, path: str, nonce: str, body: dict[str, Any]
    ) -> Response:
        content = json.dumps(body, ensure_ascii=False).encode()
        ts = str(int(time.time()))
        return Response(
            content,
            status_code=status,
            media_type="application/json",
            headers={
                "X-Vendor-Timestamp": ts,
                "X-Vendor-Nonce": nonce,
                "X-Vendor-Signature": signing.answer_signature(
                    key, status, path, ts, nonce, content
                ),
            },
        )

    @staticmethod
    def _view(r: SimRecharge) -> dict[str, Any]:
        return {
            "request_id": r.request_id,
            "status": r.status,
            "meter_no": r.meter_no,
            "amount_fen": r.amount,
            "balance_fen": r.balance,
            "vendor_txn": r.vendor_txn,
        }

    async def _recharge(self, request: Request) -> Response:
        v = await self._verify(request)
        if isinstance(v, Response):
            return v
        key, path, body = v
        nonce = request.headers["x-vendor-nonce"]
        try:
            data = json.loads(body)
            rid, meter_no, amount = (
                str(data["request_id"]),
                str(data["meter_no"]),
                data["amount_fen"],
            )
        except (ValueError, KeyError, TypeError):
            return self._answer(key, 400, path, nonce, {"code": "BODY_INVALID"})
        if type(amount) is not int or not 1 <= amount <= 100_000:
            return self._answer(
                key, 400, path, nonce, {"code": "AMOUNT_INVALID", "message": "1 fen to 1,000 yuan"}
            )
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return Response(b'{"code":"BUSY"}', status_code=503)
            old = self.recharges.get(rid)
            if old is not None:
                if (old.meter_no, old.amount) != (meter_no, amount):
                    return self._answer(key, 409, path, nonce, {"code": "REQUEST_ID_REUSED"})
                if old.status == "CANCELLED":
                    return self._answer(key, 409, path, nonce, {"code": "REQUEST_CANCELLED"})
                return self._answer(key, 200, path, nonce, self._view(old))
            m = self._find(meter_no)
            if m is None:
                return self._answer(key, 404, path, nonce, {"code": "METER_NOT_FOUND"})
            self._catch_up(m, datetime.now(CHINA).date())
            m.balance += amount
            self._seq += 1
            r = SimRecharge(rid, meter_no, amount, "APPLIED", m.balance, f"UV{self._seq:010d}")
            self.recharges[rid] = r
            if self.lose_next > 0:
                self.lose_next -= 1
                return Response(b"gateway timeout", status_code=504)
            return self._answer(key, 200, path, nonce, self._view(r))

    async def _query(self, request: Request) -> Response:
        v = await self._verify(request)
        if isinstance(v, Response):
            return v
        key, path, _ = v
        rid = request.path_params["rid"]
        with self._lock:
            r = self.recharges.get(rid)
        body = self._view(r) if r else {"request_id": rid, "status": "NOT_FOUND"}
        return self._answer(key, 200, path, request.headers["x-vendor-nonce"], body)

    async def _cancel(self, request: Request) -> Response:
        v = await self._verify(request)
        if isinstance(v, Response):
            return v
        key, path, _ = v
        rid = request.path_params["rid"]
        with self._lock:
            r = self.recharges.get(rid)
            if r is None:
                r = SimRecharge(rid, "", 0, "CANCELLED", 0, "")
                self.recharges[rid] = r
        return self._answer(key, 200, path, request.headers["x-vendor-nonce"], self._view(r))

    async def _meter(self, request: Request) -> Response:
        v = await self._verify(request)
        if isinstance(v, Response):
            return v
        key, path, _ = v
        nonce = request.headers["x-vendor-nonce"]
        month = request.query_params.get("month", "")
        today = datetime.now(CHINA).date()
        try:
            first = date.fromisoformat(f"{month}-01")
        except ValueError:
            return self._answer(key, 400, path, nonce, {"code": "MONTH_INVALID"})
        with self._lock:
            m = self._find(request.path_params["meter_no"])
            if m is None:
                return self._answer(key, 404, path, nonce, {"code": "METER_NOT_FOUND"})
            self._catch_up(m, today)
            price, unit = PRICES[m.kind]
            days = []
            d = first
            while d.month == first.month and d <= today:
                use = self._use(m, d)
                days.append(
                    {
                        "date": d.isoformat(),
                        "used": f"{use / 100:.2f}",
                        "cost_fen": use * price // 100,
                    }
                )
                d += timedelta(days=1)
            body = {
                "meter_no": m.meter_no,
                "kind": m.kind,
                "unit": unit,
                "price_fen": price,
                "balance_fen": m.balance,
                "used_today": f"{self._use(m, today) / 100:.2f}",
                "days": days,
            }
        return self._answer(key, 200, path, nonce, body)

    async def _control(self, request: Request) -> Response:
        data = await request.json()
        self.fail_next = int(data.get("fail_next", self.fail_next))
        self.lose_next = int(data.get("lose_next", self.lose_next))
        self.delay_seconds = float(data.get("delay_seconds", self.delay_seconds))
        return JSONResponse(
            {
                "fail_next": self.fail_next,
                "lose_next": self.lose_next,
                "delay_seconds": self.delay_seconds,
            }
        )

    async def _sim_meter(self, request: Request) -> Response:
        data = await request.json()
        m = self.add_meter(
            str(data["meter_no"]),
            str(data.get("kind", "electricity")),
            int(data.get("balance_fen", 0)),
        )
        return JSONResponse({"meter_no": m.meter_no, "balance_fen": m.balance})

    async def _state(self, request: Request) -> Response:
        with self._lock:
            return JSONResponse(
                {
                    "meters": {
                        k: {"kind": m.kind, "balance_fen": m.balance}
                        for k, m in self.meters.items()
                    },
                    "recharges": {k: self._view(r) for k, r in self.recharges.items()},
                }
            )


def _own_path(request: Request) -> str:
    """The path as the vendor's API names it (``/v1/…``): mounted under a prefix (the demo's
    ``/dev/utility``), the request's path starts with the mount's root path, which the client
    neither knows nor signs."""
    path, root = request.url.path, request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


def create_utility_simulator(
    keys: dict[str, bytes], *, known_meters: bool = True
) -> UtilitySimulator:
    return UtilitySimulator(keys, known_meters=known_meters)
