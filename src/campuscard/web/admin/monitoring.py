"""Console pages of monitoring (docs/monitoring.md): the supervision dashboard — alerts by rule,
class and day with a CSV export, the risk tiers of a counsellor's classes, the audited
drill-down — and the hidden-hardship review. Same services as everywhere else."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import Response

from campuscard.db.pool import PgPool
from campuscard.documents.exports import safe_row
from campuscard.edge.deps import Pool
from campuscard.monitoring import supervision
from campuscard.monitoring.rules import ALERT_RULES, RULE_NAMES, TIER_NAMES, TIERS
from campuscard.platform.errors import DomainError
from campuscard.settlement import dashboard
from campuscard.web import menu
from campuscard.web.admin.routes import BASE, SchoolCode, enter
from campuscard.web.core import Page, PostPage, UserPage, opt_date, render

router = APIRouter(prefix="/admin", include_in_schema=False)
menu.add("admin", "a.monitoring", BASE + "/monitoring", set(supervision.SUPERVISORS), 70)

DEFAULT_DAYS = 14


def rule_name(page: Page, rule: str) -> str:
    names = RULE_NAMES.get(rule)
    if names is None:
        return rule
    return names["en"] if page.locale == "en" else names["zh-CN"]


def tier_name(page: Page, tier: str) -> str:
    return TIER_NAMES[tier]["en" if page.locale == "en" else "zh-CN"]


def reason_text(page: Page, reason: dict[str, str]) -> str:
    return reason.get("en" if page.locale == "en" else "zh-CN") or reason.get("zh-CN", "")


async def _span(pool: PgPool, school_id: int, since: str, until: str) -> tuple[date, date]:
    end = opt_date(until, "until")
    if end is None:
        async with pool.acquire() as conn:
            end = await dashboard.business_date(conn, school_id)
    start = opt_date(since, "since") or end - timedelta(days=DEFAULT_DAYS - 1)
    return start, end


def _summary(counts: list[supervision.Count]) -> dict[str, Any]:
    by_rule: Counter[str] = Counter()
    by_class: Counter[str] = Counter()
    by_day: dict[date, Counter[str]] = defaultdict(Counter)
    for c in counts:
        by_rule[c.rule] += c.alerts
        by_class[c.class_name] += c.alerts
        by_day[c.business_date][c.rule] += c.alerts
    rules = [r for r in ALERT_RULES if by_rule[r]]
    return {
        "total": sum(by_rule.values()),
        "rules": rules,
        "by_rule": by_rule,
        "by_class": sorted(by_class.items(), key=lambda kv: (-kv[1], kv[0])),
        "days": [(d, by_day[d]) for d in sorted(by_day, reverse=True)],
    }


async def _view(
    page: Page,
    pool: PgPool,
    school_id: int,
    since: str,
    until: str,
    *,
    drill: tuple[int, list[dict[str, Any]]] | None = None,
    error: DomainError | None = None,
) -> Response:
    assert page.user is not None
    start, end = await _span(pool, school_id, since, until)
    async with pool.acquire() as conn:
        counts = await supervision.dashboard(conn, page.user, school_id, since=start, until=end)
        tiers = await supervision.risk_tiers(conn, page.user, school_id)
    order = {t: i for i, t in enumerate(reversed(TIERS))}
    tiers.sort(key=lambda t: (order[t.tier], t.number))
    drilled = None
    if drill is not None:
        who = next((t for t in tiers if t.person_id == drill[0]), None)
        drilled = {"who": who, "alerts": drill[1]}
    return render(
        page,
        "admin/monitoring.html",
        status=error.status if error else 200,
        since=start,
        until=end,
        summary=_summary(counts),
        tiers=tiers,
        drilled=drilled,
        error=error,
        rule_name=lambda r: rule_name(page, r),
        tier_name=lambda t: tier_name(page, t),
        reason_text=lambda r: reason_text(page, r),
    )


@router.get("/s/{code}/monitoring")
async def monitoring_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.monitoring")
    return await _view(page, pool, school_id, since, until)


@router.post("/s/{code}/monitoring/drill-down/{person_id}")
async def monitoring_drill_down(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    person_id: Annotated[int, Path(ge=1, le=2**62)],
    reason: Annotated[str, Form(max_length=200)] = "",
    since: Annotated[str, Form(max_length=10)] = "",
    until: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """The alerts behind one student's tier: a reason is required and the opening audited."""
    school_id = await enter(page, pool, code, "a.monitoring")
    assert page.user is not None
    try:
        rows = await supervision.do_drill_down(pool, page.user, school_id, person_id, reason=reason)
    except DomainError as err:
        return await _view(page, pool, school_id, since, until, error=err)
    return await _view(page, pool, school_id, since, until, drill=(person_id, rows))


@router.get("/s/{code}/monitoring/export.csv")
async def monitoring_export(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """Alerts counted by day, rule and class (no names, no amounts): for the school's report."""
    school_id = await enter(page, pool, code, "a.monitoring")
    assert page.user is not None
    start, end = await _span(pool, school_id, since, until)
    async with pool.acquire() as conn:
        counts = await supervision.dashboard(conn, page.user, school_id, since=start, until=end)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        safe_row(
            [
                page.t("a.mon_day"),
                page.t("a.mon_rule"),
                page.t("a.mon_class"),
                page.t("a.mon_alerts"),
            ]
        )
    )
    for c in counts:
        writer.writerow(
            safe_row(
                [
                    c.business_date.isoformat(),
                    rule_name(page, c.rule),
                    c.class_name or page.t("a.mon_no_class"),
                    c.alerts,
                ]
            )
        )
    name = f"{code}-alerts-{start.isoformat()}-{end.isoformat()}"
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}.csv"'},
    )
