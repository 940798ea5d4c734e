"""A school switches rules on and sets their thresholds (audited: who, when, before and after);
the console page and the API list them with their explanation, units and bounds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.monitoring import threshold_rules
from campuscard.monitoring.rules import ALERT_RULES, DEFAULTS, SETTINGS_GROUPS, rule_names
from campuscard.monitoring.threshold_rules import EXPLAIN, FieldChange, shown, specs
from campuscard.platform import audit, i18n
from campuscard.platform import queries as platform_queries
from campuscard.platform.actors import Actor
from campuscard.platform.errors import ValidationFailed

# The school's monitoring administrator is its school admin; counsellors and the settlement
# office read the settings (they decide what the alerts and candidates they see mean).
SETTERS = ("school_admin",)
READERS = ("school_admin", "counsellor", "settlement")
ORDER = (*ALERT_RULES, *SETTINGS_GROUPS)
AUDIT_ACTION = "monitoring.rule.set"


def _names(rule: str) -> dict[str, str]:
    """A rule's or a settings group's name in every language, from the catalogs."""
    if rule in ALERT_RULES:
        return rule_names(rule)
    return {locale: i18n.translate(locale, f"a.mon_group.{rule}") for locale in i18n.LOCALES}


@dataclass(frozen=True)
class Threshold:
    """One threshold as people read it: amounts in yuan, bounds in the same units."""

    name: str
    label: dict[str, str]
    kind: str  # money, whole, number, clock, switch, choice
    unit: str
    value: Any
    default: Any
    low: Any
    high: Any
    choices: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.value != self.default)


@dataclass(frozen=True)
class RuleSetting:
    rule: str
    name: dict[str, str]
    explanation: dict[str, str]
    enabled: bool
    thresholds: dict[str, Any]  # the school's values in stored units, defaults filled in
    overrides: dict[str, Any]  # only what the school changed (stored units)
    fields: list[Threshold]
    updated_by: str | None
    updated_at: datetime | None


def _setting(
    rule: str,
    enabled: bool,
    own: dict[str, Any],
    updated_by: str | None = None,
    updated_at: datetime | None = None,
) -> RuleSetting:
    values = DEFAULTS[rule] | own
    fields = []
    for spec in specs(rule):
        bounded = spec.kind in (threshold_rules.MONEY, threshold_rules.WHOLE)
        low = shown(spec, int(spec.low)) if bounded else spec.low
        high = shown(spec, int(spec.high)) if bounded else spec.high
        fields.append(
            Threshold(
                spec.name,
                spec.label,
                spec.kind,
                spec.unit,
                shown(spec, values[spec.name]),
                shown(spec, DEFAULTS[rule][spec.name]),
                low if spec.high else None,
                high if spec.high else None,
                spec.choices,
            )
        )
    name = _names(rule)
    return RuleSetting(
        rule, name, EXPLAIN[rule], enabled, values, own, fields, updated_by, updated_at
    )


async def list_rules(conn: Conn, actor: Actor, school_id: int) -> list[RuleSetting]:
    actor.require(*READERS, school_id=school_id)
    rows = {
        r["rule"]: r
        for r in await conn.fetch(
            """SELECT rule, enabled, thresholds, updated_by, updated_at FROM monitoring_rules
                WHERE school_id = $1""",
            school_id,
        )
    }
    out = []
    for rule in ORDER:
        row = rows.get(rule)
        if row is None:
            out.append(_setting(rule, False, {}))
        else:
            out.append(
                _setting(
                    rule,
                    bool(row["enabled"]),
                    dict(row["thresholds"]),
                    row["updated_by"],
                    row["updated_at"],
                )
            )
    return out


async def get_rule(conn: Conn, actor: Actor, school_id: int, rule: str) -> RuleSetting:
    if rule not in DEFAULTS:
        raise ValidationFailed(f"unknown rule {rule!r}", field="rule")
    return next(r for r in await list_rules(conn, actor, school_id) if r.rule == rule)


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
    """Switch ``rule`` on or off and replace the school's overrides of its thresholds, given
    in stored units (fen for amounts)."""
    actor.require(*SETTERS, school_id=school_id)
    if rule not in DEFAULTS:
        raise ValidationFailed(f"unknown rule {rule!r}", field="rule")
    return await _write(
        tx, actor, school_id, rule, enabled, threshold_rules.check(rule, thresholds)
    )


@owns_transaction
async def do_change_rule(
    tx: Tx,
    actor: Actor,
    school_id: int,
    rule: str,
    *,
    enabled: bool,
    given: Mapping[str, object],
) -> RuleSetting:
    """The console's and the API's change: thresholds as people give them (amounts in yuan);
    a threshold not given, or given at its default, follows the default."""
    actor.require(*SETTERS, school_id=school_id)
    if rule not in DEFAULTS:
        raise ValidationFailed(f"unknown rule {rule!r}", field="rule")
    if not isinstance(enabled, bool):
        raise ValidationFailed("must be true or false", field="enabled")
    return await _write(
        tx, actor, school_id, rule, enabled, threshold_rules.from_input(rule, given)
    )


async def _write(
    tx: Tx, actor: Actor, school_id: int, rule: str, enabled: bool, own: dict[str, Any]
) -> RuleSetting:
    before = await tx.fetchrow(
        "SELECT enabled, thresholds FROM monitoring_rules WHERE school_id = $1 AND rule = $2 "
        "FOR UPDATE",
        school_id,
        rule,
    )
    row = await tx.fetchrow(
        """INSERT INTO monitoring_rules(school_id, rule, enabled, thresholds, updated_by)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (school_id, rule) DO UPDATE
                 SET enabled = $3, thresholds = $4, updated_by = $5,
                     updated_at = EXCLUDED.updated_at
           RETURNING updated_by, updated_at""",
        school_id,
        rule,
        enabled,
        own,
        actor.name,
    )
    old = (
        {"enabled": before["enabled"], "thresholds": dict(before["thresholds"])} if before else None
    )
    new = {"enabled": enabled, "thresholds": own}
    if old != new:
        await audit.record(
            tx,
            actor,
            AUDIT_ACTION,
            school_id=school_id,
            target_type="monitoring_rule",
            target_id=rule,
            before=old,
            after=new,
        )
    assert row is not None  # an upsert returns its row
    return _setting(rule, enabled, own, row["updated_by"], row["updated_at"])


@dataclass(frozen=True)
class Change:
    """One audited change of a rule: who, when, and each value before and after."""

    at: datetime
    actor: str
    rule: str
    rule_name: dict[str, str]
    fields: list[FieldChange]


async def changes(conn: Conn, actor: Actor, school_id: int, *, limit: int = 20) -> list[Change]:
    """The latest changes of the school's monitoring settings, newest first."""
    actor.require(*READERS, school_id=school_id)
    if not 1 <= limit <= 200:
        raise ValidationFailed("must be between 1 and 200", field="limit")
    out = []
    for e in await platform_queries.audit_entries(
        conn, school_id, action_prefix=AUDIT_ACTION, before_id=None, limit=limit
    ):
        rule = str(e["target_id"])
        if rule not in DEFAULTS or e["action"] != AUDIT_ACTION:
            continue
        out.append(
            Change(
                e["created_at"],
                str(e["actor"]),
                rule,
                _names(rule),
                threshold_rules.describe_change(rule, e["before"], e["after"] or {}),
            )
        )
    return out
