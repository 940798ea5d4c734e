"""Reports: daily summary per channel and merchant, consumption per class and category,
exported as CSV and XLSX."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import asyncpg
import httpx
from openpyxl import load_workbook

from campuscard.people import directory
from campuscard.platform.actors import SYSTEM
from campuscard.settlement import clearing
from tests.support import ROOT, login, make_school, make_user
from tests.support_settlement import make_merchant, make_terminal, pay


async def student(
    conn: asyncpg.Connection[Any], school_id: int, number: str, class_id: int, category: str
) -> int:
    from tests.support import fund

    pid = await directory.create_person(
        conn,
        ROOT,
        school_id,
        directory.PersonData(
            kind="student", number=number, name="学生", class_id=class_id, category=category
        ),
        open_account=True,
    )
    await fund(conn, school_id, pid, cash=100_000)
    return pid


async def test_daily_and_consumption_reports_with_exports(
    pool: asyncpg.Pool[Any], client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    # given two classes, a canteen and a supermarket, and a day of spending
    school = await make_school(conn)
    await make_user(conn, "finance", "settlement", school.id)
    c1 = await directory.create_class(conn, ROOT, school.id, name="计算机2401")
    c2 = await directory.create_class(conn, ROOT, school.id, name="数学2402")
    canteen = await make_merchant(conn, school.id, "一食堂", commission_bp=100)
    shop = await make_merchant(conn, school.id, "超市", channel="supermarket", commission_bp=100)
    tc = await make_terminal(conn, school.id, canteen, "POS-R-001")
    ts = await make_terminal(conn, school.id, shop, "POS-R-002")
    a = await student(conn, school.id, "S1", c1, "regular")
    b = await student(conn, school.id, "S2", c1, "aided")
    c = await student(conn, school.id, "S3", c2, "regular")
    await pay(conn, school.id, canteen, tc, a, 1_200)
    await pay(conn, school.id, canteen, tc, b, 800)
    await pay(conn, school.id, canteen, tc, b, 701)
    await pay(conn, school.id, shop, ts, c, 3_000)
    await pay(conn, school.id, shop, ts, c, 500, kind="refund")
    day: date = await conn.fetchval("SELECT cc_business_date($1)", school.id)
    await clearing.do_close_day(pool, SYSTEM, school.id, day, early=True)
    h = await login(client, "finance", school.code)
    base = f"/api/v1/admin/schools/{school.code}/reports"
    q = {"date_from": day.isoformat(), "date_to": day.isoformat()}

    # when / then: daily summary per channel and merchant
    r = await client.get(f"{base}/daily", params=q, headers=h)
    assert r.status_code == 200, r.text
    channels = {ch["channel"]: ch for ch in r.json()["channels"]}
    assert channels["canteen"]["gross"] == "27.01" and channels["canteen"]["sales_count"] == 3
    assert channels["supermarket"]["net_sales"] == "25.00"

    # consumption per class: class 1 has two students in the canteen
    r = await client.get(f"{base}/consumption", params=q | {"group_by": "class"}, headers=h)
    rows = {(x["group"], x["channel"]): x for x in r.json()["rows"]}
    assert rows[("计算机2401", "canteen")] == {
        "group": "计算机2401",
        "channel": "canteen",
        "persons": 2,
        "payments": 3,
        "spent": "27.01",
        "per_person": "13.51",  # 13.505 half-up
    }
    assert rows[("数学2402", "supermarket")]["spent"] == "25.00"
    r = await client.get(f"{base}/consumption", params=q | {"group_by": "category"}, headers=h)
    cats = {(x["group"], x["channel"]): x["spent"] for x in r.json()["rows"]}
    assert cats[("aided", "canteen")] == "15.01"

    # exports
    csv_r = await client.get(f"{base}/daily", params=q | {"format": "csv"}, headers=h)
    assert csv_r.headers["content-type"].startswith("text/csv")
    text = csv_r.content.decode("utf-8-sig")
    assert "一食堂" in text and "27.01" in text
    # the headers in one language: the reader's own (Chinese), or the one asked for
    assert text.startswith("日期,渠道,商户,笔数,交易额,退款冲正,净额,手续费,应结\r\n")
    # and the channel named, not its code
    assert ",食堂,一食堂," in text and "canteen" not in text
    csv_en = await client.get(
        f"{base}/daily", params=q | {"format": "csv", "lang": "en"}, headers=h
    )
    assert csv_en.content.decode("utf-8-sig").startswith(
        "Date,Channel,Merchant,Sales,Gross,Refunds,Net,Commission,Payout\r\n"
    )
    assert ",Canteen,一食堂," in csv_en.content.decode("utf-8-sig")
    x = await client.get(
        f"{base}/consumption", params=q | {"format": "xlsx", "lang": "en"}, headers=h
    )
    ws = load_workbook(io.BytesIO(x.content)).active
    assert ws is not None and ws.title == "Consumption"
    values = [list(v) for v in ws.iter_rows(values_only=True)]
    assert values[0] == ["Group", "Channel", "Students", "Payments", "Spent", "Per student"]
    assert any(str(v[4]) == "27.01" for v in values[1:])
    bad = await client.get(f"{base}/daily", params=q | {"format": "csv", "lang": "fr"}, headers=h)
    assert bad.status_code == 422 and "lang" in bad.text

    # bad input names the field
    r = await client.get(
        f"{base}/daily", params={"date_from": day.isoformat(), "date_to": "2020-01-01"}, headers=h
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "date_to"
    r = await client.get(
        f"{base}/daily", params={"date_from": "yesterday", "date_to": "x"}, headers=h
    )
    assert r.status_code == 422
