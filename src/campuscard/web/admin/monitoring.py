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
from openpyxl import Workbook
from openpyxl.styles import Font

from campuscard.db.pool import PgPool
from campuscard.documents.exports import safe_row, workbook_bytes
from campuscard.edge.deps import Pool
from campuscard.monitoring import exports, hardship, hardship_rules, rules, supervision
from campuscard.monitoring.rules import ALERT_RULES, TIERS
from campuscard.platform import i18n
from campuscard.platform.errors import DomainError, NotFound, ValidationFailed
from campuscard.settlement import dashboard
from campuscard.web import menu
from campuscard.web.admin.routes import BASE, SchoolCode, enter
from campuscard.web.core import Page, PostPage, UserPage, opt_date, redirect, render

router = APIRouter(prefix="/admin", include_in_schema=False)
menu.add("admin", "a.monitoring", BASE + "/monitoring", set(supervision.SUPERVISORS), 70)

DEFAULT_DAYS = 14
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def rule_name(page: Page, rule: str) -> str:
    return rules.rule_name(rule, page.locale) if rule in ALERT_RULES else rule


def tier_name(page: Page, tier: str) -> str:
    return page.t(f"a.mon_tier.{tier}")


def reason_text(page: Page, reason: dict[str, Any]) -> str:
    """An alert's reason in the page's language: a message, or a text per language (alerts
    raised before reasons were catalog keys)."""
    return i18n.word(page.locale, reason)


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


def _count_rows(page: Page, sheet: exports.SupervisionSheet) -> list[list[Any]]:
    return [
        [
            c.business_date.isoformat(),
            rule_name(page, c.rule),
            c.class_name or page.t("a.mon_no_class"),
            c.alerts,
        ]
        for c in sheet.counts
    ]


def _tier_rows(page: Page, sheet: exports.SupervisionSheet) -> list[list[Any]]:
    return [
        [t.number, t.name, t.class_name or page.t("a.mon_no_class"), tier_name(page, t.tier)]
        for t in sheet.tiers
    ]


def _count_head(page: Page) -> list[str]:
    return [
        page.t("a.mon_day"),
        page.t("a.mon_rule"),
        page.t("a.mon_class"),
        page.t("a.mon_alerts"),
    ]


def _tier_head(page: Page) -> list[str]:
    return [
        page.t("a.hs_number"),
        page.t("a.mon_student"),
        page.t("a.mon_class"),
        page.t("a.mon_tier"),
    ]


def _csv(head: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in (head, *rows):
        writer.writerow(safe_row(row))
    return "\ufeff" + out.getvalue()


@router.get("/s/{code}/monitoring/{what}.{kind}")
async def monitoring_export(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    what: Annotated[str, Path(pattern="^(export|export-tiers)$")],
    kind: Annotated[str, Path(pattern="^(csv|xlsx)$")],
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """The supervision exports, with the page's scope (a counsellor: their own classes) and in
    the audit log: alerts counted by day, rule and class (no names, no amounts) as
    ``export.csv``; the risk tiers (number, name, class, tier; no payments) as
    ``export-tiers.csv``; both as the sheets of ``export.xlsx``."""
    school_id = await enter(page, pool, code, "a.monitoring")
    assert page.user is not None
    if what == "export-tiers" and kind == "xlsx":
        raise NotFound("the workbook is export.xlsx", field="path")
    start, end = await _span(pool, school_id, since, until)
    sheet = await exports.do_export_supervision(
        pool, page.user, school_id, since=start, until=end, kind=kind
    )
    name = f"{code}-alerts-{start.isoformat()}-{end.isoformat()}"
    if kind == "xlsx":
        book = Workbook()
        counts = book.active
        assert counts is not None
        counts.title = page.t("a.mon_by_day")[:31]
        tiers = book.create_sheet(page.t("a.mon_tiers")[:31])
        for ws, head, rows in (
            (counts, _count_head(page), _count_rows(page, sheet)),
            (tiers, _tier_head(page), _tier_rows(page, sheet)),
        ):
            ws.append(head)
            for cell in ws[1]:
                cell.font = Font(bold=True)
            for row in rows:
                ws.append(row)
        return Response(
            workbook_bytes(book),
            media_type=XLSX,
            headers={"content-disposition": f'attachment; filename="{name}.xlsx"'},
        )
    if what == "export-tiers":
        body = _csv(_tier_head(page), _tier_rows(page, sheet))
        name = f"{code}-risk-tiers-{end.isoformat()}"
    else:
        body = _csv(_count_head(page), _count_rows(page, sheet))
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}.csv"'},
    )


# ---- hidden hardship --------------------------------------------------------------------
menu.add("admin", "a.hardship", BASE + "/hardship", set(hardship.REVIEWERS), 72)


