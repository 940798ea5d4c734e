"""Subsidy batches: file or rule, a second person approves, issue, expiry with a clawback
of the unspent part exact to the fen; the school's purse order."""

from __future__ import annotations

import io
from datetime import date, timedelta

import httpx
import openpyxl

from campuscard.db.pool import PgPool
from campuscard.ledger.checks import check_ledger
from campuscard.moneyflows import subsidies
from tests.support import login, make_school, make_student, make_user
from tests.support_moneyflows import balances, cid, system_balance

URL = "/api/v1/admin/schools/TST/subsidies/batches"


async def _setup(
    pool: PgPool, client: httpx.AsyncClient
) -> tuple[int, dict[str, str], dict[str, str]]:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        grade_2026 = await conn.fetchval(
            "INSERT INTO classes(school_id, name, grade) VALUES ($1, '计算机2601班', '2026') "
            "RETURNING id",
            school.id,
        )
        for number in ("S001", "S002", "S003"):
            person = await make_student(conn, school.id, number)
            if number != "S003":
                await conn.execute(
                    "UPDATE persons SET class_id = $2 WHERE school_id = $3 AND id = $1",
                    person,
                    grade_2026,
                    school.id,
                )
        await make_user(conn, "maker", "settlement", school.id)
        await make_user(conn, "checker", "settlement", school.id)
    return school.id, await login(client, "maker", "TST"), await login(client, "checker", "TST")


