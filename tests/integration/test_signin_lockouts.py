"""Sign-in under attack: failures are counted in the database before the password is checked
(parallel guesses get at most the limit), made-up names behave like real ones, the kiosk's
password and PIN share the locks, a password change signs out the other sessions, and a hash
made with old parameters is redone at sign-in."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from campuscard.config import Settings
from campuscard.payments import pay_settings
from campuscard.platform import auth
from tests.integration.test_kiosk_self_service import CARD, holder_with_card, kiosk
from tests.support import PASSWORD, login, make_school, make_user

LIMIT = 3  # the test settings' login_max_failures


@pytest.fixture
def hash_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The thread each argon2 check ran in, one entry per check."""
    seen: list[str] = []
    real = auth.verify_password

    def counting(stored: str, password: str) -> bool:
        seen.append(threading.current_thread().name)
        return real(stored, password)

    monkeypatch.setattr(auth, "verify_password", counting)
    return seen


def body(username: str, password: str = "wrong-password") -> dict[str, str]:  # noqa: S107
    return {"username": username, "password": password, "school": "TST"}


async def test_forty_parallel_wrong_passwords_get_at_most_the_limit_checked(
    pool: Any, client: httpx.AsyncClient, hash_checks: list[str]
) -> None:
    # given
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "clerk", "card_center", school.id)
    # when
    answers = await asyncio.gather(
        *(client.post("/api/v1/auth/login", json=body("clerk")) for _ in range(40))
    )
    # then
    codes = [r.json()["error"]["code"] for r in answers]
    assert codes.count("LOGIN_FAILED") <= LIMIT
    assert codes.count("LOGIN_FAILED") + codes.count("ACCOUNT_LOCKED") == 40
    assert len(hash_checks) <= LIMIT
    # the right password is refused while locked, and does not clear the lock
    right = await client.post("/api/v1/auth/login", json=body("clerk", PASSWORD))
    assert right.status_code == 429
    assert right.json()["error"]["code"] == "ACCOUNT_LOCKED"
    assert await pool.fetchval("SELECT locked_until > now() FROM users WHERE username = 'clerk'")
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'user.locked'") == 1


async def test_many_right_passwords_at_once_leave_the_account_open(
    pool: Any, client: httpx.AsyncClient
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "clerk", "card_center", school.id)
    answers = await asyncio.gather(
        *(client.post("/api/v1/auth/login", json=body("clerk", PASSWORD)) for _ in range(8))
    )
    assert sum(r.status_code == 200 for r in answers) >= 1
    assert {r.status_code for r in answers} <= {200, 429}
    # the checks that got in succeeded, so no lock is left behind
    await login(client, "clerk", "TST")


async def test_hashing_runs_off_the_event_loop(
    pool: Any, client: httpx.AsyncClient, hash_checks: list[str]
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "clerk", "card_center", school.id)
    await login(client, "clerk", "TST")
    await client.post("/api/v1/auth/login", json=body("nobody"))
    assert len(hash_checks) == 2
    assert all(name.startswith("argon2") for name in hash_checks), hash_checks


def test_nothing_outside_sign_in_calls_the_blocking_hash_functions() -> None:
    from pathlib import Path

    import campuscard

    root = Path(campuscard.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "auth.py"
        and any(
            needle in path.read_text()
            for needle in ("auth.hash_password(", "auth.verify_password(", "PasswordHasher(")
        )
    ]
    assert offenders == []


async def test_unknown_and_known_names_answer_alike_and_do_the_same_work(
    pool: Any, client: httpx.AsyncClient, hash_checks: list[str]
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "clerk", "card_center", school.id)
    seen: dict[str, list[tuple[int, str]]] = {}
    for name in ("clerk", "ghost"):
        before = len(hash_checks)
        answers = [
            await client.post("/api/v1/auth/login", json=body(name)) for _ in range(LIMIT + 2)
        ]
        seen[name] = [(r.status_code, r.json()["error"]["code"]) for r in answers]
        # one hash check per evaluated attempt, for the real account and the made-up one
        assert len(hash_checks) - before == LIMIT
    assert seen["clerk"] == seen["ghost"]
    assert seen["ghost"] == [(401, "LOGIN_FAILED")] * LIMIT + [(429, "ACCOUNT_LOCKED")] * 2
    # the lock's message has the same shape for both
    locked = [
        (await client.post("/api/v1/auth/login", json=body(n))).json()["error"]["message"]
        for n in ("clerk", "ghost")
    ]
    assert [m.split(" until ")[0] for m in locked] == [locked[0].split(" until ")[0]] * 2


