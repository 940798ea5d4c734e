"""Reading uploaded sheets (xlsx, CSV) within limits on bytes, rows and columns. Pure: no I/O.

A workbook says how big it is (``<dimension ref="A1:XFD1048576">``) and where its cells are;
neither is trusted. The zip's unpacked size is capped before anything is parsed, the sheet is
streamed row by row (openpyxl's read-only mode with the declared dimensions dropped), and a
row or column beyond the limit is refused as soon as it is met, so a 5 KB file cannot make the
server allocate a grid of seventeen billion cells. Every refusal is a 422 ``FILE_TOO_LARGE``
on ``file`` that names the limit; nothing has been written when it comes.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from campuscard.platform.errors import ValidationFailed

# A sheet XML of a few megabytes unpacks from far fewer bytes; a zip bomb unpacks to gigabytes.
MAX_UNZIPPED_BYTES = 256 * 1024 * 1024
MAX_ZIP_ENTRIES = 1000
MAX_CELL_CHARS = 4096
MAX_SHEET_COLUMNS = 16384  # XFD, the widest row a workbook can have


@dataclass(frozen=True)
class SheetLimits:
    """``rows``: data rows after the header; ``columns``: columns a row may use."""

    rows: int
    columns: int
    unzipped_bytes: int = MAX_UNZIPPED_BYTES


def too_large(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="FILE_TOO_LARGE", field="file")


def _check_zip(content: bytes, limits: SheetLimits) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile as err:
        raise ValidationFailed(
            "the file is not a readable xlsx workbook", code="FILE_UNREADABLE", field="file"
        ) from err
    if len(entries) > MAX_ZIP_ENTRIES:
        raise too_large(f"the workbook has more than {MAX_ZIP_ENTRIES} parts")
    # a part's declared size is what zipfile lets it unpack to (and checks), so the sum bounds
    # the memory the parser can be made to use
    if sum(e.file_size for e in entries) > limits.unzipped_bytes:
        raise too_large(
            f"the workbook unpacks to more than {limits.unzipped_bytes // (1024 * 1024)} MB"
        )


def _bounded(
    rows: Iterable[tuple[int, Iterable[object]]], limits: SheetLimits
) -> Iterator[list[object]]:
    """``(row number, values)`` as lists of values with the missing rows filled in as ``[]``;
    a row past the header + ``limits.rows`` that holds anything, or a value past
    ``limits.columns``, is refused when it is met. Empty rows past the limit are skipped."""
    expected = 1
    for position, row in rows:
        values = list(row)
        while values and values[-1] in (None, ""):
            values.pop()
        if position > limits.rows + 1:
            if values:
                raise too_large(f"the sheet has more than {limits.rows} rows")
            continue
        if len(values) > limits.columns:
            raise too_large(
                f"row {position} uses more than {limits.columns} columns (the limit for this file)"
            )
        for value in values:
            if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
                raise too_large(
                    f"row {position} has a cell longer than {MAX_CELL_CHARS} characters"
                )
        while expected < position:  # rows the file leaves out (never more than the limit)
            expected += 1
            yield []
        expected += 1
        yield values


def _sheet_rows(book: Any, sheet: Any) -> Iterator[tuple[int, list[object]]]:
    """The rows a sheet's XML really holds, with their numbers: unlike ``iter_rows`` nothing
    is made up for the gaps, so a lone cell in row 1,048,576 costs one row, not a million."""
    from openpyxl.worksheet._reader import WorkSheetParser

    with sheet._get_source() as source:
        parser = WorkSheetParser(
            source,
            sheet._shared_strings,
            data_only=True,
            epoch=book.epoch,
            date_formats=book._date_formats,
            timedelta_formats=book._timedelta_formats,
        )
        for number, cells in parser.parse():
            width = max((c["column"] for c in cells), default=0)
            values: list[object] = [None] * min(width, MAX_SHEET_COLUMNS)
            for cell in cells:
                if 1 <= cell["column"] <= len(values):
                    values[cell["column"] - 1] = cell["value"]
            yield number, values


def xlsx_rows(content: bytes, limits: SheetLimits) -> list[list[object]]:
    """The first sheet's values, row by row (an empty row is ``[]``)."""
    _check_zip(content, limits)
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as err:  # any unreadable workbook is bad input, not a fault
        raise ValidationFailed(
            "the file is not a readable xlsx workbook", code="FILE_UNREADABLE", field="file"
        ) from err
    try:
        if not book.worksheets:
            raise ValidationFailed("the workbook has no sheet", code="FILE_EMPTY", field="file")
        sheet = book.worksheets[0]
        # the declared <dimension> is ignored: rows come as they are in the file, each as wide
        # as its last cell, and gaps between rows cost nothing
        try:
            return list(_bounded(_sheet_rows(book, sheet), limits))
        except ValidationFailed:
            raise
        except Exception as err:  # a damaged sheet part
            raise ValidationFailed(
                "the file is not a readable xlsx workbook", code="FILE_UNREADABLE", field="file"
            ) from err
    finally:
        book.close()


