"""A shower session end to end on the ledger: start holds, end captures at the ladder's price,
a device that never comes back is released by expiry, a late report within the hold's life
still captures, a report after it is refused."""

from __future__ import annotations

from typing import Any

import pytest

from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.ledger.checks import check_ledger
from campuscard.ledger.jobs import expire_holds
from campuscard.metering import sessions
from campuscard.platform.errors import DomainError, ValidationFailed
from tests.support import make_school
from tests.support_payments import make_cardholder, make_device, make_merchant

SHOWER: dict[str, Any] = {
    "kind": "shower",
    "ladders": {
        "student": [
            {"upto": 600, "rate": 500},
            {"upto": 1200, "rate": 1000},
            {"upto": None, "rate": 2000},
        ],
        "staff": [{"upto": None, "rate": 1000}],
    },
    "session_cap": 800,
    "daily_amount_cap": 1500,
    "daily_count_cap": 3,
    "min_gap_seconds": 0,
    "max_session_units": 1500,
}


async def _shower(
    conn: Conn, settings: Settings, tariff: dict[str, Any] = SHOWER
) -> tuple[int, int, int, dict[str, Any], int]:
    school = await make_school(conn)
    merchant_id, outlet_id = await make_merchant(conn, school.id)
    dev = await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
    person, card = await make_cardholder(conn, school.id, "S1", cash=2_000, subsidy=0)
    await sessions.do_configure_meter(conn, school.id, dev.id, tariff)
    return school.id, dev.id, person, card, merchant_id


async def _purse(conn: Conn, person: int) -> tuple[int, int]:
    row = await conn.fetchrow(
        "SELECT balance, held FROM accounts WHERE person_id = $1 AND purse = 'cash'", person
    )
    assert row is not None
    return row["balance"], row["held"]


async def _start(
    conn: Conn, school: int, terminal: int, card: dict[str, Any], key: str
) -> sessions.SessionAnswer:
    return await sessions.do_start_session(
        conn, school, terminal, session_key=key, card_number=card["number"], card_uid=card["uid"]
    )


async def test_start_holds_end_captures_the_ladder_price(conn: Conn, settings: Settings) -> None:
    school, terminal, person, card, merchant = await _shower(conn, settings)

    started = await _start(conn, school, terminal, card, "sess-0001")
    assert (started.state, started.authorised, started.unit) == ("open", "8.00", "second")
    assert started.max_units == 1100  # 600 s at 0.5 fen + 500 s at 1 fen = 8.00
    assert await _purse(conn, person) == (2_000, 800)

    # 700 s: 600 at 0.5 fen, 100 at 1 fen = 4.00
    ended = await sessions.do_end_session(
        conn, school, terminal, session_key="sess-0001", units=700
    )
    assert (ended.state, ended.charged, ended.released) == ("ended", "4.00", "4.00")
    assert await _purse(conn, person) == (1_600, 0)
    merchant_total = await conn.fetchval(
        "SELECT sum(balance) FROM accounts WHERE merchant_id = $1", merchant
    )
    assert merchant_total == 400

    # the device resends its report: the same answer, charged once
    again = await sessions.do_end_session(
        conn, school, terminal, session_key="sess-0001", units=700
    )
    assert again.replayed and again.charged == "4.00"
    with pytest.raises(DomainError) as err:
        await sessions.do_end_session(conn, school, terminal, session_key="sess-0001", units=701)
    assert err.value.code == "SESSION_ENDED"

    # the second shower of the day starts where the first left the ladder: 100 s at 1 fen
    # then 200 s at 2 fen = 5.00
    await _start(conn, school, terminal, card, "sess-0002")
    second = await sessions.do_end_session(
        conn, school, terminal, session_key="sess-0002", units=800
    )
    assert second.charged == "8.00"  # 500 at 1 fen + 300 at 2 fen = 11.00, capped at the hold
    assert (await check_ledger(conn)).ok


async def test_a_session_split_at_the_tier_boundary(conn: Conn, settings: Settings) -> None:
    school, terminal, person, card, _ = await _shower(conn, settings)
    await _start(conn, school, terminal, card, "sess-0001")
    await sessions.do_end_session(conn, school, terminal, session_key="sess-0001", units=500)
    await _start(conn, school, terminal, card, "sess-0002")
    # 500 used: 100 more at 0.5 fen, then 200 at 1 fen = 2.50
    ended = await sessions.do_end_session(
        conn, school, terminal, session_key="sess-0002", units=300
    )
    assert ended.charged == "2.50"
    assert await _purse(conn, person) == (2_000 - 250 - 250, 0)


async def test_zero_use_voids_the_hold(conn: Conn, settings: Settings) -> None:
    school, terminal, person, card, _ = await _shower(conn, settings)
    await _start(conn, school, terminal, card, "sess-0001")
    ended = await sessions.do_end_session(conn, school, terminal, session_key="sess-0001", units=0)
    assert ended.charged == "0.00"
    assert await _purse(conn, person) == (2_000, 0)
    assert await conn.fetchval("SELECT state FROM holds") == "voided"


