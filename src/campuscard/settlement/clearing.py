"""End-of-day clearing (清分) and settlement (结算) per merchant, terminal and channel.

``do_close_day`` clears one business day of a school in one transaction:
  1. every posting on a merchant account not cleared before (from the day, or a late arrival
     from an earlier day) is copied into ``clearing_items`` — set-based, once ever (primary key);
     an offline booking's posting as one item per till, summed from the offline records that
     name it (one booking carries the sales of a merchant's tills, decision 0390);
  2. figures per merchant / terminal / channel are summed from those items;
  3. commission per merchant-day (settlement/rules.py) and the payout are computed;
  4. one journal transaction per merchant moves its shard balances to ``merchant_payable``
     (less commission, to ``commission_income``);
  5. the day row is written: the day is closed and never recomputed. Closing it again returns
     the stored figures; postings booked on it afterwards are cleared by the next closed day
     and shown there as carried over.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, owns_transaction, transaction
from campuscard.ledger import postings
from campuscard.ledger.money import fmt
from campuscard.platform import audit, four_eyes, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from campuscard.settlement import rules

# Late postings older than this are not looked for (a posting is at most minutes late in
# practice: a transaction in flight at the cut-off, or an offline terminal's upload).
LOOKBACK_DAYS = 31
_LOCK_NAMESPACE = 7070

FIGURES = (
    "sales_count",
    "gross",
    "reversal_count",
    "reversals",
    "refund_count",
    "refunds",
    "other",
    "net_sales",
    "commission",
    "payout",
    "carried_count",
)
MONEY_FIELDS = frozenset(
    {
        "gross",
        "reversals",
        "refunds",
        "other",
        "net_sales",
        "commission",
        "payout",
        "carried_amount",
    }
)

_CLEAR_SQL = f"""
INSERT INTO clearing_items(posting_id, school_id, cleared_on, booked_on, merchant_id, account_id,
                           terminal_id, channel, kind, amount)
SELECT p.id, $1, $2, j.business_date, a.merchant_id, a.id, t.id, m.channel,
       CASE WHEN j.kind = 'payment_reversal' THEN 'reversal'
            WHEN j.kind IN ('adjustment', 'opening_balance') OR j.kind LIKE 'recon%' THEN 'other'
            WHEN p.amount > 0 THEN 'sale'
            ELSE 'refund' END,
       p.amount
  FROM journal_tx j
  JOIN postings p ON p.school_id = j.school_id AND p.tx_id = j.id
  JOIN accounts a ON a.school_id = p.school_id AND a.id = p.account_id AND a.kind = 'merchant'
  JOIN merchants m ON m.school_id = a.school_id AND m.id = a.merchant_id
  -- the device that booked it: its serial is the actor ("POS-1", or "terminal:POS-1")
  LEFT JOIN terminals t ON t.school_id = j.school_id
        AND t.sn = CASE WHEN j.actor LIKE 'terminal:%' THEN substr(j.actor, 10) ELSE j.actor END
 WHERE j.school_id = $1
   AND j.business_date BETWEEN $2::date - {LOOKBACK_DAYS} AND $2::date
   AND j.kind NOT IN ('settlement', 'offline_payment')
   AND NOT EXISTS (SELECT 1 FROM clearing_items c
                    WHERE c.school_id = p.school_id AND c.posting_id = p.id)
"""

# An offline booking credits a merchant shard with the sales of several tills (decision 0390):
# one item per till, its part summed from the records that name the booking (each record is
# one sale of its till). A booking with no records would be cleared whole, as the actor's.
_CLEAR_OFFLINE_SQL = f"""
INSERT INTO clearing_items(posting_id, part, school_id, cleared_on, booked_on, merchant_id,
                           account_id, terminal_id, channel, kind, amount)
SELECT p.id, coalesce(r.terminal_id, 0), $1, $2, j.business_date, a.merchant_id, a.id,
       coalesce(r.terminal_id, t.id), m.channel,
       CASE WHEN coalesce(sum(r.amount), p.amount) > 0 THEN 'sale' ELSE 'refund' END,
       coalesce(sum(r.amount), p.amount)::bigint
  FROM journal_tx j
  JOIN postings p ON p.school_id = j.school_id AND p.tx_id = j.id
  JOIN accounts a ON a.school_id = p.school_id AND a.id = p.account_id AND a.kind = 'merchant'
  JOIN merchants m ON m.school_id = a.school_id AND m.id = a.merchant_id
  LEFT JOIN offline_records r ON r.school_id = j.school_id AND r.tx_id = j.id
  LEFT JOIN terminals t ON t.school_id = j.school_id AND t.sn = j.actor
 WHERE j.school_id = $1
   AND j.business_date BETWEEN $2::date - {LOOKBACK_DAYS} AND $2::date
   AND j.kind = 'offline_payment'
   AND NOT EXISTS (SELECT 1 FROM clearing_items c
                    WHERE c.school_id = p.school_id AND c.posting_id = p.id)
 GROUP BY p.id, p.amount, r.terminal_id, t.id, j.business_date, a.merchant_id, a.id, m.channel
