"""The demo campus watched over: its past week read by the school's rules at the instants the
payments were made, each injected episode alerting with its reason, ordinary days quiet enough
(median alerts per student per week at most 1), the dieting students never candidates, and the
worker's cursor past the history."""

from __future__ import annotations

import statistics
from typing import Any

import asyncpg

from campuscard import demo
from campuscard.platform import i18n

DAYS = 7


async def test_the_demo_week_raises_the_alerts_it_was_given_and_few_others(
    conn: asyncpg.Connection[Any],
) -> None:
    campus = await demo.load_demo(conn, history_days=DAYS)
    watched = campus.watched
    assert watched is not None and watched.evaluated > 500
    rows = await conn.fetch(
        "SELECT rule, reason, delivery, created_at, occurred_at FROM monitoring_alerts "
        "WHERE school_id = $1",
        campus.school_id,
    )
    reasons: dict[str, list[str]] = {}
    for r in rows:
        reasons.setdefault(r["rule"], []).append(i18n.word("zh-CN", r["reason"]))
    assert {"big_spend", "night_spend", "rapid_payments", "far_apart", "no_meal"} <= set(reasons)
    assert any("单笔消费 ¥50.00" in t for t in reasons["big_spend"])
    assert any("01:10" in t for t in reasons["night_spend"])
    assert any("米" in t for t in reasons["far_apart"])
    # read at the payments' own instants, not when the demo was made
    assert all(r["created_at"] >= r["occurred_at"] for r in rows)
    assert min(r["created_at"] for r in rows).date() < max(r["created_at"] for r in rows).date()
    # the budget: most students hear nothing in an ordinary week
    assert statistics.median(watched.per_student_week) <= 1
    # the students who declared a diet are excluded; the worker goes on after the history
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM monitoring_exclusions WHERE school_id = $1 AND kind = 'diet'",
            campus.school_id,
        )
        == 2
    )
    cursor = await conn.fetchval(
        "SELECT last_id FROM monitoring_cursors WHERE school_id = $1 AND source = 'payment'",
        campus.school_id,
    )
    assert cursor == await conn.fetchval(  # today's payments are the worker's to read
        "SELECT max(id) FROM payments WHERE school_id = $1 AND business_date < cc_business_date($1)",
        campus.school_id,
    )