async def test_a_device_that_never_comes_back(pool: PgPool, conn: Conn, settings: Settings) -> None:
    school, terminal, person, card, _ = await _shower(conn, settings)
    await _start(conn, school, terminal, card, "sess-0001")
    # while another session is running the card cannot start a second shower
    with pytest.raises(DomainError) as err:
        await _start(conn, school, terminal, card, "sess-0002")
    assert err.value.code == "SESSION_RUNNING"

    # the hold's time passes (shower: 30 minutes) and the expiry job releases it
    await conn.execute(
        "UPDATE holds SET expires_at = now() - interval '1 second' WHERE school_id = $1", school
    )
    assert await expire_holds(pool, settings) == 1
    assert await _purse(conn, person) == (2_000, 0)

    # a report after that is refused and charges nothing
    with pytest.raises(DomainError) as err:
        await sessions.do_end_session(conn, school, terminal, session_key="sess-0001", units=300)
    assert err.value.code == "SESSION_EXPIRED"
    assert await _purse(conn, person) == (2_000, 0)

    # and the card can shower again
    again = await _start(conn, school, terminal, card, "sess-0002")
    assert again.state == "open"
    first = "SELECT state FROM meter_sessions WHERE school_id = $1 AND session_key = 'sess-0001'"
    assert await conn.fetchval(first, school) == "expired"


async def test_a_late_report_within_the_holds_life_still_captures(
    conn: Conn, settings: Settings
) -> None:
    school, terminal, person, card, _ = await _shower(conn, settings)
    await _start(conn, school, terminal, card, "sess-0001")
    # the session started 28 minutes ago (25 at most under water), the device was offline
    # since; the 30-minute hold has 2 minutes left: the report still captures
    await conn.execute("UPDATE meter_sessions SET started_at = now() - interval '28 minutes'")
    await conn.execute("UPDATE holds SET expires_at = now() + interval '2 minutes'")
    ended = await sessions.do_end_session(
        conn, school, terminal, session_key="sess-0001", units=1500
    )
    assert ended.charged == "8.00"  # capped at the hold
    assert await _purse(conn, person) == (1_200, 0)


async def test_caps_and_the_gap_between_sessions(conn: Conn, settings: Settings) -> None:
    tariff = SHOWER | {"min_gap_seconds": 600, "daily_count_cap": 2}
    school, terminal, _person, card, _ = await _shower(conn, settings, tariff)
    await _start(conn, school, terminal, card, "sess-0001")
    await sessions.do_end_session(conn, school, terminal, session_key="sess-0001", units=60)
    with pytest.raises(DomainError) as err:
        await _start(conn, school, terminal, card, "sess-0002")
    assert err.value.code == "TOO_SOON" and err.value.status == 429
    await conn.execute("UPDATE meter_sessions SET ended_at = now() - interval '11 minutes'")
    second = await _start(conn, school, terminal, card, "sess-0002")
    assert second.authorised == "8.00"
    await sessions.do_end_session(conn, school, terminal, session_key="sess-0002", units=1500)
    # two sessions today: the count cap refuses a third
    await conn.execute("UPDATE meter_sessions SET ended_at = now() - interval '11 minutes'")
    with pytest.raises(DomainError) as err:
        await _start(conn, school, terminal, card, "sess-0003")
    assert err.value.code == "DAILY_COUNT_CAP"


async def test_the_daily_amount_cap_limits_the_hold(conn: Conn, settings: Settings) -> None:
    school, terminal, _person, card, _ = await _shower(conn, settings)
    await _start(conn, school, terminal, card, "sess-0001")
    await sessions.do_end_session(conn, school, terminal, session_key="sess-0001", units=1500)
    second = await _start(conn, school, terminal, card, "sess-0002")
    assert second.authorised == "7.00"  # 15.00 a day, 8.00 spent


async def test_bad_input_names_the_field(conn: Conn, settings: Settings) -> None:
    school, terminal, person, card, _ = await _shower(conn, settings)
    with pytest.raises(ValidationFailed) as err:
        await sessions.do_configure_meter(conn, school, terminal, SHOWER | {"kind": "sauna"})
    assert err.value.field == "tariff.kind"
    with pytest.raises(DomainError) as err:
        await sessions.do_start_session(
            conn,
            school,
            terminal,
            session_key="sess-0001",
            card_number=card["number"],
            card_uid="00000000",
        )
    assert err.value.field == "card_uid"
    await _start(conn, school, terminal, card, "sess-0001")
    with pytest.raises(ValidationFailed) as err:
        await sessions.do_end_session(conn, school, terminal, session_key="sess-0001", units=-1)
    assert err.value.field == "units"
    with pytest.raises(ValidationFailed) as err:
        await sessions.do_end_session(conn, school, terminal, session_key="sess-0001", units=1501)
    assert err.value.field == "units"
    with pytest.raises(DomainError) as err:
        await sessions.do_end_session(conn, school, terminal, session_key="sess-9999", units=1)
    assert err.value.code == "SESSION_UNKNOWN"
    assert await _purse(conn, person) == (2_000, 800)