"""

# the tills' parts of each offline posting cleared today add up to the posting
_PARTS_MISMATCH_SQL = """
SELECT c.posting_id FROM clearing_items c
  JOIN postings p ON p.school_id = c.school_id AND p.id = c.posting_id
 WHERE c.school_id = $1 AND c.cleared_on = $2 AND c.part <> 0
 GROUP BY c.posting_id, p.amount HAVING sum(c.amount) <> p.amount
 LIMIT 1
"""

_LINES_SQL = """
SELECT merchant_id, terminal_id, channel, count(*) AS item_count,
       count(*) FILTER (WHERE kind = 'sale') AS sales_count,
       coalesce(sum(amount) FILTER (WHERE kind = 'sale'), 0)::bigint AS gross,
       count(*) FILTER (WHERE kind = 'reversal') AS reversal_count,
       coalesce(-sum(amount) FILTER (WHERE kind = 'reversal'), 0)::bigint AS reversals,
       count(*) FILTER (WHERE kind = 'refund') AS refund_count,
       coalesce(-sum(amount) FILTER (WHERE kind = 'refund'), 0)::bigint AS refunds,
       coalesce(sum(amount) FILTER (WHERE kind = 'other'), 0)::bigint AS other,
       count(*) FILTER (WHERE booked_on < $2) AS carried_count,
       coalesce(sum(amount) FILTER (WHERE booked_on < $2), 0)::bigint AS carried_amount
  FROM clearing_items
 WHERE school_id = $1 AND cleared_on = $2
 GROUP BY merchant_id, terminal_id, channel
 ORDER BY merchant_id, terminal_id NULLS LAST, channel
"""


def check_may_settle(actor: Actor, school_id: int) -> None:
    if actor.name == "system" and actor.user_id is None:
        return  # the end-of-day job
    actor.require("settlement", school_id=school_id)


def check_may_read(actor: Actor, school_id: int, merchant_id: int | None = None) -> None:
    """The settlement center reads everything; a merchant manager reads its own statements."""
    if actor.has("settlement", school_id=school_id):
        return
    own = merchant_id is not None and merchant_id in actor.merchant_ids()
    if own and actor.has("merchant_manager", "merchant_staff", school_id=school_id):
        return
    raise Forbidden("this needs the role settlement in this school", code="ROLE_REQUIRED")


@owns_transaction
async def do_close_day(
    tx: Tx, actor: Actor, school_id: int, business_date: date, *, early: bool = False
) -> dict[str, Any]:
    """Close ``business_date``; returns the day's figures (the stored ones if already closed)."""
    check_may_settle(actor, school_id)
    # one closer per school at a time; the loser then finds the day closed
    await tx.execute("SELECT pg_advisory_xact_lock($1, $2)", _LOCK_NAMESPACE, school_id)
    if await _day_row(tx, school_id, business_date) is not None:
        view = await day_view(tx, school_id, business_date)
        return view | {"replayed": True}
    await _check_closable(tx, school_id, business_date, early=early)
    started = time.perf_counter()
    await tx.execute(_CLEAR_SQL, school_id, business_date)
    await tx.execute(_CLEAR_OFFLINE_SQL, school_id, business_date)
    mismatch = await tx.fetchval(_PARTS_MISMATCH_SQL, school_id, business_date)
    if mismatch is not None:
        # the offline ingest books exactly its records; anything else is a bug to stop at
        raise RuntimeError(f"offline posting {mismatch}: its records do not add up to it")
    await _settle(tx, actor, school_id, business_date, started)
    view = await day_view(tx, school_id, business_date)
    return view | {"replayed": False}


