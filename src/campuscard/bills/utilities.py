"""Dorm utilities: prepaid electricity and water meters at the utility vendor, topped up from
the card, exactly once even when the vendor's answer is lost.

A top-up is two-phase (decision 0201):
 1. one transaction: a ``pending`` top-up row and a hold of the amount on the payer's cash
    purse (kind ``bill``, owner ``utility_topup``), under the payer's client id;
 2. after commit, outside any transaction: the vendor's recharge under our ``request_id``;
 3. the answer decides in a second transaction: APPLIED captures the hold (purse → the school's
    ``merchant_payable``, what it owes the vendor); a refusal voids it. No answer (a timeout, a
    5xx, a bad signature) leaves it pending: ``resolve_pending`` (job ``utilities-resolve``)
    asks the vendor by the same request id and captures when it was applied, sends it again
    when it never arrived (the vendor applies a request id once), and after
    ``MAX_ATTEMPTS`` gives up only through a cancel the vendor confirms, then voids.
The meter's balance and daily use come from the vendor (``meter_state``); the automatic top-up
(``auto_top_up``, job ``utilities-auto``) starts one top-up a day per resident who asked for it
when the meter is below their threshold; the monthly summary adds up what was topped up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from campuscard.adapters.utility.client import (
    UtilityClient,
    VendorError,
    VendorUnavailable,
)
from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, transaction
from campuscard.ledger import holds, postings
from campuscard.ledger.holds_rules import HoldRequest
from campuscard.ledger.money import Money, fmt
from campuscard.platform import audit, i18n, idempotency, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import DomainError, NotFound, ValidationFailed

log = logging.getLogger("campuscard.utilities")

MAX_TOPUP_FEN = 50_000  # 500.00 yuan at a time
MAX_ATTEMPTS = 6


@dataclass(frozen=True)
class TopupAnswer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def topup_view(r: Any, meter_no: str | None = None) -> dict[str, Any]:
    return {
        "id": r["id"],
        "meter_id": r["meter_id"],
        "meter_no": meter_no if meter_no is not None else r.get("meter_no"),
        "amount": fmt(r["amount"]),
        "origin": r["origin"],
        "status": r["status"],
        "meter_balance": fmt(r["meter_balance"]) if r["meter_balance"] is not None else None,
        "created_at": r["created_at"].isoformat(),
    }


async def meters_of(conn: Conn | PgPool, school_id: int, person_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT m.id, m.meter_no, m.kind, m.dorm, m.room, r.auto_below, r.auto_amount
             FROM utility_residents r
             JOIN utility_meters m ON m.school_id = r.school_id AND m.id = r.meter_id
            WHERE r.school_id = $1 AND r.person_id = $2 ORDER BY m.kind, m.id""",
        school_id,
        person_id,
    )
    return [
        {
            "id": r["id"],
            "meter_no": r["meter_no"],
            "kind": r["kind"],
            "dorm": r["dorm"],
            "room": r["room"],
            "auto_below": fmt(r["auto_below"]) if r["auto_below"] else None,
            "auto_amount": fmt(r["auto_amount"]) if r["auto_amount"] else None,
        }
        for r in rows
    ]


async def _resident_meter(conn: Conn, school_id: int, person_id: int, meter_id: int) -> Any:
    row = await conn.fetchrow(
        """SELECT m.* FROM utility_meters m JOIN utility_residents r
                ON r.school_id = m.school_id AND r.meter_id = m.id
            WHERE m.school_id = $1 AND m.id = $2 AND r.person_id = $3""",
        school_id,
        meter_id,
        person_id,
    )
    if row is None:
        raise NotFound("no such meter of your room", field="meter_id")
    return row


