"""Per-channel admission: a full channel refuses with CHANNEL_BUSY while others run."""

from __future__ import annotations

import asyncio

import pytest

from campuscard.api.admission import ChannelBusy, ChannelLimit, ChannelLimiter


async def test_concurrency_cap_queue_and_refusal_are_per_channel() -> None:
    # given tuition: 2 at once, 2 waiting, 0.2 s wait
    limiter = ChannelLimiter.from_config(
        {"tuition": {"concurrent": 2, "queue": 2, "wait_seconds": 0.2}}
    )
    release = asyncio.Event()
    peak = 0

    async def slow_tuition() -> str:
        nonlocal peak
        try:
            async with limiter.admit("tuition"):
                peak = max(peak, limiter.stats()["tuition"]["in_flight"])
                await release.wait()
                return "ok"
        except ChannelBusy as err:
            return f"busy:{err.details['retry_after']}"

    # when 10 tuition payments arrive and hold their slots
    tasks = [asyncio.create_task(slow_tuition()) for _ in range(10)]
    await asyncio.sleep(0.01)
    # then the canteen is admitted at once
    async with limiter.admit("canteen"):
        assert limiter.stats()["canteen"]["in_flight"] == 1
    await asyncio.sleep(0.3)  # the two queued ones time out
    release.set()
    results = await asyncio.gather(*tasks)
    assert results.count("ok") == 2
    assert results.count("busy:1") == 8
    assert peak == 2
    stats = limiter.stats()["tuition"]
    assert (stats["admitted"], stats["refused"], stats["in_flight"], stats["waiting"]) == (
        2,
        8,
        0,
        0,
    )


async def test_a_waiting_request_gets_the_freed_slot() -> None:
    limiter = ChannelLimiter({"canteen": ChannelLimit(concurrent=1, queue=5, wait_seconds=1.0)})
    order: list[int] = []

    async def pay(i: int) -> None:
        async with limiter.admit("canteen"):
            order.append(i)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(pay(i) for i in range(4)))
    assert sorted(order) == [0, 1, 2, 3]


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        ChannelLimiter.from_config({"bookshop": {"concurrent": 1}})
    with pytest.raises(ValueError, match="concurrent"):
        ChannelLimiter.from_config({"canteen": {"concurrent": 0}})