async def _check_closable(conn: Conn, school_id: int, day: date, *, early: bool) -> None:
    today: date = await conn.fetchval("SELECT cc_business_date($1)", school_id)
    if day > today:
        raise ValidationFailed(
            f"{day} has not started yet (today's business date is {today})",
            code="DAY_IN_FUTURE",
            field="business_date",
        )
    if day == today and not early:
        raise Conflict(
            f"{day} is still open; close it after the cut-off, or explicitly early "
            "(later bookings then fall into the next day)",
            code="DAY_NOT_OVER",
            field="business_date",
        )
    last: date | None = await conn.fetchval(
        "SELECT max(business_date) FROM settlement_days WHERE school_id = $1", school_id
    )
    if last is not None and day < last:
        raise Conflict(
            f"{last} is already closed; an earlier day cannot be closed after it "
            "(its bookings were cleared as carried over)",
            code="DAY_BEFORE_CLOSED",
            field="business_date",
        )


async def _settle(conn: Conn, actor: Actor, school_id: int, day: date, started: float) -> None:
    lines = [dict(r) for r in await conn.fetch(_LINES_SQL, school_id, day)]
    shard_rows = await conn.fetch(
        """SELECT merchant_id, account_id, sum(amount)::bigint AS amount FROM clearing_items
            WHERE school_id = $1 AND cleared_on = $2 GROUP BY merchant_id, account_id
            ORDER BY merchant_id, account_id""",
        school_id,
        day,
    )
    merchant_ids = sorted({ln["merchant_id"] for ln in lines})
    merchants = {
        r["id"]: r
        for r in await conn.fetch(
            """SELECT m.id, m.name, m.channel, m.commission_bp, pa.merchant_id IS NOT NULL AS
                      has_account
                 FROM merchants m
                 LEFT JOIN merchant_payout_accounts pa
                        ON pa.school_id = m.school_id AND pa.merchant_id = m.id
                WHERE m.school_id = $2 AND m.id = ANY($1::bigint[])""",
            merchant_ids,
            school_id,
        )
    }
    shards: dict[int, list[tuple[int, int]]] = {}
    for r in shard_rows:
        shards.setdefault(r["merchant_id"], []).append((r["account_id"], r["amount"]))

    per_merchant: dict[int, dict[str, Any]] = {}
    for mid in merchant_ids:
        mine = [ln for ln in lines if ln["merchant_id"] == mid]
        for ln in mine:
            ln["net_sales"] = ln["gross"] - ln["reversals"] - ln["refunds"]
        totals = {
            k: sum(ln[k] for ln in mine)
            for k in (
                "sales_count",
                "gross",
                "reversal_count",
                "reversals",
                "refund_count",
                "refunds",
                "other",
                "net_sales",
                "carried_count",
                "carried_amount",
            )
        }
        bp = merchants[mid]["commission_bp"]
        commission = rules.commission_fen(totals["net_sales"], bp)
        shares = rules.allocate(commission, [ln["net_sales"] for ln in mine])
        for ln, share in zip(mine, shares, strict=True):
            ln["commission"] = share
            ln["payout"] = ln["net_sales"] + ln["other"] - share
        totals["commission"] = commission
        totals["payout"] = totals["net_sales"] + totals["other"] - commission
        per_merchant[mid] = {"totals": totals, "lines": mine, "bp": bp}

    all_totals = [m["totals"] for m in per_merchant.values()]
    await conn.execute(
        """INSERT INTO settlement_days(school_id, business_date, closed_by, item_count,
                                       carried_count, carried_amount, gross, commission, payout,
                                       elapsed_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        school_id,
        day,
        actor.name,
        sum(ln["item_count"] for ln in lines),
        sum(t["carried_count"] for t in all_totals),
        sum(t["carried_amount"] for t in all_totals),
        sum(t["gross"] for t in all_totals),
        sum(t["commission"] for t in all_totals),
        sum(t["payout"] for t in all_totals),
        int((time.perf_counter() - started) * 1000),
    )
    payable = await postings.system_account(conn, school_id, "merchant_payable")
    income = await postings.system_account(conn, school_id, "commission_income")
    bank_clearing = await postings.system_account(conn, school_id, "bank_clearing")
    for mid, data in per_merchant.items():
        t = data["totals"]
        legs = [postings.Leg(acc, -amount) for acc, amount in shards[mid] if amount]
        legs += [postings.Leg(payable, t["payout"]), postings.Leg(income, t["commission"])]
        legs = [leg for leg in legs if leg.amount]
        tx_id = None
        if legs:
            tx_id = await postings.post(
                conn,
                school_id=school_id,
                kind="settlement",
                legs=legs,
                ref=f"settlement:{school_id}:{day.isoformat()}:{mid}",
                memo=f"{day.isoformat()} {merchants[mid]['name']}",
                actor=actor.name,
                meta={"business_date": day.isoformat(), "merchant_id": mid},
            )
        status = _payout_status(t["payout"], merchants[mid]["has_account"])
        ref = rules.payout_ref(school_id, day, mid)
        payout_tx = None
        if status == "instructed":
            # the payout file instructs the bank; the money is in transit until the bank's
            # statement shows the debit (reconciliation then moves it to bank_account)
            payout_tx = await postings.post(
                conn,
                school_id=school_id,
                kind="payout_instruction",
                legs=postings.legs_move(payable, bank_clearing, t["payout"]),
                ref=ref,
                memo=f"payout {day.isoformat()} {merchants[mid]['name']}",
                actor=actor.name,
                meta={"business_date": day.isoformat(), "merchant_id": mid},
            )
        settlement_id = await conn.fetchval(
            """INSERT INTO settlements(school_id, business_date, merchant_id, channel,
                   commission_bp, sales_count, gross, reversal_count, reversals, refund_count,
                   refunds, other, net_sales, commission, payout, carried_count,
                   carried_amount, tx_id, payout_status, payout_ref, payout_tx_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                       $17, $18, $19, $20, $21) RETURNING id""",
            school_id,
            day,
            mid,
            merchants[mid]["channel"],
            data["bp"],
            t["sales_count"],
            t["gross"],
            t["reversal_count"],
            t["reversals"],
            t["refund_count"],
            t["refunds"],
            t["other"],
            t["net_sales"],
            t["commission"],
            t["payout"],
            t["carried_count"],
            t["carried_amount"],
            tx_id,
            status,
            ref,
            payout_tx,
        )
        await conn.executemany(
            """INSERT INTO settlement_lines(settlement_id, terminal_id, channel, sales_count,
                   gross, reversal_count, reversals, refund_count, refunds, other, net_sales,
                   commission, payout, carried_count, school_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)""",
            [
                (
                    settlement_id,
                    ln["terminal_id"],
                    ln["channel"],
                    ln["sales_count"],
                    ln["gross"],
                    ln["reversal_count"],
                    ln["reversals"],
                    ln["refund_count"],
                    ln["refunds"],
                    ln["other"],
                    ln["net_sales"],
                    ln["commission"],
                    ln["payout"],
                    ln["carried_count"],
                    school_id,
                )
                for ln in data["lines"]
            ],
        )
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    summary = {
        "business_date": day.isoformat(),
        "merchants": len(per_merchant),
        "gross": fmt(sum(t["gross"] for t in all_totals)),
        "commission": fmt(sum(t["commission"] for t in all_totals)),
        "payout": fmt(sum(t["payout"] for t in all_totals)),
        "carried_count": sum(t["carried_count"] for t in all_totals),
        "elapsed_ms": elapsed_ms,
    }
    await audit.record(
        conn,
        actor,
        "settlement.close_day",
        school_id=school_id,
        target_type="settlement_day",
        target_id=day.isoformat(),
        after=summary,
    )
    await notifications.publish_event(
        conn, {"type": "settlement_closed", "school_id": school_id, **summary}
    )


def _payout_status(payout: int, has_account: bool) -> str:
    if payout < 0:
        return "owed_by_merchant"
    if payout == 0:
        return "nothing_due"
    return "instructed" if has_account else "no_account"


async def _day_row(conn: Conn, school_id: int, day: date) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT * FROM settlement_days WHERE school_id = $1 AND business_date = $2",
        school_id,
        day,
    )
    return dict(row) if row is not None else None


def _money_view(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (fmt(v) if k in MONEY_FIELDS else v) for k, v in row.items()}


async def day_view(conn: Conn, school_id: int, day: date) -> dict[str, Any]:
    """The stored figures of a closed day: totals and one entry per merchant."""
    row = await _day_row(conn, school_id, day)
    if row is None:
        raise NotFound(f"{day} is not closed", code="DAY_NOT_CLOSED", field="business_date")
    merchants = await conn.fetch(
        """SELECT s.id AS settlement_id, s.merchant_id, m.name AS merchant, s.channel,
                  s.commission_bp, s.sales_count, s.gross, s.reversal_count, s.reversals,
                  s.refund_count, s.refunds, s.other, s.net_sales, s.commission, s.payout,
                  s.carried_count, s.carried_amount, s.tx_id, s.payout_status
             FROM settlements s
             JOIN merchants m ON m.school_id = s.school_id AND m.id = s.merchant_id
            WHERE s.school_id = $1 AND s.business_date = $2 ORDER BY s.merchant_id""",
        school_id,
        day,
    )
    return {
        "business_date": day.isoformat(),
        "closed_at": row["closed_at"].isoformat(),
        "closed_by": row["closed_by"],
        "item_count": row["item_count"],
        "carried_count": row["carried_count"],
        "carried_amount": fmt(row["carried_amount"]),
        "gross": fmt(row["gross"]),
        "commission": fmt(row["commission"]),
        "payout": fmt(row["payout"]),
        "merchants": [_money_view(dict(m)) for m in merchants],
    }


async def list_days(conn: Conn, school_id: int, *, limit: int = 60) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT business_date, closed_at, closed_by, item_count, carried_count, gross,
                  commission, payout FROM settlement_days WHERE school_id = $1
            ORDER BY business_date DESC LIMIT $2""",
        school_id,
        limit,
    )
    return [
        {
            "business_date": r["business_date"].isoformat(),
            "closed_at": r["closed_at"].isoformat(),
            "closed_by": r["closed_by"],
            "item_count": r["item_count"],
            "carried_count": r["carried_count"],
            "gross": fmt(r["gross"]),
            "commission": fmt(r["commission"]),
            "payout": fmt(r["payout"]),
        }
        for r in rows
    ]


