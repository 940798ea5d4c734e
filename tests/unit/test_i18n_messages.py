"""Money per locale, and messages stored as key + parameters worded in the reader's language
(no database)."""

from __future__ import annotations

from datetime import date

import pytest

from campuscard.access import model as access_model
from campuscard.adapters.bank import iso as bank_iso
from campuscard.api.routes import reports as report_routes
from campuscard.attendance import rules as attendance_rules
from campuscard.bills import rules as bill_rules
from campuscard.cards import rules as card_rules
from campuscard.documents import statements
from campuscard.monitoring import hardship_rules, threshold_rules
from campuscard.monitoring import rules as monitoring_rules
from campuscard.platform import i18n
from campuscard.web import core


@pytest.mark.parametrize(
    ("fen", "zh", "en"),
    [
        (123450, "¥1,234.50", "CN¥1,234.50"),
        (1, "¥0.01", "CN¥0.01"),
        (0, "¥0.00", "CN¥0.00"),
        (-5, "-¥0.05", "-CN¥0.05"),
        (-123456789, "-¥1,234,567.89", "-CN¥1,234,567.89"),
        (999_999_999_999_99, "¥999,999,999,999.99", "CN¥999,999,999,999.99"),  # fen-exact
    ],
)
def test_money_is_written_as_each_locale_writes_yuan(fen: int, zh: str, en: str) -> None:
    assert i18n.format_money("zh-CN", fen) == zh
    assert i18n.format_money("en", fen) == en


def test_a_stored_message_is_worded_in_the_readers_language() -> None:
    stored = i18n.message(
        "notice.topup_paid.body", amount=i18n.money(123450), balance=i18n.money(-5)
    )
    assert i18n.word("zh-CN", stored) == "在线充值 ¥1,234.50 已到账，现金余额 -¥0.05。"
    assert i18n.word("en", stored) == (
        "Online top-up of CN¥1,234.50 received; cash balance -CN¥0.05."
    )


def test_nested_messages_dates_and_lists_take_the_readers_language() -> None:
    lifted = i18n.message(
        "notice.bill_hold_lifted.body",
        what=[i18n.message(f"notice.hold.{k}") for k in bill_rules.HOLD_KINDS],
    )
    assert i18n.word("zh-CN", lifted) == "补办校园卡和进入考场已恢复。"
    assert i18n.word("en", lifted) == "Possible again: card replacement and exam hall entry."
    deferred = i18n.message(
        "notice.bill_deferred.body", term="2026-2027-1", until=i18n.day(date(2026, 12, 3))
    )
    assert "2026年12月3日" in i18n.word("zh-CN", deferred)
    assert "December 3, 2026" in i18n.word("en", deferred)


def test_rows_stored_before_messages_were_keys_still_read() -> None:
    old = {"zh-CN": "充值成功", "en": "Top-up received"}
    assert i18n.word("zh-CN", old) == "充值成功"
    assert i18n.word("en", old) == "Top-up received"
    assert i18n.word("en", {"zh-CN": "只有中文"}) == "只有中文"  # no English kept: the Chinese
    # a row stored before its text gained a parameter: the parameter is blank, not a 500
    assert i18n.word("zh-CN", {"key": "notice.card.body", "params": {"tail": "1234"}}) == (
        "尾号1234的校园卡：。如非本人操作请立即联系卡务中心。"
    )


