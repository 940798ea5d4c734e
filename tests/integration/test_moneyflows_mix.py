"""The must-show mix: counter, online top-ups (duplicate, dropped and replayed callbacks),
bank loads with lost answers, automatic top-ups, subsidies, refunds and a leaving payout, all
at once in random order. Afterwards the ledger check passes and the bank and provider
clearing accounts equal what the two simulators say they hold."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from datetime import timedelta

import httpx

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.ledger.checks import check_ledger
from campuscard.ledger.money import Money
from campuscard.moneyflows import autotopup, bank_link, counter, leaving, provider_orders, topups
from campuscard.platform import four_eyes, outbox
from campuscard.platform.actors import Actor, Grant
from campuscard.platform.errors import DomainError, InsufficientFunds
from campuscard.platform.tasks import load_job_modules
from tests.support import make_school, make_user
from tests.support_moneyflows import (
    MCH_ID,
    bank_world,
    cid,
    holder_with_card,
    provider_world,
    system_balance,
)

STUDENTS = 6
ROUNDS = 8


async def test_randomized_mix_keeps_the_books_and_the_simulators_equal(
    pool: PgPool, settings: Settings
) -> None:
    rng = random.Random(int(os.environ.get("CAMPUSCARD_MIX_SEED", "20261123")))
    load_job_modules()
    with bank_world(settings) as (banked, bank), provider_world(banked) as (wired, provider, app):
        async with pool.acquire() as conn:
            school = await make_school(conn)
            operator_id = await make_user(conn, "cashier", "settlement", school.id)
        operator = Actor(
            name="cashier", user_id=operator_id, grants=frozenset({Grant("settlement", school.id)})
        )
        async with pool.acquire() as conn:
            supervisor_id = await make_user(conn, "supervisor", "settlement", school.id)
        # the four eyes on money: what the cashier proposes, the supervisor approves
        supervisor = Actor(
            name="supervisor",
            user_id=supervisor_id,
            grants=frozenset({Grant("settlement", school.id)}),
        )
        people: list[tuple[int, Actor, str]] = []
        for i in range(STUDENTS):
            number = f"S{i:03d}"
            pan = f"62220200000000{i:04d}"
            pan += str(_luhn_digit(pan))
            _, person = await holder_with_card(
                pool,
                wired,
                bank,
                cash=2_000,
                bank_balance=60_000,
                number=number,
                name=f"学生{i}",
                pan=pan,
            )
            async with pool.acquire() as conn:
                user = await make_user(conn, f"stu{i}", "cardholder", school.id, person_id=person)
            people.append((person, Actor(name=f"stu{i}", user_id=user, person_id=person), number))
        for person, holder, _ in people[:3]:
            await autotopup.do_set_auto_topup(
                pool,
                holder,
                person_id=person,
                threshold=Money(5_000),
                target=Money(20_000),
                enabled=True,
            )
        opened = await counter.do_open_drawer(
            pool, operator, school.id, opening_float=Money(100_000)
        )
        await four_eyes.do_decide(
            pool, supervisor, school.id, opened["float_approval"]["id"], approve=True
        )
        provider.notify_mode = "duplicate"
        paid_orders: list[int] = []

        async def counter_flow() -> None:
            for _ in range(ROUNDS):
                _, _, number = rng.choice(people)
                kind = rng.choice(["deposit", "withdrawal", "subsidy_grant"])
                amount = Money(rng.randint(1, 3_000))
                outcome = await counter.do_counter_op(
                    pool,
                    operator,
                    school.id,
                    kind=kind,
                    client_id=cid("mix"),
                    person_number=number,
                    amount=amount,
                    identity=counter.Identity("student_id", True, holder_name=None)
                    if kind != "withdrawal"
                    else _identity(number),
                    memo="mix",
                )
                if outcome.status == 202:  # a grant: the supervisor approves it
                    approval_id = outcome.body["approval"]["id"]
                    try:
                        await four_eyes.do_decide(
                            pool, supervisor, school.id, approval_id, approve=True
                        )
                    except DomainError:  # the account closed meanwhile: rejected instead
                        await four_eyes.do_decide(
                            pool, supervisor, school.id, approval_id, approve=False, note="closed"
                        )

        async def topup_flow() -> None:
            async with httpx.AsyncClient() as web:
                for _ in range(ROUNDS):
                    person, holder, _ = rng.choice(people)
                    status, view, _ = await topups.do_create_topup(
                        pool,
                        wired,
                        holder,
                        person_id=person,
                        amount=Money(rng.randint(100, 5_000)),
                        client_id=cid("mix"),
                    )
                    if status != 201:  # the leaving holder's account closed meanwhile
                        assert view["error"]["code"] == "ACCOUNT_NOT_ACTIVE", view
                        continue
                    if rng.random() < 0.8:
                        await web.post(view["pay_url"], data={"action": "pay"})
                        paid_orders.append(view["id"])
                    await asyncio.sleep(rng.random() / 50)

        async def bank_flow() -> None:
            for _ in range(ROUNDS):
                person, holder, _ = rng.choice(people)
                if rng.random() < 0.3:
                    bank.inject("0200", rng.choice(["drop", "drop_before"]))
                await bank_link.do_load(
                    pool,
                    wired,
                    holder,
                    person_id=person,
                    amount=Money(rng.randint(100, 8_000)),
                    client_id=cid("mix"),
                )

        async def auto_flow() -> None:
            for _ in range(ROUNDS):
                await autotopup.run_auto_topups(pool, wired)
                await asyncio.sleep(0.05)

        async def leave_flow() -> None:
            await asyncio.sleep(0.3)
            _, _, number = people[-1]
            for _ in range(5):  # retried while a transfer of the holder is still open
                status, _, _ = await leaving.do_leave(
                    pool,
                    wired,
                    operator,
                    school.id,
                    person_number=number,
                    method="bank",
                    client_id=cid("leave"),
                )
                if status == 201:
                    return
                await asyncio.sleep(0.3)

        await asyncio.gather(counter_flow(), topup_flow(), bank_flow(), auto_flow(), leave_flow())

        # a few paid top-ups are refunded; late callbacks are replayed by hand
        await asyncio.sleep(0.5)
        for order_id in paid_orders[:2]:
            order = await provider_orders.get_order(pool, order_id)
            if order["status"] == "paid":
                # the holder may have spent the top-up meanwhile: then the refund is refused
                # (money already spent is not refunded) and nothing moves
                with contextlib.suppress(InsufficientFunds):
                    await provider_orders.do_refund(pool, operator, order_id, reason="mix")
        async with httpx.AsyncClient(base_url=app) as api:
            for o in list(provider.orders.values())[:3]:
                if o.paid_at is not None:
                    await api.post("/api/v1/providers/notify", json=provider.notify_params(o))

        # quiesce: the query job, the bank resolver and the outbox settle everything open
        await pool.execute("UPDATE provider_orders SET expires_at = now() WHERE status = 'pending'")
        for _ in range(20):
            await provider_orders.resolve_overdue_orders(pool, wired)
            await bank_link.resolve_open_transfers(pool, wired, older_than=timedelta(0))
            await outbox.deliver_batch(pool, wired)
            open_ = await pool.fetchval(
                "SELECT (SELECT count(*) FROM provider_orders WHERE status = 'pending') + "
                "(SELECT count(*) FROM bank_transfers WHERE status IN "
                "('pending', 'unknown', 'reversing')) + "
                "(SELECT count(*) FROM outbox WHERE delivered_at IS NULL "
                " AND topic = 'provider.refund')"
            )
            if open_ == 0:
                break
            await asyncio.sleep(0.2)
        assert open_ == 0

        # then: the books are sound and mirror the outside parties exactly
        async with pool.acquire() as conn:
            report = await check_ledger(conn)
        assert report.ok, report.violations
        assert -await system_balance(pool, school.id, "bank_clearing") == bank.held()
        assert -await system_balance(pool, school.id, "provider_clearing") == provider.held(MCH_ID)
        assert bank.held() != 0 and provider.held(MCH_ID) != 0
        statuses = {
            r["status"] for r in await pool.fetch("SELECT DISTINCT status FROM bank_transfers")
        }
        assert "posted" in statuses
        credited = await pool.fetchval(
            "SELECT count(*) FROM journal_tx WHERE kind = 'topup_online'"
        )
        paid = await pool.fetchval(
            "SELECT count(*) FROM provider_orders WHERE status IN ('paid', 'refunded')"
        )
        assert credited == paid  # each paid order credited exactly once


def _identity(number: str) -> counter.Identity:
    index = int(number[1:])
    return counter.Identity("student_id", True, holder_name=f"学生{index}")


def _luhn_digit(partial: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return (10 - total % 10) % 10
