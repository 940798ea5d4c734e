"""How the group commit gathers payments (payments/batching.py, decision 0403): the payments
that reach a free lane in one turn of the event loop share its call, a lone payment books at
once, and under load the next call waits a short window for more (or until ``gather`` wait)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from campuscard.payments import batching


class _Pool:
    """Records each call's client ids; a call ends when the test releases it."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Pool]:
        yield self

    async def fetchrow(self, sql: str, school_id: int, mode: str, *args: Any) -> tuple[Any, ...]:
        self.calls.append([args[3]])
        await self.release.wait()
        return (200, "{}", None, False)

    async def fetch(self, sql: str, school_id: int, members: list[dict[str, Any]]) -> list[Any]:
        self.calls.append([m["client_id"] for m in members])
        await self.release.wait()
        return [(200, "{}", None, False) for _ in members]


def _member(client_id: str) -> batching.Member:
    return batching.Member(
        (1, 1, "n", client_id, "h", "8800000001", "04A10001", None, None, 100, None)
    )


def _batcher(pool: _Pool, *, window: float, gather: int) -> batching.PaymentBatcher:
    return batching.PaymentBatcher(
        lambda: pool,  # type: ignore[arg-type, return-value]
        max_batch=32,
        lanes=1,
        window=window,
        gather=gather,
    )


async def _one_call_ended_with_one_waiting(
    pool: _Pool, batcher: batching.PaymentBatcher, channel: str = "other"
) -> asyncio.Future[batching.Booked]:
    """A call in flight ("a"), a payment waiting for it ("b"); the call ends. Returns b's answer
    to come."""
    pool.release.clear()
    first = asyncio.ensure_future(batcher.book(1, _member("a"), channel))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(batcher.book(1, _member("b"), channel))
    await asyncio.sleep(0.01)
    pool.release.set()
    await first
    return second


async def test_payments_that_arrive_together_share_the_first_call() -> None:
    # given an idle lane
    pool = _Pool()
    batcher = _batcher(pool, window=0.0, gather=1)

    # when three payments reach it in one turn of the loop
    answers = await asyncio.gather(*(batcher.book(1, _member(c)) for c in ("a", "b", "c")))

    # then they go in one call, the first with the others
    assert pool.calls == [["a", "b", "c"]]
    assert [a.status for a in answers] == [200, 200, 200]


async def test_a_lone_payment_never_waits_for_the_window() -> None:
    # given a long window and nothing else in the process
    pool = _Pool()
    batcher = _batcher(pool, window=30.0, gather=16)

    # when one payment comes, and later another
    first = await asyncio.wait_for(batcher.book(1, _member("a")), timeout=1)
    second = await asyncio.wait_for(batcher.book(1, _member("b")), timeout=1)

    # then each was booked at once, alone
    assert (first.status, second.status) == (200, 200)
    assert pool.calls == [["a"], ["b"]]


async def test_under_load_the_next_call_waits_the_window_for_more() -> None:
    # given a call that ended while one payment waited for it
    pool = _Pool()
    batcher = _batcher(pool, window=0.05, gather=16)
    second = await _one_call_ended_with_one_waiting(pool, batcher)
    loop = asyncio.get_running_loop()
    ended = loop.time()

    # when two more payments come during the window
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(batcher.book(1, _member(c))) for c in ("c", "d")]
    await asyncio.gather(second, *later)

    # then the waiting payment went with them, after the window
    assert pool.calls == [["a"], ["b", "c", "d"]]
    assert loop.time() - ended >= 0.04


async def test_a_full_gathering_does_not_wait_out_the_window() -> None:
    # given a call that ended while one payment waited, and a window far longer than the test
    pool = _Pool()
    batcher = _batcher(pool, window=30.0, gather=3)
    second = await _one_call_ended_with_one_waiting(pool, batcher)

    # when enough payments for a call wait
    later = [asyncio.ensure_future(batcher.book(1, _member(c))) for c in ("c", "d")]

    # then the call starts at once
    await asyncio.wait_for(asyncio.gather(second, *later), timeout=1)
    assert pool.calls == [["a"], ["b", "c", "d"]]


async def test_a_channel_gathers_no_more_than_its_admission_lets_in() -> None:
    # given a channel whose admission lets 3 of its payments into the process at once
    pool = _Pool()
    batcher = batching.PaymentBatcher(
        lambda: pool,  # type: ignore[arg-type, return-value]
        max_batch=32,
        lanes=1,
        window=30.0,
        gather=16,
        channel_gather={"tuition": 3},
    )
    second = await _one_call_ended_with_one_waiting(pool, batcher, "tuition")

    # when two more of its payments wait beside the one that waited for the call
    later = [asyncio.ensure_future(batcher.book(1, _member(c), "tuition")) for c in ("c", "d")]

    # then the next call does not wait out the window for payments that cannot come
    await asyncio.wait_for(asyncio.gather(second, *later), timeout=1)
    assert pool.calls == [["a"], ["b", "c", "d"]]


def test_settings_out_of_range_are_refused() -> None:
    pool = _Pool()
    for window, gather in ((-0.001, 1), (0.0, 0)):
        with pytest.raises(ValueError, match="at least"):
            _batcher(pool, window=window, gather=gather)
    with pytest.raises(ValueError, match="gather must be at least 1"):
        batching.PaymentBatcher(
            lambda: pool,  # type: ignore[arg-type, return-value]
            max_batch=32,
            lanes=1,
            channel_gather={"canteen": 0},
        )
