"""What a cardholder (or their parent) reads: purses, the statement, spending by month.

``access_person`` is the one permission check for these reads: the cardholder themself, a
guardian linked to them (guardian_links), or an operator of their school.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from campuscard.db.pool import Conn, PgPool
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound, ValidationFailed

OPERATOR_READERS = ("school_admin", "card_center", "settlement", "teacher")
DIRECTIONS = ("in", "out")


async def access_person(conn: Conn, actor: Actor, person_id: int | None = None) -> dict[str, Any]:
    """The person whose card pages are shown; refuses (404) anyone the actor may not see."""
    target = person_id if person_id is not None else actor.person_id
    if target is None:
        raise NotFound("no cardholder is linked to this sign-in", field="person")
    row = await conn.fetchrow(
        """SELECT p.id, p.school_id, p.kind, p.number, p.name, p.account_status, p.status,
                  p.phone, c.name AS class_name, s.code AS school_code, s.name AS school_name,
                  s.name_en AS school_name_en, s.timezone
             FROM persons p JOIN schools s ON s.id = p.school_id
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
            WHERE p.id = $1""",
        target,
    )
    if row is None:
        raise NotFound("person not found", field="person")
    allowed = actor.person_id == target or actor.has(*OPERATOR_READERS, school_id=row["school_id"])
    if not allowed and actor.user_id is not None:
        allowed = bool(
            await conn.fetchval(
                "SELECT 1 FROM guardian_links"
                " WHERE school_id = $3 AND user_id = $1 AND person_id = $2",
                actor.user_id,
                target,
                row["school_id"],
            )
        )
    if not allowed:
        raise NotFound("person not found", field="person")
    return dict(row)


async def linked_children(conn: Conn, actor: Actor) -> list[dict[str, Any]]:
    """The children a guardian sees, with their total balance."""
    if actor.user_id is None:
        return []
    rows = await conn.fetch(
        """SELECT p.id, p.number, p.name, c.name AS class_name, p.account_status,
                  coalesce(sum(a.balance), 0) AS balance, coalesce(sum(a.held), 0) AS held
             FROM guardian_links g
             JOIN persons p ON p.school_id = g.school_id AND p.id = g.person_id
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
             LEFT JOIN accounts a ON a.school_id = p.school_id AND a.person_id = p.id
                                 AND a.kind = 'purse'
            WHERE g.user_id = $1
            GROUP BY p.school_id, p.id, c.name ORDER BY p.number""",
        actor.user_id,
    )
    return [dict(r) for r in rows]


async def purses(conn: Conn, person_id: int, *, school_id: int) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT purse, balance FROM accounts WHERE school_id = $2 AND person_id = $1 "
        "AND kind = 'purse' ORDER BY purse",
        person_id,
        school_id,
    )
    return {r["purse"]: int(r["balance"]) for r in rows}


async def held(conn: Conn, person_id: int, *, school_id: int) -> int:
    """What open holds (a shower running, an order in escrow) set aside on the purses."""
    total: int | None = await conn.fetchval(
        "SELECT sum(held) FROM accounts WHERE school_id = $2 AND person_id = $1 AND kind = 'purse'",
        person_id,
        school_id,
    )
    return int(total or 0)


async def cards(conn: Conn, person_id: int, *, school_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, number, kind, state, expires_on, created_at FROM cards
            WHERE school_id = $2 AND person_id = $1 ORDER BY id DESC""",
        person_id,
        school_id,
    )
    return [dict(r) for r in rows]


@dataclass(frozen=True)
class StatementFilter:
    purse: str | None = None  # 'cash' | 'subsidy'
    direction: str | None = None  # 'in' (money in) | 'out' (spent)
    kind: str | None = None  # journal kind, e.g. 'payment'
    date_from: date | None = None
    date_to: date | None = None

    def check(self) -> None:
        if self.purse not in (None, "cash", "subsidy"):
            raise ValidationFailed("purse must be cash or subsidy", field="purse")
        if self.direction not in (None, *DIRECTIONS):
            raise ValidationFailed("direction must be in or out", field="direction")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValidationFailed("the start date is after the end date", field="date_from")


