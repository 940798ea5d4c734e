"""Figures for the console: volume per channel and per merchant by business day, counts.

Volume is read from the ledger itself, so it covers every way money reaches a merchant: a
sale is a credit to a merchant account in a transaction that also debits a purse; a refund
is a debit to a merchant account in a transaction that credits a purse. Payouts and
commission (no purse leg) are not volume.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from campuscard.db.pool import Conn
from campuscard.payments.terminals import ONLINE_SQL
from campuscard.platform.actors import Actor
from campuscard.platform.errors import ValidationFailed

READERS = ("school_admin", "settlement", "card_center")
REPORT_READERS = ("school_admin", "settlement")
CHANNELS = ("canteen", "supermarket", "tuition", "other")
MAX_REPORT_DAYS = 366

_VOLUME = """
    SELECT {group} ,
           count(DISTINCT p.tx_id) FILTER (WHERE p.amount > 0) AS payments,
           coalesce(sum(p.amount) FILTER (WHERE p.amount > 0), 0)::bigint AS gross,
           coalesce(-sum(p.amount) FILTER (WHERE p.amount < 0), 0)::bigint AS refunds
      FROM journal_tx j
      JOIN postings p ON p.school_id = j.school_id AND p.tx_id = j.id
      JOIN accounts a ON a.school_id = p.school_id AND a.id = p.account_id
                     AND a.kind = 'merchant'
      JOIN merchants m ON m.school_id = a.school_id AND m.id = a.merchant_id
     WHERE j.school_id = $1 AND j.business_date BETWEEN $2 AND $3
       AND EXISTS (SELECT 1 FROM postings q
                     JOIN accounts b ON b.school_id = q.school_id AND b.id = q.account_id
                    WHERE q.school_id = j.school_id AND q.tx_id = j.id AND b.kind = 'purse')
     GROUP BY {group}
