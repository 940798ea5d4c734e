"""Reads of bills: a student's bills with lines, plan and payments; a receipt; the finance
office's lists, arrears by age and by class, and the books per fee item."""

from __future__ import annotations

from datetime import date
from typing import Any

from campuscard.bills import books, rules
from campuscard.db.pool import Conn, PgPool
from campuscard.ledger.money import fmt
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound


def _bill_view(b: Any, today: date) -> dict[str, Any]:
    owed = b["total"] - b["paid"]
    due = rules.effective_due(b["due_date"], b["deferred_until"])
    overdue = (today - due).days if owed > 0 else 0
    return {
        "id": b["id"],
        "person_id": b["person_id"],
        "term": b["term"],
        "due_date": b["due_date"].isoformat(),
        "total": fmt(b["total"]),
        "paid": fmt(b["paid"]),
        "owed": fmt(owed),
        "status": b["status"],
        "deferred_until": b["deferred_until"].isoformat() if b["deferred_until"] else None,
        "deferral_reason": b["deferral_reason"],
        "days_overdue": max(overdue, 0),
        "bucket": rules.bucket_of(overdue) if overdue > 0 else None,
    }


async def bills_of_person(
    conn: Conn | PgPool, school_id: int, person_id: int
) -> list[dict[str, Any]]:
    today = await conn.fetchval("SELECT cc_business_date($1)", school_id)
    rows = await conn.fetch(
        "SELECT * FROM bills WHERE school_id = $1 AND person_id = $2 ORDER BY term DESC, id DESC",
        school_id,
        person_id,
    )
    return [_bill_view(r, today) for r in rows]


async def bill_detail(conn: Conn | PgPool, school_id: int, bill_id: int) -> dict[str, Any]:
    today = await conn.fetchval("SELECT cc_business_date($1)", school_id)
    b = await conn.fetchrow(
        """SELECT b.*, p.name AS person_name, p.number AS person_number, c.name AS class_name
             FROM bills b JOIN persons p ON p.school_id = b.school_id AND p.id = b.person_id
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
            WHERE b.school_id = $1 AND b.id = $2""",
        school_id,
        bill_id,
    )
    if b is None:
        raise NotFound("no such bill", field="bill_id")
    lines = await conn.fetch(
        "SELECT * FROM bill_lines WHERE school_id = $1 AND bill_id = $2 "
        "ORDER BY kind = 'late_fee', due_date, array_position($3::text[], kind), id",
        school_id,
        bill_id,
        list(rules.ITEM_KINDS),
    )
    plan = await conn.fetch(
        "SELECT * FROM bill_instalments WHERE school_id = $1 AND bill_id = $2 ORDER BY seq",
        school_id,
        bill_id,
    )
    pays = await conn.fetch(
        "SELECT * FROM bill_payments WHERE school_id = $1 AND bill_id = $2 ORDER BY id",
        school_id,
        bill_id,
    )
    adjustments = await conn.fetch(
        """SELECT a.* FROM bill_adjustments a JOIN bill_lines l
                ON l.school_id = a.school_id AND l.id = a.line_id
            WHERE a.school_id = $1 AND l.bill_id = $2 ORDER BY a.id""",
        school_id,
        bill_id,
    )
    active_holds = await conn.fetch(
        "SELECT kind, placed_at FROM bill_holds WHERE school_id = $1 AND bill_id = $2 "
        "AND lifted_at IS NULL ORDER BY id",
        school_id,
        bill_id,
    )
    return _bill_view(b, today) | {
        "person_name": b["person_name"],
        "person_number": b["person_number"],
        "class_name": b["class_name"],
        "payment_reference": rules.payment_reference(school_id, b["person_id"]),
        "lines": [
            {
                "id": ln["id"],
                "kind": ln["kind"],
                "name": ln["name"],
                "original": fmt(ln["original"]),
                "amount": fmt(ln["amount"]),
                "paid": fmt(ln["paid"]),
                "owed": fmt(ln["amount"] - ln["paid"]),
                "due_date": ln["due_date"].isoformat(),
            }
            for ln in lines
        ],
        "instalments": [
            {
                "seq": i["seq"],
                "due_date": i["due_date"].isoformat(),
                "amount": fmt(i["amount"]),
                "late_fee_charged": i["late_fee_line_id"] is not None,
            }
            for i in plan
        ],
        "payments": [books.payment_view(dict(p)) for p in pays],
        "adjustments": [
            {
                "line_id": a["line_id"],
                "kind": a["kind"],
                "before": fmt(a["before"]),
                "after": fmt(a["after"]),
                "reason": a["reason"],
                "returned": fmt(a["returned"]),
                "created_at": a["created_at"].isoformat(),
            }
            for a in adjustments
        ],
        "holds": [h["kind"] for h in active_holds],
    }