def _xlsx(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def _person(pool: PgPool, school_id: int, number: str) -> int:
    value: int = await pool.fetchval(
        "SELECT id FROM persons WHERE school_id = $1 AND number = $2", school_id, number
    )
    return value


async def test_a_bad_file_reports_every_bad_row_and_stores_nothing(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    _, maker, _ = await _setup(pool, client)
    content = _xlsx(
        [
            ["学号", "金额", "备注"],
            ["S001", "100.00", "困难补助"],
            ["S404", "10.00", ""],
            ["S002", "12.345", ""],
            ["S001", "5.00", ""],
        ]
    )
    r = await client.post(
        f"{URL}/file",
        data={"name": "十一月困难补助"},
        files={"file": ("list.xlsx", content)},
        headers=maker,
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "IMPORT_ROWS_INVALID"
    assert [(p["row"], p["field"]) for p in error["details"]["rows"]] == [
        (3, "number"),
        (4, "amount"),
        (5, "number"),
    ]
    assert await pool.fetchval("SELECT count(*) FROM subsidy_batches") == 0


async def test_second_person_approves_and_it_is_issued(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    school_id, maker, checker = await _setup(pool, client)
    csv_text = "学号,金额,备注\nS001,100.00,餐补\nS002,0.01,\n"
    r = await client.post(
        f"{URL}/file",
        data={"name": "餐补", "expires_on": (date.today() + timedelta(days=30)).isoformat()},
        files={"file": ("list.csv", csv_text.encode("utf-8-sig"))},
        headers=maker,
    )
    assert r.status_code == 201, r.text
    batch = r.json()
    assert (batch["status"], batch["total"], batch["lines"]) == ("pending_approval", "100.01", 2)
    own = await client.post(f"{URL}/{batch['id']}/approve", headers=maker)
    assert (own.status_code, own.json()["error"]["code"]) == (403, "SECOND_PERSON_REQUIRED")
    ok = await client.post(f"{URL}/{batch['id']}/approve", headers=checker)
    assert ok.status_code == 200 and ok.json()["status"] == "issued"
    twice = await client.post(f"{URL}/{batch['id']}/approve", headers=checker)
    assert twice.status_code == 409
    assert await balances(pool, await _person(pool, school_id, "S001")) == {
        "cash": 0,
        "subsidy": 10_000,
    }
    assert await balances(pool, await _person(pool, school_id, "S002")) == {"cash": 0, "subsidy": 1}
    assert await system_balance(pool, school_id, "subsidy_fund") == -10_001
    detail = (await client.get(f"{URL}/{batch['id']}", headers=checker)).json()
    assert [i["number"] for i in detail["items"]] == ["S001", "S002"]


async def test_rule_batch_by_grade(pool: PgPool, client: httpx.AsyncClient) -> None:
    school_id, maker, checker = await _setup(pool, client)
    r = await client.post(
        f"{URL}/rule",
        json={"name": "新生补助", "amount": "50.00", "grades": ["2026"]},
        headers=maker,
    )
    assert r.status_code == 201, r.text
    assert r.json()["lines"] == 2
    await client.post(f"{URL}/{r.json()['id']}/approve", headers=checker)
    assert (await balances(pool, await _person(pool, school_id, "S003")))["subsidy"] == 0
    assert (await balances(pool, await _person(pool, school_id, "S002")))["subsidy"] == 5_000
    nobody = await client.post(
        f"{URL}/rule", json={"name": "x", "amount": "1.00", "grades": ["1999"]}, headers=maker
    )
    assert nobody.json()["error"]["code"] == "RULE_MATCHES_NOBODY"


async def _spend_subsidy(pool: PgPool, school_id: int, person: int, fen: int) -> None:
    async with pool.acquire() as conn, conn.transaction():
        purse = await conn.fetchval(
            "SELECT id FROM accounts WHERE school_id = $1 AND person_id = $2 AND purse = 'subsidy'",
            school_id,
            person,
        )
        sink = await conn.fetchval(
            "SELECT id FROM accounts WHERE school_id = $1 AND system_code = 'suspense'", school_id
        )
        await conn.execute(
            "SELECT cc_post($1, 'test_spend', NULL, '', 'test', $2::bigint[], $3::bigint[])",
            school_id,
            [purse, sink],
            [-fen, fen],
        )


async def test_expiry_claws_back_the_unspent_part_exactly(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    school_id, maker, checker = await _setup(pool, client)
    s1, s2 = await _person(pool, school_id, "S001"), await _person(pool, school_id, "S002")
    expiry = date.today() + timedelta(days=10)
    # S2 first gets a counter grant and spends it, before any batch exists
    r = await client.post(
        "/api/v1/counter/TST/subsidy-grants",
        json={"client_id": cid(), "person_number": "S002", "amount": "50.00", "memo": "临时"},
        headers=maker,
    )
    assert r.status_code == 202, r.text  # a counter grant waits for a second person
    approved = await client.post(
        f"/api/v1/admin/schools/TST/approvals/{r.json()['approval']['id']}/decision",
        json={"approve": True},
        headers=checker,
    )
    assert approved.status_code == 200, approved.text
    await _spend_subsidy(pool, school_id, s2, 5_000)
    # batch A: 100.00 each, expiring; batch B: 30.00 to S1, never expiring
    a = (
        await client.post(
            f"{URL}/rule",
            json={
                "name": "A",
                "amount": "100.00",
                "grades": ["2026"],
                "expires_on": expiry.isoformat(),
            },
            headers=maker,
        )
    ).json()
    await client.post(f"{URL}/{a['id']}/approve", headers=checker)
    b = (
        await client.post(
            f"{URL}/file",
            data={"name": "B"},
            files={"file": ("b.csv", b"number,amount\nS001,30.00\n")},
            headers=maker,
        )
    ).json()
    await client.post(f"{URL}/{b['id']}/approve", headers=checker)
    await _spend_subsidy(pool, school_id, s1, 3_001)  # eats A first: it expires first
    # nothing is due before the expiry date has passed
    assert await subsidies.expire_due_batches(pool, today=expiry) == []
    assert await subsidies.expire_due_batches(pool, today=expiry + timedelta(days=1)) == [a["id"]]
    assert await subsidies.expire_due_batches(pool, today=expiry + timedelta(days=1)) == []
    assert await balances(pool, s1) == {"cash": 0, "subsidy": 3_000}  # B untouched
    assert await balances(pool, s2) == {"cash": 0, "subsidy": 0}  # all 100.00 of A back
    lines = dict(
        await pool.fetch(
            "SELECT person_id, clawed_back FROM subsidy_lines WHERE school_id = $1 AND batch_id = $2",
            school_id,
            a["id"],
        )
    )
    assert lines == {s1: 6_999, s2: 10_000}
    batch = (await client.get(f"{URL}/{a['id']}", headers=maker)).json()
    assert (batch["status"], batch["clawed_back"]) == ("expired", "169.99")
    async with pool.acquire() as conn:
        assert (await check_ledger(conn)).ok


async def test_purse_order_policy(pool: PgPool, client: httpx.AsyncClient) -> None:
    _, maker, _ = await _setup(pool, client)
    url = "/api/v1/admin/schools/TST/purse-order"
    assert (await client.get(url, headers=maker)).json() == {"purse_order": "subsidy_first"}
    bad = await client.put(url, json={"purse_order": "random"}, headers=maker)
    assert bad.status_code == 422
    r = await client.put(url, json={"purse_order": "cash_first"}, headers=maker)
    assert r.status_code == 200
    assert (await client.get(url, headers=maker)).json() == {"purse_order": "cash_first"}
