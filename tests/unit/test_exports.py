"""Formula-safe exports: every writer quotes cells a spreadsheet would run."""

import csv
import io

import pytest
from openpyxl import Workbook, load_workbook

from campuscard.documents import exports, statements


@pytest.mark.parametrize(
    "text",
    ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("http://x")', "=cmd|'/C'!A0"],
)
def test_text_that_starts_a_formula_is_quoted(text: str) -> None:
    assert exports.safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["-12.30", "+5", "12.30", "王伟", "a=b", "", 5, None])
def test_numbers_and_ordinary_text_are_left_alone(value: object) -> None:
    assert exports.safe_cell(value) == value


def test_report_csv_and_xlsx_are_formula_safe() -> None:
    columns = [("name", "名称"), ("amount", "金额")]
    rows = [{"name": "=1+2", "amount": "-3.00"}]
    lines = list(csv.reader(io.StringIO(exports.to_csv(columns, rows).decode("utf-8-sig"))))
    assert lines[1] == ["'=1+2", "-3.00"]
    book = load_workbook(
        io.BytesIO(exports.to_xlsx("t", columns, rows, frozenset({"amount"}))), data_only=False
    )
    sheet = book.active
    assert sheet is not None
    assert (sheet["A2"].value, sheet["A2"].data_type) == ("'=1+2", "s")
    assert sheet["B2"].data_type == "n"


def test_a_workbook_keeps_no_formula() -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["=SUM(1,2)", "@x", 3])
    saved = load_workbook(io.BytesIO(exports.workbook_bytes(book))).active
    assert saved is not None
    assert [c.data_type for c in saved[1]] == ["s", "s", "n"]
    assert saved["A1"].value == "'=SUM(1,2)"


def test_the_payout_file_quotes_a_merchant_name_that_is_a_formula() -> None:
    text = statements.payout_csv(
        "S1",
        "2026-03-01",
        [
            {
                "payout_fen": 1234,
                "bank_code": "ICBC",
                "account_no": "6222",
                "account_name": "=cmd|' /C calc'!A0",
                "payout_ref": "P1",
                "merchant": "食堂",
            }
        ],
    )
    line = list(csv.reader(io.StringIO(text)))[1]
    assert line[4] == "'=cmd|' /C calc'!A0"
    assert line[5] == "12.34"
