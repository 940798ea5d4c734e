"""A teacher's bad student sheet on the Chinese console page: every bad row is listed with its
reason in Chinese (worded by the page from the row's code), none in the server's English."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD
from tests.support_issuing import make_campus

pytestmark = pytest.mark.browser


async def test_a_bad_student_sheet_is_explained_in_chinese(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any]
) -> None:
    # given a teacher on the student-import page
    campus = await make_campus(conn, students=0)
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1366, "height": 900})
    await sign_in(page, live_url, f"teacher-{campus.code.lower()}", campus.code, PASSWORD)
    await page.goto(f"{live_url}/admin/s/{campus.code}/imports")

    # when a sheet with five bad rows is sent
    header = "序号,学校所在省份,学校名称,学生姓名,学生班级,学生学号,IC卡号"
    rows = [
        f"1,江苏省,{campus.name},,一年级1班,2026000101,",  # row 2: no name
        f"2,火星省,{campus.name},甲,一年级1班,2026000102,",  # row 3: no such province
        f"3,江苏省,{campus.name},乙,一年级1班,2026#0103,",  # row 4: number format
        f"4,江苏省,{campus.name},丙,一年级1班,2026000104,12x",  # row 5: card number format
        f"5,江苏省,{campus.name},丁,一年级1班,2026000101,",  # row 6: number twice
    ]
    sheet = "\n".join([header, *rows]) + "\n"
    await page.get_by_test_id("import-file").set_input_files(
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": sheet.encode()}]
    )
    await page.get_by_role("button", name="上传").click()

    # then the whole file is refused and each row says why, in Chinese
    result = page.get_by_test_id("import-result")
    await expect(result).to_contain_text("文件有错误，一行也没有导入")
    await expect(result).to_contain_text("第 2 行 · 学生姓名 · 不能为空")
    await expect(result).to_contain_text("第 3 行 · 学校所在省份 · 没有叫“火星省”的省份")
    await expect(result).to_contain_text("第 4 行 · 学生学号 · 学号“2026#0103”格式不对")
    await expect(result).to_contain_text("第 5 行 · IC卡号 · IC卡号“12x”须为 6–20 位数字")
    await expect(result).to_contain_text("学号 2026000101 在文件中出现两次（第一次在第 2 行）")
    worded = re.sub(r"“[^”]*”", "", await result.inner_text())  # the sheet's own cells aside
    assert not re.search(r"[A-Za-z]{3,}", worded.replace("IC卡号", "")), worded
    await shot(page, "console-student-import-refused-zh")

    # and a file refused as a whole (a header that is not the template's) says so in Chinese,
    # not with the server's code and English message
    await page.get_by_test_id("import-file").set_input_files(
        files=[
            {"name": "wrong.csv", "mimeType": "text/csv", "buffer": "姓名,学号\n甲,1\n".encode()}
        ]
    )
    await page.get_by_role("button", name="上传").click()
    await expect(result).to_have_text("表头不正确，请使用模板。")
