"""Hostile upload files, built in the test: a workbook that declares (or really has) a cell at
XFD1048576, one with a cell far to the right, and a zip bomb."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from typing import Any

import openpyxl

SHEET = "xl/worksheets/sheet1.xml"


def workbook(rows: Sequence[Sequence[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _rewrite_sheet(content: bytes, edit: Any) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(content))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == SHEET:
                data = edit(data.decode()).encode()
            target.writestr(item, data)
    return out.getvalue()


def far_cell(
    rows: Sequence[Sequence[Any]], ref: str = "XFD1048576", *, prefixed: bool = False
) -> bytes:
    """``rows`` plus one cell at ``ref``, and a <dimension> that claims the whole grid;
    ``prefixed``: the cell element is written with a namespace prefix (<x:c>)."""
    row_no = int(re.sub(r"[A-Z]", "", ref))
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    tag, open_extra = ("x:c", f' xmlns:x="{main}"') if prefixed else ("c", "")

    def edit(xml: str) -> str:
        xml = re.sub(r'<dimension ref="[^"]*"\s*/>', '<dimension ref="A1:XFD1048576"/>', xml)
        cell = f'<{tag}{open_extra} r="{ref}" t="inlineStr"><is><t>x</t></is></{tag}>'
        if f'<row r="{row_no}"' in xml:  # the row exists: put the cell at its end
            return re.sub(rf'(<row r="{row_no}"[^>]*>.*?)(</row>)', rf"\1{cell}\2", xml, flags=re.S)
        return xml.replace("</sheetData>", f'<row r="{row_no}">{cell}</row></sheetData>')

    return _rewrite_sheet(workbook(rows), edit)


def declared_only(rows: Sequence[Sequence[Any]]) -> bytes:
    """An honest sheet whose <dimension> claims A1:XFD1048576."""
    return _rewrite_sheet(
        workbook(rows),
        lambda xml: re.sub(r'<dimension ref="[^"]*"\s*/>', '<dimension ref="A1:XFD1048576"/>', xml),
    )


def zip_bomb(rows: Sequence[Sequence[Any]], padding_bytes: int) -> bytes:
    """A workbook whose sheet XML is inflated by ``padding_bytes`` of whitespace (a few KB
    compressed)."""
    pad = " " * padding_bytes
    return _rewrite_sheet(
        workbook(rows), lambda xml: xml.replace("<sheetData>", "<sheetData>" + pad)
    )
