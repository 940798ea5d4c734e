"""The console's monitoring settings (docs/monitoring.md): each rule with its explanation, on or
off, its thresholds with units, defaults and bounds; the school admin changes them, the others
who watch over students read them; every change is listed with who, when, before and after."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from campuscard.db.pool import PgPool
from campuscard.edge.deps import Pool
from campuscard.monitoring import school_rules, threshold_rules
from campuscard.platform.errors import DomainError, ValidationFailed
from campuscard.web import menu
from campuscard.web.admin.routes import BASE, SchoolCode, enter
from campuscard.web.core import Page, PostPage, UserPage, redirect, render

router = APIRouter(prefix="/admin", include_in_schema=False)
menu.add("admin", "a.mon_rules", BASE + "/monitoring/rules", set(school_rules.READERS), 71)

FIELD = "t."  # form fields of thresholds: t.<name>


def _error_text(page: Page, rule: str, error: DomainError) -> str:
    """A refusal of one threshold in the page's language, naming the threshold by its label
    and saying the allowed range; other refusals as every page says them."""
    name = (error.field or "").removeprefix("thresholds.")
    spec = next((s for s in threshold_rules.SPECS.get(rule, ()) if s.name == name), None)
    if spec is None or not isinstance(error, ValidationFailed):
        return page.err(error)
    label = spec.label["en" if page.locale == "en" else "zh-CN"]
    if page.locale == "en":
        return f"{label}: {error.message}"
    if spec.kind == threshold_rules.CLOCK:
        return page.t("a.mr_err_clock", field=label)
    if error.code != ValidationFailed.code:  # an amount that is not one ("12.345")
        return page.t("a.mr_err_field", field=label, reason=page.err(error))
    if not error.message.startswith("must be between"):
        return page.t("a.mr_err_choose", field=label)
    low, high = spec.low, spec.high
    if spec.kind == threshold_rules.MONEY:
        low, high = threshold_rules.shown(spec, int(low)), threshold_rules.shown(spec, int(high))
    elif spec.kind == threshold_rules.WHOLE:
        low, high = int(low), int(high)
    unit = page.t(f"a.mr_unit.{spec.unit}") if spec.unit else ""
    return page.t("a.mr_err_range", field=label, low=low, high=high, unit=unit)


async def _view(
    page: Page,
    pool: PgPool,
    school_id: int,
    *,
    saved: str = "",
    failed: tuple[str, DomainError, dict[str, Any], bool] | None = None,
) -> Response:
    assert page.user is not None
    lk = "en" if page.locale == "en" else "zh-CN"
    async with pool.acquire() as conn:
        settings = await school_rules.list_rules(conn, page.user, school_id)
        history = await school_rules.changes(conn, page.user, school_id, limit=30)
    can_set = page.user.has(*school_rules.SETTERS, school_id=school_id)
    error_rule, error, typed, typed_on = failed if failed else ("", None, {}, False)
    return render(
        page,
        "admin/monitoring_rules.html",
        status=error.status if error else 200,
        settings=settings,
        history=history,
        can_set=can_set,
        saved=saved,
        error_rule=error_rule,
        error_field=(error.field or "").removeprefix("thresholds.") if error else "",
        error_text=_error_text(page, error_rule, error) if error else "",
        typed=typed,
        typed_on=typed_on,
        lk=lk,
    )


@router.get("/s/{code}/monitoring/rules")
async def rules_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    saved: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.mon_rules")
    return await _view(page, pool, school_id, saved=saved)


@router.post("/s/{code}/monitoring/rules/{rule}")
async def rules_save(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    rule: Annotated[str, Path(max_length=32)],
) -> Response:
    """Save one rule: on or off and its thresholds as typed (amounts in yuan)."""
    school_id = await enter(page, pool, code, "a.mon_rules")
    assert page.user is not None
    form = await page.request.form()
    enabled = form.get("enabled") == "on"
    given: dict[str, Any] = {
        key.removeprefix(FIELD): value
        for key, value in form.items()
        if key.startswith(FIELD) and isinstance(value, str)
    }
    try:
        await school_rules.do_change_rule(
            pool, page.user, school_id, rule, enabled=enabled, given=given
        )
    except DomainError as err:
        return await _view(page, pool, school_id, failed=(rule, err, given, enabled))
    return redirect(
        f"/admin/s/{code}/monitoring/rules?saved={rule}#rule-{rule}", request=page.request
    )