def _month(value: str, today: date) -> date:
    value = (value or "").strip()
    if not value:
        return (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    try:
        return date.fromisoformat(value + "-01" if len(value) == 7 else value).replace(day=1)
    except ValueError as err:
        raise ValidationFailed("must be a month like 2026-03", field="month") from err


async def _hardship_view(
    page: Page,
    pool: PgPool,
    school_id: int,
    month_text: str,
    *,
    error: DomainError | None = None,
    proposed: int | None = None,
) -> Response:
    assert page.user is not None
    lang = "en" if page.locale == "en" else "zh-CN"
    async with pool.acquire() as conn:
        today = await dashboard.business_date(conn, school_id)
        month = _month(month_text, today)
        on, method, values = await hardship.method_of(conn, school_id)
        rows = await hardship.candidates(conn, page.user, school_id, month)
        groups = await hardship.report(conn, page.user, school_id, month)
    return render(
        page,
        "admin/hardship.html",
        status=error.status if error else 200,
        month=month.strftime("%Y-%m"),
        on=on,
        method=method,
        values=values,
        inputs=hardship_rules.SCORE_INPUTS,
        exclusions=hardship_rules.EXCLUSIONS,
        rows=rows,
        groups=groups,
        lk=lang,
        error=error,
        proposed=proposed,
    )


@router.get("/s/{code}/hardship")
async def hardship_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    month: Annotated[str, Query(max_length=10)] = "",
    proposed: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    school_id = await enter(page, pool, code, "a.hardship")
    return await _hardship_view(page, pool, school_id, month, proposed=proposed)


@router.post("/s/{code}/hardship/find")
async def hardship_find(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    month: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Run the school's method over a finished month and store its candidates."""
    school_id = await enter(page, pool, code, "a.hardship")
    assert page.user is not None
    try:
        async with pool.acquire() as conn:
            first = _month(month, await dashboard.business_date(conn, school_id))
        await hardship.do_find_candidates(pool, page.user, school_id, first)
    except DomainError as err:
        return await _hardship_view(page, pool, school_id, month, error=err)
    return redirect(f"/admin/s/{code}/hardship?month={first:%Y-%m}", request=page.request)


@router.post("/s/{code}/hardship/propose")
async def hardship_propose(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    month: Annotated[str, Form(max_length=10)] = "",
    name: Annotated[str, Form(max_length=64)] = "",
    candidate: Annotated[list[int] | None, Form()] = None,
) -> Response:
    """A reviewer proposes quiet help for the chosen candidates: one subsidy batch that a
    second person approves on the subsidies page; nothing is paid here."""
    school_id = await enter(page, pool, code, "a.hardship")
    assert page.user is not None
    try:
        batch_id = await hardship.do_propose_quiet_subsidy(
            pool, page.user, school_id, candidate or [], name=name.strip()
        )
    except DomainError as err:
        return await _hardship_view(page, pool, school_id, month, error=err)
    return redirect(
        f"/admin/s/{code}/hardship?month={month}&proposed={batch_id}", request=page.request
    )


@router.post("/s/{code}/hardship/exclude")
async def hardship_exclude(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    month: Annotated[str, Form(max_length=10)] = "",
    number: Annotated[str, Form(max_length=32)] = "",
    kind: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Record that a student lives off campus or declared a diet (told to staff)."""
    school_id = await enter(page, pool, code, "a.hardship")
    assert page.user is not None
    try:
        async with pool.acquire() as conn:
            person_id = await hardship.student_by_number(conn, school_id, number)
        await hardship.do_exclude(pool, page.user, school_id, person_id, kind)
    except DomainError as err:
        return await _hardship_view(page, pool, school_id, month, error=err)
    return redirect(f"/admin/s/{code}/hardship?month={month}", request=page.request)


@router.get("/s/{code}/hardship/export.{kind}")
async def hardship_report_export(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    kind: Annotated[str, Path(pattern="^(csv|xlsx)$")],
    month: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """The month's report by class as CSV or Excel: students, candidates and proposals per
    class, blank for a class too small to report; the reviewer's scope; audited."""
    school_id = await enter(page, pool, code, "a.hardship")
    assert page.user is not None
    async with pool.acquire() as conn:
        first = _month(month, await dashboard.business_date(conn, school_id))
    rows = await exports.do_export_hardship_report(
        pool, page.user, school_id, month=first, kind=kind
    )
    head = [
        page.t("a.mon_class"),
        page.t("a.hs_students"),
        page.t("a.hs_candidates"),
        page.t("a.hs_status.proposed"),
    ]
    table: list[list[Any]] = [
        [
            g.class_name or page.t("a.mon_no_class"),
            g.students,
            page.t("a.hs_too_small") if g.candidates is None else g.candidates,
            "" if g.proposed is None else g.proposed,
        ]
        for g in rows
    ]
    name = f"{code}-quiet-help-{first:%Y-%m}"
    if kind == "xlsx":
        book = Workbook()
        ws = book.active
        assert ws is not None
        ws.title = page.t("a.hs_groups")[:31]
        ws.append(head)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in table:
            ws.append(row)
        return Response(
            workbook_bytes(book),
            media_type=XLSX,
            headers={"content-disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return Response(
        _csv(head, table),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}.csv"'},
    )