async def do_add_meter(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    *,
    meter_no: str,
    kind: str,
    dorm: str,
    room: str,
    residents: list[str],
) -> dict[str, Any]:
    """Register a room's meter and who lives there (by student number)."""
    actor.require("settlement", school_id=school_id)
    if kind not in ("electricity", "water"):
        raise ValidationFailed("kind must be electricity or water", field="kind")
    async with transaction(pool) as tx:
        people = await tx.fetch(
            "SELECT id, number FROM persons WHERE school_id = $1 AND number = ANY($2::text[])",
            school_id,
            residents,
        )
        missing = sorted(set(residents) - {r["number"] for r in people})
        if missing:
            raise ValidationFailed(f"no person numbered {', '.join(missing)}", field="residents")
        meter_id = await tx.fetchval(
            """INSERT INTO utility_meters(school_id, meter_no, kind, dorm, room)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (school_id, meter_no) DO UPDATE SET dorm = EXCLUDED.dorm,
                   room = EXCLUDED.room RETURNING id""",
            school_id,
            meter_no,
            kind,
            dorm,
            room,
        )
        await tx.executemany(
            """INSERT INTO utility_residents(school_id, meter_id, person_id) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING""",
            [(school_id, meter_id, r["id"]) for r in people],
        )
        await audit.record(
            tx,
            actor,
            "utilities.meter.add",
            school_id=school_id,
            target_type="utility_meter",
            target_id=meter_id,
            after={
                "meter_no": meter_no,
                "kind": kind,
                "dorm": dorm,
                "room": room,
                "residents": residents,
            },
        )
    return {"id": meter_id, "meter_no": meter_no, "kind": kind, "dorm": dorm, "room": room}


async def do_set_auto(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    meter_id: int,
    *,
    below: Money | None,
    amount: Money | None,
) -> dict[str, Any]:
    """The resident's automatic top-up: ``amount`` whenever the meter falls below ``below``;
    both None switches it off."""
    if actor.person_id is None:
        raise NotFound("no such meter of your room", field="meter_id")
    if (below is None) != (amount is None):
        raise ValidationFailed("give both below and amount, or neither", field="amount")
    if amount is not None and amount.fen > MAX_TOPUP_FEN:
        raise ValidationFailed(f"one top-up is at most {fmt(MAX_TOPUP_FEN)}", field="amount")
    async with transaction(pool) as tx:
        await _resident_meter(tx, school_id, actor.person_id, meter_id)
        await tx.execute(
            """UPDATE utility_residents SET auto_below = $4, auto_amount = $5
                WHERE school_id = $1 AND meter_id = $2 AND person_id = $3""",
            school_id,
            meter_id,
            actor.person_id,
            below.fen if below else None,
            amount.fen if amount else None,
        )
        await audit.record(
            tx,
            actor,
            "utilities.auto",
            school_id=school_id,
            target_type="utility_meter",
            target_id=meter_id,
            after={
                "below": str(below) if below else None,
                "amount": str(amount) if amount else None,
            },
        )
    return {
        "meter_id": meter_id,
        "auto_below": str(below) if below else None,
        "auto_amount": str(amount) if amount else None,
    }


async def _start(
    tx: Tx,
    school_id: int,
    person_id: int,
    meter_id: int,
    amount: int,
    request_id: str,
    origin: str,
) -> dict[str, Any]:
    """Phase 1, in the caller's transaction: the pending row and its hold."""
    meter = await _resident_meter(tx, school_id, person_id, meter_id)
    payee = await postings.system_account(tx, school_id, "merchant_payable")
    await postings.open_purses(tx, school_id, person_id)
    answer = await holds.place_hold(
        tx,
        school_id,
        HoldRequest(
            hold_id=request_id,
            person_id=person_id,
            amount=amount,
            kind="bill",
            owner_kind="utility_topup",
            owner_id=request_id,
            payee_account_id=payee,
            purse="cash",
            memo=f"{meter['kind']} {meter['dorm']} {meter['room']}",
        ),
    )
    answer.raise_refusal()
    row = await tx.fetchrow(
        """INSERT INTO utility_topups(school_id, meter_id, person_id, amount, request_id,
                                      hold_key, origin)
           VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING *""",
        school_id,
        meter_id,
        person_id,
        amount,
        request_id,
        origin,
    )
    assert row is not None
    return topup_view(row, meter["meter_no"])