async def statement(
    conn: Conn,
    person_id: int,
    flt: StatementFilter,
    *,
    school_id: int,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Postings on the person's purses, newest first, with who the other side was."""
    flt.check()
    rows = await conn.fetch(
        """SELECT p.id, p.amount, p.balance_after, p.created_at, a.purse, j.kind, j.memo,
                  j.business_date, j.ref,
                  (SELECT m.name FROM postings q
                     JOIN accounts b ON b.school_id = q.school_id AND b.id = q.account_id
                     JOIN merchants m ON m.school_id = b.school_id AND m.id = b.merchant_id
                    WHERE q.school_id = $9 AND q.tx_id = p.tx_id AND b.kind = 'merchant'
                    LIMIT 1) AS merchant,
                  (SELECT m.name_en FROM postings q
                     JOIN accounts b ON b.school_id = q.school_id AND b.id = q.account_id
                     JOIN merchants m ON m.school_id = b.school_id AND m.id = b.merchant_id
                    WHERE q.school_id = $9 AND q.tx_id = p.tx_id AND b.kind = 'merchant'
                    LIMIT 1) AS merchant_en
             FROM accounts a
             JOIN postings p ON p.school_id = a.school_id AND p.account_id = a.id
             JOIN journal_tx j ON j.school_id = p.school_id AND j.id = p.tx_id
            WHERE a.school_id = $9 AND a.person_id = $1 AND a.kind = 'purse'
              AND ($2::text IS NULL OR a.purse = $2)
              AND ($3::text IS NULL OR ($3 = 'in' AND p.amount > 0)
                   OR ($3 = 'out' AND p.amount < 0))
              AND ($4::text IS NULL OR j.kind = $4)
              AND ($5::date IS NULL OR j.business_date >= $5)
              AND ($6::date IS NULL OR j.business_date <= $6)
            ORDER BY p.id DESC LIMIT $7 OFFSET $8""",
        person_id,
        flt.purse,
        flt.direction,
        flt.kind,
        flt.date_from,
        flt.date_to,
        limit,
        offset,
        school_id,
    )
    return [dict(r) for r in rows]


async def statement_kinds(conn: Conn, person_id: int, *, school_id: int) -> list[str]:
    rows = await conn.fetch(
        """SELECT DISTINCT j.kind FROM accounts a
             JOIN postings p ON p.school_id = a.school_id AND p.account_id = a.id
             JOIN journal_tx j ON j.school_id = p.school_id AND j.id = p.tx_id
            WHERE a.school_id = $2 AND a.person_id = $1 AND a.kind = 'purse' ORDER BY 1""",
        person_id,
        school_id,
    )
    return [r["kind"] for r in rows]


async def monthly_spending(
    conn: Conn, person_id: int, *, school_id: int, months: int = 6
) -> list[dict[str, Any]]:
    """Money paid to merchants per business month, the last ``months`` months (zeros kept)."""
    rows = await conn.fetch(
        """WITH span AS (
               SELECT generate_series(
                   date_trunc('month', cc_business_date($3)) - make_interval(months => $2 - 1),
                   date_trunc('month', cc_business_date($3)),
                   interval '1 month')::date AS month),
           spent AS (
               SELECT date_trunc('month', j.business_date)::date AS month, -sum(p.amount) AS fen
                 FROM accounts a
                 JOIN postings p ON p.school_id = a.school_id AND p.account_id = a.id
                 JOIN journal_tx j ON j.school_id = p.school_id AND j.id = p.tx_id
                WHERE a.school_id = $3 AND a.person_id = $1 AND a.kind = 'purse'
                  AND EXISTS (SELECT 1 FROM postings q
                                JOIN accounts b ON b.school_id = q.school_id AND b.id = q.account_id
                               WHERE q.school_id = $3 AND q.tx_id = p.tx_id
                                 AND b.kind = 'merchant')
                GROUP BY 1)
           SELECT span.month, coalesce(spent.fen, 0)::bigint AS fen
             FROM span LEFT JOIN spent USING (month) ORDER BY span.month""",
        person_id,
        months,
        school_id,
    )
    return [{"month": r["month"], "fen": int(r["fen"])} for r in rows]


# a subquery names the school parameter itself ($3), so Citus keeps it on the school's shard
_SPENT_ON_MERCHANTS = """
    SELECT j.business_date AS day, -sum(p.amount) AS fen
      FROM accounts a JOIN postings p ON p.school_id = a.school_id AND p.account_id = a.id
      JOIN journal_tx j ON j.school_id = p.school_id AND j.id = p.tx_id
     WHERE a.school_id = $3 AND a.person_id = $1 AND a.kind = 'purse' AND j.business_date >= $2
       AND EXISTS (SELECT 1 FROM postings q
                     JOIN accounts b ON b.school_id = q.school_id AND b.id = q.account_id
                    WHERE q.school_id = $3 AND q.tx_id = p.tx_id AND b.kind = 'merchant')
     GROUP BY 1"""


async def daily_spending(
    conn: Conn, person_id: int, *, school_id: int, days: int = 7
) -> list[dict[str, Any]]:
    """Money paid to merchants per business day, the last ``days`` days up to the school's
    business date (zeros kept; refunds count against the day they were booked)."""
    today = await business_date(conn, school_id)
    first = today - timedelta(days=days - 1)
    rows = await conn.fetch(_SPENT_ON_MERCHANTS, person_id, first, school_id)
    spent = {r["day"]: int(r["fen"]) for r in rows}
    return [
        {"day": first + timedelta(days=i), "fen": spent.get(first + timedelta(days=i), 0)}
        for i in range(days)
    ]


async def spent_today_and_month(conn: Conn, person_id: int, *, school_id: int) -> dict[str, int]:
    """Spent at merchants on the school's business day and in its month so far, in fen."""
    today = await business_date(conn, school_id)
    rows = await conn.fetch(_SPENT_ON_MERCHANTS, person_id, today.replace(day=1), school_id)
    return {
        "today": sum(int(r["fen"]) for r in rows if r["day"] == today),
        "month": sum(int(r["fen"]) for r in rows),
    }


# Schools and classes: the small look-ups the API and the pages make by name or id.
# ``db`` is a pool or a connection (both answer the same calls).


async def school_id_by_code(db: Conn | PgPool, code: str) -> int | None:
    """The id of the school with this code, or None."""
    school_id: int | None = await db.fetchval("SELECT id FROM schools WHERE code = $1", code)
    return school_id


async def school_code(db: Conn | PgPool, school_id: int) -> str | None:
    """The code of the school with this id, or None."""
    code: str | None = await db.fetchval("SELECT code FROM schools WHERE id = $1", school_id)
    return code


async def all_schools(db: Conn | PgPool) -> list[dict[str, Any]]:
    """Every school, by code: code, name, name_en, timezone."""
    rows = await db.fetch("SELECT code, name, name_en, timezone FROM schools ORDER BY code")
    return [dict(r) for r in rows]


async def business_date(db: Conn | PgPool, school_id: int) -> date:
    """Today in the school's time zone (its business day)."""
    today: date = await db.fetchval("SELECT cc_business_date($1)", school_id)
    return today


async def school_classes(db: Conn | PgPool, school_id: int) -> list[dict[str, Any]]:
    """The school's classes by name: id, name, kind, grade."""
    rows = await db.fetch(
        "SELECT id, name, kind, grade FROM classes WHERE school_id = $1 ORDER BY name", school_id
    )
    return [dict(r) for r in rows]


async def person_school_id(db: Conn | PgPool, person_id: int) -> int | None:
    """The school a person belongs to, or None when there is no such person."""
    school_id: int | None = await db.fetchval(
        "SELECT school_id FROM persons WHERE id = $1", person_id
    )
    return school_id


async def person_in_school(db: Conn | PgPool, person_id: int, school_id: int) -> bool:
    """Whether the person exists and belongs to the school."""
    found = await db.fetchval(
        "SELECT 1 FROM persons WHERE id = $1 AND school_id = $2", person_id, school_id
    )
    return found is not None