async def statement(conn: Conn, school_id: int, day: date, merchant_id: int) -> dict[str, Any]:
    """One merchant's settlement statement for a closed day, with its terminal lines."""
    if await _day_row(conn, school_id, day) is None:
        raise NotFound(f"{day} is not closed", code="DAY_NOT_CLOSED", field="business_date")
    head = await conn.fetchrow(
        """SELECT s.*, m.name AS merchant, m.name_en AS merchant_en, sc.name AS school,
                  sc.code AS school_code, pa.bank_code, pa.account_no, pa.account_name
             FROM settlements s
             JOIN merchants m ON m.school_id = s.school_id AND m.id = s.merchant_id
             JOIN schools sc ON sc.id = s.school_id
             LEFT JOIN merchant_payout_accounts pa
                    ON pa.school_id = s.school_id AND pa.merchant_id = s.merchant_id
            WHERE s.school_id = $1 AND s.business_date = $2 AND s.merchant_id = $3""",
        school_id,
        day,
        merchant_id,
    )
    if head is None:
        exists = await conn.fetchval(
            "SELECT name FROM merchants WHERE id = $1 AND school_id = $2", merchant_id, school_id
        )
        if exists is None:
            raise NotFound("no such merchant in this school", field="merchant_id")
        head_view: dict[str, Any] = {
            "merchant_id": merchant_id,
            "merchant": exists,
            "business_date": day.isoformat(),
            "lines": [],
            "settled": False,
        }
        return head_view
    lines = await conn.fetch(
        """SELECT l.terminal_id, t.sn AS terminal, t.location, l.channel, l.sales_count, l.gross,
                  l.reversal_count, l.reversals, l.refund_count, l.refunds, l.other,
                  l.net_sales, l.commission, l.payout, l.carried_count
             FROM settlement_lines l
             LEFT JOIN terminals t ON t.school_id = l.school_id AND t.id = l.terminal_id
            WHERE l.school_id = $1 AND l.settlement_id = $2
            ORDER BY t.sn NULLS LAST, l.channel""",
        school_id,
        head["id"],
    )
    h = dict(head)
    return {
        "settled": True,
        "settlement_id": h["id"],
        "school": h["school"],
        "school_code": h["school_code"],
        "merchant_id": merchant_id,
        "merchant": h["merchant"],
        "merchant_en": h["merchant_en"],
        "business_date": day.isoformat(),
        "channel": h["channel"],
        "commission_bp": h["commission_bp"],
        "commission_rate": rules.rate_text(h["commission_bp"]),
        "totals": _money_view({k: h[k] for k in (*FIGURES, "carried_amount")}),
        "lines": [
            _money_view(dict(ln)) | {"terminal": ln["terminal"] or "back office"} for ln in lines
        ],
        "payout_status": h["payout_status"],
        "payout_account": (
            {
                "bank_code": h["bank_code"],
                "account_no": h["account_no"],
                "account_name": h["account_name"],
            }
            if h["account_no"]
            else None
        ),
        "tx_id": h["tx_id"],
    }


