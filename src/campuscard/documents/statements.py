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

TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), auto_reload=False
)

# (key, 中文, English) — the columns of a statement line
COLUMNS = (
    ("terminal", "终端", "Terminal"),
    ("channel", "渠道", "Channel"),
    ("sales_count", "笔数", "Sales"),
    ("gross", "交易金额", "Gross"),
    ("reversal_count", "冲正笔数", "Reversals"),
    ("reversals", "冲正金额", "Reversed"),
    ("refund_count", "退款笔数", "Refunds"),
    ("refunds", "退款金额", "Refunded"),
    ("other", "调账", "Adjustments"),
    ("net_sales", "净交易额", "Net sales"),
    ("commission", "手续费", "Commission"),
    ("payout", "应结金额", "Payout"),
    ("carried_count", "跨日补入", "Carried over"),
)
MONEY_KEYS = frozenset(
    {"gross", "reversals", "refunds", "other", "net_sales", "commission", "payout"}
)
CHANNEL_NAMES = {
    "tuition": "学费 Tuition",
    "canteen": "食堂 Canteen",
    "supermarket": "超市 Supermarket",
    "other": "其他 Other",
}


def statement_html(st: dict[str, Any]) -> str:
    return _env.get_template("statement.html").render(
        st=st, columns=COLUMNS, money=MONEY_KEYS, channels=CHANNEL_NAMES
    )


def statement_xlsx(st: dict[str, Any]) -> bytes:
    """The statement as a workbook: amounts are numbers in yuan with two decimals, computed
    from the fen strings (Decimal-free: "12.30" -> 12.3 only at the cell, for Excel sums)."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "结算单 Statement"
    bold = Font(bold=True)
    ws.append(["商户结算单 Merchant settlement statement"])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append(["学校 School", st.get("school", ""), "", "商户 Merchant", st["merchant"]])
    ws.append(
        [
            "结算日 Business date",
            st["business_date"],
            "",
            "手续费率 Commission",
            st.get("commission_rate", ""),
        ]
    )
    account = st.get("payout_account") or {}
    ws.append(
        [
            "收款账户 Payee",
            account.get("account_name", "未登记 not registered"),
            "",
            "账号 Account",
            account.get("account_no", ""),
        ]
    )
    ws.append([])
    ws.append([f"{zh} {en}" for _, zh, en in COLUMNS])
    for cell in ws[ws.max_row]:
        cell.font = bold
        cell.alignment = Alignment(wrap_text=True)
    for line in st["lines"]:
        ws.append([_cell(key, line.get(key)) for key, _, _ in COLUMNS])
    totals = st.get("totals")
    if totals:
        ws.append(
            [
                _cell(key, totals.get(key)) if key not in ("terminal", "channel") else ""
                for key, _, _ in COLUMNS
            ]
        )
        ws.cell(row=ws.max_row, column=1, value="合计 Total").font = bold
    for col, (key, _, _) in enumerate(COLUMNS, start=1):
        ws.column_dimensions[get_column_letter(col)].width = 14 if key != "terminal" else 18
        if key in MONEY_KEYS:
            for row in ws.iter_rows(min_row=7, min_col=col, max_col=col):
                row[0].number_format = "#,##0.00"
    return workbook_bytes(wb)


def _cell(key: str, value: Any) -> Any:
    if key in MONEY_KEYS and isinstance(value, str):
        return _yuan_number(value)
    if key == "channel" and isinstance(value, str):
        return CHANNEL_NAMES.get(value, value)
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
