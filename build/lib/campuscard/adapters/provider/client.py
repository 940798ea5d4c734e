"""The payment-provider adapter: signed HTTP calls to a WeChat-Pay/Alipay-like API.

Every request carries appid, mch_id, a nonce and a signature (signing.py); every answer's
signature is checked before it is believed. Production and tests use this same class; in
tests and the demo it talks to adapters/provider/simulator.py over HTTP.
"""

from __future__ import annotations

import csv
import io
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from campuscard.adapters.provider import signing
from campuscard.config import Settings


class ProviderError(Exception):
    """The provider answered, but refused (``code`` is its err_code)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class ProviderUnavailable(Exception):
    """No trustworthy answer: network error, timeout, bad status or bad signature."""


@dataclass(frozen=True)
class OrderState:
    out_trade_no: str
    trade_state: str  # NOTPAY | SUCCESS | CLOSED | REFUND | PAYERROR | NOTEXIST
    total_fee: int
    transaction_id: str


@dataclass(frozen=True)
class BillLine:
    trade_time: str
    out_trade_no: str
    transaction_id: str
    type: str  # SUCCESS | REFUND
    amount: int
    out_refund_no: str


class ProviderClient:
    def __init__(
        self,
        base_url: str,
        *,
        app_id: str,
        mch_id: str,
        key: str,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.mch_id = mch_id
        self.key = key
        self.timeout = timeout
        self.transport = transport

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderClient:
        return cls(
            settings.provider_url,
            app_id=settings.provider_app_id,
            mch_id=settings.provider_mch_id,
            key=settings.provider_key.get_secret_value(),
            timeout=settings.provider_timeout_seconds,
        )

    def verify_callback(self, params: dict[str, Any]) -> bool:
        return params.get("mch_id") == self.mch_id and signing.verify(params, self.key)

    async def _call(self, path: str, params: dict[str, Any]) -> dict[str, str]:
        body = signing.signed(
            {"appid": self.app_id, "mch_id": self.mch_id, "nonce_str": secrets.token_hex(8)}
            | params,
            self.key,
        )
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as c:
                r = await c.post(f"{self.base_url}{path}", json=body)
        except httpx.HTTPError as err:
            raise ProviderUnavailable(f"{path}: {err!r}") from err
        if r.status_code != 200:
            raise ProviderUnavailable(f"{path}: HTTP {r.status_code} {r.text[:200]}")
        try:
            answer = r.json()
        except ValueError as err:
            raise ProviderUnavailable(f"{path}: answer is not JSON") from err
        if not isinstance(answer, dict) or not signing.verify(answer, self.key):
            raise ProviderUnavailable(f"{path}: answer signature does not verify")
        if answer.get("return_code") != "SUCCESS":
            raise ProviderUnavailable(f"{path}: {answer.get('return_msg', 'FAIL')}")
        return {str(k): str(v) for k, v in answer.items()}

    async def create_order(
        self, *, out_trade_no: str, total_fee: int, body: str, notify_url: str
    ) -> tuple[str, str]:
        """Place the order; returns (prepay_id, pay_url). Same out_trade_no: same order."""
        a = await self._call(
            "/pay/unifiedorder",
            {
                "out_trade_no": out_trade_no,
                "total_fee": total_fee,
                "body": body,
                "notify_url": notify_url,
                "trade_type": "NATIVE",
            },
        )
        if a.get("result_code") != "SUCCESS":
            raise ProviderError(a.get("err_code", "FAIL"))
        return a["prepay_id"], a["code_url"]

    async def query_order(self, out_trade_no: str) -> OrderState:
        a = await self._call("/pay/orderquery", {"out_trade_no": out_trade_no})
        if a.get("result_code") != "SUCCESS":
            if a.get("err_code") == "ORDERNOTEXIST":
                return OrderState(out_trade_no, "NOTEXIST", 0, "")
            raise ProviderError(a.get("err_code", "FAIL"))
        return OrderState(
            out_trade_no, a["trade_state"], int(a["total_fee"]), a.get("transaction_id", "")
        )

    async def close_order(self, out_trade_no: str) -> str:
        """Close an unpaid order; returns 'CLOSED', 'ORDERPAID' or 'NOTEXIST'."""
        a = await self._call("/pay/closeorder", {"out_trade_no": out_trade_no})
        if a.get("result_code") == "SUCCESS":
            return "CLOSED"
        code = a.get("err_code", "FAIL")
        if code == "ORDERNOTEXIST":
            return "NOTEXIST"
        if code == "ORDERPAID":
            return "ORDERPAID"
        raise ProviderError(code)

    async def refund(self, *, out_trade_no: str, out_refund_no: str, refund_fee: int) -> int:
        a = await self._call(
            "/pay/refund",
            {
                "out_trade_no": out_trade_no,
                "out_refund_no": out_refund_no,
                "refund_fee": refund_fee,
            },
        )
        if a.get("result_code") != "SUCCESS":
            raise ProviderError(a.get("err_code", "FAIL"))
        return int(a["refund_fee"])

    async def download_bill(self, day: date) -> list[BillLine]:
        """The provider's statement for one day (China time)."""
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as c:
                r = await c.get(
                    f"{self.base_url}/pay/downloadbill",
                    params={"mch_id": self.mch_id, "bill_date": day.strftime("%Y%m%d")},
                )
        except httpx.HTTPError as err:
            raise ProviderUnavailable(f"downloadbill: {err!r}") from err
        if r.status_code != 200:
            raise ProviderUnavailable(f"downloadbill: HTTP {r.status_code}")
        rows = [line for line in r.text.splitlines() if line and not line.startswith("#")]
        return [
            BillLine(
                row["trade_time"],
                row["out_trade_no"],
                row["transaction_id"],
                row["type"],
                int(row["amount_fen"]),
                row["out_refund_no"],
            )
            for row in csv.DictReader(io.StringIO("\n".join(rows)))
        ]
