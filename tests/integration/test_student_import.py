"""Student-record import: all-or-nothing, every bad row listed, versions stored, re-import
updates, and the uploader's digest/echo handshake with retries."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from campuscard.clients.import_uploader import upload_students
from campuscard.issuing import imports
from campuscard.issuing.import_rules import build_frame
from campuscard.platform.errors import ValidationFailed
from tests.support import login
from tests.support_issuing import english, make_campus, student_rows, xlsx


async def _snapshot(conn: asyncpg.Connection[Any]) -> tuple[Any, ...]:
    return (
        await conn.fetchval("SELECT count(*) FROM persons"),
        await conn.fetchval("SELECT count(*) FROM classes"),
        await conn.fetchval("SELECT count(*) FROM student_records"),
        await conn.fetchval("SELECT count(*) FROM student_import_files"),
        await conn.fetchval("SELECT string_agg(name, ',' ORDER BY id) FROM persons"),
    )


async def test_import_creates_students_classes_and_stores_the_file(
    conn: asyncpg.Connection[Any],
) -> None:
    # given
    campus = await make_campus(conn, students=0)
    rows = student_rows(campus.name, 5)
    rows[0][6] = "88000001"
    content = xlsx(rows)
    # when
    result = await imports.do_import_students(
        conn, campus.teacher, campus.school_id, frame=build_frame(content), filename="一班.xlsx"
    )
    # then
    assert (result.version, result.rows, result.added, result.updated) == (1, 5, 5, 0)
    assert await conn.fetchval("SELECT count(*) FROM persons WHERE kind = 'student'") == 5
    assert await conn.fetchval("SELECT count(*) FROM classes") == 2
    stored = await conn.fetchrow("SELECT content, sha256, filename FROM student_import_files")
    assert bytes(stored["content"]) == content
    assert stored["filename"] == "一班.xlsx"
    assert (
        await conn.fetchval(
            "SELECT ic_card_no FROM student_records sr JOIN persons p ON p.id = sr.person_id "
            "WHERE p.number = '2026000001'"
        )
        == "88000001"
    )
    assert result.canonical[0].split("\t") == [
        "江苏省",
        campus.name,
        rows[0][4],
        "2026000001",
        "学生1",
        "88000001",
    ]


async def test_reimport_updates_changed_rows_and_adds_new_ones(
    conn: asyncpg.Connection[Any],
) -> None:
    campus = await make_campus(conn, students=4)
    rows = student_rows(campus.name, 6)  # 2 new
    rows[1][3] = "改名字"  # student 2 renamed
    rows[2][4] = "三年级9班"  # student 3 moved class
    content = xlsx(rows)
    result = await imports.do_import_students(
        conn, campus.teacher, campus.school_id, frame=build_frame(content), filename="v2.xlsx"
    )
    assert (result.version, result.added, result.updated, result.unchanged) == (2, 2, 2, 2)
    named = "SELECT name FROM persons WHERE school_id = $1 AND number = '2026000002'"
    assert await conn.fetchval(named, campus.school_id) == "改名字"
    assert (
        await conn.fetchval(
            "SELECT c.name FROM persons p"
            " JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id"
            " WHERE p.school_id = $1 AND number = '2026000003'",
            campus.school_id,
        )
        == "三年级9班"
    )
    # the same file again stores no new version
    again = await imports.do_import_students(
        conn, campus.teacher, campus.school_id, frame=build_frame(content), filename="v2.xlsx"
    )
    assert again.replayed and again.version == 2 and again.updated == 0


async def test_english_header_variant_imports(conn: asyncpg.Connection[Any]) -> None:
    campus = await make_campus(conn, students=0)
    rows = student_rows(campus.name, 3)
    for r in rows:
        r[1] = "Jiangsu"
    result = await imports.do_import_students(
        conn, campus.teacher, campus.school_id, frame=build_frame(english(rows)), filename="en.xlsx"
    )
    assert result.added == 3


async def test_a_file_with_bad_rows_changes_nothing_and_lists_every_bad_row(
    conn: asyncpg.Connection[Any],
) -> None:
    # given a school with students, a staff member and a card already on record
    campus = await make_campus(conn, students=3)
    await conn.execute(
        "INSERT INTO persons(school_id, kind, number, name) VALUES ($1, 'staff', 'T0001', '老师')",
        campus.school_id,
    )
    await conn.execute(
        "UPDATE student_records SET ic_card_no = '99000001' WHERE person_id = "
        "(SELECT id FROM persons WHERE number = '2026000001')"
    )
    before = await _snapshot(conn)
    rows = student_rows(campus.name, 3, start=10)  # three good new rows
    rows += [
        [20, "江苏省", campus.name, "", "一年级1班", "2026000020", ""],  # row 5: no name
        [21, "火星省", campus.name, "甲", "一年级1班", "2026000021", ""],  # row 6: province
        [22, "江苏省", "不存在学校", "乙", "一年级1班", "2026000022", ""],  # row 7: school
        [23, "江苏省", campus.name, "丙", "一年级1班", "T0001", ""],  # row 8: staff number
        [24, "江苏省", campus.name, "丁", "一年级1班", "2026000024", "99000001"],  # row 9: card
        [25, "江苏省", campus.name, "戊", "一年级1班", "2026000010", ""],  # row 10: dup in file
        [26, "江苏省", campus.name, "己", "一年级1班", "2026000026", "12x"],  # row 11: card fmt
    ]
    # when
    with pytest.raises(ValidationFailed) as err:
        await imports.do_import_students(
            conn,
            campus.teacher,
            campus.school_id,
            frame=build_frame(xlsx(rows)),
            filename="bad.xlsx",
        )
    # then
    assert err.value.code == "IMPORT_ROWS_INVALID"
    reported = [(e["row"], e["field"], e["code"]) for e in err.value.details["errors"]]
    assert reported == [
        (5, "name", "EMPTY"),
        (6, "province", "PROVINCE_UNKNOWN"),
        (7, "school", "SCHOOL_UNKNOWN"),
        (8, "number", "NOT_A_STUDENT"),
        (9, "card_no", "CARD_TAKEN"),
        (10, "number", "NUMBER_TWICE"),
        (11, "card_no", "CARD_FORMAT"),
    ]
    assert await _snapshot(conn) == before


async def test_import_api_refuses_bad_rows_with_the_list(
    client: httpx.AsyncClient, pool: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn, students=0)
    headers = await login(client, "teacher-iss", campus.code)
    rows = [*student_rows(campus.name, 2), [3, "江苏省", campus.name, "", "1班", "x y", ""]]
    r = await client.post(
        f"/api/v1/admin/schools/{campus.code}/student-imports",
        content=build_frame(xlsx(rows)),
        headers=headers,
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "IMPORT_ROWS_INVALID"
    assert {(e["row"], e["field"]) for e in error["details"]["errors"]} == {
        (4, "name"),
        (4, "number"),
    }


async def test_a_teachers_gbk_csv_with_full_width_numbers_imports_and_says_what_was_done(
    client: httpx.AsyncClient, pool: Any
) -> None:
    # given a class list saved by Excel on Chinese Windows: GBK, a full-width 学号 and a
    # zero-width space pasted into a name
    async with pool.acquire() as conn:
        campus = await make_campus(conn, students=0)
    headers = await login(client, "teacher-iss", campus.code)
    lines = [
        "序号,学校所在省份,学校名称,学生姓名,学生班级,学生学号,IC卡号",
        f"1,江苏省,{campus.name},王\u200b小明,一年级1班,２０２６０００１０１,",
        f"2,江苏省,{campus.name},李华,一年级1班,2026000102,",
    ]
    r = await client.post(
        f"/api/v1/admin/schools/{campus.code}/student-imports",
        content=build_frame("\r\n".join(lines).encode("gb18030")),
        headers=headers,
    )
    # then it is imported as meant, and the answer says what was done
    assert r.status_code == 200, r.text
    assert {n["code"]: n["rows"] for n in r.json()["notes"]} == {
        "encoding": [],
        "fullwidth": [2],
        "invisible": [2],
    }
    async with pool.acquire() as conn:
        stored = await conn.fetch("SELECT number, name FROM persons ORDER BY number")
    assert [(p["number"], p["name"]) for p in stored] == [
        ("2026000101", "王小明"),
        ("2026000102", "李华"),
    ]


class CorruptingTransport(httpx.AsyncBaseTransport):
    """Damages the first ``bad`` uploads in transit (flips one byte of the body)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, bad: int) -> None:
        self.inner, self.bad, self.seen = inner, bad, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/student-imports"):
            self.seen += 1
            if self.seen <= self.bad:
                body = bytearray(await request.aread())
                body[len(body) // 2] ^= 0xFF
                request = httpx.Request(
                    request.method, request.url, headers=request.headers, content=bytes(body)
                )
        return await self.inner.handle_async_request(request)


class EchoTamperingTransport(httpx.AsyncBaseTransport):
    """Changes a name in every echo (as a server that stored something else would)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and response.status_code == 200:
            data = __import__("json").loads(await response.aread())
            data["canonical"][0] = data["canonical"][0].replace("学生1", "学生X")
            return httpx.Response(200, json=data)
        return response


async def _uploader_client(client: httpx.AsyncClient, wrap: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=wrap(client._transport), base_url="http://testserver")


async def test_a_corrupted_upload_is_caught_by_the_digest_and_retried(
    client: httpx.AsyncClient, pool: Any
) -> None:
    # given an upload that is damaged in transit twice
    async with pool.acquire() as conn:
        campus = await make_campus(conn, students=0)
    headers = await login(client, "teacher-iss", campus.code)
    transport = CorruptingTransport(client._transport, bad=2)
    content = xlsx(student_rows(campus.name, 4))
    # when
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as up:
        outcome = await upload_students(
            up, school=campus.code, content=content, filename="a.xlsx", headers=headers
        )
    # then the third attempt got through and only it was stored
    assert outcome.ok, outcome.history
    assert outcome.attempts == 3
    assert "DIGEST_MISMATCH" in outcome.history[0] and "DIGEST_MISMATCH" in outcome.history[1]
    async with pool.acquire() as conn:
        for table, count in (("student_import_files", 1), ("persons", 4)):
            sql = f"SELECT count(*) FROM {table} WHERE school_id = $1"
            assert await conn.fetchval(sql, campus.school_id) == count


async def test_upload_fails_after_three_damaged_attempts(
    client: httpx.AsyncClient, pool: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn, students=0)
    headers = await login(client, "teacher-iss", campus.code)
    transport = CorruptingTransport(client._transport, bad=99)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as up:
        outcome = await upload_students(
            up,
            school=campus.code,
            content=xlsx(student_rows(campus.name, 2)),
            filename="a.xlsx",
            headers=headers,
        )
    assert not outcome.ok
    assert outcome.attempts == 3 and transport.seen == 3
    assert "上传失败" in outcome.message
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM persons") == 0


async def test_an_echo_that_differs_from_the_file_is_retried_then_reported(
    client: httpx.AsyncClient, pool: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn, students=0)
    headers = await login(client, "teacher-iss", campus.code)
    async with httpx.AsyncClient(
        transport=EchoTamperingTransport(client._transport), base_url="http://testserver"
    ) as up:
        outcome = await upload_students(
            up,
            school=campus.code,
            content=xlsx(student_rows(campus.name, 2)),
            filename="a.xlsx",
            headers=headers,
        )
    assert not outcome.ok and outcome.attempts == 3
    assert all("echo does not match" in h for h in outcome.history)


async def test_uploader_reports_bad_rows_without_retrying(
    client: httpx.AsyncClient, pool: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn, students=1)
        await conn.execute(
            "INSERT INTO persons(school_id, kind, number, name) VALUES ($1, 'staff', 'T1', '老师')",
            campus.school_id,
        )
    headers = await login(client, "teacher-iss", campus.code)
    rows = [[1, "江苏省", campus.name, "甲", "1班", "T1", ""]]
    outcome = await upload_students(
        client, school=campus.code, content=xlsx(rows), filename="a.xlsx", headers=headers
    )
    assert not outcome.ok and outcome.attempts == 1
    assert outcome.errors == [
        {
            "row": 2,
            "field": "number",
            "reason": "this number belongs to a staff, not a student",
            "code": "NOT_A_STUDENT",
            "params": {},
        }
    ]


async def test_stored_versions_are_listed_and_downloadable(
    client: httpx.AsyncClient, pool: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn, students=2)
    headers = await login(client, "teacher-iss", campus.code)
    listed = (
        await client.get(f"/api/v1/admin/schools/{campus.code}/student-imports", headers=headers)
    ).json()
    assert [v["version"] for v in listed] == [1]
    r = await client.get(
        f"/api/v1/admin/schools/{campus.code}/student-imports/1/file", headers=headers
    )
    assert r.status_code == 200 and r.content.startswith(b"PK")
