"""Report exports: a list of rows as CSV (UTF-8 with BOM, so Excel opens Chinese text) or XLSX.
Money columns arrive as yuan strings ("12.30") and are written exactly (Decimal in XLSX).

Every CSV or XLSX the platform writes is formula-safe: a text cell starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return (a name a teacher typed as ``=HYPERLINK(...)``) gets a
leading apostrophe so a spreadsheet shows it instead of running it, and XLSX text cells are
written as text, never as formulas. Plain numbers ("-12.30") stay numbers."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet must show it: text that would start a formula is quoted."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_STARTS)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]


def workbook_bytes(book: Workbook) -> bytes:
    """Save ``book`` with every text cell quoted as needed and typed as text (not a formula)."""
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    cell.value = safe_cell(cell.value)
                    cell.data_type = "s"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def to_csv(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(safe_row(title for _, title in columns))
    for r in rows:
        w.writerow(safe_row(r.get(key, "") for key, _ in columns))
    return ("\ufeff" + buf.getvalue()).encode()


def to_xlsx(
    title: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[dict[str, Any]],
    money: frozenset[str],
) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = title[:31]
    ws.append([t for _, t in columns])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for r in rows:
        ws.append([Decimal(r[k]) if k in money else r.get(k, "") for k, _ in columns])
    for col, (key, _) in enumerate(columns, start=1):
        if key in money:
            for row in ws.iter_rows(min_row=2, min_col=col, max_col=col):
                row[0].number_format = "#,##0.00"
    return workbook_bytes(wb)
