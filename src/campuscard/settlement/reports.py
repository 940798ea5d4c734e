"""Reports (C14): daily figures per channel and merchant from the closed settlement days, and
consumption statistics per student category and class from the ledger's purse postings.

Both read committed, final data: the daily summary only closed days (the figures on merchants'
statements); consumption the payments, refunds and reversals booked on the purses.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from campuscard.db.pool import Conn
from campuscard.ledger.money import fmt
from campuscard.platform.actors import Actor
from campuscard.platform.errors import ValidationFailed

MAX_DAYS = 366
SPENDING_KINDS = ("payment", "refund", "payment_reversal")


def check_may_report(actor: Actor, school_id: int) -> None:
    actor.require("settlement", "school_admin", school_id=school_id)


def check_range(date_from: date, date_to: date) -> None:
    if date_to < date_from:
        raise ValidationFailed("date_to is before date_from", field="date_to")
    if (date_to - date_from).days >= MAX_DAYS:
        raise ValidationFailed(f"a report covers at most {MAX_DAYS} days", field="date_to")


async def daily_summary(
    conn: Conn, school_id: int, date_from: date, date_to: date
) -> dict[str, Any]:
    """Per closed day: one row per merchant (with its channel), totals per channel and day."""
    check_range(date_from, date_to)
    rows = await conn.fetch(
        """SELECT s.business_date, s.channel, s.merchant_id, m.name AS merchant, s.sales_count,
                  s.gross, s.reversals, s.refunds, s.net_sales, s.commission, s.payout
             FROM settlements s
             JOIN merchants m ON m.school_id = s.school_id AND m.id = s.merchant_id
            WHERE s.school_id = $1 AND s.business_date BETWEEN $2 AND $3
            ORDER BY s.business_date, s.channel, m.name""",
        school_id,
        date_from,
        date_to,
    )
    merchants = [
        {
            "business_date": r["business_date"].isoformat(),
            "channel": r["channel"],
            "merchant_id": r["merchant_id"],
            "merchant": r["merchant"],
            "sales_count": r["sales_count"],
            "gross": fmt(r["gross"]),
            "refunds": fmt(r["reversals"] + r["refunds"]),
            "net_sales": fmt(r["net_sales"]),
            "commission": fmt(r["commission"]),
            "payout": fmt(r["payout"]),
        }
        for r in rows
    ]
    per_channel: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        key = (r["business_date"].isoformat(), r["channel"])
        acc = per_channel.setdefault(key, {"sales_count": 0, "gross": 0, "net_sales": 0})
        acc["sales_count"] += r["sales_count"]
        acc["gross"] += r["gross"]
        acc["net_sales"] += r["net_sales"]
    channels = [
        {
            "business_date": d,
            "channel": ch,
            "sales_count": v["sales_count"],
            "gross": fmt(v["gross"]),
            "net_sales": fmt(v["net_sales"]),
        }
        for (d, ch), v in sorted(per_channel.items())
    ]
    return {
        "date_from": date_from.isoformat(),
        "date_to": date_to.isoformat(),
        "channels": channels,
        "merchants": merchants,
    }


async def consumption(
    conn: Conn, school_id: int, date_from: date, date_to: date, *, group_by: str = "class"
) -> dict[str, Any]:
    """Spending of cardholders per class (or per category) and channel: how many spent, how
    many payments, net amount spent (payments less refunds and reversals) and per person."""
    check_range(date_from, date_to)
    if group_by not in ("class", "category"):
        raise ValidationFailed("group_by must be class or category", field="group_by")
    group_sql = "coalesce(c.name, '—')" if group_by == "class" else "p.category"
    rows = await conn.fetch(
        f"""SELECT {group_sql} AS grp, coalesce(j.meta ->> 'channel', 'other') AS channel,
                   count(DISTINCT p.id) AS persons,
                   count(DISTINCT j.id) FILTER (WHERE j.kind = 'payment') AS payments,
                   (-sum(po.amount))::bigint AS spent
              FROM journal_tx j
              JOIN postings po ON po.school_id = j.school_id AND po.tx_id = j.id
              JOIN accounts a ON a.school_id = po.school_id AND a.id = po.account_id
                             AND a.kind = 'purse'
              JOIN persons p ON p.school_id = a.school_id AND p.id = a.person_id
              LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
             WHERE j.school_id = $1 AND j.business_date BETWEEN $2 AND $3
               AND j.kind = ANY($4::text[]) AND p.kind = 'student'
             GROUP BY 1, 2 ORDER BY 1, 2""",
        school_id,
        date_from,
        date_to,
        list(SPENDING_KINDS),
    )
    return {
        "date_from": date_from.isoformat(),
        "date_to": date_to.isoformat(),
        "group_by": group_by,
        "rows": [
            {
                "group": r["grp"],
                "channel": r["channel"],
                "persons": r["persons"],
                "payments": r["payments"],
                "spent": fmt(r["spent"]),
                # integer fen, half-up to the fen: no float in sight
                "per_person": fmt((2 * r["spent"] + r["persons"]) // (2 * r["persons"]))
                if r["persons"]
                else "0.00",
            }
            for r in rows
        ],
    }
