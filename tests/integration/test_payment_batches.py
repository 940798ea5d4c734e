"""Group commit (payments/batching.py, decision 0170): payments arriving together book in one
call and one commit, and each gets what a single booking would have given it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.ledger import postings
from campuscard.ledger.checks import check_ledger
from campuscard.ledger.money import Money
from campuscard.payments import booking, code_payments, codes
from campuscard.payments.batching import PaymentBatcher
from campuscard.payments.terminals import SignedTerminal
from campuscard.platform.errors import DomainError
from tests.support import make_school
from tests.support_paycodes import make_holder
from tests.support_payments import (
    Device,
    make_cardholder,
    make_device,
    make_merchant,
    signed_terminal,
)

# what differs between two bookings of the same payment: ids, clock, numbers of the campus
_OWN = {"payment_id", "receipt_no", "booked_at", "card_number", "terminal", "business_date"}


class _Events:
    """Stands in for the app's live-event batcher: keeps what was published, in order."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def publish(self, event: dict[str, Any]) -> None:
        self.sent.append(event)


async def _campus(pool: PgPool, settings: Settings, code: str) -> dict[str, Any]:
    """A till and five students: A (50.00), B (1.00), C (20.00, whose code is spent), D (lost
    card), and P (30.00) who pays with codes from a bound phone."""
    async with pool.acquire() as conn:
        school = await make_school(conn, code)
        merchant_id, outlet_id = await make_merchant(conn, school.id)
        dev = await make_device(
            conn, settings, school.id, merchant_id, sn=f"POS-{code}", outlet_id=outlet_id
        )
        people = {}
        for name, cash in (("A", 5_000), ("B", 100), ("C", 2_000), ("D", 2_000)):
            people[name] = await make_cardholder(conn, school.id, f"{code}{name}", cash=cash)
        await conn.execute("UPDATE cards SET state = 'lost' WHERE id = $1", people["D"][1]["id"])
        phone = await make_holder(conn, settings, school.id, f"{code}P", cash=3_000)
    now = time.time()
    return {
        "dev": dev,
        "people": people,
        # the one-time credential of C's payment code (credentials are unique platform-wide)
        "code": f"paycode:m:{school.id}",
        # two codes of P's phone, scanned at the till
        "scans": [phone.code(now, 0), phone.code(now, 1)],
        "phone": phone,
    }


def _card(campus: dict[str, Any], name: str) -> booking.CardPayer:
    card = campus["people"][name][1]
    return booking.CardPayer(card["number"], card["uid"])


# a payer: a card, a verified payer, or the digits of a payment code scanned at the till
Payer = booking.Payer | str


def _requests(campus: dict[str, Any]) -> list[tuple[str, Payer, str]]:
    """(client id, payer, amount) of the payments sent together, after A's first payment."""
    c_person = campus["people"]["C"][0]
    first_code, second_code = campus["scans"]
    return [
        ("pos-000002", _card(campus, "A"), "20.00"),  # A again: sees the first payment
        ("pos-000003", _card(campus, "A"), "25.00"),  # and this one sees both (50 - 1 - 20)
        ("pos-000004", _card(campus, "B"), "5.00"),  # B has 1.00: refused alone
        ("pos-000001", _card(campus, "A"), "1.00"),  # a resend of the first: replayed
        ("pos-000001", _card(campus, "A"), "9.00"),  # the first's id, another payment: 409
        ("pos-000005", booking.VerifiedPayer(c_person, campus["code"]), "2.00"),  # spent code
        ("pos-000006", _card(campus, "D"), "3.00"),  # lost card
        ("pos-000007", _card(campus, "C"), "4.00"),  # C by card: books
        ("pos-000008", first_code, "6.00"),  # P by code: books
        ("pos-000009", first_code, "2.00"),  # the same code again: spent by the one before
        ("pos-000008", first_code, "6.00"),  # a resend of P's payment: replayed
        ("pos-000010", second_code, "50.00"),  # P has 24.00: refused, the code stays unspent
        ("pos-000011", second_code, "5.00"),  # so it pays now (24.00 - 5.00)
    ]


