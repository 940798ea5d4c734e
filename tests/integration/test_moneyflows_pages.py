"""The money pages: the console counter and subsidies, the student's top-up page."""

from __future__ import annotations

import httpx

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from tests.support import make_school, make_student, make_user
from tests.support_moneyflows import PAN, api_client, balances, bank_world, provider_world
from tests.support_web import csrf_from, web_login


async def test_counter_page_runs_a_day_at_the_desk(pool: PgPool, client: httpx.AsyncClient) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person = await make_student(conn, school.id, "S001", name="李雷")
        await make_user(conn, "cashier", "settlement", school.id)
        await make_user(conn, "teacher1", "teacher", school.id)
    await web_login(client, "cashier", "TST")
    url = "/admin/s/TST/counter"
    page = await client.get(url)
    assert page.status_code == 200 and "open-drawer" in page.text
    r = await client.post(
        f"{url}/open", data={"csrf_token": csrf_from(page.text), "opening_float": "200.00"}
    )
    # the first drawer carries 0.00 from no last close: the counted 200.00 waits for a second
    # person, who approves it on the approvals page
    assert r.status_code == 200 and "等待第二人复核" in r.text, r.text
    # the cashier may not approve it: told so in the page's language
    mine = await client.get("/admin/s/TST/approvals")
    own_id = await pool.fetchval("SELECT id FROM approvals WHERE status = 'pending'")
    r = await client.post(
        f"/admin/s/TST/approvals/{own_id}/decide",
        data={"csrf_token": csrf_from(mine.text), "decision": "approve"},
    )
    assert r.status_code == 403 and "需要另一位工作人员复核" in r.text, r.text
    assert "a second person must approve" not in r.text
    async with pool.acquire() as conn:
        await make_user(conn, "supervisor", "settlement", school.id)
    await web_login(client, "supervisor", "TST")
    approvals = await client.get("/admin/s/TST/approvals")
    approval_id = await pool.fetchval("SELECT id FROM approvals WHERE status = 'pending'")
    assert f'data-testid="approve-{approval_id}"' in approvals.text
    r = await client.post(
        f"/admin/s/TST/approvals/{approval_id}/decide",
        data={"csrf_token": csrf_from(approvals.text), "decision": "approve"},
    )
    assert r.status_code == 303, r.text
    await web_login(client, "cashier", "TST")
    page = await client.get(url)
    form = {"csrf_token": csrf_from(page.text), "person_number": "S001"}
    r = await client.post(
        f"{url}/op", data=form | {"kind": "deposit", "amount": "50.00", "client_id": "webdep00001"}
    )
    assert r.status_code == 200 and 'data-testid="result"' in r.text, r.text
    r = await client.post(
        f"{url}/op",
        data=form | {"kind": "withdrawal", "amount": "20.00", "client_id": "webwd000001"},
    )
    assert r.status_code == 422 and "核验持卡人身份" in r.text  # no identity given
    r = await client.post(
        f"{url}/op",
        data=form
        | {
            "kind": "withdrawal",
            "amount": "20.00",
            "client_id": "webwd000002",
            "id_method": "student_id",
            "holder_name": "李雷",
            "holder_present": "on",
        },
    )
    assert r.status_code == 200, r.text
    assert "¥230.00" in r.text  # 200 + 50 - 20 expected in the drawer
    assert await balances(pool, person) == {"cash": 3_000, "subsidy": 0}
    await web_login(client, "teacher1", "TST")
    assert (await client.get(url)).status_code == 403