async def test_the_kiosk_password_counts_failures_and_respects_the_lock(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    # given a holder whose sign-in is "2026000001"
    await holder_with_card(pool, settings)
    k = kiosk(client, settings, "KIOSK-SS1")

    async def at_kiosk(password: str) -> tuple[int, str]:
        r = await k._call(
            "POST",
            "/api/v1/kiosk/self-service/start-password",
            {"number": "2026000001", "password": password},
        )
        return r.status_code, r.json().get("error", {}).get("code", "ok")

    # when wrong passwords are typed at the kiosk
    assert [await at_kiosk("wrong-password") for _ in range(LIMIT)] == [(401, "LOGIN_FAILED")] * 3
    # then the account is locked: at the kiosk and on the sign-in page, right password or not
    assert await at_kiosk(PASSWORD) == (429, "ACCOUNT_LOCKED")
    web = await client.post(
        "/api/v1/auth/login", json={"username": "2026000001", "password": PASSWORD, "school": "ISS"}
    )
    assert web.status_code == 429
    assert await pool.fetchval(
        "SELECT locked_until > now() FROM users WHERE username = '2026000001'"
    )
    # an unknown student number is answered like a real one
    unknown = [
        (
            await k._call(
                "POST",
                "/api/v1/kiosk/self-service/start-password",
                {"number": "2026999999", "password": "wrong-password"},
            )
        ).json()["error"]["code"]
        for _ in range(LIMIT + 1)
    ]
    assert unknown == ["LOGIN_FAILED"] * LIMIT + ["ACCOUNT_LOCKED"]


async def test_a_locked_account_cannot_start_a_kiosk_visit(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    await holder_with_card(pool, settings)
    await pool.execute(
        "UPDATE users SET locked_until = now() + interval '10 minutes' "
        "WHERE username = '2026000001'"
    )
    r = await kiosk(client, settings, "KIOSK-SS1")._call(
        "POST",
        "/api/v1/kiosk/self-service/start-password",
        {"number": "2026000001", "password": PASSWORD},
    )
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "ACCOUNT_LOCKED"


async def test_parallel_wrong_pins_at_the_kiosk_get_at_most_the_limit(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    # given
    campus, _, _ = await holder_with_card(pool, settings)
    school_of_person = campus.school_id
    k = kiosk(client, settings, "KIOSK-SS1")
    async with pool.acquire() as conn:
        limit = (await pay_settings.school_rules(conn, school_of_person)).pin_max_failures
    # when
    answers = await asyncio.gather(
        *(
            k._call("POST", "/api/v1/kiosk/self-service/start-card", CARD | {"pin": "000000"})
            for _ in range(14)
        )
    )
    # then
    codes = [r.json()["error"]["code"] for r in answers]
    assert codes.count("PIN_WRONG") == limit
    assert codes.count("PIN_LOCKED") == 14 - limit
    right = await k._call("POST", "/api/v1/kiosk/self-service/start-card", CARD | {"pin": "135790"})
    assert right.json()["error"]["code"] == "PIN_LOCKED"


async def test_changing_ones_password_signs_out_the_other_sessions(
    pool: Any, client: httpx.AsyncClient
) -> None:
    # given two sessions of one user
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "clerk", "card_center", school.id)
    here = await login(client, "clerk", "TST")
    elsewhere = await login(client, "clerk", "TST")
    # when
    changed = await client.post(
        "/api/v1/auth/password",
        json={"old_password": PASSWORD, "new_password": "a-brand-new-secret"},
        headers=here,
    )
    # then
    assert changed.status_code == 200, changed.text
    assert (await client.get("/api/v1/auth/me", headers=elsewhere)).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=here)).status_code == 200
    await login(client, "clerk", "TST", password="a-brand-new-secret")


async def test_a_hash_with_old_parameters_is_redone_at_sign_in(
    pool: Any, client: httpx.AsyncClient
) -> None:
    # given a password hashed with weaker parameters than today's
    async with pool.acquire() as conn:
        school = await make_school(conn)
        user_id = await make_user(conn, "clerk", "card_center", school.id)
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    await pool.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, old)
    assert auth.needs_rehash(old)
    # when
    await login(client, "clerk", "TST")
    # then the stored hash carries today's parameters, and still signs in
    stored = await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    assert stored != old
    assert not auth.needs_rehash(stored)
    assert f"m={auth.hasher().memory_cost}" in stored
    await login(client, "clerk", "TST")


async def test_a_busy_hashing_queue_refuses_without_counting_the_attempt(
    pool: Any, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, hash_checks: list[str]
) -> None:
    # given a process whose hashing queue is full
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "clerk", "card_center", school.id)
    full = auth.HashingBudget(share=0.25, max_waiting=1)
    full.waiting = 1
    monkeypatch.setattr(auth, "_budget", full)
    # when the right password arrives, more often than the lock allows
    answers = [
        await client.post("/api/v1/auth/login", json=body("clerk", PASSWORD))
        for _ in range(LIMIT + 2)
    ]
    # then each is told to come back, nothing was hashed, and no failure was counted
    assert {r.status_code for r in answers} == {429}
    assert {r.json()["error"]["code"] for r in answers} == {"HASHING_BUSY"}
    assert all(int(r.headers["Retry-After"]) >= 1 for r in answers)
    assert hash_checks == []
    row = await pool.fetchrow(
        "SELECT failed_logins, locked_until FROM users WHERE username = 'clerk'"
    )
    assert (row["failed_logins"], row["locked_until"]) == (0, None)
    # and once the queue has room the same password signs in
    full.waiting = 0
    await login(client, "clerk", "TST")
