"""A school switches rules on and sets their thresholds (audited); the console lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.monitoring.rules import ALERT_RULES, DEFAULTS, RULE_NAMES, check_thresholds
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import ValidationFailed

SETTERS = ("school_admin",)
READERS = ("school_admin", "counsellor", "settlement")


@dataclass(frozen=True)
class RuleSetting:
    rule: str
    name: dict[str, str]
    enabled: bool
    thresholds: dict[str, Any]  # the school's values, defaults filled in
    overrides: dict[str, Any]  # only what the school changed


def _setting(rule: str, enabled: bool, own: dict[str, Any]) -> RuleSetting:
    name = (
        RULE_NAMES.get(rule)
        or {
            "delivery": {"zh-CN": "提醒发送", "en": "Delivery"},
            "hardship": {"zh-CN": "隐性困难资助", "en": "Hidden hardship"},
        }[rule]
    )
    return RuleSetting(rule, name, enabled, DEFAULTS[rule] | own, own)


async def list_rules(conn: Conn, actor: Actor, school_id: int) -> list[RuleSetting]:
    actor.require(*READERS, school_id=school_id)
    rows = {
        r["rule"]: r
        for r in await conn.fetch(
            "SELECT rule, enabled, thresholds FROM monitoring_rules WHERE school_id = $1",
            school_id,
        )
    }
    out = []
    for rule in (*ALERT_RULES, "delivery", "hardship"):
        row = rows.get(rule)
        out.append(
            _setting(rule, bool(row and row["enabled"]), dict(row["thresholds"]) if row else {})
        )
    return out


@owns_transaction
async def do_set_rule(
    tx: Tx,
    actor: Actor,
    school_id: int,
    rule: str,
    *,
    enabled: bool,
    thresholds: dict[str, Any],
) -> RuleSetting:
    """Switch ``rule`` on or off and replace the school's overrides of its thresholds."""
    actor.require(*SETTERS, school_id=school_id)
    if rule not in DEFAULTS:
        raise ValidationFailed(f"unknown rule {rule!r}", field="rule")
    own = check_thresholds(rule, thresholds)
    before = await tx.fetchrow(
        "SELECT enabled, thresholds FROM monitoring_rules WHERE school_id = $1 AND rule = $2 "
        "FOR UPDATE",
        school_id,
        rule,
    )
    await tx.execute(
        """INSERT INTO monitoring_rules(school_id, rule, enabled, thresholds, updated_by)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (school_id, rule) DO UPDATE
                 SET enabled = $3, thresholds = $4, updated_by = $5, updated_at = now()""",
        school_id,
        rule,
        enabled,
        own,
        actor.name,
    )
    await audit.record(
        tx,
        actor,
        "monitoring.rule.set",
        school_id=school_id,
        target_type="monitoring_rule",
        target_id=rule,
        before=dict(before) if before else None,
        after={"enabled": enabled, "thresholds": own},
    )
    return _setting(rule, enabled, own)
