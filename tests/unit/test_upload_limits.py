"""Uploaded sheets are read within limits: the declared size is ignored, a cell far away or a
zip bomb is refused (422 FILE_TOO_LARGE naming the limit) without allocating the grid."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from campuscard.issuing import import_rules
from campuscard.moneyflows import subsidies
from campuscard.platform import uploads
from campuscard.platform.errors import ValidationFailed
from campuscard.settlement import reconciliation_rules
from tests.upload_bombs import declared_only, far_cell, workbook, zip_bomb

ROWS = [["学号", "金额"], ["S001", "1.00"]]
LIMITS = uploads.SheetLimits(rows=100, columns=10)


def refused(excinfo: pytest.ExceptionInfo[ValidationFailed], *words: str) -> None:
    error = excinfo.value
    assert (error.code, error.field, error.status) == ("FILE_TOO_LARGE", "file", 422)
    for word in words:
        assert word in error.message


def test_a_cell_at_xfd1048576_is_refused_without_allocating_the_grid() -> None:
    # given a 5 KB workbook whose one extra cell sits in the last row and column
    content = far_cell(ROWS)
    assert len(content) < 10_000
    # when
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ValidationFailed) as excinfo:
        uploads.xlsx_rows(content, LIMITS)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # then: refused by the row limit, with memory and time of a small file
    refused(excinfo, "100 rows")
    assert peak < 64 * 1024 * 1024
    assert elapsed < 30


def test_a_cell_far_to_the_right_is_refused_by_the_column_limit() -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        uploads.xlsx_rows(far_cell(ROWS, "XFD2"), LIMITS)
    refused(excinfo, "10 columns")


def test_the_declared_dimension_is_ignored() -> None:
    assert uploads.xlsx_rows(declared_only(ROWS), LIMITS) == ROWS


def test_a_zip_bomb_is_refused_before_parsing() -> None:
    content = zip_bomb(ROWS, 2 * 1024 * 1024)
    assert len(content) < 100_000
    small = uploads.SheetLimits(rows=100, columns=10, unzipped_bytes=1024 * 1024)
    with pytest.raises(ValidationFailed) as excinfo:
        uploads.xlsx_rows(content, small)
    refused(excinfo, "unpacks to more than 1 MB")


def test_csv_rows_and_columns_are_limited() -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        uploads.csv_rows("a,b\n" + "1,2\n" * 101, LIMITS)
    refused(excinfo, "100 rows")
    with pytest.raises(ValidationFailed) as excinfo:
        uploads.csv_rows("a,b\n" + ",".join("x" * 11) + "\n", LIMITS)
    refused(excinfo, "10 columns")
    assert uploads.csv_rows("a,b\n1,2\n\n", LIMITS) == [["a", "b"], ["1", "2"], []]


def test_every_upload_parser_uses_the_limits() -> None:
    # the student import, the subsidy list and both statement kinds
    with pytest.raises(ValidationFailed) as excinfo:
        import_rules.read_table(far_cell([list(import_rules.HEADERS_ZH)]))
    refused(excinfo, f"{import_rules.MAX_ROWS} rows")
    with pytest.raises(ValidationFailed) as excinfo:
        subsidies.read_rows("list.xlsx", far_cell(ROWS))
    refused(excinfo, f"{subsidies.MAX_LINES} rows")
    with pytest.raises(ValidationFailed) as excinfo:
        subsidies.read_rows("list.csv", ("学号,金额\n" + "S1,1.00," * 30 + "\n").encode())
    refused(excinfo, f"{subsidies.MAX_COLUMNS} columns")
    long_line = "H|BANK|20261201|1\n" + "D|" + "9" * 5000 + "\n"
    with pytest.raises(ValidationFailed) as excinfo:
        reconciliation_rules.parse_bank_statement(long_line)
    assert excinfo.value.code == "STATEMENT_TOO_LARGE"
    assert str(reconciliation_rules.MAX_LINE_CHARS) in excinfo.value.message
    many = "H|BANK|20261201|1\n" + "x\n" * (reconciliation_rules.MAX_LINES + 1)
    with pytest.raises(ValidationFailed) as excinfo:
        reconciliation_rules.parse_bank_statement(many)
    assert f"more than {reconciliation_rules.MAX_LINES} lines" in excinfo.value.message
    # an honest workbook still reads
    assert subsidies.read_rows("list.xlsx", workbook(ROWS)) == ROWS


def test_a_workbook_for_calamine_is_checked_and_its_claimed_size_dropped() -> None:
    honest = workbook(ROWS)
    assert uploads.checked_xlsx(honest, LIMITS) is honest
    with pytest.raises(ValidationFailed) as excinfo:
        uploads.checked_xlsx(far_cell(ROWS), LIMITS)
    refused(excinfo, "100 rows")
    with pytest.raises(ValidationFailed) as excinfo:
        uploads.checked_xlsx(far_cell(ROWS, "XFD2"), LIMITS)
    refused(excinfo, "10 columns")
    # a sheet that only claims the whole grid is read, with the claim dropped
    claimed = declared_only([list(import_rules.HEADERS_ZH), ["1", "江苏省", "测试学校"]])
    safe = uploads.checked_xlsx(claimed, LIMITS)
    assert safe is not None
    assert b"XFD1048576" not in safe
    assert import_rules.read_table(claimed)[1][:3] == ["1", "江苏省", "测试学校"]
    # a cell with a namespace prefix is seen too
    with pytest.raises(ValidationFailed) as excinfo:
        uploads.checked_xlsx(far_cell(ROWS, prefixed=True), LIMITS)
    refused(excinfo, "100 rows")
