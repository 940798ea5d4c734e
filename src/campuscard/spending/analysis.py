"""The cardholder's months: income against spending by category, this month against the
earlier ones, and the pace of this month (read by the phone page and the reminder job)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, owns_transaction
from campuscard.people import queries as people_queries
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound
from campuscard.spending import rules

MONTHS = 6

_MOVEMENTS = """
    SELECT date_trunc('month', j.business_date)::date AS month, j.kind, a.purse,
           (SELECT m.channel FROM postings q
              JOIN accounts b ON b.school_id = q.school_id AND b.id = q.account_id
              JOIN merchants m ON m.school_id = b.school_id AND m.id = b.merchant_id
             WHERE q.school_id = $1 AND q.tx_id = p.tx_id AND b.kind = 'merchant'
             LIMIT 1) AS channel,
           sign(p.amount)::int AS sign, sum(p.amount)::bigint AS fen
      FROM accounts a JOIN postings p ON p.school_id = a.school_id AND p.account_id = a.id
      JOIN journal_tx j ON j.school_id = p.school_id AND j.id = p.tx_id
     WHERE a.school_id = $1 AND a.person_id = $2 AND a.kind = 'purse' AND j.business_date >= $3
     GROUP BY 1, 2, 3, 4, 5"""


@dataclass
class Month:
    month: date
    income: dict[str, int] = field(default_factory=dict)
    spending: dict[str, int] = field(default_factory=dict)

    @property
    def income_total(self) -> int:
        return sum(self.income.values())

    @property
    def spending_total(self) -> int:
        return sum(self.spending.values())


@dataclass
class Analysis:
    person_id: int
    today: date
    months: list[Month]  # oldest first; the last is this month
    pace: rules.Pace
    reminder_on: bool


def _month_starts(today: date, n: int) -> list[date]:
    out, y, m = [], today.year, today.month
    for _ in range(n):
        out.append(date(y, m, 1))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


async def analyse(conn: Conn | PgPool | Tx, school_id: int, person_id: int) -> Analysis:
    today = await people_queries.business_date(conn, school_id)
    starts = _month_starts(today, MONTHS)
    months = {s: Month(s) for s in starts}
    for r in await conn.fetch(_MOVEMENTS, school_id, person_id, starts[0]):
        month = months.get(r["month"])
        if month is None or r["fen"] == 0:
            continue
        name = rules.category(int(r["fen"]), r["kind"], r["purse"], r["channel"])
        if r["sign"] < 0:
            month.spending[name] = month.spending.get(name, 0) - int(r["fen"])
        else:
            month.income[name] = month.income.get(name, 0) + int(r["fen"])
    ordered = [months[s] for s in starts]

    # spending for the pace: what was spent on purchases and bills, not money taken out
    def spent(m: Month) -> int:
        return sum(v for k, v in m.spending.items() if k != "other_out")

    p = rules.pace(today, spent(ordered[-1]), [spent(m) for m in ordered[:-1]])
    on = await conn.fetchval(
        "SELECT pace_reminder FROM spending_prefs WHERE school_id = $1 AND person_id = $2",
        school_id,
        person_id,
    )
    return Analysis(person_id, today, ordered, p, bool(on))


@owns_transaction
async def do_set_pace_reminder(tx: Tx, actor: Actor, *, enabled: bool) -> bool:
    """The cardholder switches the pace reminder on or off (their own account only)."""
    if actor.person_id is None:
        raise NotFound("only a cardholder has a pace reminder", field="person_id")
    school_id = await tx.fetchval("SELECT school_id FROM persons WHERE id = $1", actor.person_id)
    await tx.execute(
        """INSERT INTO spending_prefs(school_id, person_id, pace_reminder) VALUES ($1, $2, $3)
           ON CONFLICT (school_id, person_id)
           DO UPDATE SET pace_reminder = $3, updated_at = EXCLUDED.updated_at""",
        school_id,
        actor.person_id,
        enabled,
    )
    await audit.record(
        tx,
        actor,
        "spending.pace_reminder",
        school_id=school_id,
        target_type="person",
        target_id=actor.person_id,
        after={"enabled": enabled},
    )
    return enabled


def month_view(m: Month) -> dict[str, Any]:
    return {
        "month": m.month.isoformat()[:7],
        "income": m.income,
        "spending": m.spending,
        "income_total": m.income_total,
        "spending_total": m.spending_total,
    }