async def receipt(conn: Conn | PgPool, school_id: int, receipt_no: str) -> dict[str, Any]:
    """A payment's electronic receipt: who paid what for which lines."""
    p = await conn.fetchrow(
        """SELECT bp.*, p.name AS person_name, p.number AS person_number, b.term,
                  s.name AS school_name, s.name_en AS school_name_en
             FROM bill_payments bp
             JOIN persons p ON p.school_id = bp.school_id AND p.id = bp.person_id
             JOIN schools s ON s.id = bp.school_id
             LEFT JOIN bills b ON b.school_id = bp.school_id AND b.id = bp.bill_id
            WHERE bp.school_id = $1 AND bp.receipt_no = $2""",
        school_id,
        receipt_no,
    )
    if p is None:
        raise NotFound("no such receipt", field="receipt_no")
    lines = await conn.fetch(
        """SELECT l.name, l.kind, a.amount FROM bill_allocations a
             JOIN bill_lines l ON l.school_id = a.school_id AND l.id = a.line_id
            WHERE a.school_id = $1 AND a.payment_id = $2 ORDER BY l.id""",
        school_id,
        p["id"],
    )
    return books.payment_view(dict(p)) | {
        "school_name": p["school_name"],
        "school_name_en": p["school_name_en"],
        "person_name": p["person_name"],
        "person_number": p["person_number"],
        "term": p["term"],
        "lines": [
            {"name": r["name"], "kind": r["kind"], "amount": fmt(r["amount"])} for r in lines
        ],
    }


async def payment_person(conn: Conn | PgPool, school_id: int, receipt_no: str) -> int | None:
    pid: int | None = await conn.fetchval(
        "SELECT person_id FROM bill_payments WHERE school_id = $1 AND receipt_no = $2",
        school_id,
        receipt_no,
    )
    return pid


async def payments_of_person(
    conn: Conn | PgPool, school_id: int, person_id: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM bill_payments WHERE school_id = $1 AND person_id = $2 ORDER BY id DESC "
        "LIMIT 200",
        school_id,
        person_id,
    )
    return [books.payment_view(dict(r)) for r in rows]


async def items(
    conn: Conn | PgPool, school_id: int, term: str | None = None
) -> list[dict[str, Any]]:
    """Fee items with their books: billed, adjusted, paid and still owed per item."""
    rows = await conn.fetch(
        """SELECT i.*, coalesce(s.billed, 0)::bigint AS billed, coalesce(s.due, 0)::bigint AS due,
                  coalesce(s.paid, 0)::bigint AS paid, coalesce(s.bills, 0) AS bills,
                  (SELECT coalesce(json_agg(json_build_object(
                          'scope', r.scope,
                          'value', CASE WHEN r.scope = 'class'
                                        THEN (SELECT name FROM classes c
                                               WHERE c.school_id = r.school_id
                                                 AND c.id::text = r.scope_value)
                                        ELSE r.scope_value END,
                          'amount', cc_fmt(r.amount)) ORDER BY r.scope, r.scope_value), '[]')
                     FROM fee_item_rates r WHERE r.school_id = i.school_id AND r.item_id = i.id)
                    AS rates
             FROM fee_items i
             LEFT JOIN (SELECT item_id, sum(original) AS billed, sum(amount) AS due,
                               sum(paid) AS paid, count(*) AS bills
                          FROM bill_lines WHERE school_id = $1 GROUP BY item_id) s
                    ON s.item_id = i.id
            WHERE i.school_id = $1 AND ($2::text IS NULL OR i.term = $2)
            ORDER BY i.term DESC, i.id""",
        school_id,
        term,
    )
    out = []
    for r in rows:
        rates = r["rates"]
        if isinstance(rates, str):
            import json

            rates = json.loads(rates)
        out.append(
            {
                "id": r["id"],
                "term": r["term"],
                "kind": r["kind"],
                "name": r["name"],
                "amount": fmt(r["amount"]) if r["amount"] is not None else None,
                "due_date": r["due_date"].isoformat(),
                "rates": rates,
                "bills": int(r["bills"]),
                "billed": fmt(r["billed"]),
                "adjusted": fmt(r["billed"] - r["due"]),
                "paid": fmt(r["paid"]),
                "owed": fmt(r["due"] - r["paid"]),
            }
        )
    return out


