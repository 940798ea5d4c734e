"""Dorm meter top-ups through the utility vendor adapter and its signed simulator: exactly once
when the vendor's answer is lost (a timeout after it applied), when the request never reached
it, and when it never comes back (cancel, then the hold is released); the automatic top-up
below a threshold; the meter's balance and use."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg
import httpx
import pytest

from campuscard.adapters.utility.client import UtilityClient
from campuscard.adapters.utility.simulator import UtilitySimulator
from campuscard.bills import utilities
from campuscard.config import Settings
from campuscard.ledger import checks
from campuscard.ledger.money import Money
from campuscard.platform.errors import NotFound
from tests.support import make_user
from tests.support_bills import bills_world, holder_actor
from tests.support_moneyflows import cid

SECRET = b"utility-test-secret-0123456789abcdef"


class LosingTransport(httpx.AsyncBaseTransport):
    """Delivers requests to the simulator; the first ``lose`` answers never come back (the
    vendor did the work, the caller times out)."""

    def __init__(self, app: Any, lose: int = 0) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.lose = lose

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.lose > 0:
            self.lose -= 1
            await response.aclose()
            raise httpx.ReadTimeout("the vendor's answer did not come", request=request)
        return response


async def _world(
    pool: asyncpg.Pool[Any], settings: Settings, lose: int = 0
) -> tuple[Settings, UtilitySimulator, LosingTransport, UtilityClient, int, Any, int]:
    async with pool.acquire() as conn:
        w = await bills_world(conn, students=1, cash=50_000)
        uid = await make_user(conn, "s001", "cardholder", w.school_id, person_id=w.students[0])
    sim = UtilitySimulator({"campuscard": SECRET})
    sim.add_meter("E3101", "electricity", 1_000)
    transport = LosingTransport(sim.app, lose)
    client = UtilityClient("http://vendor", key_id="campuscard", secret=SECRET, transport=transport)
    meter = await utilities.do_add_meter(
        pool,
        w.finance,
        w.school_id,
        meter_no="E3101",
        kind="electricity",
        dorm="东区3栋",
        room="101",
        residents=["S001"],
    )
    actor = holder_actor(w.school_id, uid, w.students[0], "s001")
    fast = settings.model_copy(update={"utility_retry_seconds": 0})
    return fast, sim, transport, client, w.school_id, actor, meter["id"]


async def _purse(pool: asyncpg.Pool[Any], person_id: int) -> tuple[int, int]:
    row = await pool.fetchrow(
        "SELECT balance, held FROM accounts WHERE person_id = $1 AND purse = 'cash'", person_id
    )
    assert row is not None
    return row["balance"], row["held"]


async def test_a_top_up_whose_answer_is_lost_is_applied_exactly_once(
    pool: asyncpg.Pool[Any], settings: Settings
) -> None:
    # given a vendor that applies the first recharge but whose answer times out
    st, sim, _, client, school_id, actor, meter_id = await _world(pool, settings, lose=1)
    key = cid("ut")

    # when the student tops up 100 yuan
    first = await utilities.do_top_up(
        pool,
        st,
        actor,
        school_id,
        meter_id,
        amount=Money.parse("100.00"),
        client_id=key,
        client=client,
    )
    # then it is pending with the money on hold
    assert first.body["status"] == "pending"
    assert await _purse(pool, actor.person_id) == (50_000, 10_000)
    # the phone sends it again: the same top-up, now known applied at the vendor, captured
    again = await utilities.do_top_up(
        pool,
        st,
        actor,
        school_id,
        meter_id,
        amount=Money.parse("100.00"),
        client_id=key,
        client=client,
    )
    assert again.replayed and again.body["id"] == first.body["id"]
    assert again.body["status"] == "done"
    # and the resolver finds nothing left to do
    assert await utilities.resolve_pending(pool, st, client=client) == 0
    assert await _purse(pool, actor.person_id) == (40_000, 0)
    assert [r.amount for r in sim.recharges.values()] == [10_000]
    assert sim.meters["E3101"].balance <= 11_000
    view = await utilities.get_topup(pool, actor, school_id, first.body["id"])
    assert view["status"] == "done"
    async with pool.acquire() as conn:
        assert (await checks.check_ledger(conn)).ok


async def test_a_request_that_never_arrived_is_sent_again_and_one_never_answered_is_cancelled(
    pool: asyncpg.Pool[Any], settings: Settings
) -> None:
    st, sim, transport, client, school_id, actor, meter_id = await _world(pool, settings)
    # the vendor refuses the first recharge before applying it (503): pending
    sim.fail_next = 1
    t1 = await utilities.do_top_up(
        pool,
        st,
        actor,
        school_id,
        meter_id,
        amount=Money.parse("30.00"),
        client_id=cid("ut"),
        client=client,
    )
    assert t1.body["status"] == "pending"
    # the resolver finds nothing at the vendor and sends the same request again: applied once
    await utilities.resolve_pending(pool, st, client=client)
    assert (await utilities.get_topup(pool, actor, school_id, t1.body["id"]))["status"] == "done"
    assert len(sim.recharges) == 1

    # a vendor that never answers: after the last attempt the request is cancelled at the
    # vendor and only then is the hold released
    transport.lose = 100
    sim.fail_next = 100
    t2 = await utilities.do_top_up(
        pool,
        st,
        actor,
        school_id,
        meter_id,
        amount=Money.parse("20.00"),
        client_id=cid("ut"),
        client=client,
    )
    assert t2.body["status"] == "pending"
    for _ in range(utilities.MAX_ATTEMPTS):
        await utilities.resolve_pending(pool, st, client=client)
    assert (await utilities.get_topup(pool, actor, school_id, t2.body["id"]))["status"] == "pending"
    transport.lose = 0  # the vendor is reachable again (still refusing recharges)
    await utilities.resolve_pending(pool, st, client=client)
    failed = await utilities.get_topup(pool, actor, school_id, t2.body["id"])
    assert failed["status"] == "failed"
    assert [r.status for r in sim.recharges.values()] == ["APPLIED", "CANCELLED"]
    assert await _purse(pool, actor.person_id) == (47_000, 0)
    async with pool.acquire() as conn:
        assert (await checks.check_ledger(conn)).ok


async def test_automatic_top_up_below_the_threshold_once_a_day_and_the_meter_on_the_phone(
    pool: asyncpg.Pool[Any], settings: Settings
) -> None:
    st, _, _, client, school_id, actor, meter_id = await _world(pool, settings)
    await utilities.do_set_auto(
        pool, actor, school_id, meter_id, below=Money.parse("20.00"), amount=Money.parse("50.00")
    )
    # the meter holds at most 10 yuan: below 20, so one top-up of 50 today, and not two
    assert await utilities.auto_top_up(pool, st, client=client) == 1
    assert await utilities.auto_top_up(pool, st, client=client) == 0
    assert await _purse(pool, actor.person_id) == (45_000, 0)
    month = date.today().strftime("%Y-%m")
    state = await utilities.meter_state(
        pool, st, actor, school_id, meter_id, month=month, client=client
    )
    assert state["kind"] == "electricity" and state["unit"] == "kWh"
    assert state["days"] and state["month_auto_topups"] == 1
    assert state["month_topped_up"] == "50.00"
    # someone else's meter is not there for them
    stranger = actor.__class__(name="x", user_id=actor.user_id, person_id=-1)
    with pytest.raises(NotFound) as err:
        await utilities.meter_state(
            pool, st, stranger, school_id, meter_id, month=month, client=client
        )
    assert err.value.field == "meter_id"