_WORKSHEET = re.compile(r"^xl/worksheets/[^/]+\.xml$")
# element names may carry a namespace prefix (<x:c ...>)
_ANY_CELL = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c[\s>/]")
_CELL_REF = re.compile(rb'<(?:[A-Za-z_][\w.-]*:)?c\s[^>]*?\br="([A-Z]{1,3})([0-9]{1,7})"')
_DIMENSION = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?dimension\b[^>]*>")
_DIMENSION_REFS = re.compile(rb"([A-Z]{1,3})([0-9]{1,7})")
_CHUNK = 1024 * 1024


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _scan_sheet(archive: zipfile.ZipFile, name: str, limits: SheetLimits) -> bool:
    """Refuse a cell beyond the limits in one sheet part, reading it in chunks; whether every
    cell names its place (``r="B7"``, as Excel and every common writer do)."""
    tail = b""
    with archive.open(name) as part:
        while chunk := part.read(_CHUNK):
            text = tail + chunk
            cut = text.rfind(b"<")  # a tag may straddle chunks: keep it for the next round
            if cut == 0:  # one tag longer than a chunk: gather more, within reason
                if len(text) > 4 * _CHUNK:
                    raise too_large("the sheet has an XML tag longer than 4 MB")
                tail = text
                continue
            body, tail = (text[:cut], text[cut:]) if cut > 0 else (text, b"")
            refs = _CELL_REF.findall(body)
            if len(refs) != len(_ANY_CELL.findall(body)):
                return False
            if not refs:
                continue
            last_row = max(int(row) for _, row in refs)
            if last_row > limits.rows + 1:
                raise too_large(f"the sheet has more than {limits.rows} rows")
            widest = max(_column_number(col) for col in {col for col, _ in refs})
            if widest > limits.columns:
                raise too_large(
                    f"a row uses more than {limits.columns} columns (the limit for this file)"
                )
    return True


def _declares_too_much(head: bytes, limits: SheetLimits) -> bool:
    """Whether the sheet's ``<dimension ref="A1:XFD1048576">`` claims more than the limits."""
    tag = _DIMENSION.search(head)
    if tag is None:
        return False
    refs = _DIMENSION_REFS.findall(tag.group(0))
    return any(
        int(row) > limits.rows + 1 or _column_number(col) > limits.columns for col, row in refs
    )


def checked_xlsx(content: bytes, limits: SheetLimits) -> bytes | None:
    """The workbook, safe to hand to a reader that sizes its grid from the file (calamine):
    every cell of every sheet lies within the limits (else 422), and a sheet's declared
    ``<dimension>`` is dropped when it claims more. ``None`` when a sheet has cells that do not
    name their place; read that file with ``xlsx_rows`` instead."""
    _check_zip(content, limits)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        sheets = [e.filename for e in archive.infolist() if _WORKSHEET.match(e.filename)]
        for name in sheets:
            if not _scan_sheet(archive, name, limits):
                return None
        declared = {
            name for name in sheets if _declares_too_much(archive.open(name).read(4096), limits)
        }
        if not declared:
            return content
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as rebuilt:
            for entry in archive.infolist():
                data = archive.read(entry.filename)
                if entry.filename in declared:
                    data = _DIMENSION.sub(b"", data, count=1)
                rebuilt.writestr(entry, data)
        return out.getvalue()


def csv_rows(text: str, limits: SheetLimits) -> list[list[str]]:
    """CSV rows of text within the limits."""
    reader = csv.reader(io.StringIO(text))
    try:
        return [[str(v) for v in row] for row in _bounded(enumerate(reader, start=1), limits)]
    except csv.Error as err:  # e.g. a field longer than csv.field_size_limit()
        raise ValidationFailed(
            f"the CSV cannot be read: {err}", code="FILE_UNREADABLE", field="file"
        ) from err
