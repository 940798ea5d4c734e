"""The import frame, sheet layout and row rules (no database)."""

from __future__ import annotations

import io

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


# ---- teachers' real spreadsheets (issue 21, finding 12)


def _csv(rows: list[list[object]]) -> str:
    lines = [",".join(rules.HEADERS_ZH)] + [",".join(map(str, r)) for r in rows]
    return "\r\n".join(lines) + "\r\n"


def test_a_gbk_csv_from_excel_on_chinese_windows_is_read_and_said_so() -> None:
    rows, errors, notes = rules.parse_file(_csv([ROW]).encode("gbk"))
    assert errors == [] and rows[0].name == "张三" and rows[0].class_name == "一年级1班"
    assert [(n.code, n.value) for n in notes] == [("encoding", "GBK")]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_utf8_csv_with_or_without_bom_reads_the_same_without_notes(bom: bytes) -> None:
    rows, errors, notes = rules.parse_file(bom + _csv([ROW]).encode("utf-8"))
    assert errors == [] and notes == []
    assert rows == rules.parse_rows(xlsx([ROW]))[0]


def test_full_width_digits_and_invisible_characters_are_normalised_and_reported() -> None:
    row = [
        1,
        "江苏省",
        "测试学校",
        "张\u200b三",
        "一年级１班",
        "２０２６０００００１",
        "８８００１２３４",
    ]
    rows, errors, notes = rules.parse_file(xlsx([row]))
    assert errors == []
    assert (rows[0].number, rows[0].card_no, rows[0].class_name, rows[0].name) == (
        "2026000001",
        "88001234",
        "一年级1班",
        "张三",
    )
    assert {(n.code, n.rows) for n in notes} == {("fullwidth", (2,)), ("invisible", (2,))}
    # the same characters in a name are not folded (NFKC is not applied to names)
    kept, _, _ = rules.parse_file(
        xlsx([[1, "江苏省", "测试学校", "李Ａ", "一年级1班", "2026000002", ""]])
    )
    assert kept[0].name == "李Ａ"


def test_a_hidden_first_sheet_is_skipped_for_the_sheet_with_the_header() -> None:
    from openpyxl import Workbook

    book = Workbook()
    lists = book.active
    assert lists is not None
    lists.title = "下拉列表"
    lists.append(["一年级1班"])
    lists.sheet_state = "hidden"
    data = book.create_sheet("学生名单")
    data.append(list(rules.HEADERS_ZH))
    data.append(ROW)
    out = io.BytesIO()
    book.save(out)
    rows, errors, notes = rules.parse_file(out.getvalue())
    assert errors == [] and [r.number for r in rows] == ["2026000001"]
    assert [(n.code, n.value) for n in notes] == [("sheet", "学生名单")]
    assert "下拉列表" in notes[0].message


def test_a_file_neither_utf8_nor_gbk_is_refused_naming_the_file() -> None:
    with pytest.raises(ValidationFailed) as err:
        rules.parse_file(b"\x81\x20\xff\xfe\x00" * 10)
    assert err.value.code == "FILE_UNREADABLE" and err.value.field == "file"
