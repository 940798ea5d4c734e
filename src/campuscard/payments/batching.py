"""Group commit of payments: the bookings that arrive together in one process are booked in
one database call and one commit (``cc_pay_batch``), docs/decisions/0170-group-commit.md;
card payments and payment codes alike (decision 0310).

A commit per payment costs a round trip, a transaction and a WAL flush each; at a busy
canteen most of what PostgreSQL does per payment is that overhead, not the booking. So a
process keeps at most ``lanes`` booking calls in flight. A payment that finds a lane free and
nobody waiting books alone at once, exactly as before (a lone payment at low load never
waits for a window); one that arrives while every lane is busy waits, and when a lane comes
free everyone waiting (up to ``max_batch``) goes in the next call. The busier the process,
the larger the batches; there is no timer.

Lanes and queues are kept per channel (tuition, canteen, supermarket, other): a tuition
booking that hangs on a locked purse holds only the tuition lanes, and a canteen payment never
waits behind it or shares a batch with it (seed 001, docs/channels.md).

Inside the call the batch's locks are taken up front in one global order (client ids, purses
by id, merchant shards by id) and the members book one after the other, so each member's
answer, idempotency record, nonce, receipt and live event are those a single booking gives;
a member refused for its own reason is refused alone. If the database refuses the call as a
whole (a deadlock with some other work, a constraint), nothing of it was committed and every
member is booked again on its own. A lost connection is reported to every member, as it
would be to a single payment (the till resends; its client id makes that safe).

A batch holds the payments of one school (the first waiting payment's; the others wait for
the next call): ``cc_pay_batch`` takes the school, so on Citus the call is delegated to the
worker that holds it (docs/scale-out.md). A single-school node batches exactly as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from campuscard.db.pool import Conn, PgPool
from campuscard.platform import metrics

# An answer of the payment engine, in parts: the body stays JSON text (sent on as it is).
PARTS = "(r ->> 'status')::int, (r -> 'body')::text, r -> 'event', (r ->> 'replayed')::bool"
# cc_pay(school, mode, terminal, …): the school first, as every delegated booking function takes it
PAY_ARGS = 13
PAY_SQL = f"SELECT {PARTS} FROM cc_pay({', '.join(f'${i}' for i in range(1, PAY_ARGS + 1))}) AS r"
BATCH_SQL = "SELECT status, body, event, replayed FROM cc_pay_batch($1, $2)"

# cc_pay's book arguments after the mode, in order, and their names in a batch member
MEMBER_FIELDS = (
    "terminal",
    "key_version",
    "nonce",
    "client_id",
    "request_hash",
    "card_number",
    "card_uid",
    "person",
    "credential",
    "amount",
    "pin_token",
)
BookArgs = tuple[Any, ...]

# A code payment: cc_pay_code's arguments after the school (db/cc_pay_code.sql), in order, and
# their names in a batch member. Its answer in parts keeps the rest of the answer (events, a
# refusal of the code, the phone's confirmation) where a card's has its live event.
CODE_FIELDS = (
    "terminal",
    "key_version",
    "nonce",
    "client_id",
    "code",
    "amount",
    "pin_token",
    "scheme",
    "token",
    "device",
    "step",
    "counter",
    "minted_hash",
    "verdict",
    "now",
    "confirm_until",
)
CODE_SQL = (
    "SELECT (r ->> 'status')::int, (r -> 'body')::text, r - 'body', "
    "coalesce((r ->> 'replayed')::bool, false) "
    f"FROM cc_pay_code({', '.join(f'${i}' for i in range(1, len(CODE_FIELDS) + 2))}) AS r"
)


def fail_waiters(futures: list[asyncio.Future[Any]], err: BaseException) -> None:
    """Hand a gathered call's failure to everyone still waiting on it: cancelled if the call
    was, else the error (a group commit's batch, a batch of binding reads)."""
    for future in futures:
        if future.done():
            continue
        if isinstance(err, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(err)


@dataclass(frozen=True)
class Member:
    """One payment to book: a card's (or a verified payer's: ``args`` are cc_pay's book
    arguments after the mode) or a payment code's (``kind`` "code": cc_pay_code's arguments
    after the school; ``person`` its payer when known before the call, so that a batch locks
    the purse up front)."""

    args: BookArgs
    kind: str = "card"
    person: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The member as cc_pay_batch reads it."""
        if self.kind == "code":
            fields = dict(zip(CODE_FIELDS, self.args, strict=True))
            return fields | {"kind": "code", "person": self.person}
        return dict(zip(MEMBER_FIELDS, self.args, strict=True))


@dataclass(frozen=True)
class Booked:
    """What the engine answered one payment: status, body (JSON text; none for a refusal of
    a payment code itself), event (for a code: the rest of its answer), replayed."""

    status: int
    body: str | None
    event: dict[str, Any] | None
    replayed: bool


def _booked(row: Any) -> Booked:
    return Booked(int(row[0]), row[1], row[2], bool(row[3]))


async def book_one(conn: Conn, school_id: int, member: Member) -> Booked:
    """One payment, one call at a terminal of ``school_id``: ``cc_pay`` in book mode, or
    ``cc_pay_code``."""
    if member.kind == "code":
        return _booked(await conn.fetchrow(CODE_SQL, school_id, *member.args))
    return _booked(await conn.fetchrow(PAY_SQL, school_id, "book", *member.args))


def _whole_batch_refused(err: BaseException) -> bool:
    """The database answered the call with an error: it rolled back, nothing was committed.
    (A connection that broke may have committed: that is not retried here.)"""
    return isinstance(err, asyncpg.PostgresError) and not isinstance(
        err, asyncpg.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError
    )


# a payment waiting for a lane: its school, what it books, and its answer to come
_Waiting = tuple[int, Member, asyncio.Future[Booked]]


@dataclass
class _Channel:
    """One channel's lanes in flight and the payments waiting for one."""

    busy: int = 0
    waiting: list[_Waiting] = field(default_factory=list)

    def next_batch(self, max_batch: int) -> list[_Waiting]:
        """Up to ``max_batch`` waiting payments of the first one's school, in arrival order."""
        school_id = self.waiting[0][0]
        batch = [w for w in self.waiting if w[0] == school_id][:max_batch]
        taken = {id(w) for w in batch}
        self.waiting = [w for w in self.waiting if id(w) not in taken]
        return batch


class PaymentBatcher:
    """One per process (``api.deps.payment_batcher``); see the module's docstring."""

    def __init__(self, pool: Callable[[], PgPool], *, max_batch: int, lanes: int) -> None:
        if max_batch < 1 or lanes < 1:
            raise ValueError("max_batch and lanes must be at least 1")
        self._pool = pool
        self._max_batch = max_batch
        self._lanes = lanes
        self._channels: dict[str, _Channel] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def book(self, school_id: int, member: Member, channel: str = "other") -> Booked:
        """Book one payment at a terminal of ``school_id`` in the lanes of its merchant's
        ``channel``."""
        lanes = self._channels.setdefault(channel, _Channel())
        if lanes.busy < self._lanes and not lanes.waiting:
            lanes.busy += 1
            try:
                metrics.PAYMENT_BATCH_SIZE.observe(1)
                async with self._pool().acquire() as conn:
                    return await book_one(conn, school_id, member)
            finally:
                lanes.busy -= 1
                self._start_waiting(lanes)
        future: asyncio.Future[Booked] = asyncio.get_running_loop().create_future()
        lanes.waiting.append((school_id, member, future))
        return await future

    def _start_waiting(self, lanes: _Channel) -> None:
        while lanes.waiting and lanes.busy < self._lanes:
            batch = lanes.next_batch(self._max_batch)
            lanes.busy += 1
            task = asyncio.get_running_loop().create_task(self._run(lanes, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, lanes: _Channel, batch: list[_Waiting]) -> None:
        try:
            metrics.PAYMENT_BATCH_SIZE.observe(len(batch))
            async with self._pool().acquire() as conn:
                try:
                    school_id = batch[0][0]
                    if len(batch) == 1:
                        results = [await book_one(conn, school_id, batch[0][1])]
                    else:
                        members = [m.as_json() for _, m, _ in batch]
                        rows = await conn.fetch(BATCH_SQL, school_id, members)
                        results = [_booked(r) for r in rows]
                except Exception as err:
                    if len(batch) == 1 or not _whole_batch_refused(err):
                        raise
                    metrics.PAYMENT_BATCH_FALLBACKS.inc()
                    await self._one_by_one(conn, batch)
                    return
            for (_, _, future), booked in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(booked)
        except BaseException as err:
            fail_waiters([future for _, _, future in batch], err)
            if not isinstance(err, Exception):
                raise
        finally:
            lanes.busy -= 1
            self._start_waiting(lanes)

    @staticmethod
    async def _one_by_one(conn: Conn, batch: list[_Waiting]) -> None:
        for school_id, member, future in batch:
            try:
                booked = await book_one(conn, school_id, member)
            except Exception as err:
                if not future.done():
                    future.set_exception(err)
            else:
                if not future.done():
                    future.set_result(booked)