async def do_top_up(
    pool: PgPool,
    settings: Settings,
    actor: Actor,
    school_id: int,
    meter_id: int,
    *,
    amount: Money,
    client_id: str,
    client: UtilityClient | None = None,
) -> TopupAnswer:
    """A resident tops up their room's meter from the card, once per client id. The answer is
    ``done``, ``failed`` (nothing taken), or ``pending`` (the vendor did not answer; the money
    stays on hold until the vendor's outcome is known)."""
    idempotency.check_client_id(client_id)
    if amount.fen > MAX_TOPUP_FEN:
        raise ValidationFailed(f"one top-up is at most {fmt(MAX_TOPUP_FEN)}", field="amount")
    if actor.person_id is None or actor.user_id is None:
        raise NotFound("no such meter of your room", field="meter_id")
    person_id = actor.person_id
    request_id = f"UT{school_id}-{person_id}-{client_id}"[:64]
    async with pool.acquire() as conn:
        outcome = await idempotency.run_idempotent(
            conn,
            school_id=school_id,
            scope=f"utility_topup:{actor.user_id}",
            key=client_id,
            payload={"meter_id": meter_id, "amount": amount.fen, "school_id": school_id},
            work=lambda tx: _start(
                tx, school_id, person_id, meter_id, amount.fen, request_id, "manual"
            ),
            success_status=201,
        )
    if outcome.status >= 400:
        return TopupAnswer(outcome.status, outcome.body, outcome.replayed)
    row = await send(pool, settings, school_id, outcome.body["id"], client=client)
    return TopupAnswer(outcome.status, row, outcome.replayed)


async def _row(conn: Conn | PgPool, school_id: int, topup_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        """SELECT t.*, m.meter_no, m.kind FROM utility_topups t
             JOIN utility_meters m ON m.school_id = t.school_id AND m.id = t.meter_id
            WHERE t.school_id = $1 AND t.id = $2""",
        school_id,
        topup_id,
    )
    if row is None:
        raise NotFound("no such top-up", field="topup_id")
    return dict(row)


async def send(
    pool: PgPool,
    settings: Settings,
    school_id: int,
    topup_id: int,
    *,
    client: UtilityClient | None = None,
) -> dict[str, Any]:
    """Phase 2 and 3: ask the vendor (outside any transaction), then settle by its answer."""
    t = await _row(pool, school_id, topup_id)
    if t["status"] != "pending":
        return topup_view(t)
    vendor = client or UtilityClient.from_settings(settings)
    try:
        if t["attempts"] == 0:
            result = await vendor.recharge(
                request_id=t["request_id"], meter_no=t["meter_no"], amount=t["amount"]
            )
        else:
            # after a lost answer: what became of it? never arrived: send it again (same id)
            result = await vendor.query(t["request_id"])
            if result.status == "NOT_FOUND" and t["attempts"] < MAX_ATTEMPTS:
                result = await vendor.recharge(
                    request_id=t["request_id"], meter_no=t["meter_no"], amount=t["amount"]
                )
            elif result.status == "NOT_FOUND":
                result = await vendor.cancel(t["request_id"])
    except VendorError as err:
        return await _settle(pool, t, applied=False, error=err.code)
    except VendorUnavailable as err:
        log.warning("utility top-up %s: no answer (%s)", t["request_id"], err)
        async with transaction(pool) as tx:
            await tx.execute(
                """UPDATE utility_topups SET attempts = attempts + 1, last_error = $3,
                          next_try_at = now() + make_interval(secs => $4)
                    WHERE school_id = $1 AND id = $2 AND status = 'pending'""",
                school_id,
                topup_id,
                str(err)[:200],
                float(settings.utility_retry_seconds),
            )
        return topup_view(await _row(pool, school_id, topup_id))
    if result.status == "APPLIED":
        return await _settle(
            pool, t, applied=True, vendor_txn=result.vendor_txn, balance=result.balance
        )
    # CANCELLED: the vendor confirmed it will never apply this request id
    return await _settle(pool, t, applied=False, error="CANCELLED")


