"""Rules evaluated as payments happen: a worker job reads each school's new payments and runs the
payment rules over each, with the student's own recent history.

The payment path is left as it is (no trigger, no extra write): the job reads ``payments`` past a
cursor. Ids are handed out before commit, so a payment can become visible after one with a
higher id; every payment read is remembered in ``monitoring_seen`` and the cursor only moves past
payments older than ``SAFE_LAG``, so a late commit is still read, once. Top-ups and refunds are
not scanned: money coming in ends a low-balance episode by itself (the episode is the last money
that came in), so the next fall below the threshold alerts again.

Everything a batch raises is written in the batch's transaction (alerts, inbox rows, SMS in the
outbox, live events on commit); nothing here calls the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from campuscard.db.pool import PgPool
from campuscard.db.tx import Tx, transaction
from campuscard.monitoring import alerts, queries, rules
from campuscard.monitoring.rules import Config, Finding, Spend

BATCH = 500
SAFE_LAG = timedelta(minutes=5)
HISTORY = 400  # payments of the student read per evaluation, newest first


@dataclass(frozen=True)
class ScanResult:
    payments: int
    alerts: int


async def scan_all(pool: PgPool) -> ScanResult:
    payments = raised = 0
    for school_id in await queries.schools_watching(pool):
        r = await scan_school(pool, school_id)
        payments, raised = payments + r.payments, raised + r.alerts
    return ScanResult(payments, raised)


async def scan_school(pool: PgPool, school_id: int) -> ScanResult:
    """Read up to ``BATCH`` new payments of one school and evaluate them, in one transaction
    (the cursor row is locked, so two workers never evaluate the same school at once)."""
    async with transaction(pool) as tx:
        cursor = await _cursor(tx, school_id)
        cfg = await queries.config(tx, school_id)
        tz = ZoneInfo((await queries.school_clock(tx, school_id)).timezone)
        rows = await tx.fetch(
            """SELECT p.id, p.person_id, p.amount, p.channel, p.created_at, p.status,
                      o.name AS outlet, m.x_m, m.y_m
                 FROM payments p
                 LEFT JOIN outlets o ON o.id = p.outlet_id
                 LEFT JOIN monitoring_places m
                        ON m.school_id = p.school_id AND m.outlet_id = p.outlet_id
                WHERE p.school_id = $1 AND p.id > $2
                  AND p.created_at > now() - interval '1 day'
                  AND NOT EXISTS (SELECT 1 FROM monitoring_seen s
                                   WHERE s.school_id = $1 AND s.source = 'payment'
                                     AND s.source_id = p.id)
                ORDER BY p.id LIMIT $3""",
            school_id,
            cursor,
            BATCH,
        )
        raised = 0
        for row in rows:
            if row["status"] == "booked":
                raised += await evaluate_payment(tx, cfg, tz, school_id, row)
        await tx.executemany(
            "INSERT INTO monitoring_seen(school_id, source, source_id) VALUES ($1, 'payment', $2) "
            "ON CONFLICT DO NOTHING",
            [(school_id, r["id"]) for r in rows],
        )
        if len(rows) < BATCH:
            await _advance(tx, school_id, cursor)
        return ScanResult(len(rows), raised)


async def _cursor(tx: Tx, school_id: int) -> int:
    await tx.execute(
        "INSERT INTO monitoring_cursors(school_id, source) VALUES ($1, 'payment') "
        "ON CONFLICT DO NOTHING",
        school_id,
    )
    last: int = await tx.fetchval(
        "SELECT last_id FROM monitoring_cursors WHERE school_id = $1 AND source = 'payment' "
        "FOR UPDATE",
        school_id,
    )
    return last


async def _advance(tx: Tx, school_id: int, cursor: int) -> None:
    """Move past payments old enough that none below them can still commit, and forget the
    seen marks below the new cursor."""
    new = await tx.fetchval(
        """SELECT max(id) FROM payments WHERE school_id = $1 AND id > $2
             AND created_at < now() - $3::interval""",
        school_id,
        cursor,
        SAFE_LAG,
    )
    if new is None:
        return
    await tx.execute(
        "UPDATE monitoring_cursors SET last_id = $2 WHERE school_id = $1 AND source = 'payment'",
        school_id,
        new,
    )
    await tx.execute(
        "DELETE FROM monitoring_seen WHERE school_id = $1 AND source = 'payment' "
        "AND source_id <= $2",
        school_id,
        new,
    )


def _spend(row: Any, tz: ZoneInfo) -> Spend:
    place = (row["x_m"], row["y_m"]) if row["x_m"] is not None else None
    return Spend(
        row["id"],
        row["created_at"].astimezone(tz),
        row["amount"],
        row["channel"],
        place,
        row["outlet"] or "",
    )


async def evaluate_payment(tx: Tx, cfg: Config, tz: ZoneInfo, school_id: int, row: Any) -> int:
    """Run the payment rules over one payment; returns how many alerts were stored."""
    person_id = int(row["person_id"])
    pay = _spend(row, tz)
    history = [
        _spend(r, tz)
        for r in await tx.fetch(
            """SELECT p.id, p.amount, p.channel, p.created_at, o.name AS outlet, m.x_m, m.y_m
                 FROM payments p
                 LEFT JOIN outlets o ON o.id = p.outlet_id
                 LEFT JOIN monitoring_places m
                        ON m.school_id = p.school_id AND m.outlet_id = p.outlet_id
                WHERE p.person_id = $1 AND p.id < $2 AND p.status = 'booked'
                  AND p.created_at > $3
                ORDER BY p.id DESC LIMIT $4""",
            person_id,
            pay.id,
            row["created_at"] - timedelta(days=int(cfg.get("big_spend", "baseline_days"))),
            HISTORY,
        )
    ]
    history.reverse()  # oldest first
    findings = payment_findings(cfg, pay, history)
    raised = 0
    for finding in findings:
        r = await alerts.raise_alert(
            tx,
            cfg,
            school_id=school_id,
            person_id=person_id,
            finding=finding,
            source=f"payment:{pay.id}",
            occurred_at=row["created_at"],
        )
        raised += r.alert_id is not None
    raised += await _balance_rules(tx, cfg, school_id, person_id, pay, history)
    return raised


def payment_findings(cfg: Config, pay: Spend, history: list[Spend]) -> list[Finding]:
    """The payment rules over one payment and the student's earlier payments (oldest first)."""
    found = [
        rules.big_spend(cfg, pay, [p.amount for p in history]),
        rules.night_spend(cfg, pay),
        rules.rapid_payments(cfg, pay, [*history[-50:], pay]),
        rules.far_apart(cfg, pay, next((p for p in reversed(history) if p.place), None)),
    ]
    return [f for f in found if f is not None]