async def bills_list(
    conn: Conn | PgPool,
    school_id: int,
    *,
    term: str | None = None,
    status: str | None = None,
    class_id: int | None = None,
    overdue_only: bool = False,
    limit: int = 200,
    offset: int = 0,
) -> list[dict[str, Any]]:
    today = await conn.fetchval("SELECT cc_business_date($1)", school_id)
    rows = await conn.fetch(
        """SELECT b.*, p.name AS person_name, p.number AS person_number, c.name AS class_name
             FROM bills b JOIN persons p ON p.school_id = b.school_id AND p.id = b.person_id
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
            WHERE b.school_id = $1 AND ($2::text IS NULL OR b.term = $2)
              AND ($3::text IS NULL OR b.status = $3)
              AND ($4::bigint IS NULL OR p.class_id = $4)
              AND (NOT $5 OR (b.status = 'open'
                   AND greatest(b.due_date, coalesce(b.deferred_until, b.due_date)) < $6))
            ORDER BY b.due_date, b.id LIMIT $7 OFFSET $8""",
        school_id,
        term,
        status,
        class_id,
        overdue_only,
        today,
        limit,
        offset,
    )
    return [
        _bill_view(r, today)
        | {
            "person_name": r["person_name"],
            "person_number": r["person_number"],
            "class_name": r["class_name"],
        }
        for r in rows
    ]


async def arrears_summary(conn: Conn | PgPool, school_id: int) -> dict[str, Any]:
    """Arrears by age bucket and by class (the supervision view)."""
    today = await conn.fetchval("SELECT cc_business_date($1)", school_id)
    rows = await conn.fetch(
        """SELECT b.total - b.paid AS owed,
                  $2::date - greatest(b.due_date, coalesce(b.deferred_until, b.due_date))
                    AS overdue,
                  b.deferred_until IS NOT NULL AND b.deferred_until >= $2::date AS deferred,
                  c.id AS class_id, coalesce(c.name, '') AS class_name
             FROM bills b JOIN persons p ON p.school_id = b.school_id AND p.id = b.person_id
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
            WHERE b.school_id = $1 AND b.status = 'open'""",
        school_id,
        today,
    )
    buckets = {name: [0, 0] for name, _, _ in rules.BUCKETS}
    not_due = [0, 0]
    deferred = [0, 0]
    classes: dict[tuple[int | None, str], list[int]] = {}
    for r in rows:
        if r["deferred"]:
            target = deferred
        else:
            b = rules.bucket_of(r["overdue"])
            target = buckets[b] if b else not_due
        target[0] += 1
        target[1] += r["owed"]
        if r["overdue"] > 0 and not r["deferred"]:
            c = classes.setdefault((r["class_id"], r["class_name"]), [0, 0])
            c[0] += 1
            c[1] += r["owed"]
    holds_count = await conn.fetchval(
        "SELECT count(*) FROM bill_holds WHERE school_id = $1 AND lifted_at IS NULL", school_id
    )
    return {
        "as_of": today.isoformat(),
        "buckets": [
            {"bucket": name, "bills": v[0], "owed": fmt(v[1])} for name, v in buckets.items()
        ],
        "not_yet_due": {"bills": not_due[0], "owed": fmt(not_due[1])},
        "deferred": {"bills": deferred[0], "owed": fmt(deferred[1])},
        "by_class": [
            {"class_id": k[0], "class_name": k[1], "bills": v[0], "owed": fmt(v[1])}
            for k, v in sorted(classes.items(), key=lambda kv: -kv[1][1])
        ],
        "active_holds": int(holds_count),
    }


