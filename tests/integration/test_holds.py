"""Holds in the ledger: place, capture in part, void, expire — each exactly once — and the
database keeping held money out of reach of every other booking."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest

from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.issuing import kiosk
from campuscard.ledger import holds, postings
from campuscard.ledger.checks import check_ledger
from campuscard.ledger.holds_rules import HoldRequest
from campuscard.ledger.jobs import expire_holds
from campuscard.platform.errors import DomainError, InsufficientFunds, ValidationFailed
from tests.support import fund, login, make_school, make_student, make_user
from tests.support_payments import make_cardholder, make_device, make_merchant, pay


async def _campus(conn: Conn, *, cash: int = 1_000, subsidy: int = 0) -> tuple[int, int, int]:
    school = await make_school(conn)
    person = await make_student(conn, school.id, "S001", cash=cash, subsidy=subsidy)
    payee = await postings.system_account(conn, school.id, "merchant_payable")
    return school.id, person, payee


def _req(
    person: int, payee: int, amount: int, hold_id: str = "hold-0001", **kw: Any
) -> HoldRequest:
    return HoldRequest(
        hold_id=hold_id,
        person_id=person,
        amount=amount,
        kind=kw.pop("kind", "shower"),
        owner_kind="device_session",
        owner_id=kw.pop("owner_id", "shower-7:1"),
        payee_account_id=payee,
        **kw,
    )


async def _account(conn: Conn, person: int, purse: str = "cash") -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT balance, held FROM accounts WHERE person_id = $1 AND purse = $2", person, purse
    )
    assert row is not None
    return row


async def test_place_then_capture_part_books_it_and_releases_the_rest(conn: Conn) -> None:
    # given 10.00 cash and a shower hold of 8.00
    school, person, payee = await _campus(conn)
    placed = await holds.place_hold(conn, school, _req(person, payee, 800))
    assert placed.ok and placed.state == "pending" and placed.body["purse"] == "cash"
    acc = await _account(conn, person)
    assert (acc["balance"], acc["held"]) == (1_000, 800)
    # expiry is the kind's timeout: shower 30 minutes
    row = await conn.fetchrow("SELECT expires_at - placed_at AS t FROM holds")
    assert row is not None and row["t"].total_seconds() == 1800

    # when 3.20 was used
    captured = await holds.capture_hold(conn, school, "hold-0001", 320)

    # then 3.20 moved to the payee, 4.80 released, and the journal says so
    assert (
        captured.ok and captured.body["captured"] == "3.20" and captured.body["released"] == "4.80"
    )
    acc = await _account(conn, person)
    assert (acc["balance"], acc["held"]) == (680, 0)
    assert await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", payee) == 320
    assert await conn.fetchval("SELECT count(*) FROM journal_tx WHERE kind = 'hold_capture'") == 1
    assert (await check_ledger(conn)).ok


async def test_capture_the_whole_hold_of_the_whole_balance(conn: Conn) -> None:
    school, person, payee = await _campus(conn)
    await holds.place_hold(conn, school, _req(person, payee, 1_000))
    answer = await holds.capture_hold(conn, school, "hold-0001", 1_000)
    assert answer.ok and answer.body["released"] == "0.00"
    assert tuple(await _account(conn, person)) == (0, 0)
    assert (await check_ledger(conn)).ok


async def test_double_capture_replays_the_same_answer_and_books_once(conn: Conn) -> None:
    school, person, payee = await _campus(conn)
    await holds.place_hold(conn, school, _req(person, payee, 500))
    first = await holds.capture_hold(conn, school, "hold-0001", 200)
    again = await holds.capture_hold(conn, school, "hold-0001", 200)
    assert again.body == first.body and again.replayed
    other = await holds.capture_hold(conn, school, "hold-0001", 300)
    assert other.status == 409 and other.body["error"]["code"] == "HOLD_CAPTURED"
    assert await conn.fetchval("SELECT count(*) FROM journal_tx WHERE kind = 'hold_capture'") == 1
    assert (await _account(conn, person))["balance"] == 800


async def test_void_releases_everything_once(conn: Conn) -> None:
    school, person, payee = await _campus(conn)
    await holds.place_hold(conn, school, _req(person, payee, 600))
    voided = await holds.void_hold(conn, school, "hold-0001")
    assert voided.ok and voided.state == "voided" and voided.body["released"] == "6.00"
    assert tuple(await _account(conn, person)) == (1_000, 0)
    assert (await holds.void_hold(conn, school, "hold-0001")).replayed
    late = await holds.capture_hold(conn, school, "hold-0001", 100)
    assert late.status == 409 and late.body["error"]["code"] == "HOLD_VOIDED"
    with pytest.raises(DomainError) as err:
        late.raise_refusal()
    assert err.value.code == "HOLD_VOIDED" and err.value.field == "hold_id"
    assert await conn.fetchval("SELECT count(*) FROM journal_tx WHERE kind = 'hold_capture'") == 0


async def _backdate(conn: Conn, hold_id: str, seconds: int) -> None:
    await conn.execute(
        "UPDATE holds SET expires_at = now() - make_interval(secs => $2) WHERE hold_key = $1",
        hold_id,
        seconds,
    )


async def test_expiry_job_releases_overdue_holds_only(
    pool: PgPool, conn: Conn, settings: Settings
) -> None:
    school, person, payee = await _campus(conn)
    await holds.place_hold(conn, school, _req(person, payee, 300, "hold-old1"))
    await holds.place_hold(conn, school, _req(person, payee, 200, "hold-new1"))
    await _backdate(conn, "hold-old1", 1)

    assert await expire_holds(pool, settings) == 1

    states = dict(await conn.fetch("SELECT hold_key, state FROM holds"))
    assert states == {"hold-old1": "expired", "hold-new1": "pending"}
    assert (await _account(conn, person))["held"] == 200
    assert await expire_holds(pool, settings) == 0  # once
    assert (await check_ledger(conn)).ok


async def test_capture_after_expiry_is_refused_and_the_hold_released(conn: Conn) -> None:
    school, person, payee = await _campus(conn)
    await holds.place_hold(conn, school, _req(person, payee, 300))
    await _backdate(conn, "hold-0001", 5)
    answer = await holds.capture_hold(conn, school, "hold-0001", 100)
    assert answer.status == 409 and answer.body["error"]["code"] == "HOLD_EXPIRED"
    assert tuple(await _account(conn, person)) == (1_000, 0)
    # and once the job has expired it, it stays expired
    again = await holds.capture_hold(conn, school, "hold-0001", 100)
    assert again.body["error"]["code"] == "HOLD_EXPIRED"


async def test_an_overdue_open_hold_fails_the_ledger_check(conn: Conn) -> None:
    school, person, payee = await _campus(conn)
    await holds.place_hold(conn, school, _req(person, payee, 300))
    await _backdate(conn, "hold-0001", 3600)
    report = await check_ledger(conn)
    assert any(v.startswith("H2 hold open past its expiry") for v in report.violations)


async def test_place_is_idempotent_and_a_changed_request_is_refused(conn: Conn) -> None:
    school, person, payee = await _campus(conn)
    first = await holds.place_hold(conn, school, _req(person, payee, 300))
    again = await holds.place_hold(conn, school, _req(person, payee, 300))
    assert again.replayed and again.body == first.body
    changed = await holds.place_hold(conn, school, _req(person, payee, 301))
    assert changed.status == 409 and changed.body["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert (await _account(conn, person))["held"] == 300


async def test_a_refused_place_stays_refused(conn: Conn) -> None:
    school, person, payee = await _campus(conn, cash=100)
    refused = await holds.place_hold(conn, school, _req(person, payee, 500))
    assert refused.status == 409 and refused.body["error"]["code"] == "INSUFFICIENT_FUNDS"
    assert refused.body["error"]["details"] == {"available": "1.00"}
    await fund(conn, school, person, cash=1_000)
    resent = await holds.place_hold(conn, school, _req(person, payee, 500))
    assert resent.replayed and resent.body == refused.body
    assert await conn.fetchval("SELECT count(*) FROM holds") == 0


async def test_holds_use_the_purse_order_and_refuse_what_no_purse_covers(conn: Conn) -> None:
    school, person, payee = await _campus(conn, cash=500, subsidy=400)
    sub = await holds.place_hold(conn, school, _req(person, payee, 300, "hold-sub1"))
    assert sub.body["purse"] == "subsidy"  # subsidy first by default
    cash = await holds.place_hold(conn, school, _req(person, payee, 300, "hold-cash"))
    assert cash.body["purse"] == "cash"  # 1.00 left on subsidy: cash covers it
    over = await holds.place_hold(conn, school, _req(person, payee, 300, "hold-over"))
    assert over.body["error"]["code"] == "INSUFFICIENT_FUNDS"  # 2.00 + 1.00 in two purses


async def test_bad_hold_requests_name_the_field(conn: Conn) -> None:
    school, person, payee = await _campus(conn)
    for kw, field in [
        ({"hold_id": "short"}, "hold_id"),
        ({"amount": 0}, "amount"),
        ({"kind": "Shower!"}, "kind"),
        ({"purse": "gold"}, "purse"),
        ({"owner_id": ""}, "owner_id"),
    ]:
        args: dict[str, Any] = {
            "hold_id": "hold-0001",
            "person_id": person,
            "amount": 100,
            "kind": "shower",
            "owner_kind": "device_session",
            "owner_id": "x",
            "payee_account_id": payee,
        } | kw
        with pytest.raises(ValidationFailed) as err:
            HoldRequest(**args)
        assert err.value.field == field
    unknown = await holds.place_hold(conn, school, _req(person, payee, 100, kind="sauna"))
    assert unknown.status == 422 and unknown.body["error"]["field"] == "kind"
    placed = await holds.place_hold(conn, school, _req(person, payee, 100, "hold-0002"))
    assert placed.ok
    bad_payee = await holds.place_hold(conn, school, _req(person, 10**9, 100, "hold-0004"))
    assert bad_payee.status == 404 and bad_payee.body["error"]["field"] == "payee"
    purse = (await _account(conn, person))["held"]
    nobody = await holds.place_hold(conn, school, _req(person + 999, payee, 100, "hold-0003"))
    assert nobody.status == 404 and nobody.body["error"]["field"] == "person_id"
    assert (await _account(conn, person))["held"] == purse
    with pytest.raises(ValidationFailed):
        await holds.capture_hold(conn, school, "hold-0002", 0)
    over = await holds.capture_hold(conn, school, "hold-0002", 101)
    assert over.status == 422 and over.body["error"]["code"] == "CAPTURE_OVER_HOLD"


async def test_school_settings_set_a_kinds_timeout(conn: Conn) -> None:
    school, person, payee = await _campus(conn)
    await conn.execute(
        """UPDATE schools SET settings = settings || '{"holds": {"timeouts": {"laundry": 7200}}}'
           WHERE id = $1""",
        school,
    )
    await holds.place_hold(conn, school, _req(person, payee, 100, kind="laundry"))
    t = await conn.fetchval("SELECT expires_at - placed_at FROM holds")
    assert t.total_seconds() == 7200


async def test_concurrent_places_cannot_overcommit_a_purse(pool: PgPool) -> None:
    async with pool.acquire() as conn:
        school, person, payee = await _campus(conn, cash=1_000)

    async def place(i: int) -> int:
        async with pool.acquire() as c:
            return (
                await holds.place_hold(c, school, _req(person, payee, 600, f"hold-race{i}"))
            ).status

    statuses = await asyncio.gather(*(place(i) for i in range(4)))
    assert sorted(statuses) == [200, 409, 409, 409]
    async with pool.acquire() as conn:
        assert (await _account(conn, person))["held"] == 600
        assert (await check_ledger(conn)).ok


async def test_held_money_cannot_be_spent_by_any_booking(conn: Conn) -> None:
    school, person, payee = await _campus(conn)
    await holds.place_hold(conn, school, _req(person, payee, 800))
    cash = (await postings.open_purses(conn, school, person))["cash"]
    bank = await postings.system_account(conn, school, "bank_clearing")
    with pytest.raises(InsufficientFunds):
        async with conn.transaction():
            await postings.post(
                conn, school_id=school, kind="t", legs=postings.legs_move(cash, bank, 300)
            )
    async with conn.transaction():
        await postings.post(
            conn, school_id=school, kind="t", legs=postings.legs_move(cash, bank, 200)
        )
    assert tuple(await _account(conn, person)) == (800, 800)


async def test_held_is_moved_only_by_holds(conn: Conn) -> None:
    school, person, payee = await _campus(conn)
    with pytest.raises(asyncpg.RestrictViolationError, match="held amounts change only"):
        await conn.execute("UPDATE accounts SET held = 100 WHERE person_id = $1", person)
    await holds.place_hold(conn, school, _req(person, payee, 100))
    await holds.void_hold(conn, school, "hold-0001")
    with pytest.raises(asyncpg.RestrictViolationError, match="already voided"):
        await conn.execute("UPDATE holds SET state = 'captured'")
    with pytest.raises(asyncpg.RestrictViolationError, match="never deleted"):
        await conn.execute("DELETE FROM holds")


async def test_a_card_payment_cannot_spend_held_money(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    # given 20.00 cash of which 15.00 is held by a shower
    async with pool.acquire() as conn:
        school = await make_school(conn)
        merchant_id, outlet_id = await make_merchant(conn, school.id)
        dev = await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
        person, card = await make_cardholder(conn, school.id, "S1", cash=2_000, subsidy=0)
        payee = await postings.system_account(conn, school.id, "merchant_payable")
        await holds.place_hold(conn, school.id, _req(person, payee, 1_500))

    # when the till asks for 6.00, then for 5.00
    refused = await pay(client, dev, card, "6.00", client_id="pos1-000001")
    paid = await pay(client, dev, card, "5.00", client_id="pos1-000002")

    # then only the available 5.00 could be spent, and the receipt shows both figures
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["details"] == {"balance": "20.00", "available": "5.00"}
    assert paid.status_code == 200, paid.text
    assert paid.json()["balance"] == "15.00" and paid.json()["available"] == "0.00"


async def test_answers_that_carry_a_balance_carry_what_is_available(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    # given 10.00 cash of which 4.00 is on hold
    async with pool.acquire() as conn:
        school, person, payee = await _campus(conn)
        await holds.place_hold(conn, school, _req(person, payee, 400))
        await make_user(conn, "ops", "school_admin", school)
        # the kiosk's overview of the holder's purses
        view = await kiosk.overview(conn, kiosk.Visit(person_id=person, school_id=school))
    assert (view["total"], view["held"], view["available"]) == ("10.00", "4.00", "6.00")
    assert view["balances"]["available"] == "6.00"

    # the console API's person
    headers = await login(client, "ops", "TST")
    r = await client.get(f"/api/v1/admin/persons/{person}", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["balances"] == {
        "cash": "10.00",
        "subsidy": "0.00",
        "total": "10.00",
        "held": "4.00",
        "available": "6.00",
    }
