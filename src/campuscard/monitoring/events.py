"""Rules evaluated as events happen: a worker job reads each school's new events past a cursor
and runs the rules that concern them, with the student's own recent history.

- Payments (``payments``): the payment rules (large, night, many within minutes, too far
  apart) and the balance rules (low balance; each parent's own amounts).
- Money coming in (the ``ledger`` source: refunds, online, bank and counter top-ups): the
  balance rules. Money in starts a new low-balance episode, so a refund or top-up that still
  leaves the student below the threshold alerts now, under the key the next payment would
  have used (never twice), and one that lifts the balance above it alerts nothing.
- Offline uploads (the ``ledger`` source: each settled upload's booking): every sale the device
  made offline goes through the payment rules at the instant it was made, then the balance
  rules once per holder; an overdraft is told by the upload itself (``signals``).

The payment path is left as it is (no trigger, no extra write): the job reads ``payments`` and
``journal_tx`` past a cursor each. Ids are handed out before commit, so a row can become
visible after one with a higher id; every row read is remembered in ``monitoring_seen`` and a
cursor only moves past rows older than ``SAFE_LAG``, so a late commit is still read, once.

Everything a batch raises is written in the batch's transaction (alerts, inbox rows, SMS in the
outbox, live events on commit); nothing here calls the network.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from campuscard.db.pool import PgPool
from campuscard.db.tx import Tx, transaction
from campuscard.monitoring import alerts, queries, rules
from campuscard.monitoring.rules import Config, Finding, Spend

BATCH = 500
SAFE_LAG = timedelta(minutes=5)
HISTORY = 400  # payments of the student read per evaluation, newest first
# journal kinds the ledger source reads: money into a student's purses, and offline sales
MONEY_IN = ("refund", "topup_online", "bank_load", "counter_deposit")
OFFLINE = "offline_payment"
# inlined (constants, not input) so the planner uses the partial index journal_tx_monitoring
LEDGER_KINDS_SQL = ", ".join(f"'{k}'" for k in (*MONEY_IN, OFFLINE))


@dataclass(frozen=True)
class ScanResult:
    payments: int
    alerts: int


async def scan_all(pool: PgPool) -> ScanResult:
    payments = raised = 0
    for school_id in await queries.schools_watching(pool):
        for scan in (scan_school, scan_ledger):
            r = await scan(pool, school_id)
            payments, raised = payments + r.payments, raised + r.alerts
    return ScanResult(payments, raised)


async def scan_school(pool: PgPool, school_id: int) -> ScanResult:
    """Read up to ``BATCH`` new payments of one school and evaluate them, in one transaction
    (the cursor row is locked, so two workers never evaluate the same school at once)."""
    async with transaction(pool) as tx:
        cursor = await _cursor(tx, school_id, "payment")
        cfg = await queries.config(tx, school_id)
        tz = ZoneInfo((await queries.school_clock(tx, school_id)).timezone)
        rows = await tx.fetch(
            """SELECT p.id, p.person_id, p.amount, p.channel, p.created_at, p.status,
                      o.name AS outlet, m.x_m, m.y_m
                 FROM payments p
                 LEFT JOIN outlets o ON o.school_id = p.school_id AND o.id = p.outlet_id
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
            new = await tx.fetchval(
                """SELECT max(id) FROM payments WHERE school_id = $1 AND id > $2
                     AND created_at < now() - $3::interval""",
                school_id,
                cursor,
                SAFE_LAG,
            )
            await _advance(tx, school_id, "payment", new)
        return ScanResult(len(rows), raised)


async def scan_ledger(pool: PgPool, school_id: int) -> ScanResult:
    """Read up to ``BATCH`` new bookings of money in and of offline uploads of one school and
    evaluate them, in one transaction (the ledger cursor row is locked)."""
    async with transaction(pool) as tx:
        cursor = await _cursor(tx, school_id, "ledger")
        cfg = await queries.config(tx, school_id)
        tz = ZoneInfo((await queries.school_clock(tx, school_id)).timezone)
        rows = await tx.fetch(
            f"""SELECT j.id, j.kind FROM journal_tx j
                 WHERE j.school_id = $1 AND j.id > $2 AND j.kind IN ({LEDGER_KINDS_SQL})
                   AND j.created_at > now() - interval '1 day'
                   AND NOT EXISTS (SELECT 1 FROM monitoring_seen s
                                    WHERE s.school_id = $1 AND s.source = 'ledger'
                                      AND s.source_id = j.id)
                 ORDER BY j.id LIMIT $3""",
            school_id,
            cursor,
            BATCH,
        )
        raised = 0
        for row in rows:
            if row["kind"] == OFFLINE:
                raised += await evaluate_offline_upload(tx, cfg, tz, school_id, row["id"])
            else:
                raised += await evaluate_money_in(tx, cfg, tz, school_id, row["id"])
        await tx.executemany(
            "INSERT INTO monitoring_seen(school_id, source, source_id) VALUES ($1, 'ledger', $2) "
            "ON CONFLICT DO NOTHING",
            [(school_id, r["id"]) for r in rows],
        )
        if len(rows) < BATCH:
            new = await tx.fetchval(
                f"""SELECT max(id) FROM journal_tx
                     WHERE school_id = $1 AND id > $2 AND kind IN ({LEDGER_KINDS_SQL})
                       AND created_at < now() - $3::interval""",
                school_id,
                cursor,
                SAFE_LAG,
            )
            await _advance(tx, school_id, "ledger", new)
        return ScanResult(len(rows), raised)