def pace(history: list[Spend], pay: Spend, days: int) -> int:
    since = pay.local - timedelta(days=days)
    return sum(p.amount for p in history if p.local > since) + pay.amount


async def _balance_rules(
    tx: Tx, cfg: Config, school_id: int, person_id: int, pay: Spend, history: list[Spend]
) -> int:
    """Low balance for the student (the school's threshold) and each parent's own low-balance
    and large-spend amounts."""
    need_consent = bool(cfg.get("delivery", "guardian_consent"))
    parents = await queries.guardians_listening(tx, school_id, person_id, need_consent)
    lows = [g.low_balance for g in parents if g.low_balance]
    school_low = int(cfg.get("low_balance", "below")) if cfg.on("low_balance") else 0
    raised = 0
    local = (await queries.clock(tx)).astimezone(pay.local.tzinfo)
    for g in parents:
        if g.single_spend and pay.amount >= g.single_spend:
            finding = rules.guardian_spend(pay, g.single_spend)
            if finding is not None:
                await alerts.tell_guardian(
                    tx, g, school_id, person_id, finding, local, ref=f"spend:{pay.id}"
                )
    if not school_low and not lows:
        return 0
    available = await queries.available(tx, person_id)
    if available >= max([school_low, *lows]):
        return 0
    episode = await queries.last_money_in(tx, person_id)
    spent = pace(history, pay, int(cfg.get("low_balance", "pace_days")))
    if school_low:
        finding = rules.low_balance(cfg, available=available, spent_recent=spent, episode=episode)
        if finding is not None:
            r = await alerts.raise_alert(
                tx,
                cfg,
                school_id=school_id,
                person_id=person_id,
                finding=finding,
                source=f"payment:{pay.id}",
            )
            raised += r.alert_id is not None
    for g in parents:
        if g.low_balance and available < g.low_balance:
            finding = rules.low_balance(
                cfg,
                available=available,
                spent_recent=spent,
                episode=episode,
                threshold=g.low_balance,
            )
            if finding is not None:
                await alerts.tell_guardian(
                    tx, g, school_id, person_id, finding, local, ref=f"low:{finding.key}"
                )
    return raised
