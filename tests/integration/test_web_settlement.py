"""Console pages of the settlement center: close a day, read its statements, import a bank
statement and resolve a case, the consumption chart."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg
import httpx

from tests.integration.test_reconciliation import bank_file
from tests.support import make_school, make_student, make_user
from tests.support_settlement import make_merchant, make_terminal, pay
from tests.support_web import csrf_from, web_login


async def test_settlement_and_reconciliation_pages(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    # given a settlement clerk and a day of canteen sales
    school = await make_school(conn)
    await make_user(conn, "finance", "settlement", school.id)
    m = await make_merchant(conn, school.id, "一食堂", commission_bp=150)
    t = await make_terminal(conn, school.id, m, "POS-W-001")
    student = await make_student(conn, school.id, "S1", cash=10_000)
    await pay(conn, school.id, m, t, student, 2_000)
    day: date = await conn.fetchval("SELECT cc_business_date($1)", school.id)
    await web_login(client, "finance", school.code)
    base = f"/admin/s/{school.code}"

    # when the day is closed from the console
    page = await client.get(f"{base}/settlement")
    assert page.status_code == 200, page.text
    r = await client.post(
        f"{base}/settlement/close",
        data={"day": day.isoformat(), "early": "on", "csrf_token": csrf_from(page.text)},
    )
    assert r.status_code == 303, r.text
    shown = await client.get(r.headers["location"])

    # then the day, its merchant and the statement links show
    assert "一食堂" in shown.text and "19.70" in shown.text  # 20.00 - 0.30
    assert "statement?format=html" in shown.text and "payout.csv" in shown.text
    statement = await client.get(
        f"/api/v1/admin/schools/{school.code}/settlement/days/{day}/merchants/{m.id}/statement",
        params={"format": "html"},
    )
    assert statement.status_code == 200 and "POS-W-001" in statement.text
    # and the dashboard, the reports and the merchants' page read the day's sale
    home = await client.get(f"{base}/")
    assert home.status_code == 200 and "20.00" in home.text, home.text
    span = {"from": day.isoformat(), "to": day.isoformat()}
    report = await client.get(f"{base}/reports", params=span)
    assert report.status_code == 200 and "一食堂" in report.text and "20.00" in report.text
    shops = await client.get(f"{base}/merchants")
    assert shops.status_code == 200 and "一食堂" in shops.text and "POS-W-001" in shops.text

    # when a bank statement with a load we do not have is imported and written off
    page = await client.get(f"{base}/reconciliation")
    r = await client.post(
        f"{base}/reconciliation/import",
        data={"source": "bank", "csrf_token": csrf_from(page.text)},
        files={"file": ("bank.txt", bank_file(day, [("000000000042", "LOAD", 700)]))},
    )
    assert r.status_code == 303, r.text
    page = await client.get(f"{base}/reconciliation")
    assert "000000000042" in page.text and "7.00" in page.text
    case_id = await conn.fetchval("SELECT id FROM recon_cases WHERE school_id = $1", school.id)
    r = await client.post(
        f"{base}/reconciliation/cases/{case_id}",
        data={"action": "write_off", "note": "unknown", "csrf_token": csrf_from(page.text)},
    )
    assert r.status_code == 303
    # then it waits for a second operator; approving it oneself is refused on an error page
    r = await client.post(
        f"{base}/reconciliation/cases/{case_id}",
        data={"action": "approve", "note": "me", "csrf_token": csrf_from(page.text)},
    )
    assert r.status_code == 403
    status = await conn.fetchval("SELECT status FROM recon_cases WHERE school_id = $1", school.id)
    assert status == "pending_approval"

    # and the consumption page draws its chart
    page = await client.get(
        f"{base}/consumption", params={"from": day.isoformat(), "to": day.isoformat()}
    )
    assert page.status_code == 200 and "<svg" in page.text and "20.00" in page.text
