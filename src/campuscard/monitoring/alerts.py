"""Raising an alert and telling the people who should hear it, in the caller's transaction.

An alert is stored once per (person, rule, what it is about): the same event read twice raises
nothing new. Whether the student hears about it:

- ``duplicate``: the same rule already reached the student within the cooldown;
- ``budget``: the student already received the week's budget of alerts (an alert of the highest
  severity, a card that may be in someone else's hands, always goes through);
- ``quiet``: inside the student's quiet hours the in-app message arrives at once, silently,
  and the SMS is held by the outbox until the quiet hours end;
- ``sent``: in-app (with its live event to the phone) and SMS.

Every alert stays on the supervision dashboard whatever its delivery. Parents who opted in (and,
where the school requires it, were given the adult student's consent) hear the alerts the
student hears, of the rules they chose, on their own channels and quiet hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from campuscard.db.tx import Tx
from campuscard.monitoring import queries
from campuscard.monitoring.rules import Config, Finding, clock, quiet_now, quiet_until
from campuscard.platform import i18n, notifications

ALERT_KIND = "monitoring_alert"


@dataclass(frozen=True)
class Raised:
    alert_id: int | None  # None: this alert existed already
    delivery: str


def _full_key(person_id: int, finding: Finding) -> str:
    return f"{person_id}:{finding.rule}:{finding.key}"[:200]


async def raise_alert(
    tx: Tx,
    cfg: Config,
    *,
    school_id: int,
    person_id: int,
    finding: Finding,
    source: str,
    occurred_at: datetime | None = None,
) -> Raised:
    """Store ``finding`` as an alert of ``person_id`` and deliver it as the module doc says."""
    school = await queries.school_clock(tx, school_id)
    now_utc = await queries.clock(tx)
    local = now_utc.astimezone(ZoneInfo(school.timezone))
    delivery = await _delivery(tx, cfg, school_id, person_id, finding, local)
    alert_id: int | None = await tx.fetchval(
        """INSERT INTO monitoring_alerts(school_id, person_id, rule, severity, reason, facts,
                                         source, dedupe_key, delivery, business_date, occurred_at,
                                         created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, cc_business_date($1), $10, $11)
           ON CONFLICT (school_id, dedupe_key) DO NOTHING RETURNING id""",
        school_id,
        person_id,
        finding.rule,
        finding.severity,
        finding.reason,
        finding.facts,
        source[:100],
        _full_key(person_id, finding),
        delivery.kind,
        occurred_at or now_utc,
        now_utc,
    )
    if alert_id is None:
        return Raised(None, "duplicate")
    if delivery.kind in ("sent", "quiet"):
        await _tell_student(tx, school_id, person_id, alert_id, finding, delivery)
        await _tell_guardians(tx, cfg, school_id, person_id, alert_id, finding, local)
    return Raised(alert_id, delivery.kind)


@dataclass(frozen=True)
class _Delivery:
    kind: str
    phone: str | None
    sms_at: datetime | None  # None: at once


async def _delivery(
    tx: Tx, cfg: Config, school_id: int, person_id: int, finding: Finding, local: datetime
) -> _Delivery:
    who = await queries.student_channels(tx, school_id, person_id)
    cooldown = timedelta(hours=int(cfg.get("delivery", "cooldown_hours")))
    recent = await queries.delivered_since(tx, school_id, person_id, local - timedelta(days=7))
    if any(r.rule == finding.rule and r.created_at > local - cooldown for r in recent):
        return _Delivery("duplicate", None, None)
    if finding.severity < 3 and len(recent) >= int(cfg.get("delivery", "weekly_budget")):
        return _Delivery("budget", None, None)
    start = who.quiet_start or clock(cfg.get("delivery", "quiet_start"))
    end = who.quiet_end or clock(cfg.get("delivery", "quiet_end"))
    phone = who.phone if who.sms else None
    if quiet_now(local, start, end):
        return _Delivery("quiet", phone, quiet_until(local, end))
    return _Delivery("sent", phone, None)


def _title(finding: Finding) -> dict[str, Any]:
    return i18n.message(
        "notice.alert.title", rule=i18n.message(f"notice.alert.rule.{finding.rule}")
    )


async def _sms_text(
    tx: Tx, school_id: int, body: dict[str, Any], *, person_id: int | None, user_id: int | None
) -> str:
    """The alert's SMS in its recipient's language (``users.locale``), signed."""
    locale = await notifications.reader_locale(tx, school_id, person_id=person_id, user_id=user_id)
    return i18n.word(locale, i18n.message("notice.alert.sms", text=body))


async def _tell_student(
    tx: Tx, school_id: int, person_id: int, alert_id: int, finding: Finding, delivery: _Delivery
) -> None:
    notification_id = await notifications.notify(
        tx,
        school_id=school_id,
        person_id=person_id,
        kind=ALERT_KIND,
        title=_title(finding),
        body=finding.reason,
        data={"alert_id": alert_id, "rule": finding.rule},
        dedupe_key=f"monitoring:{school_id}:{alert_id}",
    )
    if notification_id is not None and delivery.phone:
        text = await _sms_text(tx, school_id, finding.reason, person_id=person_id, user_id=None)
        await notifications.enqueue(
            tx,
            "sms",
            {"phone": delivery.phone, "text": text},
            school_id=school_id,
            dedupe_key=f"sms:notification:{notification_id}",
            available_at=delivery.sms_at,
        )


async def _tell_guardians(
    tx: Tx,
    cfg: Config,
    school_id: int,
    person_id: int,
    alert_id: int,
    finding: Finding,
    local: datetime,
) -> None:
    need_consent = bool(cfg.get("delivery", "guardian_consent"))
    for g in await queries.guardians_listening(tx, school_id, person_id, need_consent):
        if g.rules and finding.rule not in g.rules:
            continue
        await tell_guardian(tx, g, school_id, person_id, finding, local, ref=f"alert:{alert_id}")


async def tell_guardian(
    tx: Tx,
    g: queries.GuardianPrefs,
    school_id: int,
    person_id: int,
    finding: Finding,
    local: datetime,
    *,
    ref: str,
) -> None:
    """One parent's message about one child: in-app, and SMS if the parent chose it (held
    through the parent's own quiet hours)."""
    name = await queries.person_name(tx, school_id, person_id)
    body = i18n.message("notice.alert.guardian", name=name, reason=finding.reason)
    notification_id = await notifications.notify(
        tx,
        school_id=school_id,
        user_id=g.user_id,
        kind=ALERT_KIND,
        title=_title(finding),
        body=body,
        data={"person_id": person_id, "rule": finding.rule, "ref": ref},
        dedupe_key=f"monitoring:{school_id}:{ref}:guardian:{g.user_id}",
    )
    if notification_id is None or not (g.sms and g.phone):
        return
    sms_at = None
    if quiet_now(local, g.quiet_start, g.quiet_end) and g.quiet_end is not None:
        sms_at = quiet_until(local, g.quiet_end)
    await notifications.enqueue(
        tx,
        "sms",
        {
            "phone": g.phone,
            "text": await _sms_text(tx, school_id, body, person_id=None, user_id=g.user_id),
        },
        school_id=school_id,
        dedupe_key=f"sms:notification:{notification_id}",
        available_at=sms_at,
    )


def alert_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "person_id": row["person_id"],
        "rule": row["rule"],
        "severity": row["severity"],
        "reason": row["reason"],
        "delivery": row["delivery"],
        "business_date": row["business_date"].isoformat(),
        "created_at": row["created_at"].isoformat(),
    }
