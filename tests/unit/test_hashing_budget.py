"""The hashing budget: a flood of password checks leaves most of the time free of hashing,
queues within a bound, and is then refused with nothing done (platform/auth.py)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from campuscard.platform.auth import HashingBudget
from campuscard.platform.errors import TooManyRequests

WORK_S = 0.05


def busy() -> float:
    """Stands for one hash: 50 ms in a pool thread; returns when it finished."""
    time.sleep(WORK_S)
    return time.monotonic()


async def test_a_quarter_share_leaves_three_quarters_of_the_time_free() -> None:
    budget = HashingBudget(share=0.25, max_waiting=10)
    with ThreadPoolExecutor(2) as pool:
        started = time.monotonic()
        ends = await asyncio.gather(*(budget.run(pool, busy) for _ in range(3)))
    # one at a time, each followed by a pause three times its length before the next
    ends = sorted(ends)
    assert ends[1] - ends[0] >= 4 * WORK_S * 0.95
    assert ends[2] - ends[1] >= 4 * WORK_S * 0.95
    assert ends[0] - started >= WORK_S * 0.95  # the first waits for nobody


async def test_a_lone_check_does_not_wait() -> None:
    budget = HashingBudget(share=0.25, max_waiting=10)
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        await budget.run(pool, busy)
    assert time.monotonic() - started < WORK_S + 0.5  # no pause before a first hash


async def test_a_full_queue_refuses_with_a_retry_time() -> None:
    budget = HashingBudget(share=0.5, max_waiting=2)
    with ThreadPoolExecutor(1) as pool:
        queued = [asyncio.create_task(budget.run(pool, busy)) for _ in range(2)]
        await asyncio.sleep(0.01)  # both are waiting or hashing
        with pytest.raises(TooManyRequests) as refused:
            budget.ensure_room()
        assert refused.value.code == "HASHING_BUSY"
        assert refused.value.details["retry_after"] >= 1
        await asyncio.gather(*queued)
    budget.ensure_room()  # room again once they are done
    assert budget.waiting == 0


async def test_a_failing_check_frees_its_place() -> None:
    budget = HashingBudget(share=1.0, max_waiting=1)

    def broken() -> None:
        raise ValueError("bad hash")

    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="bad hash"):
        await budget.run(pool, broken)
    assert budget.waiting == 0
    budget.ensure_room()
