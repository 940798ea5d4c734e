"""Reversals (冲正) before/after/twice, refunds never above the payment, and many terminals
paying, refunding and reversing at once leaving the ledger consistent (issue 3)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.ledger import postings
from campuscard.ledger.checks import check_ledger
from tests.support import login, make_school, make_user
from tests.support_payments import (
    Device,
    device_call,
    make_cardholder,
    make_device,
    make_merchant,
    pay,
)


async def _setup(pool: PgPool, settings: Settings) -> tuple[Device, int, dict[str, Any], int]:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        merchant_id, outlet_id = await make_merchant(conn, school.id)
        dev = await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
        person_id, card = await make_cardholder(conn, school.id, "S1", cash=10_000, subsidy=2_000)
    return dev, person_id, card, merchant_id


async def _reverse(client: httpx.AsyncClient, dev: Device, client_id: str) -> httpx.Response:
    return await device_call(
        client, dev, "POST", "/api/v1/terminal/pay/reverse", {"client_id": client_id}
    )


async def test_a_reversal_resent_while_the_first_is_reversing_answers_the_same(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Found by tests/reliability/test_bank.py: the second of two identical reversals sent at
    once failed on the reversal's key after waiting for the payment's lock: a 500."""
    dev, person_id, card, merchant_id = await _setup(pool, settings)
    for i in range(4):
        # given: a booked payment
        client_id = f"rev-eager-{i:03d}"
        assert (await pay(client, dev, card, "5.00", client_id=client_id)).status_code == 200
        # when: the till sends its reversal twice at once
        first, again = await asyncio.gather(
            _reverse(client, dev, client_id), _reverse(client, dev, client_id)
        )
        # then: one reversal, the same answer twice
        assert (first.status_code, again.status_code) == (200, 200), (first.text, again.text)
        assert first.json() == again.json() and first.json()["original"] == "booked"
    async with pool.acquire() as conn:
        assert await postings.purse_balances(conn, person_id) == {"cash": 10_000, "subsidy": 2_000}
        assert await postings.merchant_balance(conn, merchant_id) == 0
        assert await conn.fetchval("SELECT count(*) FROM payment_reversals") == 4
        assert (await check_ledger(conn)).ok


