"""Report exports: a list of rows as CSV (UTF-8 with BOM, so Excel opens Chinese text) or XLSX.
Money columns arrive as yuan strings ("12.30") and are written exactly (Decimal in XLSX)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font


def to_csv(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([title for _, title in columns])
    for r in rows:
        w.writerow([r.get(key, "") for key, _ in columns])
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
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
