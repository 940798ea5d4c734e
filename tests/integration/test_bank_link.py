"""The bank link (圈存) against the ISO 8583 bank simulator: binding, loads, timeouts and
reversals, inquiry after a crash, service hours. No money is ever lost or made."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import httpx

from campuscard.adapters.bank import iso
from campuscard.adapters.bank.client import BankAnswer, BankClient
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.ledger.checks import check_ledger
from campuscard.ledger.money import Money
from campuscard.moneyflows import bank_link
from campuscard.platform.actors import Actor
from tests.support import login, make_school, make_student, make_user
from tests.support_moneyflows import (
    PAN,
    api_client,
    balances,
    bank_world,
    bank_world_async,
    cid,
    holder_with_card,
)

NOW = timedelta(0)


async def _consistent(pool: PgPool, school_id: int, held: int) -> None:
    """bank_clearing mirrors what the bank holds for us; the ledger is sound."""
    clearing = await pool.fetchval(
        "SELECT balance FROM accounts WHERE school_id = $1 AND system_code = 'bank_clearing'",
        school_id,
    )
    assert -clearing == held
    async with pool.acquire() as conn:
        assert (await check_ledger(conn)).ok


def _holder(person: int) -> Actor:
    return Actor(name="holder", person_id=person)


async def test_bind_keeps_only_a_masked_number(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person = await make_student(conn, school.id, "S001", name="李雷")
        await make_user(conn, "stu1", "cardholder", school.id, person_id=person)
    headers = await login(client, "stu1", "TST")
    async with contextlib.AsyncExitStack() as stack, bank_world_async(settings) as (wired, sim):
        sim.open_account(PAN, "李雷", 10_000)
        url = f"/api/v1/persons/{person}/bank-card"
        client = await stack.enter_async_context(api_client(wired, pool))
        bad = await client.post(
            url, json={"pan": "6222021234567890127", "holder_name": "李雷"}, headers=headers
        )
        assert (bad.status_code, bad.json()["error"]["field"]) == (422, "pan")
        wrong = await client.post(url, json={"pan": PAN, "holder_name": "韩梅梅"}, headers=headers)
        assert (wrong.status_code, wrong.json()["error"]["field"]) == (422, "holder_name")
        r = await client.post(
            url, json={"pan": PAN, "holder_name": "李雷", "bank_name": "工商银行"}, headers=headers
        )
        assert r.status_code == 201, r.text
        assert r.json()["masked_pan"] == "622202*********0128"
        again = await client.post(url, json={"pan": PAN, "holder_name": "李雷"}, headers=headers)
        assert again.status_code == 409
    stored = await pool.fetchval("SELECT row_to_json(b)::text FROM bank_cards b")
    assert PAN not in stored and "1234567890" not in stored


async def test_load_credits_the_card_once(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    async with contextlib.AsyncExitStack() as stack, bank_world_async(settings) as (wired, sim):
        school_id, person = await holder_with_card(pool, wired, sim, bank_balance=50_000)
        await make_user_for(pool, school_id, person)
        headers = await login(client, "stu1", "TST")
        client = await stack.enter_async_context(api_client(wired, pool))
        body = {"client_id": cid(), "amount": "123.45"}
        first = await client.post(
            f"/api/v1/persons/{person}/bank-loads", json=body, headers=headers
        )
        again = await client.post(
            f"/api/v1/persons/{person}/bank-loads", json=body, headers=headers
        )
        assert first.status_code == 201, first.text
        assert first.json()["status"] == "posted"
        assert again.json()["id"] == first.json()["id"]
        assert await balances(pool, person) == {"cash": 12345, "subsidy": 0}
        assert sim.balance_of(PAN) == 50_000 - 12345
        poor = await client.post(
            f"/api/v1/persons/{person}/bank-loads",
            json={"client_id": cid(), "amount": "1000.00"},
            headers=headers,
        )
        assert poor.json()["status"] == "failed" and poor.json()["response_code"] == "51"
        await _consistent(pool, school_id, sim.held())


async def make_user_for(pool: PgPool, school_id: int, person: int) -> None:
    async with pool.acquire() as conn:
        await make_user(conn, "stu1", "cardholder", school_id, person_id=person)


async def test_timeout_after_the_bank_debited_is_reversed(pool: PgPool, settings: Settings) -> None:
    with bank_world(settings) as (wired, sim):
        school_id, person = await holder_with_card(pool, wired, sim, bank_balance=50_000)
        # the bank debits, but its answer is lost
        sim.inject("0200", "drop")
        _, view, _ = await bank_link.do_load(
            pool, wired, _holder(person), person_id=person, amount=Money(10_000), client_id=cid()
        )
        assert view["status"] == "reversed"
        assert await balances(pool, person) == {"cash": 0, "subsidy": 0}
        assert sim.balance_of(PAN) == 50_000
        assert sim.held() == 0
        await _consistent(pool, school_id, 0)


async def test_lost_reversals_are_retried_by_the_job(pool: PgPool, settings: Settings) -> None:
    with bank_world(settings) as (wired, sim):
        school_id, person = await holder_with_card(pool, wired, sim, bank_balance=50_000)
        sim.inject("0200", "drop")
        sim.inject("0400", "drop_before", times=wired.bank_reversal_attempts)
        _, view, _ = await bank_link.do_load(
            pool, wired, _holder(person), person_id=person, amount=Money(7_000), client_id=cid()
        )
        assert view["status"] == "unknown"
        assert sim.balance_of(PAN) == 43_000  # debited at the bank, not credited here: for now
        assert await bank_link.resolve_open_transfers(pool, wired, older_than=NOW) == 1
        assert await bank_link.resolve_open_transfers(pool, wired, older_than=NOW) == 0
        row = await pool.fetchrow("SELECT status, reversal_attempts FROM bank_transfers")
        assert row["status"] == "reversed" and row["reversal_attempts"] == 4
        assert sim.balance_of(PAN) == 50_000
        await _consistent(pool, school_id, sim.held())


async def test_a_load_resent_while_in_doubt_answers_pending_and_creates_no_money(
    pool: PgPool, settings: Settings
) -> None:
    """The cardholder resends a 圈存 with the same client id while the first try is still in
    doubt: the resend must not send the request to the bank again, where its late approval
    would be booked after our own reversal had undone the bank's side."""
    with bank_world(settings) as (wired, sim):
        school_id, person = await holder_with_card(pool, wired, sim, bank_balance=50_000)
        # given: the bank books the load but answers late; the first two reversals are lost
        sim.inject("0200", "delay:1.2", times=2)
        sim.inject("0400", "drop_before", times=2)
        client_id = cid()

        async def load() -> dict[str, object]:
            _, view, _ = await bank_link.do_load(
                pool,
                wired,
                _holder(person),
                person_id=person,
                amount=Money(4_000),
                client_id=client_id,
            )
            return view

        # when: the resend arrives while the first try waits for the bank
        first = asyncio.create_task(load())
        await asyncio.sleep(0.15)
        resent = await load()
        view = await first
        # then: the resend answers the pending state; the bank heard the load once
        assert resent["status"] == "pending"
        assert sim.requests.count("0200") == 1
        assert view["status"] == "reversed"
        await asyncio.sleep(1.3)  # anything late has arrived by now
        assert await balances(pool, person) == {"cash": 0, "subsidy": 0}
        assert sim.balance_of(PAN) == 50_000 and sim.held() == 0
        await _consistent(pool, school_id, 0)