async def daily_by_item(conn: Conn | PgPool, school_id: int, day: date) -> list[dict[str, Any]]:
    """What each fee item received on a business day, by how it was paid: the figures the
    day's bank and provider statements are reconciled against."""
    rows = await conn.fetch(
        """SELECT coalesce(i.name, l.name) AS item, bp.method,
                  sum(a.amount)::bigint AS amount, count(DISTINCT bp.id) AS payments
             FROM bill_allocations a
             JOIN bill_payments bp ON bp.school_id = a.school_id AND bp.id = a.payment_id
             JOIN bill_lines l ON l.school_id = a.school_id AND l.id = a.line_id
             LEFT JOIN fee_items i ON i.school_id = l.school_id AND i.id = l.item_id
             JOIN journal_tx j ON j.school_id = bp.school_id AND j.id = bp.tx_id
            WHERE a.school_id = $1 AND j.business_date = $2
            GROUP BY 1, 2 ORDER BY 1, 2""",
        school_id,
        day,
    )
    return [
        {
            "item": r["item"],
            "method": r["method"],
            "amount": fmt(r["amount"]),
            "payments": int(r["payments"]),
        }
        for r in rows
    ]


def _schools_of(actor: Actor) -> list[int]:
    return sorted({g.school_id for g in actor.grants if g.school_id is not None})


async def school_of_bill_for(conn: Conn | PgPool, actor: Actor, bill_id: int) -> int:
    """The school of a bill among the schools the actor acts in (pages carry no school code;
    whether the actor may see the bill is checked after, by ``views.bill``)."""
    school_id: int | None = await conn.fetchval(
        "SELECT school_id FROM bills WHERE school_id = ANY($1::bigint[]) AND id = $2 "
        "ORDER BY school_id LIMIT 1",
        _schools_of(actor),
        bill_id,
    )
    if school_id is None:
        raise NotFound("no such bill", field="bill_id")
    return school_id


async def school_of_receipt_for(conn: Conn | PgPool, actor: Actor, receipt_no: str) -> int:
    school_id: int | None = await conn.fetchval(
        "SELECT school_id FROM bill_payments WHERE school_id = ANY($1::bigint[]) "
        "AND receipt_no = $2 ORDER BY school_id LIMIT 1",
        _schools_of(actor),
        receipt_no,
    )
    if school_id is None:
        raise NotFound("no such receipt", field="receipt_no")
    return school_id


async def terms(conn: Conn | PgPool, school_id: int) -> list[str]:
    """The terms the school has fee items for, newest first."""
    rows = await conn.fetch(
        "SELECT DISTINCT term FROM fee_items WHERE school_id = $1 ORDER BY term DESC", school_id
    )
    return [r["term"] for r in rows]


async def line_of_bill(conn: Conn | PgPool, school_id: int, bill_id: int, line_id: int) -> bool:
    found: bool | None = await conn.fetchval(
        "SELECT true FROM bill_lines WHERE school_id = $1 AND bill_id = $2 AND id = $3",
        school_id,
        bill_id,
        line_id,
    )
    return bool(found)


async def pending_adjustments(conn: Conn | PgPool, school_id: int) -> int:
    """Adjustments and waivers waiting for the second person."""
    n: int = await conn.fetchval(
        "SELECT count(*) FROM approvals WHERE school_id = $1 AND kind = 'bill_adjustment' "
        "AND status = 'pending'",
        school_id,
    )
    return n


