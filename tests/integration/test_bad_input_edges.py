"""Bad input the API fuzzer found answering 500: now a clear 422 that changes nothing."""

import httpx

from campuscard.db.pool import PgPool
from tests.support import login, make_school, make_student, make_user


async def test_an_id_beyond_64_bits_is_refused_not_a_fault(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    async with pool.acquire() as conn:
        await make_user(conn, "root", "platform_admin", None)
    headers = await login(client, "root", None)

    r = await client.get("/api/v1/admin/persons/567499764324643831808", headers=headers)

    assert r.status_code == 422
    assert r.json()["error"]["code"] == "VALUE_OUT_OF_RANGE"


async def test_emptying_a_required_person_field_names_the_field(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    # given
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "ops", "school_admin", school.id)
        person = await make_student(conn, school.id, "S1", name="李四")
    headers = await login(client, "ops", "TST")

    # when
    r = await client.patch(
        f"/api/v1/admin/persons/{person}", json={"kind": None, "name": "王五"}, headers=headers
    )

    # then
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "kind"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT name FROM persons WHERE id = $1", person) == "李四"
