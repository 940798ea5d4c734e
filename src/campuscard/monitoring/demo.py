"""The demo campus watched over: the school's rules switched on before its past month is booked,
students whose month shows what the rules are for (a purchase four times the student's usual —
50 yuan, as more asks for the PIN — one in the small hours, a spree of small payments, a card
used on the west campus a minute after lunch, days without a canteen meal, cheap meals twice a
day every day, and two who eat as little by choice and said so), and each booked day read by
the rules at the instants its payments were made, as the worker reads them (``cc_clock()``),
then the daily pass. At the end a counsellor has classes, and last month's hidden-hardship
candidates are found by the school's method.

Everything goes through the engine and the monitoring functions the worker runs; nothing here
writes an alert or a candidate itself.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from campuscard.db.tx import Tx
from campuscard.demo_history import set_clock
from campuscard.monitoring import daily, events, hardship, queries
from campuscard.monitoring.rules import ALERT_RULES
from campuscard.monitoring.threshold_rules import check as check_thresholds
from campuscard.payments import batching
from campuscard.platform import auth, idempotency
from campuscard.platform.actors import Actor

COUNSELLOR = "counsellor"
# the school's choices: every alert rule on with the defaults, but a large payment counted from
# 4.5 robust deviations (a card pays at most 50 yuan without its PIN, so large is not large by
# much), and the scored model for quiet help
SETTINGS: dict[str, dict[str, Any]] = {rule: {} for rule in ALERT_RULES} | {
    "big_spend": {"z": 4.5},
    "delivery": {},
    "hardship": {"preset": "score"},
}
# where the outlets stand on the campus grid (metres): the canteen in the middle, the
# supermarket on the west campus
PLACES = {"canteen": (0, 0), "supermarket": (-1500, 200)}
HARDSHIP_STUDENTS = 4  # cheap meals twice a day, every day
DIETING_STUDENTS = 2  # the same, by choice, declared


@dataclass
class Watched:
    """What the demo's monitoring found (the demo prints it; the tests check it)."""

    booked: int = 0  # the injected payments the tills took (besides the history's)
    evaluated: int = 0
    alerts: int = 0
    candidates: int = 0
    per_student_week: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Card:
    person_id: int
    number: str
    card_number: str
    card_uid: str


async def switch_on(tx: Tx, school_id: int, password: str, class_ids: list[int]) -> None:
    """The school's rules and places, and a counsellor of the first two classes."""
    for rule, values in SETTINGS.items():
        await tx.execute(
            """INSERT INTO monitoring_rules(school_id, rule, enabled, thresholds, updated_by)
               VALUES ($1, $2, true, $3, 'demo') ON CONFLICT DO NOTHING""",
            school_id,
            rule,
            check_thresholds(rule, values),
        )
    await tx.execute(
        """INSERT INTO monitoring_places(school_id, outlet_id, x_m, y_m)
           SELECT o.school_id, o.id,
                  CASE m.channel WHEN 'canteen' THEN $2 WHEN 'supermarket' THEN $4 ELSE 0 END
                      + row_number() OVER (PARTITION BY m.id ORDER BY o.id) * 20,
                  CASE m.channel WHEN 'canteen' THEN $3 WHEN 'supermarket' THEN $5 ELSE 0 END
             FROM outlets o JOIN merchants m ON m.school_id = o.school_id AND m.id = o.merchant_id
            WHERE o.school_id = $1 ON CONFLICT DO NOTHING""",
        school_id,
        *PLACES["canteen"],
        *PLACES["supermarket"],
    )
    user_id = await auth.create_user(
        tx,
        username=COUNSELLOR,
        password=password,
        school_id=school_id,
        roles=[("counsellor", school_id, None)],
        display_name="辅导员 counsellor",
    )
    await tx.executemany(
        "INSERT INTO monitoring_counsellor_classes(school_id, user_id, class_id) "
        "VALUES ($1, $2, $3)",
        [(school_id, user_id, c) for c in class_ids[:2]],
    )