async def _scenario(
    pool: PgPool,
    settings: Settings,
    campus: dict[str, Any],
    book: Callable[[str, Payer, str], Awaitable[booking.PaymentAnswer]],
    *,
    together: bool,
) -> list[booking.PaymentAnswer]:
    dev: Device = campus["dev"]
    async with pool.acquire() as conn:
        # C's code was used for an earlier payment
        await booking.book_payment(
            conn,
            settings,
            signed_terminal(dev),
            client_id="pos-000000",
            payer=booking.VerifiedPayer(campus["people"]["C"][0], campus["code"]),
            amount=Money.parse("1.00"),
        )
    # the till's process has seen P's phone before (it reads a binding once)
    await codes.read_scanned(
        pool, settings, school_id=dev.school_id, code=campus["scans"][0], now=time.time()
    )
    first = book("pos-000001", _card(campus, "A"), "1.00")
    rest = [book(cid, payer, amount) for cid, payer, amount in _requests(campus)]
    if together:
        return list(await asyncio.gather(first, *rest))
    return [await first] + [await r for r in rest]


def _comparable(answer: booking.PaymentAnswer) -> tuple[int, bool, dict[str, Any]]:
    return answer.status, answer.replayed, {k: v for k, v in answer.body.items() if k not in _OWN}


async def test_one_batch_of_approvals_refusals_a_resend_a_spent_code_and_one_purse_twice(
    pool: PgPool, settings: Settings
) -> None:
    batched_campus = await _campus(pool, settings, "BAT")
    single_campus = await _campus(pool, settings, "ONE")
    batcher = PaymentBatcher(lambda: pool, max_batch=32, lanes=1)
    batched_events, single_events = _Events(), _Events()

    async def by_code(
        campus: dict[str, Any],
        cid: str,
        scan: str,
        amount: str,
        events: _Events,
        group: PaymentBatcher | None,
    ) -> booking.PaymentAnswer:
        try:
            return await code_payments.do_pay_with_code(
                pool,
                settings,
                signed_terminal(campus["dev"]),
                client_id=cid,
                code=scan,
                amount=Money.parse(amount),
                events=events,  # type: ignore[arg-type]
                batcher=group,
            )
        except DomainError as err:  # a refusal of the code itself is raised, as to the till
            return booking.PaymentAnswer(err.status, {"error": err.to_dict(), "raised": True})

    async def batched(cid: str, payer: Payer, amount: str) -> booking.PaymentAnswer:
        if isinstance(payer, str):
            return await by_code(batched_campus, cid, payer, amount, batched_events, batcher)
        return await booking.book_payment_batched(
            batcher,
            settings,
            signed_terminal(batched_campus["dev"]),
            client_id=cid,
            payer=payer,
            amount=Money.parse(amount),
            events=batched_events,  # type: ignore[arg-type]
        )

    async def single(cid: str, payer: Payer, amount: str) -> booking.PaymentAnswer:
        if isinstance(payer, str):
            return await by_code(single_campus, cid, payer, amount, single_events, None)
        async with pool.acquire() as conn:
            return await booking.book_payment(
                conn,
                settings,
                signed_terminal(single_campus["dev"]),
                client_id=cid,
                payer=payer,
                amount=Money.parse(amount),
                events=single_events,  # type: ignore[arg-type]
            )

    # when the first payment holds the only lane, the thirteen after it go in one call
    got = await _scenario(pool, settings, batched_campus, batched, together=True)
    want = await _scenario(pool, settings, single_campus, single, together=False)

    # then each answer is the one a single booking gives
    assert [_comparable(a) for a in got] == [_comparable(a) for a in want]
    outcomes = [a.status if a.ok else a.body["error"]["code"] for a in got]
    assert outcomes == [
        200,
        200,
        200,
        "INSUFFICIENT_FUNDS",
        200,
        "IDEMPOTENCY_KEY_REUSED",
        "CREDENTIAL_USED",
        "CARD_LOST",
        200,
        200,
        "PAYCODE_USED",
        200,
        "INSUFFICIENT_FUNDS",
        200,
    ]
    assert got[4].replayed and got[4].body == got[0].body
    assert got[2].body["balance"] == "4.00"  # 50.00 - 1.00 - 20.00 - 25.00, in order
    assert got[11].replayed and got[11].body == got[9].body
    assert got[13].body["balance"] == "19.00"  # 30.00 - 6.00 - 5.00, in order
    assert [_event(e) for e in batched_events.sent] == [_event(e) for e in single_events.sent]
    # the four card bookings send their payment; a code's booking is scanned, payment, result;
    # its refusal by the engine is one event; a refused code and a resend send none
    assert [e["type"] for e in batched_events.sent] == ["payment"] * 4 + [
        "paycode.scanned",
        "payment",
        "paycode.result",
        "paycode.refused",
        "paycode.scanned",
        "payment",
        "paycode.result",
    ]

    async with pool.acquire() as conn:
        # one commit: the batch's payments share their transaction's clock, the first does not
        stamps = await conn.fetch(
            "SELECT client_id, created_at FROM payments WHERE terminal_id = $1 ORDER BY id",
            batched_campus["dev"].id,
        )
        by_id = {r["client_id"]: r["created_at"] for r in stamps}
        assert (
            by_id["pos-000002"]
            == by_id["pos-000003"]
            == by_id["pos-000007"]
            == by_id["pos-000008"]
            == by_id["pos-000011"]
        )
        assert by_id["pos-000001"] != by_id["pos-000002"]
        # the same records as single bookings: an idempotency key with its answer, a nonce each
        for campus in (batched_campus, single_campus):
            keys = await conn.fetch(
                "SELECT key, status_code FROM idempotency_keys WHERE scope = $1 ORDER BY key",
                f"terminal:{campus['dev'].id}",
            )
            assert [(k["key"], k["status_code"]) for k in keys] == [
                ("pos-000000", 200),
                ("pos-000001", 200),
                ("pos-000002", 200),
                ("pos-000003", 200),
                ("pos-000004", 409),
                ("pos-000005", 409),
                ("pos-000006", 403),
                ("pos-000007", 200),
                ("pos-000008", 200),
                ("pos-000011", 200),
            ]
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM terminal_nonces WHERE terminal_id = $1", campus["dev"].id
                )
                == 15
            )
            uses = await conn.fetch(
                "SELECT client_id FROM paycode_uses WHERE terminal_id = $1 ORDER BY client_id",
                campus["dev"].id,
            )
            assert [u["client_id"] for u in uses] == ["pos-000008", "pos-000011"]
        a_person = batched_campus["people"]["A"][0]
        assert await postings.purse_balances(conn, a_person) == {"cash": 400, "subsidy": 0}
        p_person = batched_campus["phone"].person_id
        assert await postings.purse_balances(conn, p_person) == {"cash": 1_900, "subsidy": 0}
        assert (await check_ledger(conn)).ok