async def payout_rows(conn: Conn, school_id: int, day: date) -> list[dict[str, Any]]:
    """The lines of the payout instruction file: merchants with a positive payout and a
    registered account, in merchant order (the same file on every download)."""
    if await _day_row(conn, school_id, day) is None:
        raise NotFound(f"{day} is not closed", code="DAY_NOT_CLOSED", field="business_date")
    rows = await conn.fetch(
        """SELECT s.merchant_id, m.name AS merchant, s.payout AS payout_fen, s.payout_ref,
                  pa.bank_code, pa.account_no, pa.account_name
             FROM settlements s
             JOIN merchants m ON m.school_id = s.school_id AND m.id = s.merchant_id
             JOIN merchant_payout_accounts pa
               ON pa.school_id = s.school_id AND pa.merchant_id = s.merchant_id
            WHERE s.school_id = $1 AND s.business_date = $2 AND s.payout_status = 'instructed'
            ORDER BY s.merchant_id""",
        school_id,
        day,
    )
    return [dict(r) for r in rows]


async def do_set_payout_account(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    merchant_id: int,
    *,
    bank_code: str,
    account_no: str,
    account_name: str,
) -> dict[str, Any]:
    """Register where a merchant's settlements are paid. A change of a registered account is
    proposed: a second person approves it before payouts go anywhere new."""
    actor.require("settlement", school_id=school_id)
    after = {"bank_code": bank_code, "account_no": account_no, "account_name": account_name}
    async with transaction(pool) as tx:
        exists = await tx.fetchval(
            "SELECT true FROM merchants WHERE id = $1 AND school_id = $2", merchant_id, school_id
        )
        if not exists:
            raise NotFound("no such merchant in this school", field="merchant_id")
        before = await tx.fetchrow(
            "SELECT bank_code, account_no, account_name FROM merchant_payout_accounts "
            "WHERE school_id = $1 AND merchant_id = $2",
            school_id,
            merchant_id,
        )
        if before is None:
            await _write_payout_account(tx, actor, school_id, merchant_id, None, after)
            return {"merchant_id": merchant_id, "status": "set", **after}
        if dict(before) == after:
            return {"merchant_id": merchant_id, "status": "unchanged", **after}
        proposal = await four_eyes.propose(
            tx,
            actor,
            school_id,
            kind="payout_account",
            payload={"merchant_id": merchant_id, "before": dict(before), "after": after},
            amount=None,
            summary=f"#{merchant_id} {before['bank_code']} ****{before['account_no'][-4:]} → "
            f"{bank_code} ****{account_no[-4:]} · {account_name}",
        )
    return {"merchant_id": merchant_id, **after} | proposal