async def _settle(
    pool: PgPool,
    t: dict[str, Any],
    *,
    applied: bool,
    vendor_txn: str | None = None,
    balance: int | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    school_id = t["school_id"]
    async with transaction(pool) as tx:
        locked = await tx.fetchrow(
            "SELECT status FROM utility_topups WHERE school_id = $1 AND id = $2 FOR UPDATE",
            school_id,
            t["id"],
        )
        assert locked is not None
        if locked["status"] != "pending":  # another worker settled it meanwhile
            return topup_view(await _row(tx, school_id, t["id"]))
        if applied:
            answer = await holds.capture_hold(
                tx, school_id, t["hold_key"], t["amount"], actor="utility_vendor"
            )
        else:
            answer = await holds.void_hold(tx, school_id, t["hold_key"], actor="utility_vendor")
        if not answer.ok:
            raise DomainError(
                f"the top-up's hold could not be settled ({answer.body['error']['code']})",
                code="UTILITY_HOLD_UNSETTLED",
                field="topup_id",
                status=409,
            )
        await tx.execute(
            """UPDATE utility_topups SET status = $3, vendor_txn = $4, meter_balance = $5,
                      last_error = $6, resolved_at = now(), attempts = attempts + 1
                WHERE school_id = $1 AND id = $2""",
            school_id,
            t["id"],
            "done" if applied else "failed",
            vendor_txn,
            balance,
            error,
        )
        meter = "electricity" if t["kind"] == "electricity" else "water"
        if applied:
            # notice.utility_done.electricity, notice.utility_done.water
            title = i18n.message(f"notice.utility_done.{meter}")
            body = i18n.message(
                "notice.utility_done.body",
                meter=t["meter_no"],
                amount=i18n.money(t["amount"]),
                balance=i18n.money(balance or 0),
            )
        else:
            # notice.utility_failed.electricity, notice.utility_failed.water
            title = i18n.message(f"notice.utility_failed.{meter}")
            body = i18n.message(
                "notice.utility_failed.body", meter=t["meter_no"], amount=i18n.money(t["amount"])
            )
        await notifications.notify(
            tx,
            school_id=school_id,
            person_id=t["person_id"],
            kind="utility_topup",
            title=title,
            body=body,
            data={"topup_id": t["id"], "meter_id": t["meter_id"]},
            dedupe_key=f"utility_topup:{school_id}:{t['id']}",
        )
        return topup_view(await _row(tx, school_id, t["id"]))


async def resolve_pending(
    pool: PgPool, settings: Settings, *, client: UtilityClient | None = None, limit: int = 100
) -> int:
    """Ask again about top-ups whose answer was lost; how many were settled."""
    rows = await pool.fetch(
        """SELECT school_id, id FROM utility_topups WHERE status = 'pending'
              AND next_try_at <= now() ORDER BY next_try_at LIMIT $1""",
        limit,
    )
    settled = 0
    for r in rows:
        try:
            view = await send(pool, settings, r["school_id"], r["id"], client=client)
        except DomainError as err:
            log.error("utility top-up %s could not be settled: %s", r["id"], err)
            continue
        settled += view["status"] != "pending"
    return settled


async def meter_state(
    pool: PgPool,
    settings: Settings,
    actor: Actor,
    school_id: int,
    meter_id: int,
    *,
    month: str,
    client: UtilityClient | None = None,
) -> dict[str, Any]:
    """The meter's balance, today's use and this month's days, from the vendor; with the
    month's top-ups from the card."""
    if actor.person_id is None:
        raise NotFound("no such meter of your room", field="meter_id")
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError as err:
        raise ValidationFailed('month must look like "2026-09"', field="month") from err
    async with pool.acquire() as conn:
        meter = await _resident_meter(conn, school_id, actor.person_id, meter_id)
    vendor = client or UtilityClient.from_settings(settings)
    try:
        state = await vendor.meter(meter["meter_no"], month)
    except VendorUnavailable as err:
        raise DomainError(
            "the utility vendor does not answer now; try again shortly",
            code="VENDOR_UNAVAILABLE",
            field="meter_id",
            status=409,
        ) from err
    except VendorError as err:
        raise DomainError(
            f"the utility vendor refused ({err.code})",
            code="VENDOR_REFUSED",
            field="meter_id",
            status=409,
        ) from err
    summary = await monthly_summary(pool, school_id, meter_id, first)
    return {
        "meter_id": meter_id,
        "meter_no": meter["meter_no"],
        "kind": meter["kind"],
        "unit": state.unit,
        "price": fmt(state.price),
        "balance": fmt(state.balance),
        "used_today": state.used_today,
        "days": [
            {"date": d["date"], "used": d["used"], "cost": fmt(int(d["cost_fen"]))}
            for d in state.days
        ],
        "month_used": f"{sum(float(d['used']) for d in state.days):.2f}",
        "month_cost": fmt(sum(int(d["cost_fen"]) for d in state.days)),
    } | summary


async def monthly_summary(
    conn: Conn | PgPool, school_id: int, meter_id: int, first: date
) -> dict[str, Any]:
    """What was topped up in the month (by whom is not shown to roommates: only counts)."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE status = 'done') AS n,
                  coalesce(sum(amount) FILTER (WHERE status = 'done'), 0)::bigint AS topped,
                  count(*) FILTER (WHERE status = 'done' AND origin = 'auto') AS auto
             FROM utility_topups
            WHERE school_id = $1 AND meter_id = $2
              AND created_at >= $3::date AND created_at < ($3::date + interval '1 month')""",
        school_id,
        meter_id,
        first,
    )
    assert row is not None
    return {
        "month": first.strftime("%Y-%m"),
        "month_topups": int(row["n"]),
        "month_topped_up": fmt(row["topped"]),
        "month_auto_topups": int(row["auto"]),
    }