async def _cursor(tx: Tx, school_id: int, source: str) -> int:
    await tx.execute(
        "INSERT INTO monitoring_cursors(school_id, source) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        school_id,
        source,
    )
    last: int = await tx.fetchval(
        "SELECT last_id FROM monitoring_cursors WHERE school_id = $1 AND source = $2 FOR UPDATE",
        school_id,
        source,
    )
    return last


async def _advance(tx: Tx, school_id: int, source: str, new: int | None) -> None:
    """Move the cursor to ``new`` (the last row old enough that none below it can still
    commit; None: stay) and forget the seen marks below it."""
    if new is None:
        return
    await tx.execute(
        "UPDATE monitoring_cursors SET last_id = $3 WHERE school_id = $1 AND source = $2",
        school_id,
        source,
        new,
    )
    await tx.execute(
        "DELETE FROM monitoring_seen WHERE school_id = $1 AND source = $2 AND source_id <= $3",
        school_id,
        source,
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


async def _history(
    tx: Tx,
    cfg: Config,
    tz: ZoneInfo,
    school_id: int,
    person_id: int,
    *,
    before_id: int | None,
    at: datetime,
) -> list[Spend]:
    """The student's booked payments of the last ``baseline_days`` before ``at`` (and below
    ``before_id`` when given), oldest first."""
    rows = await tx.fetch(
        """SELECT p.id, p.amount, p.channel, p.created_at, o.name AS outlet, m.x_m, m.y_m
             FROM payments p
             LEFT JOIN outlets o ON o.school_id = p.school_id AND o.id = p.outlet_id
             LEFT JOIN monitoring_places m
                    ON m.school_id = p.school_id AND m.outlet_id = p.outlet_id
            WHERE p.school_id = $1 AND p.person_id = $2 AND ($3::bigint IS NULL OR p.id < $3)
              AND p.status = 'booked' AND p.created_at > $4 AND p.created_at <= $5
            ORDER BY p.id DESC LIMIT $6""",
        school_id,
        person_id,
        before_id,
        at - timedelta(days=int(cfg.get("big_spend", "baseline_days"))),
        at,
        HISTORY,
    )
    return [_spend(r, tz) for r in reversed(rows)]


async def _spend_rules(
    tx: Tx, cfg: Config, school_id: int, person_id: int, pay: Spend, history: list[Spend]
) -> int:
    """The payment rules over one spend (a payment, or a sale a device made offline)."""
    raised = 0
    for finding in payment_findings(cfg, pay, history):
        r = await alerts.raise_alert(
            tx,
            cfg,
            school_id=school_id,
            person_id=person_id,
            finding=finding,
            source=pay.ref or f"payment:{pay.id}",
            occurred_at=pay.local.astimezone(UTC),
        )
        raised += r.alert_id is not None
    return raised


async def evaluate_payment(tx: Tx, cfg: Config, tz: ZoneInfo, school_id: int, row: Any) -> int:
    """Run the payment rules over one payment; returns how many alerts were stored."""
    person_id = int(row["person_id"])
    pay = _spend(row, tz)
    history = await _history(
        tx, cfg, tz, school_id, person_id, before_id=pay.id, at=row["created_at"]
    )
    raised = await _spend_rules(tx, cfg, school_id, person_id, pay, history)
    parents = await _parents(tx, cfg, school_id, person_id)
    local = (await queries.clock(tx)).astimezone(tz)
    await _guardian_spend(tx, parents, school_id, person_id, pay, local)
    spent = pace(history, pay, int(cfg.get("low_balance", "pace_days")))
    raised += await _low_balance(
        tx, cfg, school_id, person_id, parents, spent, local, source=f"payment:{pay.id}"
    )
    return raised


async def evaluate_offline_upload(
    tx: Tx, cfg: Config, tz: ZoneInfo, school_id: int, tx_id: int
) -> int:
    """The sales of one offline upload's booking (``tx_id``): each through the payment rules
    at the instant the device made it, then the balance rules once per holder."""
    rows = await tx.fetch(
        """SELECT r.seq, r.person_id, r.amount, r.made_at, t.sn, mc.channel,
                  o.name AS outlet, mp.x_m, mp.y_m
             FROM offline_records r
             JOIN terminals t ON t.school_id = r.school_id AND t.id = r.terminal_id
             JOIN merchants mc ON mc.school_id = t.school_id AND mc.id = t.merchant_id
             LEFT JOIN outlets o ON o.school_id = t.school_id AND o.id = t.outlet_id
             LEFT JOIN monitoring_places mp
                    ON mp.school_id = r.school_id AND mp.outlet_id = t.outlet_id
            WHERE r.school_id = $1 AND r.tx_id = $2 AND r.state = 'settled'
              AND r.person_id IS NOT NULL
            ORDER BY r.person_id, r.made_at, r.seq""",
        school_id,
        tx_id,
    )
    by_person: dict[int, list[Any]] = defaultdict(list)
    for r in rows:
        by_person[int(r["person_id"])].append(r)
    raised = 0
    local = (await queries.clock(tx)).astimezone(tz)
    for person_id, records in by_person.items():
        history = await _history(
            tx, cfg, tz, school_id, person_id, before_id=None, at=records[0]["made_at"]
        )
        parents = await _parents(tx, cfg, school_id, person_id)
        for r in records:
            place = (r["x_m"], r["y_m"]) if r["x_m"] is not None else None
            sale = Spend(
                0,
                r["made_at"].astimezone(tz),
                r["amount"],
                r["channel"],
                place,
                r["outlet"] or "",
                ref=f"offline:{r['sn']}:{r['seq']}",
            )
            raised += await _spend_rules(tx, cfg, school_id, person_id, sale, history)
            await _guardian_spend(tx, parents, school_id, person_id, sale, local)
            history.append(sale)
        spent = pace(history[:-1], history[-1], int(cfg.get("low_balance", "pace_days")))
        raised += await _low_balance(
            tx, cfg, school_id, person_id, parents, spent, local, source=f"ledger:{tx_id}"
        )
    return raised


async def evaluate_money_in(tx: Tx, cfg: Config, tz: ZoneInfo, school_id: int, tx_id: int) -> int:
    """A refund or top-up (journal transaction ``tx_id``) into students' purses: the balance
    rules for each student credited. The money starts a new low-balance episode: still below
    a threshold, the student (and each parent with their own amount) hears it now."""
    people = [
        int(r["person_id"])
        for r in await tx.fetch(
            """SELECT DISTINCT a.person_id FROM postings p
                 JOIN accounts a ON a.school_id = p.school_id AND a.id = p.account_id
                WHERE p.school_id = $1 AND p.tx_id = $2 AND p.amount > 0 AND a.kind = 'purse'
                  AND a.person_id IS NOT NULL""",
            school_id,
            tx_id,
        )
    ]
    raised = 0
    now = await queries.clock(tx)
    days = int(cfg.get("low_balance", "pace_days"))
    for person_id in people:
        parents = await _parents(tx, cfg, school_id, person_id)
        spent = await queries.spent_since(tx, school_id, person_id, now - timedelta(days=days))
        raised += await _low_balance(
            tx,
            cfg,
            school_id,
            person_id,
            parents,
            spent,
            now.astimezone(tz),
            source=f"ledger:{tx_id}",
        )
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


async def _parents(
    tx: Tx, cfg: Config, school_id: int, person_id: int
) -> list[queries.GuardianPrefs]:
    need_consent = bool(cfg.get("delivery", "guardian_consent"))
    return await queries.guardians_listening(tx, school_id, person_id, need_consent)


async def _guardian_spend(
    tx: Tx,
    parents: list[queries.GuardianPrefs],
    school_id: int,
    person_id: int,
    pay: Spend,
    local: datetime,
) -> None:
    """Each parent's own large-spend amount (told to that parent only)."""
    for g in parents:
        if g.single_spend and pay.amount >= g.single_spend:
            finding = rules.guardian_spend(pay, g.single_spend)
            if finding is not None:
                await alerts.tell_guardian(
                    tx, g, school_id, person_id, finding, local, ref=f"spend:{pay.tag}"
                )


async def _low_balance(
    tx: Tx,
    cfg: Config,
    school_id: int,
    person_id: int,
    parents: list[queries.GuardianPrefs],
    spent: int,
    local: datetime,
    *,
    source: str,
) -> int:
    """Low balance for the student (the school's threshold) and each parent's own amount;
    ``spent``: the student's spending over the last ``pace_days``."""
    lows = [g.low_balance for g in parents if g.low_balance]
    school_low = int(cfg.get("low_balance", "below")) if cfg.on("low_balance") else 0
    if not school_low and not lows:
        return 0
    available = await queries.available(tx, school_id, person_id)
    if available >= max([school_low, *lows]):
        return 0
    episode = await queries.last_money_in(tx, school_id, person_id)
    raised = 0
    if school_low:
        finding = rules.low_balance(cfg, available=available, spent_recent=spent, episode=episode)
        if finding is not None:
            r = await alerts.raise_alert(
                tx, cfg, school_id=school_id, person_id=person_id, finding=finding, source=source
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
