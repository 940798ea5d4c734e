"""Settlement API: close a day, statement as JSON / HTML / XLSX, payout CSV, bad input."""

from __future__ import annotations

import csv
import io
from typing import Any

import asyncpg
import httpx
from openpyxl import load_workbook

from tests.support import login, make_school, make_student, make_user
from tests.support_settlement import make_merchant, make_terminal, pay


async def test_close_day_statement_and_payout_file(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    # given a settlement clerk, a canteen with an account and a day of sales
    school = await make_school(conn)
    await make_user(conn, "finance", "settlement", school.id)
    m = await make_merchant(conn, school.id, "一食堂", commission_bp=150)
    t = await make_terminal(conn, school.id, m, "POS-A-001")
    student = await make_student(conn, school.id, "S1", cash=100_000)
    for fen in (1_000, 2_345):
        await pay(conn, school.id, m, t, student, fen)
    day = (await conn.fetchval("SELECT cc_business_date($1)", school.id)).isoformat()
    h = await login(client, "finance", school.code)
    base = f"/api/v1/admin/schools/{school.code}/settlement"
    r = await client.put(
        f"{base}/merchants/{m.id}/payout-account",
        json={"bank_code": "ICBC", "account_no": "6222020200112233", "account_name": "一食堂"},
        headers=h,
    )
    assert r.status_code == 200, r.text

    # when the day is closed (early) over the API
    r = await client.post(f"{base}/days/{day}/close", json={"early": True}, headers=h)

    # then
    assert r.status_code == 200, r.text
    assert r.json()["payout"] == "32.95"  # 33.45 - 0.50 (50.175 fen -> 50)
    st = (await client.get(f"{base}/days/{day}/merchants/{m.id}/statement", headers=h)).json()
    assert st["totals"]["commission"] == "0.50"
    assert st["lines"][0]["terminal"] == "POS-A-001"

    page = await client.get(
        f"{base}/days/{day}/merchants/{m.id}/statement", params={"format": "html"}, headers=h
    )
    assert page.status_code == 200
    assert "一食堂" in page.text and "¥32.95" in page.text and "POS-A-001" in page.text
    assert "商户结算单" in page.text and "Merchant" not in page.text  # the reader's language
    english = await client.get(
        f"{base}/days/{day}/merchants/{m.id}/statement",
        params={"format": "html", "lang": "en"},
        headers=h,
    )
    assert "Merchant settlement statement" in english.text and "CN¥32.95" in english.text
    assert "商户结算单" not in english.text

    x = await client.get(
        f"{base}/days/{day}/merchants/{m.id}/statement", params={"format": "xlsx"}, headers=h
    )
    ws = load_workbook(io.BytesIO(x.content)).active
    assert ws is not None
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    total = next(r for r in rows if r[0] == "合计")
    assert str(total[11]) == "32.95"  # the payout column

    f = await client.get(f"{base}/days/{day}/payout.csv", headers=h)
    lines = list(csv.reader(io.StringIO(f.text)))
    assert lines[0][:2] == ["H", f"{school.code}-{day.replace('-', '')}"]
    assert lines[0][4:6] == ["1", "32.95"]
    assert lines[1][0:6] == ["D", "1", "ICBC", "6222020200112233", "一食堂", "32.95"]


async def test_settlement_api_refuses_bad_input_and_strangers(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    await make_user(conn, "finance", "settlement", school.id)
    await make_user(conn, "teacher", "teacher", school.id)
    h = await login(client, "finance", school.code)
    base = f"/api/v1/admin/schools/{school.code}/settlement"

    r = await client.post(f"{base}/days/2026-13-01/close", json={}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"]
    r = await client.post(f"{base}/days/2026-01-01/close", json={"early": "yes"}, headers=h)
    assert r.status_code == 422
    r = await client.get(f"{base}/days/2026-01-01", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "DAY_NOT_CLOSED"
    r = await client.put(
        f"{base}/merchants/999/payout-account",
        json={"bank_code": "ICBC", "account_no": "12", "account_name": "x"},
        headers=h,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "account_no"
    t = await login(client, "teacher", school.code)
    r = await client.get(f"{base}/days", headers=t)
    assert r.status_code == 403
    assert await conn.fetchval("SELECT count(*) FROM settlement_days") == 0
