"""Statement files: the bank's and the provider's formats, signs, and every bad row reported."""

from __future__ import annotations

from datetime import date

import pytest

from campuscard.platform.errors import ValidationFailed
from campuscard.settlement.reconciliation_rules import (
    match,
    net_by_reference,
    parse_bank_statement,
    parse_provider_bill,
)

BANK = """H|CAMPUSBANK|20261122|5
D|000000000001|000001|LOAD|10000|A00001|20261122080000
D|000000000002|000002|PAYOUT|2500|A00002|20261122090000
D|000000000003|000003|LOAD|700|A00003|20261122100000
D|000000000003|000004|LOAD_REV|700|A00003|20261122100500
D|STL000120261121000000001|000005|SETTLE|3295|A00005|20261122110000
T|10700|6495|4205
"""


def test_bank_statement_signs_and_totals() -> None:
    st = parse_bank_statement(BANK)
    assert st.statement_date == date(2026, 11, 22)
    assert [ln.amount for ln in st.lines] == [10_000, -2_500, 700, -700, -3_295]
    assert net_by_reference(st.lines)["000000000003"] == 0
    assert (st.total_in, st.total_out) == (10_700, 6_495)


def test_bank_statement_reports_every_bad_line() -> None:
    bad = BANK.replace("|LOAD|10000|", "|LOAD|-5|").replace("|PAYOUT|", "|GIFT|")
    with pytest.raises(ValidationFailed) as err:
        parse_bank_statement(bad)
    problems = err.value.details["problems"]
    assert [(p["line"], p["field"]) for p in problems] == [(2, "amount"), (3, "kind")]
    assert err.value.field == "file"


def test_bank_statement_totals_must_add_up() -> None:
    with pytest.raises(ValidationFailed, match="totals do not add up"):
        parse_bank_statement(BANK.replace("T|10700|", "T|10701|"))
    with pytest.raises(ValidationFailed, match="count"):
        parse_bank_statement(BANK.replace("H|CAMPUSBANK|20261122|5", "H|CAMPUSBANK|20261122|4"))
    with pytest.raises(ValidationFailed, match="starts with"):
        parse_bank_statement("garbage")


PROVIDER = """trade_time,out_trade_no,transaction_id,type,amount_fen,out_refund_no
2026-11-22 08:00:00,TOPUP0001,4200000001,SUCCESS,5000,
2026-11-22 08:00:00,TOPUP0001,4200000001,REFUND,5000,TOPUP0001R1
2026-11-22 09:00:00,TOPUP0002,4200000002,SUCCESS,1234,
# total_paid=6234,total_refunded=5000,net=1234
"""


def test_provider_bill_references_and_signs() -> None:
    st = parse_provider_bill(PROVIDER, date(2026, 11, 22))
    assert [(ln.reference, ln.amount) for ln in st.lines] == [
        ("TOPUP0001", 5_000),
        ("TOPUP0001:refund", -5_000),
        ("TOPUP0002", 1_234),
    ]


def test_provider_bill_bad_rows_and_totals() -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_provider_bill(PROVIDER.replace("SUCCESS,1234", "PAID,12.34"), date(2026, 11, 22))
    assert {p["field"] for p in err.value.details["problems"]} == {"type", "amount_fen"}
    with pytest.raises(ValidationFailed, match="totals"):
        parse_provider_bill(
            PROVIDER.replace("total_paid=6234", "total_paid=6235"), date(2026, 11, 22)
        )


def test_provider_bill_net_must_add_up() -> None:
    day = date(2026, 11, 22)
    for trailer in ("net=1235", "net=-1234", "net=", "net=12.34"):
        with pytest.raises(ValidationFailed) as err:
            parse_provider_bill(PROVIDER.replace("net=1234", trailer), day)
        assert [p["field"] for p in err.value.details["problems"]] == ["net"], trailer
    with pytest.raises(ValidationFailed, match="net"):
        parse_provider_bill(PROVIDER.replace(",net=1234", ""), day)
    refunds_only = PROVIDER.replace("# total_paid=6234,total_refunded=5000,net=1234", "")
    refunds_only = "\n".join(ln for ln in refunds_only.splitlines() if "SUCCESS" not in ln)
    bill = refunds_only + "\n# total_paid=0,total_refunded=5000,net=-5000\n"
    assert parse_provider_bill(bill, day).total_out == 5_000


def test_bank_statement_net_must_add_up() -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_bank_statement(BANK.replace("|6495|4205", "|6495|4206"))
    assert [p["field"] for p in err.value.details["problems"]] == ["net"]


def test_match_gives_each_reference_a_reason() -> None:
    outcomes = {
        o.reference: o.reason
        for o in match({"A": 100, "B": 50, "D": 70, "Z": 0}, {"A": 100, "B": 40, "C": 30})
    }
    assert outcomes == {
        "A": None,
        "B": "amount_differs",
        "C": "missing_theirs",
        "D": "missing_ours",
        "Z": None,  # a load and its reversal on their side, nothing on ours
    }
