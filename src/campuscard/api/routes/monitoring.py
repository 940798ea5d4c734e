"""Monitoring settings over HTTP (docs/monitoring.md): the school's rules with their explanation,
thresholds, units and bounds; switching a rule and setting its thresholds (the school admin;
amounts in yuan, audited); the history of those changes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.edge.deps import Pool, school_id_for
from campuscard.monitoring import school_rules

router = APIRouter(prefix="/api/v1/schools/{school}/monitoring", tags=["monitoring"])
RuleName = Annotated[str, Path(max_length=32, description="big_spend, night_spend, … delivery")]
Value = str | int | float | bool


class Words(BaseModel):
    zh_CN: str = Field(alias="zh-CN", serialization_alias="zh-CN")
    en: str


class ThresholdOut(BaseModel):
    name: str
    label: Words
    kind: str = Field(description="money (yuan text), whole, number, clock (HH:MM), switch, choice")
    unit: str = Field(description="yuan, days, minutes, hours, payments, metres, mps, … or ''")
    value: Value
    default: Value
    min: Value | None = Field(description="lowest allowed, in the same units (none: not a number)")
    max: Value | None
    choices: list[str]


class RuleOut(BaseModel):
    rule: str
    name: Words
    explanation: Words
    enabled: bool
    thresholds: list[ThresholdOut]
    updated_by: str | None
    updated_at: datetime | None


class RuleIn(Body):
    enabled: bool
    thresholds: dict[str, Value] = Field(
        default_factory=dict,
        max_length=20,
        description='threshold -> value; amounts as yuan text ("15.00"), times as "22:30"; '
        "a threshold left out follows the default",
    )


class FieldChangeOut(BaseModel):
    name: str
    label: Words
    unit: str
    before: Value
    after: Value


class ChangeOut(BaseModel):
    at: datetime
    actor: str
    rule: str
    fields: list[FieldChangeOut]


def _out(s: school_rules.RuleSetting) -> RuleOut:
    return RuleOut(
        rule=s.rule,
        name=Words.model_validate(s.name),
        explanation=Words.model_validate(s.explanation),
        enabled=s.enabled,
        thresholds=[
            ThresholdOut(
                name=t.name,
                label=Words.model_validate(t.label),
                kind=t.kind,
                unit=t.unit,
                value=t.value,
                default=t.default,
                min=t.low,
                max=t.high,
                choices=list(t.choices),
            )
            for t in s.fields
        ],
        updated_by=s.updated_by,
        updated_at=s.updated_at,
    )


@router.get("/rules", response_model=list[RuleOut], response_model_by_alias=True)
async def list_rules(school: str, pool: Pool, actor: CurrentActor) -> list[RuleOut]:
    """Every rule and settings group, switched on or not, with its thresholds (school admins,
    counsellors, the settlement office)."""
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return [_out(s) for s in await school_rules.list_rules(conn, actor, school_id)]


@router.put("/rules/{rule}", response_model=RuleOut, response_model_by_alias=True)
async def set_rule(
    school: str, rule: RuleName, body: RuleIn, pool: Pool, actor: CurrentActor
) -> RuleOut:
    """Switch a rule on or off and set its thresholds (the school admin); audited with the
    values before and after. A refused value names its field (``thresholds.below``)."""
    school_id = await school_id_for(pool, actor, school)
    setting = await school_rules.do_change_rule(
        pool, actor, school_id, rule, enabled=body.enabled, given=body.thresholds
    )
    return _out(setting)


@router.get("/rule-changes", response_model=list[ChangeOut], response_model_by_alias=True)
async def rule_changes(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[ChangeOut]:
    """Who changed which rule when, each value before and after (newest first)."""
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        found = await school_rules.changes(conn, actor, school_id, limit=limit)
    return [
        ChangeOut(
            at=c.at,
            actor=c.actor,
            rule=c.rule,
            fields=[
                FieldChangeOut(
                    name=f.name,
                    label=Words.model_validate(f.label),
                    unit=f.unit,
                    before=f.before,
                    after=f.after,
                )
                for f in c.fields
            ],
        )
        for c in found
    ]
