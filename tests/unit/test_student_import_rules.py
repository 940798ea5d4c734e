"""The import frame, sheet layout and row rules (no database)."""

from __future__ import annotations

import pytest

from campuscard.issuing import import_rules as rules
from campuscard.platform.errors import ValidationFailed
from tests.support_issuing import english, xlsx

ROW = [1, "江苏省", "测试学校", "张三", "一年级1班", "2026000001", "88001234"]


def test_frame_round_trip_returns_payload_and_digest() -> None:
    payload = xlsx([ROW])
    body, digest = rules.open_frame(rules.build_frame(payload))
    assert body == payload
    assert digest == rules.sha256_hex(payload)


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        (lambda f: f[:-80], "FRAME_INVALID"),  # truncated: end field gone
        (lambda f: b"X" + f[1:], "FRAME_INVALID"),  # start field damaged
        (lambda f: f[:40] + bytes([f[40] ^ 0x01]) + f[41:], "DIGEST_MISMATCH"),  # a flipped bit
    ],
)
def test_a_damaged_frame_is_refused(damage: object, code: str) -> None:
    frame = rules.build_frame(xlsx([ROW]))
    with pytest.raises(ValidationFailed) as err:
        rules.open_frame(damage(frame))  # type: ignore[operator]
    assert err.value.code == code
    assert err.value.field == "file"


def test_chinese_and_english_headers_read_the_same_rows() -> None:
    zh, _ = rules.parse_rows(xlsx([ROW]))
    en, _ = rules.parse_rows(english([ROW]))
    assert zh == en
    assert zh[0].number == "2026000001"
    assert zh[0].card_no == "88001234"
    assert zh[0].row == 2


def test_numbers_stored_as_numbers_read_as_digits() -> None:
    rows, errors = rules.parse_rows(
        xlsx([[1, "江苏省", "测试学校", "张三", "1班", 2026000001, 88001234]])
    )
    assert errors == []
    assert (rows[0].number, rows[0].card_no) == ("2026000001", "88001234")


def test_every_bad_row_is_reported_with_row_and_reason() -> None:
    rows, errors = rules.parse_rows(
        xlsx(
            [
                ROW,
                [2, "江苏省", "测试学校", "", "一年级1班", "2026000002", ""],  # no name
                [3, "江苏省", "测试学校", "李四", "一年级1班", "2026000001", ""],  # dup number
                [4, "江苏省", "测试学校", "王五", "一年级1班", "2026000004", "12AB"],  # bad card
                [
                    5,
                    "江苏省",
                    "测试学校",
                    "赵六",
                    "一年级1班",
                    "2026000005",
                    "88001234",
                ],  # dup card
                [6, "", "测试学校", "钱七", "", "2026 06", ""],  # 3 problems
            ]
        )
    )
    assert [r.number for r in rows] == ["2026000001"]
    found = {(e.row, e.field) for e in errors}
    assert found == {
        (3, "name"),
        (4, "number"),
        (5, "card_no"),
        (6, "card_no"),
        (7, "province"),
        (7, "class_name"),
        (7, "number"),
    }
    dup = next(e for e in errors if e.row == 4)
    assert "first on row 2" in dup.reason


def test_a_header_without_the_required_columns_is_refused() -> None:
    with pytest.raises(ValidationFailed) as err:
        rules.parse_rows(xlsx([ROW], header=["序号", "姓名", "学号"]))
    assert err.value.code == "HEADER_INVALID"
    assert "学校所在省份" in err.value.message


def test_unknown_province_and_wrong_school_are_named() -> None:
    rows, _ = rules.parse_rows(
        xlsx(
            [
                ROW,
                [2, "火星省", "测试学校", "李四", "1班", "2026000002", ""],
                [3, "浙江省", "测试学校", "王五", "1班", "2026000003", ""],
                [4, "江苏省", "别的学校", "赵六", "1班", "2026000004", ""],
            ]
        )
    )
    names = rules.SchoolNames(
        known_provinces=frozenset({"江苏省", "浙江省", "32", "33"}),
        province=frozenset({"江苏省", "32", "Jiangsu"}),
        school=frozenset({"测试学校", "TST"}),
    )
    errors = rules.check_school(rows, names)
    assert [(e.row, e.field) for e in errors] == [(3, "province"), (4, "province"), (5, "school")]
    assert "unknown province" in errors[0].reason
    assert "not this school's province" in errors[1].reason


def test_echo_comparison_ignores_a_card_number_the_file_left_blank() -> None:
    rows, _ = rules.parse_rows(xlsx([[*ROW[:6], ""]]))
    stored_with_card = [
        rules.canonical_line("江苏省", "测试学校", "一年级1班", "2026000001", "张三", "77")
    ]
    assert rules.echo_matches(rows, stored_with_card)
    other_name = [rules.canonical_line("江苏省", "测试学校", "一年级1班", "2026000001", "张四", "")]
    assert not rules.echo_matches(rows, other_name)
    assert not rules.echo_matches(rows, [])
