"""Console page of devices that work on their own: metered devices (showers, water, laundry,
computer labs, the campus bus) by kind with their tariffs and limits, the money on hold now,
and the offline tills with their uploads per day (duplicates, gaps, chain breaks, overdrafts),
in words a canteen manager can read. Read only; the same queries as the reports."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from campuscard.db.pool import Conn
from campuscard.edge.deps import Pool
from campuscard.metering import queries as metering_queries
from campuscard.metering import rules as metering_rules
from campuscard.offline import queries as offline_queries
from campuscard.offline import rules as offline_rules
from campuscard.web import menu
from campuscard.web.admin.routes import BASE, SchoolCode, enter
from campuscard.web.core import Page, UserPage, fen_of, opt_date, render

router = APIRouter(prefix="/admin", include_in_schema=False)
menu.add("admin", "a.devices", BASE + "/devices", {"school_admin", "settlement"}, 55)


def price_text(rate: int) -> str:
    """A rate in thousandths of a fen per unit as yuan, at least two decimals (0.005, 4.00)."""
    yuan = Decimal(rate) / 100_000
    text = f"{yuan:f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def tariff_view(raw: Any) -> dict[str, Any]:
    """A stored tariff as rows a page shows: per card kind, each tier with its range and price."""
    data = json.loads(raw) if isinstance(raw, str) else dict(raw)
    tariff = metering_rules.parse_tariff(data)
    ladders = []
    for card_kind, ladder in tariff.ladders.items():
        tiers, start = [], 0
        for tier in ladder:
            tiers.append({"from": start, "upto": tier.upto, "price": price_text(tier.rate)})
            start = tier.upto or start
        ladders.append({"card_kind": card_kind, "tiers": tiers})
    return {
        "unit": tariff.unit,
        "ladders": ladders,
        "session_cap": tariff.session_cap,
        "daily_amount_cap": tariff.daily_amount_cap,
        "daily_count_cap": tariff.daily_count_cap,
        "min_gap_seconds": tariff.min_gap_seconds,
        "max_session_units": tariff.max_session_units,
    }


def _break_text(page: Page, text: str | None) -> str:
    return page.t("dev.sep").join(
        page.t(f"dev.break.{kind}", **{k: _money_figure(page, k, v) for k, v in figures.items()})
        for kind, figures in offline_rules.describe_break(text)
    )


def _money_figure(page: Page, name: str, value: Any) -> Any:
    """A chain break's amounts (yuan text) as this page writes money; other figures as they are."""
    return page.money(fen_of(value)) if name in offline_rules.FEN_PARTS else value


async def offline_report(
    page: Page, conn: Conn, school_id: int, wanted: date | None, *, merchant_id: int | None = None
) -> dict[str, Any]:
    """What ``_offline_report.html`` shows: the school's limits, uploads per day, the chosen
    day's tills and records to look at, each till's numbers (one merchant's tills when given;
    then without the holders' debts, which are the school's business)."""
    days = await offline_queries.days(conn, school_id, merchant_id=merchant_id)
    shown: date | None = wanted or (days[0]["business_date"] if days else None)
    notable = (
        await offline_queries.notable_records(conn, school_id, shown, merchant_id=merchant_id)
        if shown
        else []
    )
    for r in notable:
        r["break_text"] = _break_text(page, r["chain_break"])
    return {
        "limits": await offline_queries.risk_limits(conn, school_id),
        "days": days,
        "shown": shown,
        "day_devices": (
            await offline_queries.day_devices(conn, school_id, shown, merchant_id=merchant_id)
            if shown
            else []
        ),
        "notable": notable,
        "tills": await offline_queries.devices(conn, school_id, merchant_id=merchant_id),
        "debts": None if merchant_id else await offline_queries.debts(conn, school_id),
    }


@router.get("/s/{code}/devices")
async def devices_page(page: UserPage, pool: Pool, code: SchoolCode, day: str = "") -> Response:
    school_id = await enter(page, pool, code, "a.devices")
    wanted = opt_date(day, "day")
    async with pool.acquire() as conn:
        meters = await metering_queries.devices(conn, school_id)
        held = await metering_queries.open_holds(conn, school_id)
        report = await offline_report(page, conn, school_id, wanted)
    kinds: dict[str, list[dict[str, Any]]] = {}
    for m in meters:
        kinds.setdefault(m["kind"], []).append({**m, "tariff": tariff_view(m["tariff"])})
    return render(
        page,
        "admin/devices.html",
        kinds=kinds,
        held=held,
        held_total=sum(h["amount"] for h in held),
        **report,
    )
