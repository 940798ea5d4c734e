"""Separate channels (seed 001): tuition, canteen, supermarket and other payments each have
their own admission limit, so a flood in one (registration-day tuition) cannot take the
database connections and the CPU another (the lunch queue) needs.

Per channel and process: at most ``concurrent`` bookings run at once; up to ``queue`` more wait
for a slot, each at most ``wait_seconds``; beyond that a request is refused at once with 429
``CHANNEL_BUSY`` and ``Retry-After`` (the terminal retries with the same client id, so nothing
is booked twice). Limits are configured with CAMPUSCARD_CHANNEL_LIMITS (docs/channels.md).
The sum of the channels' ``concurrent`` should stay below the database pool size, so that a
full channel still leaves connections for the others.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from campuscard.db.pool import PgPool
from campuscard.payments import queries as payments_queries
from campuscard.platform.errors import DomainError

CHANNELS = ("tuition", "canteen", "supermarket", "other")


@dataclass(frozen=True)
class ChannelLimit:
    concurrent: int
    queue: int
    wait_seconds: float

    def __post_init__(self) -> None:
        if self.concurrent < 1 or self.queue < 0 or not 0 < self.wait_seconds <= 60:
            raise ValueError("a channel limit needs concurrent >= 1, queue >= 0, 0 < wait <= 60 s")


DEFAULT_LIMITS: dict[str, ChannelLimit] = {
    "tuition": ChannelLimit(concurrent=3, queue=30, wait_seconds=2.0),
    "canteen": ChannelLimit(concurrent=8, queue=200, wait_seconds=2.0),
    "supermarket": ChannelLimit(concurrent=4, queue=60, wait_seconds=2.0),
    "other": ChannelLimit(concurrent=3, queue=60, wait_seconds=2.0),
}


class ChannelBusy(DomainError):
    status = 429  # not 5xx: the API answers a refusal, never a server fault
    code = "CHANNEL_BUSY"


@dataclass
class _State:
    limit: ChannelLimit
    in_flight: int = 0
    waiting: int = 0
    admitted: int = 0
    refused: int = 0
    sem: asyncio.Semaphore | None = None


@dataclass
class ChannelLimiter:
    limits: Mapping[str, ChannelLimit]
    _states: dict[str, _State] = field(default_factory=dict)
    _channels: dict[int, tuple[str, float]] = field(default_factory=dict)
    channel_cache_seconds: float = 60.0

    def __post_init__(self) -> None:
        for ch in CHANNELS:
            self._states[ch] = _State(self.limits.get(ch, DEFAULT_LIMITS[ch]))

    @classmethod
    def from_config(cls, config: Mapping[str, Mapping[str, Any]] | None) -> ChannelLimiter:
        """``{"tuition": {"concurrent": 3, "queue": 30, "wait_seconds": 2}, ...}``; channels
        or fields left out keep their defaults."""
        limits = dict(DEFAULT_LIMITS)
        for ch, values in (config or {}).items():
            if ch not in CHANNELS:
                raise ValueError(f"unknown channel {ch!r} in the channel limits")
            base = DEFAULT_LIMITS[ch]
            limits[ch] = ChannelLimit(
                concurrent=int(values.get("concurrent", base.concurrent)),
                queue=int(values.get("queue", base.queue)),
                wait_seconds=float(values.get("wait_seconds", base.wait_seconds)),
            )
        return cls(limits)

    @asynccontextmanager
    async def admit(self, channel: str) -> AsyncIterator[None]:
        """Hold one slot of ``channel`` for the block, or refuse with ``ChannelBusy``."""
        state = self._states.get(channel) or self._states["other"]
        if state.sem is None:
            state.sem = asyncio.Semaphore(state.limit.concurrent)
        sem = state.sem
        if sem.locked() and state.waiting >= state.limit.queue:
            state.refused += 1
            raise self._busy(channel, "is full")
        state.waiting += 1
        try:
            await asyncio.wait_for(sem.acquire(), timeout=state.limit.wait_seconds)
        except TimeoutError:
            state.refused += 1
            raise self._busy(channel, "had no free slot in time") from None
        finally:
            state.waiting -= 1
        state.in_flight += 1
        state.admitted += 1
        try:
            yield
        finally:
            state.in_flight -= 1
            sem.release()

    def _busy(self, channel: str, why: str) -> ChannelBusy:
        retry = max(1, math.ceil(self._states[channel].limit.wait_seconds / 2))
        return ChannelBusy(
            f"the {channel} payment channel {why}; retry with the same client_id",
            field="channel",
            details={"channel": channel, "retry_after": retry},
        )

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            ch: {
                "concurrent": s.limit.concurrent,
                "queue": s.limit.queue,
                "in_flight": s.in_flight,
                "waiting": s.waiting,
                "admitted": s.admitted,
                "refused": s.refused,
            }
            for ch, s in self._states.items()
        }

    async def channel_of(self, pool: PgPool, merchant_id: int | None) -> str:
        """The channel of a merchant, cached for a minute (it changes rarely)."""
        if merchant_id is None:
            return "other"
        hit = self._channels.get(merchant_id)
        now = time.monotonic()
        if hit is not None and now - hit[1] < self.channel_cache_seconds:
            return hit[0]
        channel = await payments_queries.merchant_channel(pool, merchant_id) or "other"
        self._channels[merchant_id] = (channel, now)
        return channel


async def get_limiter(request: Request) -> ChannelLimiter:
    limiter: ChannelLimiter = request.app.state.channel_limiter
    return limiter


Limiter = Annotated[ChannelLimiter, Depends(get_limiter)]