def _event(event: dict[str, Any]) -> dict[str, Any]:
    own = ("school_id", "person_id", "payment_id", "terminal_id")
    return {k: v for k, v in event.items() if k not in own}


async def test_a_batch_the_database_refuses_is_booked_again_one_by_one(
    pool: PgPool, settings: Settings
) -> None:
    campus = await _campus(pool, settings, "FBK")
    batcher = PaymentBatcher(lambda: pool, max_batch=32, lanes=1)
    events = _Events()
    dev: Device = campus["dev"]

    async def book(cid: str, name: str, signed: SignedTerminal) -> booking.PaymentAnswer:
        return await booking.book_payment_batched(
            batcher,
            settings,
            signed,
            client_id=cid,
            payer=_card(campus, name),
            amount=Money.parse("1.00"),
            events=events,  # type: ignore[arg-type]
        )

    # a purse whose floor is above zero, which the engine does not read (it reads a floor below
    # zero as a credit line): the database's CHECK refuses B's debit of all it holds, which fails
    # the batch's call as a whole
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE accounts SET floor = 1 WHERE person_id = $1 AND purse = 'cash'",
            campus["people"]["B"][0],
        )
    results = await asyncio.gather(
        book("pos-100001", "A", signed_terminal(dev)),
        book("pos-100002", "A", signed_terminal(dev)),
        book("pos-100003", "B", signed_terminal(dev)),
        book("pos-100004", "C", signed_terminal(dev)),
        return_exceptions=True,
    )
    ok = [r.status if isinstance(r, booking.PaymentAnswer) else type(r).__name__ for r in results]
    assert ok == [200, 200, "CheckViolationError", 200]
    async with pool.acquire() as conn:
        assert await postings.purse_balances(conn, campus["people"]["A"][0]) == {
            "cash": 4_800,
            "subsidy": 0,
        }
        assert await postings.purse_balances(conn, campus["people"]["C"][0]) == {
            "cash": 1_900,
            "subsidy": 0,
        }
        assert (await check_ledger(conn)).ok
    assert len(events.sent) == 3