async def topups_of(conn: Conn | PgPool, school_id: int, person_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT t.*, m.meter_no FROM utility_topups t
             JOIN utility_meters m ON m.school_id = t.school_id AND m.id = t.meter_id
            WHERE t.school_id = $1 AND t.person_id = $2 ORDER BY t.id DESC LIMIT 50""",
        school_id,
        person_id,
    )
    return [topup_view(dict(r)) for r in rows]


async def auto_top_up(
    pool: PgPool, settings: Settings, *, client: UtilityClient | None = None
) -> int:
    """For each resident with an automatic top-up whose meter is below their threshold, one
    top-up a day (the request id names the day, so a second pass the same day is the same
    request). Returns how many were started."""
    vendor = client or UtilityClient.from_settings(settings)
    rows = await pool.fetch(
        """SELECT r.school_id, r.meter_id, r.person_id, r.auto_below, r.auto_amount,
                  m.meter_no, cc_business_date(r.school_id) AS today
             FROM utility_residents r
             JOIN utility_meters m ON m.school_id = r.school_id AND m.id = r.meter_id
             JOIN persons p ON p.school_id = r.school_id AND p.id = r.person_id
            WHERE r.auto_below IS NOT NULL AND p.account_status = 'active'
            ORDER BY r.school_id, r.meter_id, r.person_id"""
    )
    started = 0
    balances: dict[str, int] = {}
    for r in rows:
        if r["meter_no"] not in balances:
            try:
                state = await vendor.meter(r["meter_no"], r["today"].strftime("%Y-%m"))
            except (VendorUnavailable, VendorError) as err:
                log.warning("automatic top-up: meter %s unreadable: %s", r["meter_no"], err)
                continue
            balances[r["meter_no"]] = state.balance
        if balances[r["meter_no"]] >= r["auto_below"]:
            continue
        request_id = f"UA{r['school_id']}-{r['meter_id']}-{r['person_id']}-{r['today']:%Y%m%d}"
        try:
            async with transaction(pool) as tx:
                if await tx.fetchval(
                    "SELECT 1 FROM utility_topups WHERE school_id = $1 AND request_id = $2",
                    r["school_id"],
                    request_id,
                ):
                    continue
                view = await _start(
                    tx,
                    r["school_id"],
                    r["person_id"],
                    r["meter_id"],
                    r["auto_amount"],
                    request_id,
                    "auto",
                )
        except DomainError as err:  # not enough on the card: tell them, once that day
            async with transaction(pool) as tx:
                await notifications.notify(
                    tx,
                    school_id=r["school_id"],
                    person_id=r["person_id"],
                    kind="utility_auto_failed",
                    title=i18n.message("notice.utility_auto_failed.title"),
                    body=i18n.message(
                        "notice.utility_auto_failed.body",
                        meter=r["meter_no"],
                        amount=i18n.money(r["auto_amount"]),
                        why=i18n.refusal(err.code),
                    ),
                    data={"meter_id": r["meter_id"]},
                    dedupe_key=f"utility_auto_failed:{request_id}",
                )
            continue
        await send(pool, settings, r["school_id"], view["id"], client=vendor)
        balances.pop(r["meter_no"], None)  # read again for the next roommate
        started += 1
    return started


async def get_topup(pool: PgPool, actor: Actor, school_id: int, topup_id: int) -> dict[str, Any]:
    t = await _row(pool, school_id, topup_id)
    if t["person_id"] != actor.person_id:
        raise NotFound("no such top-up", field="topup_id")
    return topup_view(t)
