"""The demo campus's past month, booked through the real engine at past instants.

A fresh demo should look lived in: the phone's spending chart, the merchants' reports, the
settlement days and the monitoring rules all read what the engine booked. So the demo books a
month of meals at meal times, shop purchases, online top-ups when a purse runs low (the
children's from their parent), refunds and a reversal at the canteen, and a meal subsidy batch
approved by a second person — every booking through the same database functions a till or the
provider's notice uses, each at its own past instant (``campuscard.book_at``, read by
``cc_clock()``; docs/decisions/0250-demo-history-through-the-engine.md). The finished days are
then closed by the ordinary day close, so settlement has a month of statements and payouts.

Deterministic: the same campus gets the same history (a seeded generator).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from campuscard.config import Settings
from campuscard.db.tx import Tx
from campuscard.moneyflows import provider_orders, subsidies
from campuscard.moneyflows import topups as _topups
from campuscard.payments import batching
from campuscard.platform import auth, idempotency
from campuscard.platform.actors import SYSTEM
from campuscard.settlement import clearing

_ = _topups  # registers the 'topup' provider order purpose

HISTORY_DAYS = 30
ACTIVE_STUDENTS = 60  # the first students of the demo eat, shop and top up every day
LOW_CASH_FEN = 8_000  # a purse under 80 yuan at night is topped up
TOPUP_AMOUNTS_FEN = (20_000, 30_000, 20_000, 50_000)


@dataclass(frozen=True)
class Meal:
    name: str
    starts: time
    minutes: int  # how long the serving lasts
    weekday: float  # share of students who come on a weekday
    weekend: float
    fen: tuple[int, int]  # price range, in half-yuan steps


MEALS = (
    Meal("breakfast", time(7, 5), 80, 0.55, 0.25, (350, 900)),
    Meal("lunch", time(11, 30), 90, 0.93, 0.70, (1000, 1850)),
    Meal("dinner", time(17, 15), 100, 0.82, 0.62, (900, 1700)),
)
SHOP_HOURS = (time(12, 40), time(16, 20), time(19, 10), time(21, 5))
SHOP_SHARE = 0.22  # of students buy something at the supermarket on a day
WAVES = 4  # a meal's students come in this many waves, each booked in one engine call


@dataclass
class History:
    """What was booked (the demo prints it; the tests check it)."""

    days: int = 0
    payments: int = 0
    refused: int = 0
    topups: int = 0
    refunds: int = 0
    reversals: int = 0
    subsidy_batches: int = 0
    closed_days: list[date] = field(default_factory=list)


@dataclass(frozen=True)
class _Cardholder:
    person_id: int
    user_id: int
    number: str
    card_number: str
    card_uid: str


def opening_instant(today: date, zone: ZoneInfo, days: int = HISTORY_DAYS) -> datetime:
    """When the demo's opening balances are booked: the morning before its history starts."""
    return datetime.combine(today - timedelta(days=days + 1), time(9, 0), zone)


async def set_clock(conn: Tx, at: datetime | None) -> None:
    """Book the rest of this transaction at ``at`` (None: now again).

    A ``SET LOCAL`` with ``citus.propagate_set_commands = 'local'``: on Citus the setting is
    sent to every worker the transaction reaches, so a booking function delegated to the
    school's worker reads the same clock (``set_config`` stays on the coordinator). On one node
    the ``citus.`` setting is an inert placeholder. The value is an ISO instant (digits and
    ``-:+.T``), written as a literal since SET takes no parameters."""
    literal = (at.isoformat() if at else "").replace("'", "''")
    await conn.execute("SET LOCAL citus.propagate_set_commands = 'local'")
    # its own statement: Citus sends a propagated SET's whole query text to the workers
    await conn.execute(f"SET LOCAL campuscard.book_at = '{literal}'")


