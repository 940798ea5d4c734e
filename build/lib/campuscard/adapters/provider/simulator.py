"""A payment-provider simulator speaking the same signed API as the real adapter expects.

Endpoints (JSON bodies of string parameters, each signed; see signing.py):
  POST /pay/unifiedorder     create an order (idempotent by out_trade_no) -> prepay_id, pay_url
  GET  /pay/page/{prepay_id} the payer's cashier page; POST it with action=pay|cancel
  POST /pay/orderquery       trade_state: NOTPAY | SUCCESS | CLOSED | REFUND | PAYERROR
  POST /pay/closeorder       close an unpaid order (answers ORDERPAID if it was paid)
  POST /pay/refund           refund (part of) a paid order, idempotent by out_refund_no
  GET  /pay/downloadbill     the day's statement as CSV (see docs/provider-protocol.md)
After a payment it POSTs a signed notify to the order's notify_url, retrying until the
merchant answers return_code=SUCCESS. Test controls (not part of the provider's API):
  POST /sim/control  {"notify": "normal" | "drop" | "duplicate", "notify_delay": seconds}
  GET  /sim/state    what the provider holds for the merchant (paid - refunded), per mch_id
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import logging
import secrets
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from campuscard.adapters.provider import signing

log = logging.getLogger("campuscard.provider_sim")
CHINA = timezone(timedelta(hours=8))


@dataclass
class SimOrder:
    out_trade_no: str
    mch_id: str
    prepay_id: str
    total_fee: int
    body: str
    notify_url: str
    state: str = "NOTPAY"
    transaction_id: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    paid_at: datetime | None = None
    refunds: dict[str, int] = field(default_factory=dict)
    notifies_sent: int = 0


class ProviderSimulator:
    def __init__(self, merchants: dict[str, str], *, app_id: str = "wxcampuscard") -> None:
        """``merchants`` maps mch_id to its signing key."""
        self.merchants = merchants
        self.app_id = app_id
        self.orders: dict[str, SimOrder] = {}
        self.by_prepay: dict[str, str] = {}
        self.notify_mode = "normal"
        self.notify_delay = 0.0
        self.notify_retries = 6
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = self._build()

    # ---- what the provider holds -------------------------------------------------------
    def held(self, mch_id: str) -> int:
        with self._lock:
            return sum(
                o.total_fee - sum(o.refunds.values())
                for o in self.orders.values()
                if o.mch_id == mch_id and o.state in ("SUCCESS", "REFUND")
            )

    def pay(self, out_trade_no: str) -> SimOrder:
        """The payer confirms on the cashier page (also used by tests directly)."""
        with self._lock:
            order = self.orders[out_trade_no]
            if order.state == "NOTPAY":
                order.state = "SUCCESS"
                order.paid_at = datetime.now(UTC)
                order.transaction_id = f"4200{next(self._seq):010d}{secrets.randbelow(10**6):06d}"
            return order

    # ---- HTTP ------------------------------------------------------------------------
    def _build(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            for task in list(self._tasks):
                task.cancel()

        return Starlette(
            routes=[
                Route("/pay/unifiedorder", self._unifiedorder, methods=["POST"]),
                Route("/pay/page/{prepay_id}", self._page, methods=["GET", "POST"]),
                Route("/pay/orderquery", self._orderquery, methods=["POST"]),
                Route("/pay/closeorder", self._closeorder, methods=["POST"]),
                Route("/pay/refund", self._refund, methods=["POST"]),
                Route("/pay/downloadbill", self._bill, methods=["GET"]),
                Route("/sim/control", self._control, methods=["POST"]),
                Route("/sim/state", self._state, methods=["GET"]),
            ],
            lifespan=lifespan,
        )

    def _answer(self, mch_id: str, params: dict[str, Any]) -> JSONResponse:
        base = {"return_code": "SUCCESS", "appid": self.app_id, "mch_id": mch_id}
        base["nonce_str"] = secrets.token_hex(8)
        return JSONResponse(signing.signed(base | params, self.merchants[mch_id]))

    async def _verified(self, request: Request) -> tuple[str, dict[str, Any]] | Response:
        try:
            params = await request.json()
        except ValueError:
            return JSONResponse({"return_code": "FAIL", "return_msg": "body is not JSON"}, 400)
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            return JSONResponse({"return_code": "FAIL", "return_msg": "params are strings"}, 400)
        mch_id = params.get("mch_id", "")
        key = self.merchants.get(mch_id)
        if key is None:
            return JSONResponse({"return_code": "FAIL", "return_msg": "unknown mch_id"}, 400)
        if not signing.verify(params, key):
            return JSONResponse({"return_code": "FAIL", "return_msg": "SIGNERROR"}, 400)
        return mch_id, params

    async def _unifiedorder(self, request: Request) -> Response:
        checked = await self._verified(request)
        if isinstance(checked, Response):
            return checked
        mch_id, p = checked
        try:
            total_fee = int(p["total_fee"])
            out_trade_no = p["out_trade_no"]
            notify_url = p["notify_url"]
        except (KeyError, ValueError):
            return self._answer(mch_id, {"result_code": "FAIL", "err_code": "PARAM_ERROR"})
        if total_fee <= 0:
            return self._answer(mch_id, {"result_code": "FAIL", "err_code": "PARAM_ERROR"})
        with self._lock:
            order = self.orders.get(out_trade_no)
            if order is not None and order.total_fee != total_fee:
                return self._answer(
                    mch_id, {"result_code": "FAIL", "err_code": "OUT_TRADE_NO_USED"}
                )
            if order is None:
                order = SimOrder(
                    out_trade_no,
                    mch_id,
                    f"wx{secrets.token_hex(12)}",
                    total_fee,
                    p.get("body", ""),
                    notify_url,
                )
                self.orders[out_trade_no] = order
                self.by_prepay[order.prepay_id] = out_trade_no
        pay_url = str(request.url_for("_page", prepay_id=order.prepay_id))
        return self._answer(
            mch_id,
            {"result_code": "SUCCESS", "prepay_id": order.prepay_id, "code_url": pay_url},
        )

    async def _page(self, request: Request) -> Response:
        out_trade_no = self.by_prepay.get(request.path_params["prepay_id"])
        if out_trade_no is None:
            return HTMLResponse("<h1>订单不存在 / Unknown order</h1>", status_code=404)
        order = self.orders[out_trade_no]
        if request.method == "POST":
            form = await request.form()
            if form.get("action") == "pay":
                self.pay(out_trade_no)
                self._schedule_notify(order)
            elif form.get("action") == "cancel" and order.state == "NOTPAY":
                order.state = "PAYERROR"
        yuan = f"{order.total_fee // 100}.{order.total_fee % 100:02d}"
        state = {"NOTPAY": "待支付 / waiting", "SUCCESS": "支付成功 / paid"}.get(
            order.state, order.state
        )
        buttons = (
            '<button name="action" value="pay">确认支付 Pay</button> '
            '<button name="action" value="cancel">取消 Cancel</button>'
            if order.state == "NOTPAY"
            else ""
        )
        return HTMLResponse(
            f"""<!doctype html><html lang="zh-CN"><meta charset="utf-8">
