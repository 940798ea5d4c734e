"""A group commit holds the payments of one school (payments/batching.py): ``cc_pay_batch``
takes the school, so on Citus each call is delegated to the worker holding it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from campuscard.payments import batching


class _Conn:
    def __init__(self, calls: list[tuple[Any, ...]], gate: asyncio.Event) -> None:
        self.calls, self.gate = calls, gate

    async def fetchrow(self, sql: str, school_id: int, mode: str, *args: Any) -> tuple[Any, ...]:
        self.calls.append(("one", school_id, args[3]))
        await self.gate.wait()
        return (200, "{}", None, False)

    async def fetch(self, sql: str, school_id: int, members: list[dict[str, Any]]) -> list[Any]:
        assert sql == batching.BATCH_SQL
        self.calls.append(("batch", school_id, [m["client_id"] for m in members]))
        return [(200, "{}", None, False) for _ in members]


class _Pool:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.gate = asyncio.Event()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Conn]:
        yield _Conn(self.calls, self.gate)


def _args(client_id: str) -> batching.Member:
    return batching.Member(
        (1, 1, "n", client_id, "h", "8800000001", "04A10001", None, None, 100, None)
    )


async def test_waiting_payments_are_batched_by_school_in_arrival_order() -> None:
    # given one lane busy with a payment of school 1
    pool = _Pool()
    batcher = batching.PaymentBatcher(lambda: pool, max_batch=8, lanes=1)  # type: ignore[arg-type, return-value]
    first = asyncio.ensure_future(batcher.book(1, _args("a1")))
    await asyncio.sleep(0)

    # when payments of schools 2, 1 and 2 wait for it
    waiting = [
        asyncio.ensure_future(batcher.book(school, _args(cid)))
        for school, cid in ((2, "b1"), (1, "a2"), (2, "b2"))
    ]
    await asyncio.sleep(0)
    pool.gate.set()
    await asyncio.gather(first, *waiting)

    # then the next call books school 2's two payments together, then school 1's alone
    assert pool.calls == [("one", 1, "a1"), ("batch", 2, ["b1", "b2"]), ("one", 1, "a2")]
