"""Payroll sheets, the pure part: xlsx and CSV read alike, English headers and pay-to words,
the 合计 row's rules, every bad row reported with its code (no database)."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from campuscard.payroll import rules
from campuscard.platform.errors import ValidationFailed


def _xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_xlsx_with_numbers_for_cells_reads_like_its_csv() -> None:
    content = _xlsx(
        [
            ["工号", "姓名", "实发金额", "发放方式"],
            ["T1", "王老师", 5000, "银行卡"],
            ["T2", None, "4200.50", None],
            ["合计", None, "9200.50", None],
        ]
    )
    rows, errors = rules.parse_sheet(content)
    assert errors == []
    assert [r.canonical() for r in rows] == ["T1\tbank\t5000.00", "T2\tcampus\t4200.50"]
    assert rows[0].name == "王老师" and rows[0].row == 2


def test_english_headers_and_words() -> None:
    content = b"Staff number,Amount,Pay to,Memo\nT1,10.00,campus,bonus\nTotal,10.00,,\n"
    rows, errors = rules.parse_sheet(content)
    assert errors == [] and rows[0].memo == "bonus" and rows[0].route == "campus"


def test_every_bad_row_and_the_total_rules_are_reported() -> None:
    content = (
        "工号,实发金额,发放方式\n"
        "T1,0,\n"  # not more than zero
        "T 2,10.00,\n"  # not a staff number
        "T3,10.00,支付宝\n"  # no such route
        "T4,100000.01,\n"  # over the line limit
        "合计,10.00,\n"
        "T5,1.00,\n"  # after the total
    ).encode()
    rows, errors = rules.parse_sheet(content)
    assert rows == []
    assert [(e.row, e.code) for e in errors] == [
        (2, "AMOUNT_INVALID"),
        (3, "NUMBER_FORMAT"),
        (4, "ROUTE_INVALID"),
        (5, "AMOUNT_INVALID"),
        (7, "AFTER_TOTAL"),
    ]
    # no 合计 row at all: named on the row after the last
    _, errors = rules.parse_sheet("工号,实发金额\nT1,1.00\n".encode())
    assert [(e.row, e.code) for e in errors] == [(3, "TOTAL_MISSING")]


def test_a_sheet_without_the_required_columns_is_refused_as_a_file() -> None:
    with pytest.raises(ValidationFailed) as refused:
        rules.parse_sheet("工号,姓名\nT1,王老师\n".encode())
    assert refused.value.code == "HEADER_INVALID" and refused.value.field == "file"


def test_a_line_state_follows_its_booking_or_its_transfer() -> None:
    assert rules.line_state("campus", None, None) == "waiting"
    assert rules.line_state("campus", 7, None) == "paid"
    assert [rules.line_state("bank", None, s) for s in ("pending", "unknown", "reversing")] == [
        "pending"
    ] * 3
    assert rules.line_state("bank", None, "posted") == "paid"
    assert rules.line_state("bank", None, "reversed") == "failed"
    assert rules.line_state("bank", None, None) == "waiting"