"""


async def business_date(conn: Conn, school_id: int) -> date:
    today: date = await conn.fetchval("SELECT cc_business_date($1)", school_id)
    return today


def check_range(date_from: date, date_to: date) -> None:
    if date_from > date_to:
        raise ValidationFailed("the start date is after the end date", field="from")
    if (date_to - date_from).days >= MAX_REPORT_DAYS:
        raise ValidationFailed(
            f"a report covers at most {MAX_REPORT_DAYS} days", code="RANGE_TOO_LONG", field="from"
        )


async def volume_by_channel(
    conn: Conn, actor: Actor, school_id: int, date_from: date, date_to: date
) -> list[dict[str, Any]]:
    """One row per channel (all four, zeros included): payments, gross, refunds, net."""
    actor.require(*READERS, school_id=school_id)
    check_range(date_from, date_to)
    rows = {
        r["channel"]: dict(r)
        for r in await conn.fetch(_VOLUME.format(group="m.channel"), school_id, date_from, date_to)
    }
    out = []
    for channel in CHANNELS:
        row = rows.get(channel, {"payments": 0, "gross": 0, "refunds": 0})
        out.append(
            {
                "channel": channel,
                "payments": int(row["payments"]),
                "gross": int(row["gross"]),
                "refunds": int(row["refunds"]),
                "net": int(row["gross"]) - int(row["refunds"]),
            }
        )
    return out


async def volume_by_day(
    conn: Conn, actor: Actor, school_id: int, date_from: date, date_to: date
) -> list[dict[str, Any]]:
    """One row per business day in the range (zeros included), net per channel and total."""
    actor.require(*READERS, school_id=school_id)
    check_range(date_from, date_to)
    rows = await conn.fetch(
        _VOLUME.format(group="j.business_date, m.channel"), school_id, date_from, date_to
    )
    days: dict[date, dict[str, Any]] = {}
    day = date_from
    while day <= date_to:
        days[day] = {"day": day, "total": 0, "payments": 0, **dict.fromkeys(CHANNELS, 0)}
        day += timedelta(days=1)
    for r in rows:
        entry = days[r["business_date"]]
        net = int(r["gross"]) - int(r["refunds"])
        entry[r["channel"]] += net
        entry["total"] += net
        entry["payments"] += int(r["payments"])
    return list(days.values())


async def volume_by_merchant(
    conn: Conn, actor: Actor, school_id: int, date_from: date, date_to: date
) -> list[dict[str, Any]]:
    actor.require(*REPORT_READERS, school_id=school_id)
    check_range(date_from, date_to)
    rows = await conn.fetch(
        _VOLUME.format(group="m.id, m.name, m.name_en, m.channel"), school_id, date_from, date_to
    )
    out = [
        {
            "merchant_id": r["id"],
            "name": r["name"],
            "name_en": r["name_en"],
            "channel": r["channel"],
            "payments": int(r["payments"]),
            "gross": int(r["gross"]),
            "refunds": int(r["refunds"]),
            "net": int(r["gross"]) - int(r["refunds"]),
        }
        for r in rows
    ]
    return sorted(out, key=lambda r: (-r["net"], r["name"]))


async def counts(conn: Conn, actor: Actor, school_id: int) -> dict[str, int]:
    actor.require(*READERS, school_id=school_id)
    row = await conn.fetchrow(
        f"""SELECT
             (SELECT count(*) FROM persons WHERE school_id = $1 AND status = 'enrolled') AS people,
             (SELECT count(*) FROM cards WHERE school_id = $1 AND state = 'active') AS cards,
             (SELECT count(*) FROM merchants WHERE school_id = $1 AND status = 'approved')
                 AS merchants,
             (SELECT count(*) FROM terminals WHERE school_id = $1 AND status = 'active')
                 AS terminals,
             (SELECT count(*) FROM terminals t WHERE t.school_id = $1 AND t.status = 'active'
                 AND {ONLINE_SQL}) AS online""",
        school_id,
    )
    assert row is not None  # a SELECT of scalar subqueries always answers one row
    return {k: int(v) for k, v in dict(row).items()}


async def terminals(conn: Conn, actor: Actor, school_id: int) -> list[dict[str, Any]]:
    """Terminals with their merchant and whether they are online (``ONLINE_SQL``: a heartbeat
    or a payment within the last few minutes)."""
    actor.require(*READERS, school_id=school_id)
    rows = await conn.fetch(
        f"""SELECT t.id, t.sn, t.kind, t.location, t.status, t.key_version, t.last_seen_at,
                  m.name AS merchant, m.name_en AS merchant_en, o.name AS outlet,
                  {ONLINE_SQL} AS online
             FROM terminals t
             LEFT JOIN merchants m ON m.school_id = t.school_id AND m.id = t.merchant_id
             LEFT JOIN outlets o ON o.school_id = t.school_id AND o.id = t.outlet_id
            WHERE t.school_id = $1 ORDER BY t.sn""",
        school_id,
    )
    return [dict(r) for r in rows]


async def merchants(conn: Conn, actor: Actor, school_id: int) -> list[dict[str, Any]]:
    actor.require(*READERS, school_id=school_id)
    rows = await conn.fetch(
        """SELECT m.id, m.name, m.name_en, m.channel, m.status, m.commission_bp, m.contact_name,
                  m.contact_phone, m.created_at,
                  (SELECT count(*) FROM terminals t
                    WHERE t.school_id = $1 AND t.merchant_id = m.id) AS terminals,
                  (SELECT coalesce(sum(balance), 0) FROM accounts a
                    WHERE a.school_id = $1 AND a.merchant_id = m.id
                      AND a.kind = 'merchant') AS balance
             FROM merchants m WHERE m.school_id = $1 ORDER BY m.status <> 'pending', m.name""",
        school_id,
    )
    return [dict(r) for r in rows]


async def audit_log(
    conn: Conn,
    actor: Actor,
    school_id: int,
    *,
    action: str = "",
    who: str = "",
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """The school's audit entries, newest first; filter by action prefix and actor name."""
    actor.require("school_admin", "settlement", "card_center", school_id=school_id)
    rows = await conn.fetch(
        """SELECT id, actor, action, target_type, target_id, before, after, ip, created_at
             FROM audit_log
            WHERE school_id = $1 AND ($2 = '' OR action LIKE $2 || '%')
              AND ($3 = '' OR actor ILIKE $3 || '%')
              AND ($4::bigint IS NULL OR id < $4)
            ORDER BY id DESC LIMIT $5""",
        school_id,
        action,
        who,
        before_id,
        limit,
    )
    return [dict(r) for r in rows]


async def classes(conn: Conn, actor: Actor, school_id: int) -> list[dict[str, Any]]:
    actor.require("school_admin", "card_center", "settlement", "teacher", school_id=school_id)
    rows = await conn.fetch(
        """SELECT c.id, c.name, c.kind, c.grade,
                  (SELECT count(*) FROM persons p
                    WHERE p.school_id = $1 AND p.class_id = c.id) AS people
             FROM classes c WHERE c.school_id = $1 ORDER BY c.name""",
        school_id,
    )
    return [dict(r) for r in rows]


async def find_cards(
    conn: Conn, actor: Actor, school_id: int, *, query: str = "", limit: int = 50
) -> list[dict[str, Any]]:
    """Cards by card number, student number or name, with their holder."""
    actor.require("school_admin", "card_center", school_id=school_id)
    rows = await conn.fetch(
        """SELECT c.id, c.number, c.uid, c.kind, c.state, c.expires_on, c.updated_at,
                  p.id AS person_id, p.number AS person_number, p.name AS person_name
             FROM cards c JOIN persons p ON p.school_id = c.school_id AND p.id = c.person_id
            WHERE c.school_id = $1
              AND ($2 = '' OR c.number LIKE $2 || '%' OR p.number ILIKE $2 || '%'
                   OR p.name ILIKE '%' || $2 || '%')
            ORDER BY c.updated_at DESC, c.id DESC LIMIT $3""",
        school_id,
        query,
        limit,
    )
    return [dict(r) for r in rows]
