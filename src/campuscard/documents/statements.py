"""Settlement statement of one merchant and day: a printable HTML page and an XLSX workbook,
and the payout instruction file for the bank (format: docs/payout-file.md)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from campuscard.documents.exports import safe_row, workbook_bytes
from campuscard.ledger.money import fmt
from campuscard.platform import i18n
from campuscard.settlement.clearing import FIGURES, MONEY_FIELDS

TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), auto_reload=False
)

# the columns of a statement line: the clearing's figures per terminal, each worded from the
# catalogs (st.col.<key>)
COLUMNS = ("terminal", "channel", *FIGURES)
MONEY_KEYS = MONEY_FIELDS & frozenset(COLUMNS)


def statement_html(st: dict[str, Any], locale: str = i18n.DEFAULT_LOCALE) -> str:
    """The printable statement in ``locale`` (the reader's: decision 0290); amounts as the
    locale writes money."""
    return _env.get_template("statement.html").render(
        st=st,
        columns=COLUMNS,
        money=MONEY_KEYS,
        lang=locale,
        t=lambda key, **params: i18n.translate(locale, key, **params),
        money_text=lambda yuan: i18n.format_money(locale, _fen(yuan)),
    )


def _fen(yuan: str | None) -> int:
    return int(Decimal(yuan or "0") * 100)


def statement_xlsx(st: dict[str, Any], locale: str = i18n.DEFAULT_LOCALE) -> bytes:
    """The statement as a workbook in ``locale``: amounts are numbers in yuan with two
    decimals, exact from the yuan text (Decimal, never a binary float), for Excel sums."""

    def t(key: str, **params: Any) -> str:
        return i18n.translate(locale, key, **params)

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = t("st.sheet")
    bold = Font(bold=True)
    ws.append([t("st.title")])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([t("st.school"), st.get("school", ""), "", t("st.merchant"), st["merchant"]])
    ws.append(
        [
            t("st.business_date"),
            st["business_date"],
            "",
            t("st.commission_rate"),
            st.get("commission_rate", ""),
        ]
    )
    account = st.get("payout_account") or {}
    ws.append(
        [
            t("st.payee"),
            account.get("account_name", t("st.no_payee")),
            "",
            t("st.account"),
            account.get("account_no", ""),
        ]
    )
    ws.append([])
    ws.append([t(f"st.col.{key}") for key in COLUMNS])
    for cell in ws[ws.max_row]:
        cell.font = bold
        cell.alignment = Alignment(wrap_text=True)
    for line in st["lines"]:
        ws.append(
            [
                _cell(locale, key, line.get(key))
                if key != "terminal" or line.get("terminal_id")
                else t("st.back_office")
                for key in COLUMNS
            ]
        )
    totals = st.get("totals")
    if totals:
        ws.append(
            [
                _cell(locale, key, totals.get(key)) if key not in ("terminal", "channel") else ""
                for key in COLUMNS
            ]
        )
        ws.cell(row=ws.max_row, column=1, value=t("st.total")).font = bold
    for col, key in enumerate(COLUMNS, start=1):
        ws.column_dimensions[get_column_letter(col)].width = 14 if key != "terminal" else 18
        if key in MONEY_KEYS:
            for row in ws.iter_rows(min_row=7, min_col=col, max_col=col):
                row[0].number_format = "#,##0.00"
    return workbook_bytes(wb)


def _cell(locale: str, key: str, value: Any) -> Any:
    if key in MONEY_KEYS and isinstance(value, str):
        return _yuan_number(value)
    if key == "channel" and isinstance(value, str):
        return i18n.translate(locale, f"channel.{value}")
    return value


def _yuan_number(text: str) -> Decimal:
    # exact: Decimal("12.30"), written to the cell as the number 12.30 (never a binary float)
    return Decimal(text)


def payout_csv(school_code: str, business_date: str, rows: list[dict[str, Any]]) -> str:
    """The payout instruction file: an H line, then one D line per merchant to pay."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    total = sum(r["payout_fen"] for r in rows)
    batch = f"{school_code}-{business_date.replace('-', '')}"
    w.writerow(["H", batch, school_code, business_date, len(rows), fmt(total), "CNY"])
    for seq, r in enumerate(rows, start=1):
        w.writerow(
            safe_row(
                [
                    "D",
                    seq,
                    r["bank_code"],
                    r["account_no"],
                    r["account_name"],
                    fmt(r["payout_fen"]),
                    "CNY",
                    r["payout_ref"],
                    f"结算 {business_date} {r['merchant']}",
                ]
            )
        )
    return buf.getvalue()