async def daily_reconciliation(
    conn: Conn | PgPool, school_id: int, day: date
) -> list[dict[str, Any]]:
    """A business day's receipts per fee item and method, with how much of it the bank's and
    the provider's statements have matched so far (``recon_our_items``); card payments are
    internal and need no statement. A last row per method gives what went back to cards."""
    rows = await conn.fetch(
        """WITH day_pays AS (
               SELECT bp.* FROM bill_payments bp
                 JOIN journal_tx j ON j.school_id = bp.school_id AND j.id = bp.tx_id
                WHERE bp.school_id = $1 AND j.business_date = $2)
           SELECT coalesce(i.name, l.name) AS item, p.method,
                  sum(a.amount)::bigint AS amount, count(DISTINCT p.id) AS payments,
                  coalesce(sum(a.amount) FILTER (WHERE r.tx_id IS NOT NULL), 0)::bigint
                    AS matched
             FROM day_pays p
             JOIN bill_allocations a ON a.school_id = p.school_id AND a.payment_id = p.id
             JOIN bill_lines l ON l.school_id = a.school_id AND l.id = a.line_id
             LEFT JOIN fee_items i ON i.school_id = l.school_id AND i.id = l.item_id
             LEFT JOIN recon_our_items r ON r.school_id = p.school_id AND r.tx_id = p.tx_id
            GROUP BY 1, 2
           UNION ALL
           SELECT NULL, p.method, sum(p.returned)::bigint, count(*),
                  coalesce(sum(p.returned) FILTER (WHERE r.tx_id IS NOT NULL), 0)::bigint
             FROM day_pays p
             LEFT JOIN recon_our_items r ON r.school_id = p.school_id AND r.tx_id = p.tx_id
            WHERE p.returned > 0 GROUP BY 2
            ORDER BY 1 NULLS LAST, 2""",
        school_id,
        day,
    )
    return [
        {
            "item": r["item"],
            "method": r["method"],
            "amount": fmt(r["amount"]),
            "payments": int(r["payments"]),
            "matched": fmt(r["matched"]) if r["method"] != "card" else None,
            "waiting": fmt(r["amount"] - r["matched"]) if r["method"] != "card" else None,
        }
        for r in rows
    ]


async def item_ledger(
    conn: Conn | PgPool, school_id: int, item_id: int, *, limit: int = 500
) -> dict[str, Any]:
    """One fee item's ledger: every amount paid to it or given back, newest first."""
    item = await conn.fetchrow(
        "SELECT id, term, kind, name FROM fee_items WHERE school_id = $1 AND id = $2",
        school_id,
        item_id,
    )
    if item is None:
        raise NotFound("no such fee item", field="item_id")
    rows = await conn.fetch(
        """SELECT a.amount, j.business_date, j.created_at, p.name AS person_name,
                  p.number AS person_number, bp.receipt_no, bp.method, j.kind AS tx_kind
             FROM bill_allocations a
             JOIN bill_lines l ON l.school_id = a.school_id AND l.id = a.line_id
             JOIN journal_tx j ON j.school_id = a.school_id AND j.id = a.tx_id
             JOIN bills b ON b.school_id = l.school_id AND b.id = l.bill_id
             JOIN persons p ON p.school_id = b.school_id AND p.id = b.person_id
             LEFT JOIN bill_payments bp ON bp.school_id = a.school_id AND bp.id = a.payment_id
            WHERE a.school_id = $1 AND l.item_id = $2
            ORDER BY a.tx_id DESC LIMIT $3""",
        school_id,
        item_id,
        limit,
    )
    return {
        "id": item["id"],
        "term": item["term"],
        "kind": item["kind"],
        "name": item["name"],
        "entries": [
            {
                "day": r["business_date"].isoformat(),
                "created_at": r["created_at"].isoformat(),
                "person_name": r["person_name"],
                "person_number": r["person_number"],
                "receipt_no": r["receipt_no"],
                "method": r["method"] or "refund",
                "amount": fmt(r["amount"]),
            }
            for r in rows
        ],
    }


async def sheet_imports(
    conn: Conn | PgPool, school_id: int, limit: int = 50
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, term, sha256, filename, rows, added, unchanged, imported_by, imported_at
             FROM bill_sheet_imports WHERE school_id = $1 ORDER BY id DESC LIMIT $2""",
        school_id,
        limit,
    )
    return [dict(r) | {"imported_at": r["imported_at"].isoformat()} for r in rows]