async def book_history(
    tx: Tx,
    school_id: int,
    *,
    days: int = HISTORY_DAYS,
    students: int = ACTIVE_STUDENTS,
    each_day: Callable[[date], Awaitable[None]] | None = None,
) -> History:
    """Book ``days`` finished days of campus life for the first ``students`` cardholders, then
    close those days. Call once, right after the campus was created (opening balances booked
    before the first day) and before anything else is booked today."""
    zone = ZoneInfo(await tx.fetchval("SELECT timezone FROM schools WHERE id = $1", school_id))
    today: date = await tx.fetchval("SELECT cc_business_date($1, now())", school_id)
    rng = random.Random(f"campuscard-demo-{school_id}")  # noqa: S311 - demo data, not secrets
    people = await _cardholders(tx, school_id, students)
    tills = await _tills(tx, school_id)
    parent = await tx.fetchval(
        "SELECT user_id FROM guardian_links WHERE school_id = $1 ORDER BY user_id LIMIT 1",
        school_id,
    )
    children = {
        r["person_id"]
        for r in await tx.fetch(
            "SELECT person_id FROM guardian_links WHERE user_id = $1", parent or 0
        )
    }
    history = History()
    first = today - timedelta(days=days)
    subsidy_day = first + timedelta(days=days // 3)
    try:
        for offset in range(days):
            day = first + timedelta(days=offset)
            if day == subsidy_day:
                await _subsidy_batch(tx, school_id, day, zone, history)
            await _meals(tx, rng, school_id, day, zone, people, tills, history)
            await _shop(tx, rng, school_id, day, zone, people, tills, history)
            if offset in (days // 4, days // 2, (3 * days) // 4):
                await _refund_one(tx, rng, school_id, day, zone, tills, history)
            if offset == days - 3:
                await _reverse_one(tx, school_id, day, zone, people[0], tills, history)
            await _top_up_low_purses(
                tx, rng, school_id, day, zone, people, children, parent, history
            )
            if each_day is not None:  # more of the day (monitoring's), before it is closed
                await each_day(day)
            history.days += 1
    finally:
        await set_clock(tx, None)
    await tx.execute(
        """UPDATE notifications SET read_at = created_at + interval '1 hour'
            WHERE school_id = $1 AND read_at IS NULL AND created_at < $2""",
        school_id,
        datetime.combine(today - timedelta(days=2), time(0, 0), zone),
    )
    for offset in range(days):
        day = first + timedelta(days=offset)
        await clearing.do_close_day.in_tx(tx, SYSTEM, school_id, day)
        history.closed_days.append(day)
    return history


async def _cardholders(tx: Tx, school_id: int, limit: int) -> list[_Cardholder]:
    rows = await tx.fetch(
        """SELECT p.id, u.id AS user_id, p.number, c.number AS card_number, c.uid
             FROM persons p
             JOIN users u ON u.person_id = p.id
             JOIN cards c ON c.person_id = p.id AND c.state = 'active'
            WHERE p.school_id = $1 AND p.kind = 'student'
            ORDER BY p.number LIMIT $2""",
        school_id,
        limit,
    )
    return [
        _Cardholder(r["id"], r["user_id"], r["number"], r["card_number"], r["uid"]) for r in rows
    ]


async def _tills(tx: Tx, school_id: int) -> dict[str, list[tuple[int, int]]]:
    """The POS terminals by channel: (terminal id, key version)."""
    tills: dict[str, list[tuple[int, int]]] = {}
    for r in await tx.fetch(
        """SELECT t.id, t.key_version, m.channel FROM terminals t
             JOIN merchants m ON m.id = t.merchant_id
            WHERE t.school_id = $1 AND t.kind = 'pos' AND t.status = 'active'
            ORDER BY t.id""",
        school_id,
    ):
        tills.setdefault(r["channel"], []).append((r["id"], r["key_version"]))
    return tills


def _member(till: tuple[int, int], client_id: str, who: _Cardholder, fen: int) -> dict[str, Any]:
    """One payment as the till would send it (a card, no PIN), in cc_pay_batch's shape."""
    payer = {"card_number": who.card_number, "card_uid": who.card_uid.upper()}
    return dict(
        zip(
            batching.MEMBER_FIELDS,
            (
                till[0],
                till[1],
                secrets.token_hex(12),
                client_id,
                idempotency.request_hash({"op": "pay", "amount": fen, **payer}),
                who.card_number,
                who.card_uid.upper(),
                None,
                None,
                fen,
                None,
            ),
            strict=True,
        )
    )


async def _book(
    tx: Tx, school_id: int, at: datetime, members: list[dict[str, Any]], history: History
) -> None:
    if not members:
        return
    await set_clock(tx, at)
    for row in await tx.fetch(batching.BATCH_SQL, school_id, members):
        if row["status"] == 200:
            history.payments += 1
        else:
            history.refused += 1


def _price(rng: random.Random, low: int, high: int) -> int:
    return rng.randrange(low // 50, high // 50 + 1) * 50


async def _meals(
    tx: Tx,
    rng: random.Random,
    school_id: int,
    day: date,
    zone: ZoneInfo,
    people: list[_Cardholder],
    tills: dict[str, list[tuple[int, int]]],
    history: History,
) -> None:
    windows = tills.get("canteen") or []
    if not windows:
        return
    weekend = day.weekday() >= 5
    for meal in MEALS:
        share = meal.weekend if weekend else meal.weekday
        eaters = [p for p in people if rng.random() < share]
        for wave in range(WAVES):
            minute = (meal.minutes * wave) // WAVES + rng.randrange(meal.minutes // WAVES)
            at = datetime.combine(day, meal.starts, zone) + timedelta(minutes=minute)
            members = [
                _member(
                    windows[i % len(windows)],
                    f"hist-{day:%Y%m%d}-{meal.name}-{p.number}",
                    p,
                    _price(rng, *meal.fen),
                )
                for i, p in enumerate(eaters[wave::WAVES])
            ]
            await _book(tx, school_id, at, members, history)


async def _shop(
    tx: Tx,
    rng: random.Random,
    school_id: int,
    day: date,
    zone: ZoneInfo,
    people: list[_Cardholder],
    tills: dict[str, list[tuple[int, int]]],
    history: History,
) -> None:
    checkouts = tills.get("supermarket") or []
    if not checkouts:
        return
    shoppers = [p for p in people if rng.random() < SHOP_SHARE]
    for slot, starts in enumerate(SHOP_HOURS):
        at = datetime.combine(day, starts, zone) + timedelta(minutes=rng.randrange(50))
        members = [
            _member(checkouts[0], f"hist-{day:%Y%m%d}-shop-{p.number}", p, _price(rng, 350, 3500))
            for p in shoppers[slot :: len(SHOP_HOURS)]
        ]
        await _book(tx, school_id, at, members, history)


async def _refund_one(
    tx: Tx,
    rng: random.Random,
    school_id: int,
    day: date,
    zone: ZoneInfo,
    tills: dict[str, list[tuple[int, int]]],
    history: History,
) -> None:
    """A lunch refunded at the canteen ten minutes later (a wrong dish): half of it."""
    row = await tx.fetchrow(
        """SELECT id, terminal_id, amount, created_at FROM payments
            WHERE school_id = $1 AND business_date = $2 AND channel = 'canteen'
              AND status = 'booked' AND refunded = 0 AND client_id LIKE '%-lunch-%'
            ORDER BY id LIMIT 1 OFFSET $3""",
        school_id,
        day,
        rng.randrange(10),
    )
    if row is None or not tills.get("canteen"):
        return
    await set_clock(tx, row["created_at"] + timedelta(minutes=10))
    answer = await tx.fetchval(
        "SELECT cc_refund($1, $2, $3, $4, 'canteen1', '菜品有误 wrong dish')",
        school_id,
        row["id"],
        (row["amount"] // 100) * 50 or row["amount"],
        row["terminal_id"],
    )
    if answer and int(answer["status"]) == 200:
        history.refunds += 1


async def _reverse_one(
    tx: Tx,
    school_id: int,
    day: date,
    zone: ZoneInfo,
    who: _Cardholder,
    tills: dict[str, list[tuple[int, int]]],
    history: History,
) -> None:
    """The supermarket's till rang up a bottle twice and reversed (冲正) it within a minute."""
    if not tills.get("supermarket"):
        return
    checkout = tills["supermarket"][0]
    at = datetime.combine(day, time(15, 42), zone)
    client_id = f"hist-{day:%Y%m%d}-twice-{who.number}"
    await _book(tx, school_id, at, [_member(checkout, client_id, who, 350)], history)
    await set_clock(tx, at + timedelta(seconds=40))
    answer = await tx.fetchval(
        "SELECT cc_reverse($1, $2, $3, $4, $5, NULL)",
        school_id,
        checkout[0],
        checkout[1],
        secrets.token_hex(12),
        client_id,
    )
    if answer and int(answer["status"]) == 200:
        history.reversals += 1


async def _top_up_low_purses(
    tx: Tx,
    rng: random.Random,
    school_id: int,
    day: date,
    zone: ZoneInfo,
    people: list[_Cardholder],
    children: set[int],
    parent: int | None,
    history: History,
) -> None:
    """In the evening, a purse under ``LOW_CASH_FEN`` is topped up online (a parent pays for
    their children), paid through the provider's notice as any top-up is."""
    low = {
        r["person_id"]
        for r in await tx.fetch(
            """SELECT person_id FROM accounts WHERE kind = 'purse' AND purse = 'cash'
                AND person_id = ANY($1::bigint[]) AND balance < $2""",
            [p.person_id for p in people],
            LOW_CASH_FEN,
        )
    }
    settings = Settings.model_construct()  # only the order's lifetime is read
    for p in people:
        if p.person_id not in low:
            continue
        at = datetime.combine(day, time(20, 30), zone) + timedelta(minutes=rng.randrange(80))
        await set_clock(tx, at)
        amount = TOPUP_AMOUNTS_FEN[rng.randrange(len(TOPUP_AMOUNTS_FEN))]
        order = await provider_orders.create_order(
            tx,
            settings,
            school_id=school_id,
            purpose="topup",
            amount=amount,
            person_id=p.person_id,
            payer_user_id=parent if p.person_id in children and parent else p.user_id,
            description="校园卡充值 card top-up",
        )
        await set_clock(tx, at + timedelta(seconds=25))
        await provider_orders.settle_paid(
            tx,
            order["id"],
            transaction_id=f"4200{day:%Y%m%d}{order['id']:08d}",
            total_fee=amount,
            via="notify",
        )
        history.topups += 1


async def _subsidy_batch(
    tx: Tx, school_id: int, day: date, zone: ZoneInfo, history: History
) -> None:
    """Last month's meal subsidy for the first class, made by 'settlement' in the morning and
    approved by 'settlement2' after lunch (a second person)."""
    maker = await tx.fetchval(
        "SELECT id FROM users WHERE school_id = $1 AND username = 'settlement'", school_id
    )
    checker = await tx.fetchval(
        "SELECT id FROM users WHERE school_id = $1 AND username = 'settlement2'", school_id
    )
    class_id = await tx.fetchval(
        "SELECT id FROM classes WHERE school_id = $1 ORDER BY id LIMIT 1", school_id
    )
    if maker is None or checker is None or class_id is None:
        return
    await set_clock(tx, datetime.combine(day, time(9, 20), zone))
    people = await tx.fetch(
        "SELECT id FROM persons WHERE school_id = $1 AND class_id = $2 ORDER BY id",
        school_id,
        class_id,
    )
    batch = await tx.fetchval(
        """INSERT INTO subsidy_batches(school_id, name, source, rule, expires_on, total, lines,
                                       created_by, created_at)
           VALUES ($1, $2, 'rule', $3, $4, $5, $6, $7, cc_clock()) RETURNING id""",
        school_id,
        f"{day.month}月伙食补助",
        {"class_ids": [class_id], "amount": "50.00"},
        day + timedelta(days=60),
        5000 * len(people),
        len(people),
        maker,
    )
    await tx.executemany(
        "INSERT INTO subsidy_lines(school_id, batch_id, person_id, amount) "
        "VALUES ($1, $2, $3, 5000)",
        [(school_id, batch, r["id"]) for r in people],
    )
    await set_clock(tx, datetime.combine(day, time(14, 5), zone))
    checker_actor = await auth.load_actor(tx, checker)
    await subsidies.do_approve_batch.in_tx(tx, checker_actor, school_id, batch)
    history.subsidy_batches += 1