async def test_subsidy_page_needs_a_second_person(pool: PgPool, client: httpx.AsyncClient) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person = await make_student(conn, school.id, "S001")
        await conn.execute("UPDATE persons SET category = 'poor' WHERE id = $1", person)
        await make_user(conn, "maker", "settlement", school.id)
        await make_user(conn, "checker", "settlement", school.id)
    url = "/admin/s/TST/subsidies"
    await web_login(client, "maker", "TST")
    page = await client.get(url)
    r = await client.post(
        f"{url}/rule",
        data={
            "csrf_token": csrf_from(page.text),
            "name": "困难补助",
            "amount": "300.00",
            "category": "poor",
        },
    )
    assert r.status_code == 303, r.text
    page = await client.get(url)
    assert "approve-" not in page.text  # the maker cannot approve
    await web_login(client, "checker", "TST")
    page = await client.get(url)
    batch_id = await pool.fetchval("SELECT id FROM subsidy_batches")
    assert f"approve-{batch_id}" in page.text
    r = await client.post(
        f"{url}/{batch_id}/decide",
        data={"csrf_token": csrf_from(page.text), "decision": "approve"},
    )
    assert r.status_code == 303
    assert await balances(pool, person) == {"cash": 0, "subsidy": 30_000}


async def test_student_top_up_page(pool: PgPool, settings: Settings) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person = await make_student(conn, school.id, "S001", name="李雷")
        await make_user(conn, "stu1", "cardholder", school.id, person_id=person)
    with bank_world(settings) as (banked, bank), provider_world(banked) as (wired, _, _):
        bank.open_account(PAN, "李雷", 100_000)
        async with api_client(wired, pool) as web:
            await web_login(web, "stu1", "TST")
            page = await web.get("/m/topup")
            assert page.status_code == 200, page.text
            assert "bind-pan" in page.text
            r = await web.post(
                "/m/topup/bank-card",
                data={"csrf_token": csrf_from(page.text), "pan": PAN, "holder_name": "李雷"},
            )
            assert r.status_code == 200 and "622202*********0128" in r.text, r.text
            r = await web.post(
                "/m/topup/bank-load",
                data={
                    "csrf_token": csrf_from(r.text),
                    "amount": "88.00",
                    "client_id": "webload00001",
                },
            )
            assert r.status_code == 200 and 'data-testid="notice"' in r.text
            r = await web.post(
                "/m/topup/auto",
                data={
                    "csrf_token": csrf_from(r.text),
                    "threshold": "50.00",
                    "target": "40.00",
                    "enabled": "on",
                },
            )
            assert r.status_code == 422  # the target must be above the threshold
            r = await web.post(
                "/m/topup/online",
                data={
                    "csrf_token": csrf_from(r.text),
                    "person_id": str(person),
                    "amount": "10.00",
                    "client_id": "webtopup0001",
                },
            )
            # on to the provider through a page of this site (the CSP keeps forms here)
            assert r.status_code == 200 and 'data-testid="to-provider"' in r.text
            assert 'http-equiv="refresh"' in r.text and "/pay/page/" in r.text
    assert await balances(pool, person) == {"cash": 8_800, "subsidy": 0}


async def test_a_bad_subsidy_sheet_is_refused_in_the_pages_language(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    # given a sheet with an unknown number, a number twice and a bad amount
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_student(conn, school.id, "S001")
        await make_user(conn, "maker", "settlement", school.id)
    url = "/admin/s/TST/subsidies"
    sheet = "学号,金额\nS001,10.00\nS404,5.00\nS001,3.00\nS001,abc\n".encode()
    await web_login(client, "maker", "TST")
    for lang, expected, foreign in (
        ("zh-CN", ["本校没有学工号 S404", "与第 2 行重复", "金额“abc”无效"], "unknown"),
        ("en", ["no one in this school has the number S404", "also on row 2"], "本校"),
    ):
        client.cookies.set("cc_lang", lang)
        page = await client.get(url)
        # when it is uploaded
        r = await client.post(
            f"{url}/file",
            data={"csrf_token": csrf_from(page.text), "name": "补助"},
            files={"file": ("s.csv", sheet, "text/csv")},
        )
        # then every bad row is named in the page's language, and nothing is kept
        assert r.status_code == 422, r.text
        assert all(text in r.text for text in expected), r.text
        assert foreign not in r.text.split('data-testid="bad-rows"')[1].split("</ul>")[0]
    assert await pool.fetchval("SELECT count(*) FROM subsidy_batches") == 0
