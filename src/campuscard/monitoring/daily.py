"""The daily pass: once per school and business day, after the day ends, the rules that look at
days rather than at one payment (no canteen meal for N days while the card is used otherwise).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from campuscard.db.pool import PgPool
from campuscard.db.tx import Tx, transaction
from campuscard.monitoring import alerts, queries, rules
from campuscard.monitoring.rules import Config, Finding

LOOKBACK_DAYS = 14


@dataclass(frozen=True)
class DayUse:
    """One student's payments of one business day: canteen meals and other uses."""

    day: date
    meals: int
    other: int


def no_meal_findings(
    cfg: Config, uses: dict[int, list[DayUse]], *, today: date
) -> dict[int, Finding]:
    """``uses``: per student, their days with payments within the lookback (any order);
    ``today``: the last complete day."""
    since = today - timedelta(days=LOOKBACK_DAYS)
    out: dict[int, Finding] = {}
    for person_id, days in uses.items():
        meal_days = [d.day for d in days if d.meals]
        last_meal = max(meal_days) if meal_days else None
        start = last_meal or since
        other = sum(d.other for d in days if d.day > start)
        finding = rules.no_meal(
            cfg, today=today, last_meal=last_meal, other_uses=other, since=since
        )
        if finding is not None:
            out[person_id] = finding
    return out


async def run_due(pool: PgPool) -> int:
    """Every watching school whose last complete day has not been passed over yet."""
    raised = 0
    for school_id in await queries.schools_watching(pool):
        raised += await run_school(pool, school_id)
    return raised


async def run_school(pool: PgPool, school_id: int, *, today: date | None = None) -> int:
    async with transaction(pool) as tx:
        day = today or (await tx.fetchval("SELECT cc_business_date($1)", school_id)) - timedelta(
            days=1
        )
        return await run_day(tx, school_id, day)


async def run_day(tx: Tx, school_id: int, day: date) -> int:
    """The daily pass over ``day`` in the caller's transaction, once per school and day."""
    if not await _claim(tx, school_id, day):
        return 0
    cfg = await queries.config(tx, school_id)
    if not cfg.on("no_meal"):
        return 0
    return await _no_meal(tx, cfg, school_id, day)


async def _claim(tx: Tx, school_id: int, day: date) -> bool:
    """Record that ``day`` is being passed over; False if it (or a later day) already was."""
    ordinal = day.toordinal()
    done = await tx.fetchval(
        """INSERT INTO monitoring_cursors(school_id, source, last_id) VALUES ($1, 'daily', $2)
           ON CONFLICT (school_id, source) DO UPDATE SET last_id = $2
                 WHERE monitoring_cursors.last_id < $2
           RETURNING true""",
        school_id,
        ordinal,
    )
    return bool(done)


async def _no_meal(tx: Tx, cfg: Config, school_id: int, day: date) -> int:
    rows = await tx.fetch(
        """SELECT p.person_id, p.business_date,
                  count(*) FILTER (WHERE p.channel = 'canteen') AS meals,
                  count(*) FILTER (WHERE p.channel <> 'canteen') AS other
             FROM payments p JOIN persons s ON s.school_id = p.school_id AND s.id = p.person_id
            WHERE p.school_id = $1 AND p.business_date > $2 AND p.business_date <= $3
              AND p.status = 'booked' AND s.kind = 'student' AND s.status = 'enrolled'
            GROUP BY 1, 2""",
        school_id,
        day - timedelta(days=LOOKBACK_DAYS),
        day,
    )
    uses: dict[int, list[DayUse]] = defaultdict(list)
    for r in rows:
        uses[r["person_id"]].append(DayUse(r["business_date"], r["meals"], r["other"]))
    raised = 0
    for person_id, finding in no_meal_findings(cfg, uses, today=day).items():
        r = await alerts.raise_alert(
            tx,
            cfg,
            school_id=school_id,
            person_id=person_id,
            finding=finding,
            source=f"daily:{day.isoformat()}",
        )
        raised += r.alert_id is not None
    return raised