<title>收银台 Cashier</title><body><h1>收银台 Cashier (simulator)</h1>
<p>{html.escape(order.body)}</p><p class="amount">¥ {yuan}</p><p class="state">{state}</p>
<form method="post">{buttons}</form></body></html>"""
        )

    async def _orderquery(self, request: Request) -> Response:
        checked = await self._verified(request)
        if isinstance(checked, Response):
            return checked
        mch_id, p = checked
        order = self.orders.get(p.get("out_trade_no", ""))
        if order is None or order.mch_id != mch_id:
            return self._answer(mch_id, {"result_code": "FAIL", "err_code": "ORDERNOTEXIST"})
        return self._answer(
            mch_id,
            {
                "result_code": "SUCCESS",
                "out_trade_no": order.out_trade_no,
                "trade_state": order.state,
                "total_fee": str(order.total_fee),
                "transaction_id": order.transaction_id,
            },
        )

    async def _closeorder(self, request: Request) -> Response:
        checked = await self._verified(request)
        if isinstance(checked, Response):
            return checked
        mch_id, p = checked
        with self._lock:
            order = self.orders.get(p.get("out_trade_no", ""))
            if order is None:
                return self._answer(mch_id, {"result_code": "FAIL", "err_code": "ORDERNOTEXIST"})
            if order.state in ("SUCCESS", "REFUND"):
                return self._answer(mch_id, {"result_code": "FAIL", "err_code": "ORDERPAID"})
            order.state = "CLOSED" if order.state == "NOTPAY" else order.state
        return self._answer(mch_id, {"result_code": "SUCCESS", "trade_state": order.state})

    async def _refund(self, request: Request) -> Response:
        checked = await self._verified(request)
        if isinstance(checked, Response):
            return checked
        mch_id, p = checked
        with self._lock:
            order = self.orders.get(p.get("out_trade_no", ""))
            if order is None or order.state not in ("SUCCESS", "REFUND"):
                return self._answer(mch_id, {"result_code": "FAIL", "err_code": "ORDERNOTEXIST"})
            out_refund_no = p.get("out_refund_no", "")
            try:
                fee = int(p["refund_fee"])
            except (KeyError, ValueError):
                return self._answer(mch_id, {"result_code": "FAIL", "err_code": "PARAM_ERROR"})
            if out_refund_no not in order.refunds:
                if fee <= 0 or sum(order.refunds.values()) + fee > order.total_fee:
                    return self._answer(mch_id, {"result_code": "FAIL", "err_code": "FEE_ERROR"})
                order.refunds[out_refund_no] = fee
                order.state = "REFUND"
            fee = order.refunds[out_refund_no]
        return self._answer(
            mch_id,
            {"result_code": "SUCCESS", "out_refund_no": out_refund_no, "refund_fee": str(fee)},
        )

    async def _bill(self, request: Request) -> Response:
        mch_id = request.query_params.get("mch_id", "")
        day = request.query_params.get("bill_date", "")
        if mch_id not in self.merchants or len(day) != 8:
            return PlainTextResponse("mch_id and bill_date=YYYYMMDD are required", 400)
        return PlainTextResponse(self.bill(mch_id, day), media_type="text/csv")

    def bill(self, mch_id: str, day: str) -> str:
        """The statement of one China-time day: one line per payment and per refund."""
        lines = ["trade_time,out_trade_no,transaction_id,type,amount_fen,out_refund_no"]
        paid = refunded = 0
        with self._lock:
            orders = sorted(
                (o for o in self.orders.values() if o.mch_id == mch_id and o.paid_at),
                key=lambda o: o.paid_at or o.created_at,
            )
        for o in orders:
            assert o.paid_at is not None
            local = o.paid_at.astimezone(CHINA)
            if local.strftime("%Y%m%d") != day:
                continue
            stamp = local.strftime("%Y-%m-%d %H:%M:%S")
            lines.append(f"{stamp},{o.out_trade_no},{o.transaction_id},SUCCESS,{o.total_fee},")
            paid += o.total_fee
            for refund_no, fee in o.refunds.items():
                lines.append(
                    f"{stamp},{o.out_trade_no},{o.transaction_id},REFUND,{fee},{refund_no}"
                )
                refunded += fee
        lines.append(f"# total_paid={paid},total_refunded={refunded},net={paid - refunded}")
        return "\n".join(lines) + "\n"

    async def _control(self, request: Request) -> Response:
        body = await request.json()
        self.notify_mode = body.get("notify", self.notify_mode)
        self.notify_delay = float(body.get("notify_delay", self.notify_delay))
        return JSONResponse({"notify": self.notify_mode, "notify_delay": self.notify_delay})

    async def _state(self, request: Request) -> Response:
        return JSONResponse({mch: {"held": self.held(mch)} for mch in self.merchants})

    # ---- notify ----------------------------------------------------------------------
    def _schedule_notify(self, order: SimOrder) -> None:
        if self.notify_mode == "drop":
            return
        times = 2 if self.notify_mode == "duplicate" else 1
        for _ in range(times):
            task = asyncio.get_running_loop().create_task(self._notify(order))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def notify_params(self, order: SimOrder) -> dict[str, str]:
        assert order.paid_at is not None
        return signing.signed(
            {
                "return_code": "SUCCESS",
                "result_code": "SUCCESS",
                "appid": self.app_id,
                "mch_id": order.mch_id,
                "out_trade_no": order.out_trade_no,
                "transaction_id": order.transaction_id,
                "total_fee": order.total_fee,
                "time_end": order.paid_at.astimezone(CHINA).strftime("%Y%m%d%H%M%S"),
                "nonce_str": secrets.token_hex(8),
            },
            self.merchants[order.mch_id],
        )

    async def _notify(self, order: SimOrder) -> None:
        if self.notify_delay:
            await asyncio.sleep(self.notify_delay)
        delay = 0.2
        async with httpx.AsyncClient(timeout=5.0) as client:
            for _ in range(self.notify_retries):
                order.notifies_sent += 1
                try:
                    r = await client.post(order.notify_url, json=self.notify_params(order))
                    if r.status_code == 200 and r.json().get("return_code") == "SUCCESS":
                        return
                except (httpx.HTTPError, ValueError) as err:
                    log.info("notify %s failed: %r", order.out_trade_no, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
