"""What other capabilities tell monitoring, inside their own transaction.

These are the entry points for facts monitoring cannot read from payments itself: overdue bills
(the bills capability) and payments an offline device made beyond the card's balance (offline
uploads). Each call is cheap, writes only rows of this package (and notifications), and raises
at most one alert per distinct fact, so a caller may call again on every retry or daily pass.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from campuscard.db.tx import Tx
from campuscard.monitoring import alerts, queries, rules
from campuscard.platform.errors import ValidationFailed


def _amount(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationFailed("must be a whole number of fen, 0 or more", field=field)
    return value


async def arrears(
    tx: Tx,
    school_id: int,
    person_id: int,
    overdue_amount: int,
    oldest_due_date: date,
    reason: str,
) -> int | None:
    """Tell monitoring that ``person_id`` owes ``overdue_amount`` fen past its due date.

    Call it in the transaction that finds or changes the arrears (a bill falling overdue, the
    daily arrears pass, a partial payment that leaves some overdue): ``overdue_amount`` is the
    person's whole overdue total now, ``oldest_due_date`` the due date of the oldest unpaid
    bill, ``reason`` a short label shown in the alert ("学费", "住宿费 2026 秋季", at most 80
    characters are shown). If the school switched the ``arrears`` rule on and the amount is at
    least its ``min_overdue``, one alert is raised per (oldest due date, amount): calling again
    with the same figures does nothing; a new figure (more overdue, or the oldest bill paid)
    alerts again, subject to the usual cooldown and weekly budget. Returns the new alert's id,
    or None when nothing was raised.
    """
    amount = _amount(overdue_amount, "overdue_amount")
    if not isinstance(oldest_due_date, date):
        raise ValidationFailed("must be a date", field="oldest_due_date")
    if not isinstance(reason, str) or len(reason) > 200:
        raise ValidationFailed("must be text of at most 200 characters", field="reason")
    cfg = await queries.config(tx, school_id)
    today = await tx.fetchval("SELECT cc_business_date($1)", school_id)
    finding = rules.arrears(
        cfg, overdue_amount=amount, oldest_due_date=oldest_due_date, reason=reason, today=today
    )
    if finding is None:
        return None
    raised = await alerts.raise_alert(
        tx, cfg, school_id=school_id, person_id=person_id, finding=finding, source="arrears"
    )
    return raised.alert_id


async def offline_overdraft(
    tx: Tx,
    school_id: int,
    person_id: int,
    *,
    device: str,
    amount: int,
    shortfall: int,
    occurred_at: datetime,
    ref: str,
) -> int | None:
    """Tell monitoring that an offline payment of ``amount`` fen, made at ``occurred_at`` on
    ``device`` (its serial number) and ingested now, left the card ``shortfall`` fen beyond
    what it held. ``ref`` names the upload record ("<device>:<sequence>"); one alert per ref.
    Returns the new alert's id, or None when nothing was raised."""
    amount = _amount(amount, "amount")
    shortfall = _amount(shortfall, "shortfall")
    if occurred_at.tzinfo is None:
        raise ValidationFailed("must carry a time zone", field="occurred_at")
    cfg = await queries.config(tx, school_id)
    clock = await queries.school_clock(tx, school_id)
    local = occurred_at.astimezone(ZoneInfo(clock.timezone))
    finding = rules.offline_overdraft(
        cfg, shortfall=shortfall, amount=amount, device=device[:40], at=local, ref=ref[:80]
    )
    if finding is None:
        return None
    raised = await alerts.raise_alert(
        tx,
        cfg,
        school_id=school_id,
        person_id=person_id,
        finding=finding,
        source=f"offline:{ref[:80]}",
        occurred_at=occurred_at.astimezone(UTC),
    )
    return raised.alert_id