async def _write_payout_account(
    tx: Tx,
    actor: Actor,
    school_id: int,
    merchant_id: int,
    before: dict[str, Any] | None,
    after: dict[str, str],
) -> None:
    await tx.execute(
        """INSERT INTO merchant_payout_accounts(merchant_id, school_id, bank_code,
                                                account_no, account_name)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (school_id, merchant_id) DO UPDATE SET bank_code = EXCLUDED.bank_code,
               account_no = EXCLUDED.account_no, account_name = EXCLUDED.account_name,
               updated_at = EXCLUDED.updated_at""",
        merchant_id,
        school_id,
        after["bank_code"],
        after["account_no"],
        after["account_name"],
    )
    await audit.record(
        tx,
        actor,
        "settlement.payout_account",
        school_id=school_id,
        target_type="merchant",
        target_id=merchant_id,
        before=before,
        after=after,
    )


@four_eyes.executor("payout_account")
async def _approved_payout_account(
    tx: Tx, approver: Actor, proposal: four_eyes.Proposal
) -> dict[str, Any]:
    p = proposal.payload
    merchant_id = int(p["merchant_id"])
    current = await tx.fetchrow(
        "SELECT bank_code, account_no, account_name FROM merchant_payout_accounts "
        "WHERE merchant_id = $1 AND school_id = $2 FOR UPDATE",
        merchant_id,
        proposal.school_id,
    )
    if current is None or dict(current) != p["before"]:
        raise Conflict(
            "the payout account changed since the proposal; propose again",
            code="PAYOUT_ACCOUNT_CHANGED",
            field="approval_id",
        )
    await _write_payout_account(
        tx, approver, proposal.school_id, merchant_id, dict(current), dict(p["after"])
    )
    return {"merchant_id": merchant_id, **p["after"]}