def test_every_key_a_notice_makes_at_run_time_is_in_the_catalogs() -> None:
    """Keys made from a value (``notice.card.{action}``) are not literals Babel extracts; each
    family is listed here from the values the code can pass."""
    families = {
        "notice.card": [*card_rules.TRANSITIONS, "issue"],
        "notice.counter": ["deposit", "withdrawal", "subsidy_grant", "subsidy_deduct", "zeroing"],
        "notice.bill_reminder": ["due_soon", *(name for name, _, _ in bill_rules.BUCKETS)],
        "notice.hold": list(bill_rules.HOLD_KINDS),
        "notice.card_application": [
            "pending_approval",
            "awaiting_payment",
            "ready",
            "in_production",
            "produced",
            "rejected",
            "cancelled",
        ],
        "notice.merchant": ["approve", "reject", "suspend", "close"],
        "notice.leave": list(attendance_rules.LEAVE_KINDS),
        "notice.leave_decided": [
            f"{s}{tail}" for s in ("approved", "rejected") for tail in ("", "_body", "_note")
        ],
        "notice.utility_done": ["electricity", "water"],
        # the report downloads' headers (api/routes/reports.py)
        "rep.col": [*report_routes.DAILY_COLUMNS, *report_routes.CONSUMPTION_COLUMNS],
        # an attendance workbook's statuses (attendance/sheets.py)
        "att.status": [*attendance_rules.STATUSES, "pending"],
        # a hardship candidate's score inputs, their units and the exclusions
        # (monitoring/hardship_rules.py)
        "hs.input": [i.name for i in hardship_rules.SCORE_INPUTS],
        "hs.unit": [i.name for i in hardship_rules.SCORE_INPUTS],
        "hs.excl": list(hardship_rules.EXCLUSIONS),
        # each rule's thresholds and what the rule is for (monitoring/threshold_rules.py)
        "mon.th": [
            f"{r}.{spec.name}" for r, specs in threshold_rules.SPECS.items() for spec in specs
        ],
        "mon.explain": list(threshold_rules.SPECS),
        # the console's risk tiers and settings groups (monitoring/rules.py, school_rules.py)
        "a.mon_tier": list(monitoring_rules.TIERS),
        "a.mon_group": list(monitoring_rules.SETTINGS_GROUPS),
        # a monitoring alert's title names its rule (monitoring/alerts.py)
        "notice.alert.rule": list(monitoring_rules.ALERT_RULES),
        "notice.utility_failed": ["electricity", "water"],
        "notice.order_refund": ["not_shipped", "hold_expired"],
        "notice.paycode_unbound": ["by_holder", "by_operator"],
        # why a card application waits for a person (issuing/applications.py)
        "a.review_reason": ["student_own_application", "applicant_not_guardian"],
        # a settlement statement's columns and payout states (documents/statements.py)
        "st.col": list(statements.COLUMNS),
        "st.status": ["instructed", "no_account", "nothing_due", "owed_by_merchant"],
        # a subsidy sheet's bad rows, worded by the subsidies page (moneyflows/subsidies.py)
        "a.sub_row": [
            "number_empty",
            "number_unknown",
            "account_inactive",
            "number_twice",
            "amount_invalid",
        ],
        "a.sub_field": ["number", "amount"],
        # what keeps an access row from being deleted (access/model.py), worded by its form
        "acf.in_use": list(access_model.USED_BY),
        # the bank's answers the pages word (adapters/bank/iso.py), any other with its code
        "bank.rc": [*bank_iso.WORDED, "other"],
        # a student sheet's row codes (issuing/import_rules.py, imports.py), worded by the page
        "import.reason": [
            "empty",
            "name_length",
            "class_length",
            "number_format",
            "number_twice",
            "card_format",
            "card_twice",
            "province_unknown",
            "province_other",
            "school_unknown",
            "not_a_student",
            "card_taken",
        ],
    }
    for locale in i18n.LOCALES:
        texts = i18n.catalog(locale)
        missing = [
            f"{f}.{v}" for f, values in families.items() for v in values if f"{f}.{v}" not in texts
        ]
        assert not missing, (locale, missing)


def test_both_languages_of_a_message_take_the_same_parameters() -> None:
    """A parameter only one language names would be blank, or unused, in the other."""
    zh, en = i18n.catalog("zh-CN"), i18n.catalog("en")
    differ = {
        key: (i18n.placeholders(zh[key]), i18n.placeholders(en[key]))
        for key in zh
        if key in en and i18n.placeholders(zh[key]) != i18n.placeholders(en[key])
    }
    assert not differ, differ


@pytest.mark.parametrize(
    ("lang", "template", "value", "shown"),
    [
        ("zh-CN", "{{ v|money }}", 123450, "¥1,234.50"),
        ("en", "{{ v|money }}", 123450, "CN¥1,234.50"),
        ("en", "{{ v|money }}", None, "CN¥0.00"),
        ("zh-CN", "{{ v|money_text }}", "-12.30", "-¥12.30"),  # a view's yuan text
        ("en", "{{ v|money_text }}", "1234.5", "CN¥1,234.50"),
        ("en", "{{ v|money_text(whole=True) }}", "200", "CN¥200"),  # a quick-amount button
        ("zh-CN", "{{ v|money_text(whole=True) }}", "12.50", "¥12.50"),  # not round: its fen
    ],
)
def test_the_pages_money_filters_follow_the_pages_language(
    lang: str, template: str, value: object, shown: str
) -> None:
    assert core.env.from_string(template).render(v=value, lang=lang) == shown


def test_the_money_filter_refuses_part_of_a_fen() -> None:
    with pytest.raises(ValueError, match="fen"):
        core.fen_of("0.005")


@pytest.mark.parametrize(
    ("lang", "line", "shown"),
    [
        ("zh-CN", {"kind": "late_fee", "name": "滞纳金 late fee (2/3)"}, "滞纳金（第 2/3 期）"),
        (
            "en",
            {"kind": "late_fee", "name": "滞纳金 late fee (2/3)"},
            "Late fee (instalment 2 of 3)",
        ),
        ("en", {"kind": "tuition", "name": "学费"}, "学费"),  # the school's own item, as typed
    ],
)
def test_a_late_fee_line_the_system_added_is_worded_in_the_pages_language(
    lang: str, line: dict[str, str], shown: str
) -> None:
    assert core.env.from_string("{{ ln|bill_line_name }}").render(ln=line, lang=lang) == shown