async def test_a_transfer_in_doubt_is_resolved_by_its_reversal_only(
    pool: PgPool, settings: Settings
) -> None:
    with bank_world(settings) as (wired, sim):
        school_id, person = await holder_with_card(pool, wired, sim, bank_balance=50_000)
        # given: a load in doubt (no answer, reversals lost for now)
        sim.inject("0200", "drop")
        sim.inject("0400", "drop_before", times=wired.bank_reversal_attempts)
        _, view, _ = await bank_link.do_load(
            pool, wired, _holder(person), person_id=person, amount=Money(4_000), client_id=cid()
        )
        assert view["status"] == "unknown"
        # when: an approval of the original arrives late
        late = await bank_link.settle_answer(
            pool, wired, view["id"], BankAnswer(iso.APPROVED, auth_code="123456")
        )
        # then: it is not booked; the reversal resolves the transfer
        assert late["status"] == "unknown"
        assert await balances(pool, person) == {"cash": 0, "subsidy": 0}
        assert await bank_link.resolve_open_transfers(pool, wired, older_than=NOW) == 1
        assert (await pool.fetchval("SELECT status FROM bank_transfers")) == "reversed"
        assert sim.held() == 0
        await _consistent(pool, school_id, 0)


async def test_crash_before_and_after_the_bank_answered(pool: PgPool, settings: Settings) -> None:
    with bank_world(settings) as (wired, sim):
        school_id, person = await holder_with_card(pool, wired, sim, bank_balance=50_000)
        card = await bank_link.bound_card(pool, person)
        assert card is not None
        # two transfers written, then the process died: one never sent, one sent and approved
        async with pool.acquire() as conn, conn.transaction():
            never = await bank_link.create_transfer(
                conn,
                school_id=school_id,
                person_id=person,
                card=card,
                direction="load",
                origin="holder",
                amount=1_000,
                requested_by=None,
            )
            sent = await bank_link.create_transfer(
                conn,
                school_id=school_id,
                person_id=person,
                card=card,
                direction="load",
                origin="holder",
                amount=2_000,
                requested_by=None,
            )
        bank = BankClient.from_settings(wired)
        answer = await bank.transfer(
            direction="load",
            token=card["bank_token"],
            amount=2_000,
            rrn=sent["rrn"],
            stan=sent["stan"],
        )
        assert answer.approved
        # when the job resolves them by inquiry
        assert await bank_link.resolve_open_transfers(pool, wired, older_than=NOW) == 2
        statuses = dict(await pool.fetch("SELECT id, status FROM bank_transfers"))
        assert statuses == {never["id"]: "reversed", sent["id"]: "posted"}
        assert await balances(pool, person) == {"cash": 2_000, "subsidy": 0}
        # a late copy of the never-sent original is refused by the reversal marker
        late = await bank.transfer(
            direction="load",
            token=card["bank_token"],
            amount=1_000,
            rrn=never["rrn"],
            stan=never["stan"],
        )
        assert late.code == iso.REVERSED
        assert sim.balance_of(PAN) == 48_000
        await _consistent(pool, school_id, sim.held())


async def test_service_hours_are_respected(pool: PgPool, settings: Settings) -> None:
    with bank_world(settings) as (wired, sim):
        _school_id, person = await holder_with_card(pool, wired, sim)
        closed = wired.model_copy(update={"bank_hours": "00:00-00:00"})
        status, body, _ = await bank_link.do_load(
            pool, closed, _holder(person), person_id=person, amount=Money(100), client_id=cid()
        )
        assert status == 409 and body["error"]["code"] == "BANK_CLOSED"
        assert await pool.fetchval("SELECT count(*) FROM bank_transfers") == 0
        assert sim.requests == ["0100"]  # only the binding reached the bank
