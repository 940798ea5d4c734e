"""What the supervision exports hold, with the same scope as the page and audited: alerts
counted by day, rule and class (no names, no amounts) and the risk tiers of the students the
actor may see (a counsellor: their own classes), never the payments behind them. The web layer
writes them as CSV or XLSX (documents.exports: formula-safe)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from campuscard.db.tx import Tx, owns_transaction
from campuscard.monitoring import hardship, supervision
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import ValidationFailed

FORMATS = ("csv", "xlsx")


@dataclass(frozen=True)
class SupervisionSheet:
    since: date
    until: date
    counts: list[supervision.Count]
    tiers: list[supervision.Tier]


@owns_transaction
async def do_export_supervision(
    tx: Tx, actor: Actor, school_id: int, *, since: date, until: date, kind: str
) -> SupervisionSheet:
    """The dashboard's counts and the risk tiers over ``since``..``until`` for ``actor``; the
    export is in the audit log (``monitoring.export``: the span, the format, how many rows)."""
    if kind not in FORMATS:
        raise ValidationFailed("must be csv or xlsx", field="format")
    counts = await supervision.dashboard(tx, actor, school_id, since=since, until=until)
    tiers = await supervision.risk_tiers(tx, actor, school_id)
    await audit.record(
        tx,
        actor,
        "monitoring.export",
        school_id=school_id,
        target_type="supervision",
        target_id=f"{since.isoformat()}..{until.isoformat()}",
        after={"format": kind, "count_rows": len(counts), "students": len(tiers)},
    )
    return SupervisionSheet(since, until, counts, tiers)


@owns_transaction
async def do_export_hardship_report(
    tx: Tx, actor: Actor, school_id: int, *, month: date, kind: str
) -> list[hardship.GroupRow]:
    """The month's quiet-help report by class for ``actor`` (a counsellor: their classes):
    counts only, and none for a class below the school's minimum group size; audited as
    ``hardship.export``. No names, no amounts, no reasons."""
    if kind not in FORMATS:
        raise ValidationFailed("must be csv or xlsx", field="format")
    rows = await hardship.report(tx, actor, school_id, month)
    await audit.record(
        tx,
        actor,
        "hardship.export",
        school_id=school_id,
        target_type="hardship_month",
        target_id=month.isoformat(),
        after={"format": kind, "classes": len(rows)},
    )
    return rows