class Month:
    """The demo's watched month: the injected students and the day-by-day reading."""

    def __init__(self, tx: Tx, school_id: int, active: int, days: int) -> None:
        self.tx, self.school_id, self.active, self.days = tx, school_id, active, days
        self.watched = Watched()
        self.cards: list[_Card] = []
        self.tills: dict[str, list[tuple[int, int]]] = {}
        self.zone = ZoneInfo("Asia/Shanghai")
        self.day_no = 0
        self.last_id = 0

    async def start(self) -> None:
        tx = self.tx
        self.zone = ZoneInfo(
            await tx.fetchval("SELECT timezone FROM schools WHERE id = $1", self.school_id)
        )
        rows = await tx.fetch(
            """SELECT p.id, p.number, c.number AS card_number, c.uid,
                      (SELECT balance FROM accounts a WHERE a.school_id = $1
                          AND a.person_id = p.id AND a.purse = 'cash') AS cash
                 FROM persons p
                 JOIN cards c
                   ON c.school_id = p.school_id AND c.person_id = p.id AND c.state = 'active'
                WHERE p.school_id = $1 AND p.kind = 'student' ORDER BY p.number""",
            self.school_id,
        )
        cards = [_Card(r["id"], r["number"], r["card_number"], r["uid"].upper()) for r in rows]
        cash = {r["id"]: r["cash"] for r in rows}
        self.everyone = cards[: self.active]
        rest = sorted(cards[self.active :], key=lambda c: -cash[c.person_id])
        # the richest of the rest can afford a month of cheap meals with no top-up
        self.hardship = rest[:HARDSHIP_STUDENTS]
        self.dieting = rest[HARDSHIP_STUDENTS : HARDSHIP_STUDENTS + DIETING_STUDENTS]
        self.no_meal = rest[HARDSHIP_STUDENTS + DIETING_STUDENTS]
        for c in self.dieting:  # each says so on their own phone
            me = Actor(c.number, person_id=c.person_id, school_id=self.school_id)
            await hardship.do_exclude.in_tx(tx, me, self.school_id, c.person_id, "diet")
        for r in await tx.fetch(
            """SELECT t.id, t.key_version, m.channel FROM terminals t
                 JOIN merchants m ON m.school_id = t.school_id AND m.id = t.merchant_id
                WHERE t.school_id = $1 AND t.kind = 'pos' AND t.status = 'active'
                ORDER BY t.id""",
            self.school_id,
        ):
            self.tills.setdefault(r["channel"], []).append((r["id"], r["key_version"]))
        self.last_id = int(
            await tx.fetchval(
                "SELECT coalesce(max(id), 0) FROM payments WHERE school_id = $1", self.school_id
            )
        )

    # ---- each booked day, before it is closed --------------------------------------------
    async def day(self, day: date) -> None:
        """Called by the history after it booked ``day`` and before the day is closed."""
        self.day_no += 1
        await self._inject(day)
        await self._read(day)

    def _at(self, day: date, hh: int, mm: int, ss: int = 0) -> datetime:
        return datetime.combine(day, time(hh, mm, ss), self.zone)

    async def _pay(self, at: datetime, channel: str, who: _Card, fen: int, tag: str) -> None:
        tills = self.tills.get(channel) or []
        if not tills:
            return
        till = tills[hash(who.number) % len(tills)]
        payer = {"card_number": who.card_number, "card_uid": who.card_uid}
        member = dict(
            zip(
                batching.MEMBER_FIELDS,
                (
                    till[0],
                    till[1],
                    secrets.token_hex(12),
                    f"watch-{at:%Y%m%d%H%M%S}-{tag}-{who.number}",
                    idempotency.request_hash({"op": "pay", "amount": fen, **payer}),
                    who.card_number,
                    who.card_uid,
                    None,
                    None,
                    fen,
                    None,
                ),
                strict=True,
            )
        )
        await set_clock(self.tx, at)
        for row in await self.tx.fetch(batching.BATCH_SQL, self.school_id, [member]):
            self.watched.booked += row["status"] == 200

    async def _inject(self, day: date) -> None:
        """The month's injected truth, through the tills like any payment."""
        n = self.day_no

        def on(share: float) -> bool:
            return n == max(1, round(share * self.days))

        for i, c in enumerate(self.hardship + self.dieting):
            await self._pay(self._at(day, 11, 50 + i), "canteen", c, 500, "lunch")
            await self._pay(self._at(day, 17, 40 + i), "canteen", c, 400 + 50 * (i % 2), "dinner")
        if self.days * 0.3 <= n <= self.days * 0.5:  # shops twice a day, never eats in a canteen
            await self._pay(self._at(day, 12, 50), "supermarket", self.no_meal, 1550, "noon")
            await self._pay(self._at(day, 19, 20), "supermarket", self.no_meal, 890, "evening")
        people = self.everyone
        if not people:
            return
        if on(0.8):  # four times the usual (50 yuan: a card pays no more without its PIN)
            await self._pay(
                self._at(day, 15, 10), "supermarket", people[3 % len(people)], 5000, "big"
            )
        if on(0.27):  # in the small hours
            await self._pay(
                self._at(day, 1, 10), "supermarket", people[7 % len(people)], 1200, "night"
            )
        if on(0.4):  # a spree of small payments
            who = people[11 % len(people)]
            for k in range(6):
                await self._pay(
                    self._at(day, 15, 30 + k // 2, 30 * (k % 2)),
                    "supermarket",
                    who,
                    300,
                    f"spree{k}",
                )
        if on(0.57):  # the west campus a minute after lunch
            who = people[15 % len(people)]
            await self._pay(self._at(day, 12, 5), "canteen", who, 1250, "pair1")
            await self._pay(self._at(day, 12, 6), "supermarket", who, 600, "pair2")
        if on(0.95):
            await self._pay(
                self._at(day, 16, 45), "supermarket", people[19 % len(people)], 4800, "big2"
            )

    async def _read(self, day: date) -> None:
        """The day's payments through the payment rules at the instants they were made, then
        the daily pass in the night after it, as the worker would have."""
        tx = self.tx
        cfg = await queries.config(tx, self.school_id)
        rows = await tx.fetch(
            """SELECT p.id, p.person_id, p.amount, p.channel, p.created_at, p.status,
                      o.name AS outlet, m.x_m, m.y_m
                 FROM payments p
                 LEFT JOIN outlets o ON o.school_id = p.school_id AND o.id = p.outlet_id
                 LEFT JOIN monitoring_places m
                        ON m.school_id = p.school_id AND m.outlet_id = p.outlet_id
                WHERE p.school_id = $1 AND p.id > $2 ORDER BY p.created_at, p.id""",
            self.school_id,
            self.last_id,
        )
        for row in rows:
            self.last_id = max(self.last_id, row["id"])
            if row["status"] != "booked":
                continue
            at = row["created_at"] + timedelta(seconds=2)
            await set_clock(tx, at)
            self.watched.alerts += await events.evaluate_payment(
                tx, cfg, self.zone, self.school_id, row
            )
            self.watched.evaluated += 1
        night = self._at(day + timedelta(days=1), 1, 0)
        if night < datetime.now(self.zone):
            await set_clock(tx, night)
            self.watched.alerts += await daily.run_day(tx, self.school_id, day)
        await set_clock(tx, None)

    # ---- after the month ----------------------------------------------------------------
    async def finish(self, reviewer: Actor) -> Watched:
        """The worker carries on from here; last month's candidates are found; the alerts
        each student received per week are measured."""
        tx = self.tx
        await tx.execute(
            """INSERT INTO monitoring_cursors(school_id, source, last_id) VALUES ($1, 'payment', $2)
               ON CONFLICT (school_id, source) DO UPDATE SET last_id = $2""",
            self.school_id,
            self.last_id,
        )
        today: date = await tx.fetchval("SELECT cc_business_date($1)", self.school_id)
        month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
        found = await hardship.do_find_candidates.in_tx(tx, reviewer, self.school_id, month)
        self.watched.candidates = len(found)
        weeks = max(self.days, 1) / 7
        rows = await tx.fetch(
            """SELECT p.id, count(a.id) FILTER (WHERE a.delivery IN ('sent', 'quiet')) AS n
                 FROM persons p LEFT JOIN monitoring_alerts a
                        ON a.school_id = p.school_id AND a.person_id = p.id
                WHERE p.school_id = $1 AND p.kind = 'student' GROUP BY p.id""",
            self.school_id,
        )
        self.watched.per_student_week = sorted(r["n"] / weeks for r in rows)
        return self.watched
