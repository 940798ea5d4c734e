"""Sign-in: tokens work, wrong passwords are slowed then locked, the lock is audited."""

import httpx

from campuscard.db.pool import PgPool
from tests.support import PASSWORD, login, make_school, make_user


async def test_login_returns_a_token_that_identifies_the_user(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "clerk", "card_center", school.id)
    headers = await login(client, "clerk", "TST")
    me = (await client.get("/api/v1/auth/me", headers=headers)).json()
    assert me["username"] == "clerk"
    assert me["roles"] == [{"role": "card_center", "school_id": school.id, "merchant_id": None}]


async def test_no_token_and_bad_token_are_refused(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/auth/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AUTH_REQUIRED"
    r = await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "SESSION_EXPIRED"


async def test_logout_revokes_the_token(pool: PgPool, client: httpx.AsyncClient) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "clerk", "card_center", school.id)
    headers = await login(client, "clerk", "TST")
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 401


async def test_repeated_failures_lock_the_account_and_the_lock_is_audited(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "clerk", "card_center", school.id)
    bad = {"username": "clerk", "password": "wrong-password", "school": "TST"}
    codes = [
        (await client.post("/api/v1/auth/login", json=bad)).json()["error"]["code"]
        for _ in range(3)
    ]
    assert codes == ["LOGIN_FAILED"] * 3  # the test settings lock after 3 failures

    # even the right password is refused while locked
    r = await client.post("/api/v1/auth/login", json=bad | {"password": PASSWORD})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "ACCOUNT_LOCKED"
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT actor, action, target_type FROM audit_log WHERE action = 'user.locked'"
        )
    assert row is not None
    assert row["actor"] == "clerk"


async def test_unknown_user_and_wrong_school_fail_alike(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "clerk", "card_center", school.id)
    for body in (
        {"username": "ghost", "password": "x" * 10, "school": "TST"},
        {"username": "clerk", "password": PASSWORD, "school": "OTHER"},
    ):
        r = await client.post("/api/v1/auth/login", json=body)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "LOGIN_FAILED"


async def test_login_input_errors_name_the_field(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/login", json={"username": "x"})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "password"
