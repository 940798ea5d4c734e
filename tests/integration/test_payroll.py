"""Payroll: a bad sheet is refused whole with every bad row named; the uploader cannot approve
their own batch; after a second person approves, each line is paid exactly once — to the campus
account at once, to the bank card through the bank link, also when the bank times out and the
job runs again (the line stays pending until the bank link's resolve settles it, and its money
comes back to the payroll account if the payout did not happen)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.issuing.import_rules import build_frame
from campuscard.ledger.checks import check_ledger
from campuscard.moneyflows import bank_link
from campuscard.payroll import batches, queries
from campuscard.people import directory
from campuscard.platform import auth, four_eyes
from campuscard.platform.actors import Actor
from campuscard.platform.errors import DomainError, ValidationFailed
from tests.support import ROOT, login, make_school, make_student, make_user
from tests.support_moneyflows import PAN, balances, bank_world, bind_bank_card, system_balance

NOW = timedelta(0)
SHEET_URL = "/api/v1/schools/TST/payroll-sheets?period=2026-11"


def _csv(lines: list[str]) -> bytes:
    return ("\n".join(["工号,姓名,实发金额,发放方式,备注", *lines]) + "\n").encode()


async def _staff(pool: PgPool, school_id: int, number: str, name: str) -> int:
    async with pool.acquire() as conn:
        return await directory.create_person(
            conn,
            ROOT,
            school_id,
            directory.PersonData(kind="staff", number=number, name=name),
            open_account=True,
        )


async def _world(pool: PgPool) -> tuple[int, Actor, Actor]:
    """A school with two finance users (the uploader, the approver)."""
    async with pool.acquire() as conn:
        school = await make_school(conn)
        uploader = await auth.load_actor(
            conn, await make_user(conn, "finance1", "settlement", school.id)
        )
        approver = await auth.load_actor(
            conn, await make_user(conn, "finance2", "settlement", school.id)
        )
    return school.id, uploader, approver


async def test_a_bad_sheet_is_refused_whole_with_every_bad_row(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    # given: staff T1 and T2, a student S1, and a sheet with one good line and a problem on
    # every other row (and a total that does not add up)
    school_id, _, _ = await _world(pool)
    await _staff(pool, school_id, "T1", "王老师")
    await _staff(pool, school_id, "T2", "李老师")
    async with pool.acquire() as conn:
        await make_student(conn, school_id, "S1")
    sheet = _csv(
        [
            "T1,王老师,5000.00,校园卡,",
            "T9,,100.00,,",  # no such staff member
            "S1,,100.00,,",  # a student
            "T2,,12.345,,",  # a bad amount
            "T1,,1.00,,",  # T1 again
            "T2,张三,10.00,,",  # not T2's name
            "合计,,9999.00,,",  # the lines do not add up to this
        ]
    )
    headers = await login(client, "finance1", "TST")
    # when
    r = await client.post(
        SHEET_URL,
        content=build_frame(sheet),
        headers=headers | {"content-type": "application/x-campuscard-import"},
    )
    # then: 422, every bad row named with its code, nothing stored
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "IMPORT_ROWS_INVALID"
    found = {(e["row"], e["code"]) for e in error["details"]["errors"]}
    assert found == {
        (3, "NO_STAFF"),
        (4, "NOT_STAFF"),
        (5, "AMOUNT_INVALID"),
        (6, "DUPLICATE_ROW"),
        (7, "NAME_MISMATCH"),
    }
    # the same rows corrected but for the total: refused on the 合计 row
    good = _csv(["T1,王老师,5000.00,校园卡,", "T2,李老师,10.00,,", "合计,,5000.00,,"])
    r = await client.post(
        SHEET_URL,
        content=build_frame(good),
        headers=headers | {"content-type": "application/x-campuscard-import"},
    )
    assert r.status_code == 422
    assert [(e["row"], e["code"], e["params"]) for e in r.json()["error"]["details"]["errors"]] == [
        (4, "TOTAL_MISMATCH", {"stated": "5000.00", "sum": "5010.00"})
    ]
    # a damaged frame is refused before the file is read
    frame = build_frame(good).replace(b"5000.00", b"5001.00", 1)
    r = await client.post(
        SHEET_URL,
        content=frame,
        headers=headers | {"content-type": "application/x-campuscard-import"},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "DIGEST_MISMATCH"
    assert await pool.fetchval("SELECT count(*) FROM payroll_batches") == 0
    assert await pool.fetchval("SELECT count(*) FROM payroll_lines") == 0
    assert await pool.fetchval("SELECT count(*) FROM approvals") == 0


async def test_second_person_approves_and_campus_lines_are_paid_once(pool: PgPool) -> None:
    # given: two staff members and a sheet for November
    school_id, uploader, approver = await _world(pool)
    t1 = await _staff(pool, school_id, "T1", "王老师")
    t2 = await _staff(pool, school_id, "T2", "李老师")
    sheet = _csv(["T1,王老师,5000.00,,十一月", "T2,,4200.50,一卡通,", "合计,,9200.50,,"])
    frame = build_frame(sheet)
    upload = await batches.do_upload_sheet(
        pool, uploader, school_id, period="2026-11", frame=frame, filename="11月.csv"
    )
    assert upload.rows == 2 and upload.total == "9200.50" and not upload.replayed
    assert upload.canonical == ["T1\tcampus\t5000.00", "T2\tcampus\t4200.50"]
    # the same file again is the same batch
    again = await batches.do_upload_sheet(
        pool, uploader, school_id, period="2026-11", frame=frame, filename="11月.csv"
    )
    assert again.replayed and again.batch_id == upload.batch_id
    assert await pool.fetchval("SELECT count(*) FROM approvals") == 1
    # when: the uploader tries to approve their own batch
    with pytest.raises(DomainError) as refused:
        await four_eyes.do_decide(pool, uploader, school_id, upload.approval_id, approve=True)
    assert refused.value.code == "SECOND_PERSON_REQUIRED"
    assert (await balances(pool, t1))["cash"] == 0
    # when: a second person approves
    await four_eyes.do_decide(pool, approver, school_id, upload.approval_id, approve=True)
    # then: each line booked once from the payroll account, each staff member told
    assert (await balances(pool, t1))["cash"] == 500_000
    assert (await balances(pool, t2))["cash"] == 420_050
    assert await system_balance(pool, school_id, "payroll_clearing") == -920_050
    kinds = await pool.fetch("SELECT kind, memo FROM journal_tx WHERE kind = 'payroll' ORDER BY id")
    assert [r["memo"] for r in kinds] == ["2026-11 十一月", "2026-11"]
    notices = await pool.fetch(
        "SELECT person_id, title FROM notifications WHERE kind = 'payroll_paid' ORDER BY person_id"
    )
    assert [n["person_id"] for n in notices] == sorted([t1, t2])
    report = await queries.batch_report(pool, approver, school_id, upload.batch_id)
    assert report["state"] == "paid"
    assert report["counts"] == {"waiting": 0, "paid": 2, "pending": 0, "failed": 0}
    assert report["amounts"]["paid"] == "9200.50"
    # a decision cannot run twice, and the same file again pays nothing
    with pytest.raises(DomainError) as refused:
        await four_eyes.do_decide(pool, approver, school_id, upload.approval_id, approve=True)
    assert refused.value.code == "APPROVAL_NOT_PENDING"
    await batches.do_upload_sheet(
        pool, uploader, school_id, period="2026-11", frame=frame, filename="11月.csv"
    )
    assert (await balances(pool, t1))["cash"] == 500_000
    async with pool.acquire() as conn:
        assert (await check_ledger(conn)).ok
        # the ledger check's payroll tier: a line whose booking differs from it is named
        await conn.execute("UPDATE payroll_lines SET amount = amount + 1 WHERE row_no = 2")
        violations = (await check_ledger(conn)).violations
    assert [v.split(":")[0] for v in violations] == [
        "P1 a payroll line's payment differs from the line"
    ]


async def test_a_bank_line_is_paid_once_under_a_bank_timeout(
    pool: PgPool, settings: Settings
) -> None:
    with bank_world(settings) as (wired, sim):
        # given: a staff member paid to a bound bank card
        school_id, uploader, approver = await _world(pool)
        person = await _staff(pool, school_id, "T1", "王老师")
        await bind_bank_card(pool, wired, sim, person, "王老师", pan=PAN)
        upload = await batches.do_upload_sheet(
            pool,
            uploader,
            school_id,
            period="2026-11",
            frame=build_frame(_csv(["T1,王老师,3000.00,银行卡,", "合计,,3000.00,,"])),
            filename="bank.csv",
        )
        await four_eyes.do_decide(pool, approver, school_id, upload.approval_id, approve=True)
        # the approval deferred the sending job; nothing has gone to the bank yet
        assert await pool.fetchval("SELECT count(*) FROM outbox WHERE topic = 'payroll.send'") == 1
        assert sim.requests == ["0100"]  # the card's verification only
        # when: the bank pays, but its answer is lost, and so are our reversals
        sim.inject("0200", "drop")
        sim.inject("0400", "drop_before", times=wired.bank_reversal_attempts)
        # ... while the job runs twice at once (a worker retried it)
        sent = await asyncio.gather(
            batches.send_batch(pool, wired, school_id, upload.batch_id),
            batches.send_batch(pool, wired, school_id, upload.batch_id),
        )
        # then: the payout went to the bank once; the line is in doubt, not paid, not failed
        assert sim.requests.count("0200") == 1 and sum(sent) >= 1
        assert sim.balance_of(PAN) == 300_000
        report = await queries.batch_report(pool, approver, school_id, upload.batch_id)
        assert report["state"] == "paying" and report["counts"]["pending"] == 1
        # the job again sends nothing
        assert await batches.send_batch(pool, wired, school_id, upload.batch_id) == 0
        assert sim.requests.count("0200") == 1
        # when: the bank link's periodic resolve runs once the bank answers again
        assert await bank_link.resolve_open_transfers(pool, wired, older_than=NOW) == 1
        # then: the payout was reversed at the bank, the money is back in the payroll account,
        # the line failed; resolving again changes nothing
        assert sim.balance_of(PAN) == 0
        assert await bank_link.resolve_open_transfers(pool, wired, older_than=NOW) == 0
        report = await queries.batch_report(pool, approver, school_id, upload.batch_id)
        assert report["state"] == "paid_with_failures"
        assert report["counts"]["failed"] == 1 and report["amounts"]["failed"] == "3000.00"
        # the staff member is told the salary did not reach the card, once
        notices = await pool.fetch("SELECT kind FROM notifications WHERE person_id = $1", person)
        assert [n["kind"] for n in notices] == ["payroll_returned"]
        assert await system_balance(pool, school_id, "payroll_clearing") == 0
        assert await system_balance(pool, school_id, "bank_clearing") == -sim.held() == 0
        async with pool.acquire() as conn:
            assert (await check_ledger(conn)).ok


async def test_a_bank_line_paid_tells_the_staff_member(pool: PgPool, settings: Settings) -> None:
    with bank_world(settings) as (wired, sim):
        school_id, uploader, approver = await _world(pool)
        person = await _staff(pool, school_id, "T1", "王老师")
        await bind_bank_card(pool, wired, sim, person, "王老师", pan=PAN)
        upload = await batches.do_upload_sheet(
            pool,
            uploader,
            school_id,
            period="2026-11",
            frame=build_frame(_csv(["T1,,3000.00,bank,", "合计,,3000.00,,"])),
            filename="bank.csv",
        )
        await four_eyes.do_decide(pool, approver, school_id, upload.approval_id, approve=True)
        assert await batches.send_batch(pool, wired, school_id, upload.batch_id) == 1
        assert sim.balance_of(PAN) == 300_000
        report = await queries.batch_report(pool, approver, school_id, upload.batch_id)
        assert report["state"] == "paid" and report["line_rows"][0]["rrn"]
        notices: list[Any] = await pool.fetch(
            "SELECT kind, title FROM notifications WHERE person_id = $1", person
        )
        assert [n["kind"] for n in notices] == ["payroll_paid"]
        assert await system_balance(pool, school_id, "bank_clearing") == -sim.held() == 300_000


async def test_only_finance_uploads_and_reads_payroll(pool: PgPool) -> None:
    school_id, uploader, _ = await _world(pool)
    async with pool.acquire() as conn:
        teacher = await auth.load_actor(
            conn, await make_user(conn, "teacher1", "teacher", school_id)
        )
    frame = build_frame(_csv(["合计,,0.00,,"]))
    with pytest.raises(DomainError) as refused:
        await batches.do_upload_sheet(
            pool, teacher, school_id, period="2026-11", frame=frame, filename="x.csv"
        )
    assert refused.value.status == 403
    with pytest.raises(DomainError) as refused:
        await queries.list_batches(pool, teacher, school_id)
    assert refused.value.status == 403
    # bad input names the field and changes nothing
    with pytest.raises(ValidationFailed) as bad:
        await batches.do_upload_sheet(
            pool, uploader, school_id, period="2026-13", frame=frame, filename="x.csv"
        )
    assert bad.value.field == "period"
    assert await pool.fetchval("SELECT count(*) FROM payroll_batches") == 0


async def test_a_rejected_batch_pays_nothing_and_its_file_can_come_again_corrected(
    pool: PgPool,
) -> None:
    # given an uploaded batch
    school_id, uploader, approver = await _world(pool)
    t1 = await _staff(pool, school_id, "T1", "王老师")
    frame = build_frame(_csv(["T1,王老师,5000.00,,", "合计,,5000.00,,"]))
    upload = await batches.do_upload_sheet(
        pool, uploader, school_id, period="2026-11", frame=frame, filename="11月.csv"
    )
    # when the second person rejects it
    await four_eyes.do_decide(
        pool, approver, school_id, upload.approval_id, approve=False, note="金额有误"
    )
    # then nothing is paid or sent, the report says rejected, and the ledger holds
    assert (await balances(pool, t1))["cash"] == 0
    assert await system_balance(pool, school_id, "payroll_clearing") == 0
    assert await pool.fetchval("SELECT count(*) FROM journal_tx WHERE kind = 'payroll'") == 0
    report = await queries.batch_report(pool, approver, school_id, upload.batch_id)
    assert report["state"] == "rejected"
    assert report["counts"]["paid"] == 0
    # and a rejection is final: it cannot be approved afterwards
    with pytest.raises(DomainError) as refused:
        await four_eyes.do_decide(pool, approver, school_id, upload.approval_id, approve=True)
    assert refused.value.code == "APPROVAL_NOT_PENDING"
    assert (await balances(pool, t1))["cash"] == 0
    # a corrected sheet for the month is a new batch, paid once approved
    fixed = build_frame(_csv(["T1,王老师,5200.00,,", "合计,,5200.00,,"]))
    again = await batches.do_upload_sheet(
        pool, uploader, school_id, period="2026-11", frame=fixed, filename="11月-改.csv"
    )
    assert again.batch_id != upload.batch_id and not again.replayed
    await four_eyes.do_decide(pool, approver, school_id, again.approval_id, approve=True)
    assert (await balances(pool, t1))["cash"] == 520_000
    async with pool.acquire() as conn:
        assert (await check_ledger(conn)).ok


async def test_a_failed_bank_line_is_paid_again_once_to_the_bank_or_the_campus_account(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    with bank_world(settings) as (wired, sim):
        # given: two staff members paid to their bank cards; the bank refuses both payouts
        # (above its single-transfer limit), so both lines failed and the money is back
        school_id, uploader, approver = await _world(pool)
        people = {}
        for number, name, pan in (("T1", "王老师", PAN), ("T2", "李老师", "6222020200000000006")):
            people[number] = await _staff(pool, school_id, number, name)
            await bind_bank_card(pool, wired, sim, people[number], name, pan=pan)
        upload = await batches.do_upload_sheet(
            pool,
            uploader,
            school_id,
            period="2026-11",
            frame=build_frame(
                _csv(["T1,,3000.00,银行卡,", "T2,,2500.00,银行卡,", "合计,,5500.00,,"])
            ),
            filename="bank.csv",
        )
        await four_eyes.do_decide(pool, approver, school_id, upload.approval_id, approve=True)
        limit, sim.limit = sim.limit, 100_000
        assert await batches.send_batch(pool, wired, school_id, upload.batch_id) == 2
        sim.limit = limit
        report = await queries.batch_report(pool, approver, school_id, upload.batch_id)
        assert report["state"] == "paid_with_failures" and report["counts"]["failed"] == 2
        t1, t2 = report["line_rows"]
        assert t1["response_code"] == "61" and t1["transfer_id"] and t2["transfer_id"]
        assert await system_balance(pool, school_id, "payroll_clearing") == 0
        headers = await login(client, "finance1", "TST")
        url = f"/api/v1/schools/TST/payroll-batches/{upload.batch_id}/lines"

        # when: the finance office pays T1's line to the campus account instead
        body = {"failed_transfer_id": t1["transfer_id"], "route": "campus"}
        r = await client.post(f"{url}/2/repay", json=body, headers=headers)
        # then: booked at once, the line is paid, and the failed payout is kept in its history
        assert r.status_code == 200, r.text
        assert r.json()["route"] == "campus" and r.json()["tx_id"] and not r.json()["replayed"]
        assert (await balances(pool, people["T1"]))["cash"] == 300_000
        # the same request again pays nothing twice and answers the same
        again = await client.post(f"{url}/2/repay", json=body, headers=headers)
        assert again.status_code == 200 and again.json()["replayed"]
        assert again.json()["tx_id"] == r.json()["tx_id"]
        assert (await balances(pool, people["T1"]))["cash"] == 300_000
        # another line's payout, a route that does not exist, a row that does not: refused,
        # naming the field
        bad = await client.post(f"{url}/3/repay", json=body | {"route": "bank"}, headers=headers)
        assert bad.status_code == 409 and bad.json()["error"]["field"] == "failed_transfer_id"
        bad = await client.post(f"{url}/2/repay", json=body | {"route": "cash"}, headers=headers)
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "route"
        bad = await client.post(
            f"{url}/9/repay",
            json={**body, "failed_transfer_id": t2["transfer_id"]},
            headers=headers,
        )
        assert bad.status_code == 404 and bad.json()["error"]["field"] == "row"

        # when: T2's line is paid to the bank card again, and the job sends it
        r = await client.post(
            f"{url}/3/repay",
            json={"failed_transfer_id": t2["transfer_id"], "route": "bank"},
            headers=headers,
        )
        assert r.status_code == 200 and r.json()["transfer_id"] not in (None, t2["transfer_id"])
        report = await queries.batch_report(pool, approver, school_id, upload.batch_id)
        assert report["state"] == "paying" and report["line_rows"][1]["state"] == "pending"
        # a line at the bank cannot be paid again (its new payout is not failed)
        bad = await client.post(
            f"{url}/3/repay",
            json={"failed_transfer_id": r.json()["transfer_id"], "route": "campus"},
            headers=headers,
        )
        assert bad.status_code == 409 and bad.json()["error"]["code"] == "PAYROLL_LINE_NOT_FAILED"
        assert await batches.send_batch(pool, wired, school_id, upload.batch_id) == 1
        # then: every line is paid, once, each with its failed attempt in the report
        assert sim.balance_of("6222020200000000006") == 250_000
        report = await queries.batch_report(pool, approver, school_id, upload.batch_id)
        assert report["state"] == "paid" and report["counts"]["paid"] == 2
        assert [line["route"] for line in report["line_rows"]] == ["campus", "bank"]
        assert [
            [(e["failed_transfer_id"], e["response_code"], e["route"]) for e in line["repays"]]
            for line in report["line_rows"]
        ] == [
            [(t1["transfer_id"], "61", "campus")],
            [(t2["transfer_id"], "61", "bank")],
        ]
        # only finance pays a line again
        async with pool.acquire() as conn:
            await make_user(conn, "teacher1", "teacher", school_id)
        teacher = await login(client, "teacher1", "TST")
        r = await client.post(f"{url}/2/repay", json=body, headers=teacher)
        assert r.status_code == 403
        audit = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'payroll.repay'")
        assert audit == 2
        assert await system_balance(pool, school_id, "payroll_clearing") == -550_000
        async with pool.acquire() as conn:
            assert (await check_ledger(conn)).ok
