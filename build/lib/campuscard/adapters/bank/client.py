"""The bank adapter: ISO 8583 requests over TCP with a MAC (iso.py), one connection each.

A request that gets no (verifiable) answer within the timeout raises ``BankTimeout``: the
caller does not know whether the bank acted and must reverse or inquire, never assume.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from campuscard.adapters.bank import iso
from campuscard.config import Settings


class BankTimeout(Exception):
    """No answer we can trust: the outcome at the bank is unknown."""


@dataclass(frozen=True)
class BankAnswer:
    code: str
    auth_code: str = ""
    token: str = ""
    amount: int = 0

    @property
    def approved(self) -> bool:
        return self.code == iso.APPROVED


def transmission_time(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%m%d%H%M%S")


class BankClient:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        mac_key: str,
        timeout: float = 5.0,
        acquirer_id: str = "CAMPUSCARD00001",
        terminal_id: str = "CCPLAT01",
    ) -> None:
        self.host = host
        self.port = port
        self.mac_key = mac_key
        self.timeout = timeout
        self.acquirer_id = acquirer_id
        self.terminal_id = terminal_id

    @classmethod
    def from_settings(cls, settings: Settings) -> BankClient:
        return cls(
            settings.bank_host,
            settings.bank_port,
            mac_key=settings.bank_mac_key.get_secret_value(),
            timeout=settings.bank_timeout_seconds,
            acquirer_id=settings.bank_acquirer_id,
            terminal_id=settings.bank_terminal_id,
        )

    async def _exchange(self, doc: dict[str, str]) -> dict[str, str]:
        doc = {"7": transmission_time(), "41": self.terminal_id, "42": self.acquirer_id} | doc
        deadline = time.monotonic() + self.timeout
        writer: asyncio.StreamWriter | None = None
        try:
            reader, w = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout
            )
            writer = w
            w.write(iso.pack(doc, self.mac_key))
            await w.drain()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BankTimeout(f"{doc['t']} {doc.get('37', '')}: no answer")
                raw = await asyncio.wait_for(iso.read_frame(reader), remaining)
                try:
                    answer = iso.unpack(raw, self.mac_key)
                except iso.MacError:
                    continue  # never act on an answer whose MAC does not verify
                if answer.get("11") == doc.get("11") and answer.get("37") == doc.get("37"):
                    return answer
        except (TimeoutError, asyncio.IncompleteReadError, OSError) as err:
            raise BankTimeout(f"{doc['t']} {doc.get('37', '')}: {err!r}") from err
        finally:
            if writer is not None:
                writer.close()

    async def verify_account(self, *, pan: str, holder_name: str, stan: str) -> BankAnswer:
        a = await self._exchange(
            {"t": "0100", "2": pan, "3": iso.PROC_VERIFY, "11": stan, "48": holder_name}
        )
        return BankAnswer(a.get("39", "96"), token=a.get("102", ""))

    async def transfer(
        self, *, direction: str, token: str, amount: int, rrn: str, stan: str
    ) -> BankAnswer:
        """'load' debits the bank account (圈存); 'payout' credits it."""
        load = direction == "load"
        a = await self._exchange(
            {
                "t": "0200",
                "3": iso.PROC_LOAD if load else iso.PROC_PAYOUT,
                "4": f"{amount:012d}",
                "11": stan,
                "37": rrn,
                "49": iso.CURRENCY_CNY,
                "102" if load else "103": token,
            }
        )
        return BankAnswer(a.get("39", "96"), auth_code=a.get("38", ""))

    async def reverse(
        self, *, direction: str, amount: int, rrn: str, stan: str, original_stan: str
    ) -> BankAnswer:
        original = f"0200{original_stan}{transmission_time()}{'0' * 22}"
        a = await self._exchange(
            {
                "t": "0400",
                "3": iso.PROC_LOAD if direction == "load" else iso.PROC_PAYOUT,
                "4": f"{amount:012d}",
                "11": stan,
                "37": rrn,
                "49": iso.CURRENCY_CNY,
                "90": original,
            }
        )
        return BankAnswer(a.get("39", "96"))

    async def inquire(self, *, rrn: str, stan: str) -> BankAnswer:
        a = await self._exchange({"t": "0600", "3": iso.PROC_INQUIRY, "11": stan, "37": rrn})
        return BankAnswer(
            a.get("39", "96"), auth_code=a.get("38", ""), amount=int(a.get("4", "0") or 0)
        )
