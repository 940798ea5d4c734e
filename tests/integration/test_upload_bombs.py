"""A hostile spreadsheet at the upload routes: 422 naming the limit, nothing written, and the
server still answers."""

from __future__ import annotations

from typing import Any

import httpx

from campuscard.issuing import import_rules
from campuscard.issuing.import_rules import HEADERS_ZH
from campuscard.moneyflows import subsidies
from tests.integration.test_student_import import _snapshot
from tests.support import login, make_school, make_user
from tests.support_issuing import make_campus, student_rows
from tests.upload_bombs import far_cell


async def test_a_student_sheet_with_a_cell_at_xfd1048576_is_refused(
    pool: Any, client: httpx.AsyncClient
) -> None:
    # given a teacher and a 5 KB sheet with one cell in the grid's last row and column
    async with pool.acquire() as conn:
        campus = await make_campus(conn, students=2)
        before = await _snapshot(conn)
    headers = await login(client, f"teacher-{campus.code.lower()}", campus.code)
    content = far_cell([list(HEADERS_ZH), *student_rows(campus.name, 3)])
    assert len(content) < 10_000
    # when
    r = await client.post(
        f"/api/v1/admin/schools/{campus.code}/student-imports",
        content=import_rules.build_frame(content),
        headers=headers,
    )
    # then
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("FILE_TOO_LARGE", "file")
    assert f"{import_rules.MAX_ROWS} rows" in error["message"]
    async with pool.acquire() as conn:
        assert await _snapshot(conn) == before
    # the server is still there, and an honest sheet is taken
    honest = import_rules.build_frame(
        far_cell([list(HEADERS_ZH), *student_rows(campus.name, 3)], "H3")
    )
    r = await client.post(
        f"/api/v1/admin/schools/{campus.code}/student-imports", content=honest, headers=headers
    )
    assert r.status_code == 200, r.text
    assert (await client.get("/api/health")).status_code == 200


async def test_a_subsidy_list_with_a_far_cell_is_refused(
    pool: Any, client: httpx.AsyncClient
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "maker", "settlement", school.id)
    headers = await login(client, "maker", "TST")
    r = await client.post(
        "/api/v1/admin/schools/TST/subsidies/batches/file",
        data={"name": "grant"},
        files={"file": ("list.xlsx", far_cell([["学号", "金额"], ["S001", "1.00"]]))},
        headers=headers,
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("FILE_TOO_LARGE", "file")
    assert f"{subsidies.MAX_LINES} rows" in error["message"]
    assert await pool.fetchval("SELECT count(*) FROM subsidy_batches") == 0