async def test_reversal_after_payment_returns_money_to_the_same_purses(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, person_id, card, merchant_id = await _setup(pool, settings)
    paid = await pay(client, dev, card, "30.00", client_id="rev-after-001")
    assert paid.status_code == 200
    r1 = await _reverse(client, dev, "rev-after-001")
    r2 = await _reverse(client, dev, "rev-after-001")
    assert r1.status_code == 200, r1.text
    assert r1.json()["result"] == "reversed" and r1.json()["original"] == "booked"
    assert r1.json()["returned_to"] == {"subsidy": "20.00", "cash": "10.00"}
    assert r2.json() == r1.json() and r2.headers["idempotent-replayed"] == "true"
    async with pool.acquire() as conn:
        assert await postings.purse_balances(conn, person_id) == {"cash": 10_000, "subsidy": 2_000}
        assert await postings.merchant_balance(conn, merchant_id) == 0
        assert (await check_ledger(conn)).ok
    # the payment's retry still answers the booked receipt; nothing books twice
    again = await pay(client, dev, card, "30.00", client_id="rev-after-001")
    assert again.json() == paid.json()


async def test_reversal_before_payment_makes_the_late_original_refused_for_ever(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, person_id, card, _ = await _setup(pool, settings)
    early = await _reverse(client, dev, "rev-early-0001")
    late = await pay(client, dev, card, "30.00", client_id="rev-early-0001")
    later = await pay(client, dev, card, "30.00", client_id="rev-early-0001")
    assert early.status_code == 200 and early.json()["original"] == "not_received"
    assert late.status_code == 409 and late.json()["error"]["code"] == "PAYMENT_REVERSED"
    assert later.json() == late.json()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM payments") == 0
        assert sum((await postings.purse_balances(conn, person_id)).values()) == 12_000


async def test_reversal_of_another_terminals_payment_does_not_touch_it(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, _person_id, card, merchant_id = await _setup(pool, settings)
    async with pool.acquire() as conn:
        other = await make_device(conn, settings, dev.school_id, merchant_id, "POS-0002")
    assert (await pay(client, dev, card, "5.00", client_id="mine-00000001")).status_code == 200
    r = await _reverse(client, other, "mine-00000001")
    # not a success-looking "reversed / not_received": the other till is told whose it is
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "PAYMENT_OF_ANOTHER_TERMINAL"
    assert r.json()["error"]["details"] == {"terminal": dev.sn}
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM payments") == "booked"
        # and no marker was left: the other till's own id stays free
        assert await conn.fetchval("SELECT count(*) FROM payment_reversals") == 0
    # the till that took it still reverses it
    mine = await _reverse(client, dev, "mine-00000001")
    assert mine.json()["result"] == "reversed" and mine.json()["original"] == "booked"


async def test_reversal_window_passed_and_refunded_payment_cannot_be_reversed(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, _person_id, card, _merchant_id = await _setup(pool, settings)
    async with pool.acquire() as conn:
        await conn.execute(
            """UPDATE schools SET settings = '{"payments": {"reversal_minutes": 1}}'
               WHERE id = $1""",
            dev.school_id,
        )
    await pay(client, dev, card, "5.00", client_id="old-pay-00001")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE payments SET created_at = now() - interval '2 minutes'")
    r = await _reverse(client, dev, "old-pay-00001")
    assert r.status_code == 409 and r.json()["error"]["code"] == "REVERSAL_WINDOW_PASSED"


async def _staff(
    pool: PgPool, client: httpx.AsyncClient, school_id: int, merchant_id: int, *, refund: bool
) -> dict[str, str]:
    name = "cashier-r" if refund else "cashier-n"
    async with pool.acquire() as conn:
        user_id = await make_user(conn, name, "merchant_staff", school_id, merchant_id=merchant_id)
        if refund:
            await conn.execute(
                "INSERT INTO merchant_permissions(school_id, user_id, merchant_id, permission) "
                "SELECT school_id, $1, id, 'refund' FROM merchants WHERE id = $2",
                user_id,
                merchant_id,
            )
    return await login(client, name, "TST")


async def test_partial_refunds_go_back_to_purses_and_never_exceed_the_payment(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, person_id, card, merchant_id = await _setup(pool, settings)
    allowed = await _staff(pool, client, dev.school_id, merchant_id, refund=True)
    denied = await _staff(pool, client, dev.school_id, merchant_id, refund=False)
    paid = (await pay(client, dev, card, "30.00")).json()  # subsidy 20.00 + cash 10.00
    url = f"/api/v1/payments/{paid['payment_id']}/refunds"

    no = await client.post(
        url, json={"client_id": "refund-no-01", "amount": "1.00"}, headers=denied
    )
    r1 = await client.post(
        url,
        json={"client_id": "refund-0001", "amount": "12.00", "reason": "wrong dish"},
        headers=allowed,
    )
    r2 = await client.post(
        url, json={"client_id": "refund-0002", "amount": "18.01"}, headers=allowed
    )
    r3 = await client.post(
        url, json={"client_id": "refund-0003", "amount": "18.00"}, headers=allowed
    )

    assert no.status_code == 403 and no.json()["error"]["code"] == "REFUND_NOT_PERMITTED"
    assert r1.status_code == 200, r1.text
    assert r1.json()["returned_to"] == {"cash": "10.00", "subsidy": "2.00"}
    assert r2.status_code == 409 and r2.json()["error"]["code"] == "REFUND_EXCEEDS_PAYMENT"
    assert r3.status_code == 200 and r3.json()["refundable"] == "0.00"
    async with pool.acquire() as conn:
        assert await postings.purse_balances(conn, person_id) == {"cash": 10_000, "subsidy": 2_000}
        assert await postings.merchant_balance(conn, merchant_id) == 0
        assert (await check_ledger(conn)).ok


async def test_racing_refunds_never_exceed_the_payment(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, _person_id, card, merchant_id = await _setup(pool, settings)
    staff = await _staff(pool, client, dev.school_id, merchant_id, refund=True)
    paid = (await pay(client, dev, card, "30.00")).json()
    url = f"/api/v1/payments/{paid['payment_id']}/refunds"

    answers = await asyncio.gather(
        *(
            client.post(
                url, json={"client_id": f"race-refund-{i:02d}", "amount": "7.00"}, headers=staff
            )
            for i in range(8)
        )
    )

    ok = [a for a in answers if a.status_code == 200]
    assert len(ok) == 4  # 4 x 7.00 = 28.00 <= 30.00 < 5 x 7.00
    assert all(
        a.json()["error"]["code"] == "REFUND_EXCEEDS_PAYMENT"
        for a in answers
        if a.status_code != 200
    )
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT refunded FROM payments") == 2_800
        assert await conn.fetchval("SELECT sum(amount) FROM refunds") == 2_800


async def test_refund_at_the_pos_needs_signed_device_and_cashier(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, _person_id, card, merchant_id = await _setup(pool, settings)
    staff = await _staff(pool, client, dev.school_id, merchant_id, refund=True)
    paid = (await pay(client, dev, card, "10.00")).json()
    body = {"client_id": "pos-refund-01", "payment_id": paid["payment_id"], "amount": "4.00"}
    anonymous = await device_call(client, dev, "POST", "/api/v1/terminal/refunds", body)
    ok = await device_call(
        client, dev, "POST", "/api/v1/terminal/refunds", body, extra_headers=staff
    )
    assert anonymous.status_code == 401
    assert ok.status_code == 200, ok.text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT terminal_id FROM refunds") == dev.id


async def test_a_refund_resent_after_a_cashier_change_replays_the_first_answer(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    """A device's client id belongs to the device, whoever is signed in on it: a till that
    resends a refund after another cashier signed in must not refund twice."""
    # given: a payment refunded once at the till by the first cashier
    dev, person_id, card, merchant_id = await _setup(pool, settings)
    first_cashier = await _staff(pool, client, dev.school_id, merchant_id, refund=True)
    async with pool.acquire() as conn:
        second_id = await make_user(
            conn, "cashier-r2", "merchant_staff", dev.school_id, merchant_id=merchant_id
        )
        await conn.execute(
            "INSERT INTO merchant_permissions(school_id, user_id, merchant_id, permission) "
            "SELECT school_id, $1, id, 'refund' FROM merchants WHERE id = $2",
            second_id,
            merchant_id,
        )
    second_cashier = await login(client, "cashier-r2", "TST")
    paid = (await pay(client, dev, card, "10.00")).json()
    body = {"client_id": "till-refund-0001", "payment_id": paid["payment_id"], "amount": "3.00"}
    url = "/api/v1/terminal/refunds"
    first = await device_call(client, dev, "POST", url, body, extra_headers=first_cashier)
    # when: the till resends it, the same client id and body, after a cashier change
    again = await device_call(client, dev, "POST", url, body, extra_headers=second_cashier)
    # then: the first answer, replayed; 3.00 refunded once
    assert first.status_code == 200 and again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM refunds") == 1
        assert await conn.fetchval("SELECT refunded FROM payments") == 300
        purses = await postings.purse_balances(conn, person_id)
        assert sum(purses.values()) == 12_000 - 1_000 + 300


async def test_many_terminals_paying_refunding_reversing_at_once_keep_the_ledger(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    # given one busy canteen with 6 terminals and 10 students
    async with pool.acquire() as conn:
        school = await make_school(conn)
        merchant_id, _outlet_id = await make_merchant(conn, school.id, shards=4)
        devices = [
            await make_device(conn, settings, school.id, merchant_id, f"POS-{i:04d}")
            for i in range(6)
        ]
        holders = [
            await make_cardholder(conn, school.id, f"S{i:03d}", cash=20_000, subsidy=1_000)
            for i in range(10)
        ]
        await conn.execute(
            """UPDATE schools SET settings = '{"payments": {"pin_over_per_tx": 1000000,
                   "pin_over_daily": 1000000}}' WHERE id = $1""",
            school.id,
        )
    staff = await _staff(pool, client, school.id, merchant_id, refund=True)
    booked: list[int] = []

    async def terminal(i: int, dev: Device) -> None:
        rng = random.Random(i)
        for n in range(40):
            _, card = rng.choice(holders)
            client_id = f"{dev.sn}-{n:05d}"
            roll = rng.random()
            if roll < 0.1:  # reversal that races (or precedes) its payment
                await asyncio.gather(
                    pay(client, dev, card, f"{rng.randint(1, 900) / 100:.2f}", client_id),
                    _reverse(client, dev, client_id),
                )
                continue
            r = await pay(client, dev, card, f"{rng.randint(1, 3000) / 100:.2f}", client_id)
            if r.status_code == 200:
                booked.append(r.json()["payment_id"])
                if roll < 0.3:
                    await _reverse(client, dev, client_id)
                elif roll < 0.5:
                    await client.post(
                        f"/api/v1/payments/{r.json()['payment_id']}/refunds",
                        json={"client_id": f"rf-{client_id}", "amount": "0.50"},
                        headers=staff,
                    )

    # when they all work at once
    await asyncio.gather(*(terminal(i, d) for i, d in enumerate(devices)))

    # then the ledger holds, merchant = payments - refunds - reversals, purses agree
    async with pool.acquire() as conn:
        report = await check_ledger(conn)
        assert report.ok, report.violations
        net = await conn.fetchval(
            "SELECT coalesce(sum(amount - refunded), 0) FROM payments WHERE status = 'booked'"
        )
        assert await postings.merchant_balance(conn, merchant_id) == net
        spent = await conn.fetchval(
            "SELECT -sum(balance) + 10 * 21000 FROM accounts WHERE kind = 'purse'"
        )
        assert spent == net
        # a reversal that won its race left no payment behind; one that lost reversed it
        stuck = await conn.fetchval(
            """SELECT count(*) FROM payment_reversals r JOIN payments p
                 ON p.terminal_id = r.terminal_id AND p.client_id = r.client_id
                WHERE p.status <> 'reversed'"""
        )
        assert stuck == 0
    assert len(booked) > 100
