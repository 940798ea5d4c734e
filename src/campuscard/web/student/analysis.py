"""Monthly analysis on the phone (/m/analysis, 消费管理): income against spending by category for
the last six months, this month against the usual pace, and the opt-in pace reminder."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from campuscard.edge.deps import Pool
from campuscard.spending import analysis, rules
from campuscard.web import charts, menu
from campuscard.web.core import PostPage, UserPage, redirect, render
from campuscard.web.student.routes import CHOOSE_CHILD, HOLDERS, PersonQ, holder

router = APIRouter(prefix="/m", include_in_schema=False)
menu.add("student", "m.analysis", "/m/analysis", HOLDERS, 25)


@router.get("/analysis")
async def analysis_page(
    page: UserPage, pool: Pool, person: PersonQ = None, done: str = ""
) -> Response:
    page.require("m.analysis")
    async with pool.acquire() as conn:
        subject = await holder(page, conn, person)
        if subject is None:
            return redirect(CHOOSE_CHILD)
        a = await analysis.analyse(conn, subject["school_id"], subject["id"])
    chart = charts.bar_chart(
        [m.month.strftime("%m") for m in a.months],
        [
            charts.Series(page.t("s.income"), [m.income_total for m in a.months]),
            charts.Series(page.t("s.spending"), [m.spending_total for m in a.months]),
        ],
        title=page.t("s.chart_title"),
        height=220,
        width=360,
    )
    this = a.months[-1]
    earlier = [m for m in a.months[:-1] if m.spending_total > 0][-rules.USUAL_MONTHS :]
    usual = {
        c: sum(m.spending.get(c, 0) for m in earlier) // len(earlier) if earlier else 0
        for c in rules.SPENDING
    }
    return render(
        page,
        "student/analysis.html",
        subject=subject,
        a=a,
        this=this,
        usual=usual,
        chart=chart,
        spending_cats=rules.SPENDING,
        income_cats=rules.INCOME,
        own=page.user is not None and page.user.person_id == subject["id"],
        done=done[:10],
    )


@router.post("/analysis/reminder")
async def set_reminder(
    page: PostPage, pool: Pool, enabled: Annotated[str, Form(max_length=5)] = ""
) -> Response:
    actor = page.require("m.analysis")
    await analysis.do_set_pace_reminder(pool, actor, enabled=enabled == "on")
    return redirect("/m/analysis?done=saved", request=page.request)
