"""The finance office's bills over HTTP: a fee item with a rate, issuing, the list, a plan, a
deferral and a waiver proposed for a second person; bad input named by field; online payment
refused to the finance office and above what is owed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from tests.support import login, make_user
from tests.support_bills import TERM, bills_world


async def test_the_finance_office_sets_up_and_handles_bills_over_the_api(
    pool: asyncpg.Pool[Any], client: httpx.AsyncClient
) -> None:
    # given a school with two students and its finance office
    async with pool.acquire() as conn:
        w = await bills_world(conn, students=2)
        await make_user(conn, "s001", "cardholder", w.school_id, person_id=w.students[0])
        today = await conn.fetchval("SELECT cc_business_date($1)", w.school_id)
    fin = await login(client, f"fin-a-{w.code}", w.code)
    student = await login(client, "s001", w.code)
    base = f"/api/v1/schools/{w.code}"
    due = (today + timedelta(days=20)).isoformat()

    # a fee item with a dorm rate; bad input is named by field and changes nothing
    bad = await client.post(
        f"{base}/fee-items",
        json={"term": "2026-27", "kind": "tuition", "name": "学费", "due_date": due},
        headers=fin,
    )
    assert bad.status_code == 422 and "term" in bad.text
    item = {
        "term": TERM,
        "kind": "accommodation",
        "name": "住宿费",
        "due_date": due,
        "rates": [{"scope": "dorm", "value": "东区3栋", "amount": "1200.00"}],
    }
    assert (await client.post(f"{base}/fee-items", json=item, headers=fin)).status_code == 201
    again = await client.post(f"{base}/fee-items", json=item, headers=fin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "ITEM_EXISTS"
    # a student may do none of it
    assert (await client.post(f"{base}/fee-items", json=item, headers=student)).status_code == 403

    # the term's bills, then the list and the books
    issued = await client.post(f"{base}/bill-issues", json={"term": TERM}, headers=fin)
    assert issued.status_code == 200 and issued.json()["bills_created"] == 2
    bills = (await client.get(f"{base}/bills", params={"term": TERM}, headers=fin)).json()
    assert [b["owed"] for b in bills] == ["1200.00", "1200.00"]
    books = (await client.get(f"{base}/fee-items", headers=fin)).json()
    assert books[0]["billed"] == "2400.00" and books[0]["rates"][0]["value"] == "东区3栋"
    bill_id = bills[0]["id"]

    # instalments, a deferral and a waiver waiting for the second person
    plan = await client.post(
        f"{base}/bills/{bill_id}/plan",
        json={"instalments": 2, "first_due": due, "every_days": 30},
        headers=fin,
    )
    assert plan.status_code == 200, plan.text
    too_short = await client.post(
        f"{base}/bills/{bill_id}/deferral", json={"until": due, "reason": "x"}, headers=fin
    )
    assert too_short.status_code == 422 and too_short.json()["error"]["field"].endswith("reason")
    deferred = await client.post(
        f"{base}/bills/{bill_id}/deferral", json={"until": due, "reason": "绿色通道"}, headers=fin
    )
    assert deferred.status_code == 200, deferred.text
    line_id = (await client.get(f"{base}/bills/{bill_id}", headers=fin)).json()["lines"][0]["id"]
    proposal = await client.post(
        f"{base}/bill-lines/{line_id}/adjustments",
        json={"kind": "waiver", "reason": "家庭经济困难"},
        headers=fin,
    )
    assert proposal.status_code == 202 and proposal.json()["status"] == "pending_approval"
    detail = (await client.get(f"{base}/bills/{bill_id}", headers=fin)).json()
    assert detail["owed"] == "1200.00" and detail["deferred_until"] == due

    # online payment: not by the finance office, and never above what is owed
    pay = {"client_id": "api-online-0001", "amount": "1.00"}
    own = next(b for b in bills if b["person_id"] == w.students[0])["id"]
    refused = await client.post(f"{base}/bills/{own}/online-payments", json=pay, headers=fin)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "PAYER_ONLY"
    above = await client.post(
        f"{base}/bills/{own}/online-payments",
        json={"client_id": "api-online-0002", "amount": "5000.00"},
        headers=student,
    )
    assert above.status_code == 422 and above.json()["error"]["code"] == "AMOUNT_ABOVE_DUE"
