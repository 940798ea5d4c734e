"""Kiosk pickup: the feed kiosks pull, the local hash, exactly one kiosk authorized even when
two ask at once, wrong/expired/replayed codes refused, guessing limited per kiosk, and a
dispense failure that is retried or released."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from campuscard.config import Settings
from campuscard.issuing import applications as apps
from campuscard.issuing import pickup
from campuscard.issuing import pickup_code as codes
from campuscard.platform.errors import DomainError
from tests.support_issuing import Campus, make_campus, make_kiosk, make_parent


async def ready_code(
    conn: Any, settings: Settings, campus: Campus, number: str = "2026000001"
) -> str:
    i = int(number[-2:])
    parent = await make_parent(conn, campus, f"parent{number}", f"139{i:08d}", guardian_of=number)
    outcome, code = await apps.do_apply(
        conn,
        settings,
        parent,
        apps.ApplicationInput(
            province="32",
            school=campus.code,
            class_name=("一年级1班", "一年级2班")[i % 2],
            name=f"学生{i}",
            number=number,
        ),
        client_id=f"apply-{number}",
    )
    assert outcome.status == 201, outcome.body
    assert code is not None
    return code


async def test_kiosks_pull_their_own_hash_since_a_version(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    k1 = await make_kiosk(conn, campus, "KIOSK-A1")
    k2 = await make_kiosk(conn, campus, "KIOSK-A2")
    code = await ready_code(conn, settings, campus)
    feed1 = await pickup.kiosk_feed(conn, k1, since=0)
    feed2 = await pickup.kiosk_feed(conn, k2, since=0)
    master = settings.master_key.get_secret_value().encode()
    (item1,) = feed1["items"]
    assert item1["live"] and item1["student"]["number"] == "2026000001"
    # each kiosk checks the code locally with its own key; one kiosk's hash is no use to another
    assert item1["kiosk_hash"] == codes.kiosk_hash(codes.kiosk_key(master, "KIOSK-A1"), code)
    assert feed2["items"][0]["kiosk_hash"] != item1["kiosk_hash"]
    # nothing new since the version it has
    assert (await pickup.kiosk_feed(conn, k1, since=feed1["version"]))["items"] == []


async def test_two_kiosks_racing_for_one_code_yield_exactly_one_authorization(
    pool: Any, settings: Settings
) -> None:
    # given
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
        kiosks = [await make_kiosk(conn, campus, f"KIOSK-R{i}") for i in range(4)]
        code = await ready_code(conn, settings, campus)

    async def ask(kiosk: pickup.Kiosk) -> str:
        async with pool.acquire() as c:
            try:
                await pickup.do_authorize(c, settings, kiosk, code)
                return "authorized"
            except DomainError as err:
                return err.code

    # when four kiosks ask at the same instant, several rounds
    results = await asyncio.gather(*(ask(k) for k in kiosks))
    # then
    assert sorted(results) == ["CARD_ALREADY_ISSUED"] * 3 + ["authorized"]
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT state, terminal_id FROM pickup_codes")
    assert row["state"] == "authorized"
    winner = kiosks[results.index("authorized")]
    assert row["terminal_id"] == winner.terminal_id
    # the winner asking again (lost answer) is still authorized; the message for others is seed 004's
    async with pool.acquire() as conn:
        again = await pickup.do_authorize(conn, settings, winner, code)
        assert again["card_data"]["number"] == "2026000001"
        loser = next(k for k in kiosks if k != winner)
        with pytest.raises(DomainError) as err:
            await pickup.do_authorize(conn, settings, loser, code)
    assert "IC卡已完成发卡" in err.value.message


async def test_one_persons_wrong_codes_do_not_lock_the_kiosk_for_the_next_person(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    k1 = await make_kiosk(conn, campus, "KIOSK-G1")
    code = await ready_code(conn, settings, campus)
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
    for attempt in range(settings.pickup_guess_limit):
        with pytest.raises(DomainError) as err:
            await pickup.do_authorize(
                conn, settings, k1, wrong if attempt else "12345", session_id="visit-1"
            )
        assert err.value.code == "PICKUP_CODE_INVALID"
        assert "取卡注册码无效" in err.value.message
    # that session is locked now, even for the right code
    with pytest.raises(DomainError) as err:
        await pickup.do_authorize(conn, settings, k1, code, session_id="visit-1")
    assert err.value.code == "KIOSK_GUESS_LIMIT" and err.value.status == 429
    assert err.value.field == "session_id"
    # the next person at the same kiosk is not affected
    answer = await pickup.do_authorize(conn, settings, k1, code, session_id="visit-2")
    assert answer["state"] == "authorized"
    audited = await conn.fetchval(
        "SELECT after->>'scope' FROM audit_log WHERE action = 'kiosk.guess_limit'"
    )
    assert audited == "session"


async def test_guesses_at_one_code_are_limited_across_kiosks_and_sessions(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    kiosks = [await make_kiosk(conn, campus, f"KIOSK-C{i}") for i in range(2)]
    code = await ready_code(conn, settings, campus)
    other = await ready_code(conn, settings, campus, "2026000002")
    target = await conn.fetchval("SELECT id FROM pickup_codes ORDER BY id LIMIT 1")
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
    for attempt in range(settings.pickup_guess_limit):
        with pytest.raises(DomainError) as err:
            await pickup.do_authorize(
                conn,
                settings,
                kiosks[attempt % 2],
                # another live code is still the wrong code for this pickup
                other if attempt == 0 else wrong,
                session_id=f"visit-{attempt}",
                pickup_id=target,
            )
        assert err.value.code == "PICKUP_CODE_INVALID"
    with pytest.raises(DomainError) as err:
        await pickup.do_authorize(
            conn, settings, kiosks[0], code, session_id="fresh", pickup_id=target
        )
    assert err.value.code == "KIOSK_GUESS_LIMIT" and err.value.field == "code"
    # the other pickup is not held back
    answer = await pickup.do_authorize(conn, settings, kiosks[1], other, session_id="fresh")
    assert answer["state"] == "authorized"


async def test_a_kiosk_without_sessions_is_held_to_the_higher_kiosk_limit(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    k1 = await make_kiosk(conn, campus, "KIOSK-O1")
    k2 = await make_kiosk(conn, campus, "KIOSK-O2")
    code = await ready_code(conn, settings, campus)
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
    assert settings.pickup_kiosk_guess_limit > settings.pickup_guess_limit
    # more wrong codes than one person's limit: an old kiosk still takes the right one
    for _ in range(settings.pickup_guess_limit + 1):
        with pytest.raises(DomainError):
            await pickup.do_authorize(conn, settings, k1, wrong)
    for _ in range(settings.pickup_kiosk_guess_limit - settings.pickup_guess_limit - 1):
        with pytest.raises(DomainError) as err:
            await pickup.do_authorize(conn, settings, k1, wrong)
        assert err.value.code == "PICKUP_CODE_INVALID"
    # the kiosk ceiling holds, whatever session ids are sent
    with pytest.raises(DomainError) as err:
        await pickup.do_authorize(conn, settings, k1, code, session_id="someone-new")
    assert err.value.code == "KIOSK_GUESS_LIMIT" and err.value.field == "code"
    # another kiosk is not affected
    assert (await pickup.do_authorize(conn, settings, k2, code))["state"] == "authorized"


async def test_parallel_wrong_codes_are_counted_before_they_are_checked(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    kiosk = await make_kiosk(conn, campus, "KIOSK-P1")
    code = await ready_code(conn, settings, campus)
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)

    async def guess() -> str:
        async with pool.acquire() as c:
            try:
                await pickup.do_authorize(c, settings, kiosk, wrong, session_id="one-visit")
            except DomainError as err:
                return err.code
        return "authorized"

    answers = await asyncio.gather(*(guess() for _ in range(12)))
    assert answers.count("PICKUP_CODE_INVALID") == settings.pickup_guess_limit
    assert answers.count("KIOSK_GUESS_LIMIT") == 12 - settings.pickup_guess_limit
    # refused attempts gave their places back: the kiosk counted only the evaluated ones
    kiosk_count = await conn.fetchval("SELECT attempts FROM pickup_guesses WHERE scope = 'kiosk'")
    assert kiosk_count == settings.pickup_guess_limit


async def test_expired_and_replaced_codes_are_refused(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    kiosk = await make_kiosk(conn, campus, "KIOSK-E1")
    code = await ready_code(conn, settings, campus)
    await conn.execute("UPDATE pickup_codes SET expires_at = now() - interval '1 second'")
    with pytest.raises(DomainError) as err:
        await pickup.do_authorize(conn, settings, kiosk, code)
    assert err.value.code == "PICKUP_CODE_EXPIRED"
    async with conn.transaction():
        assert await pickup.expire_codes(conn) == 1
    assert (await pickup.kiosk_feed(conn, kiosk, since=0))["items"][0]["live"] is False
    # a replaced (reissued) code is simply invalid
    app_id = await conn.fetchval("SELECT id FROM card_applications")
    await conn.execute(
        "UPDATE pickup_codes SET state = 'ready', expires_at = now() + interval '1 day'"
    )
    user_id = await conn.fetchval("SELECT applicant_user_id FROM card_applications")
    from campuscard.platform import auth

    parent = await auth.load_actor(conn, user_id)
    _, fresh = await apps.do_reissue_code(conn, settings, parent, app_id)
    with pytest.raises(DomainError) as err:
        await pickup.do_authorize(conn, settings, kiosk, code)
    assert err.value.code == "PICKUP_CODE_INVALID"
    assert (await pickup.do_authorize(conn, settings, kiosk, fresh))["state"] == "authorized"


async def test_a_dispense_failure_is_retried_or_released(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    k1 = await make_kiosk(conn, campus, "KIOSK-F1")
    k2 = await make_kiosk(conn, campus, "KIOSK-F2")
    code = await ready_code(conn, settings, campus)
    auth1 = await pickup.do_authorize(conn, settings, k1, code)
    # a jam: keep the authorization for a retry on the same kiosk
    kept = await pickup.do_report_failure(conn, k1, auth1["pickup_id"], reason="jam", release=False)
    assert kept == {"pickup_id": auth1["pickup_id"], "state": "authorized", "dispense_failures": 1}
    with pytest.raises(DomainError):
        await pickup.do_authorize(conn, settings, k2, code)
    # the other kiosk cannot release what it does not hold
    with pytest.raises(DomainError) as err:
        await pickup.do_report_failure(conn, k2, auth1["pickup_id"], reason="x", release=True)
    assert err.value.code == "NOT_AUTHORIZED"
    # out of cards: release, and the code works on another kiosk
    await pickup.do_report_failure(conn, k1, auth1["pickup_id"], reason="empty", release=True)
    assert (await pickup.do_authorize(conn, settings, k2, code))["state"] == "authorized"


async def test_a_silent_kiosk_loses_its_authorization(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    k1 = await make_kiosk(conn, campus, "KIOSK-S1")
    code = await ready_code(conn, settings, campus)
    await pickup.do_authorize(conn, settings, k1, code)
    await conn.execute("UPDATE pickup_codes SET authorized_at = now() - interval '1 hour'")
    async with conn.transaction():
        assert await pickup.release_stale_authorizations(conn, settings) == 1
    assert await conn.fetchval("SELECT state FROM pickup_codes") == "ready"


async def test_kiosk_hashes_are_computed_off_the_event_loop(
    conn: asyncpg.Connection[Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scrypt stretch of every kiosk's hash runs in the hashing pool, not on the loop that
    serves payments."""
    import threading

    threads: list[str] = []
    real = codes.kiosk_hash

    def recording(key: bytes, code: str) -> str:
        threads.append(threading.current_thread().name)
        return real(key, code)

    monkeypatch.setattr(codes, "kiosk_hash", recording)
    campus = await make_campus(conn)
    await make_kiosk(conn, campus, "KIOSK-T1")
    await make_kiosk(conn, campus, "KIOSK-T2")
    await ready_code(conn, settings, campus)
    assert len(threads) == 2
    assert all(name.startswith("argon2") for name in threads), threads
    assert threading.main_thread().name not in threads
