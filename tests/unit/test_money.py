import pytest
from hypothesis import given
from hypothesis import strategies as st

from campuscard.ledger.money import Money, fmt
from campuscard.platform.errors import ValidationFailed


@pytest.mark.parametrize(
    ("text", "fen"),
    [("12.30", 1230), ("12.3", 1230), ("12", 1200), ("0.01", 1), ("100000.00", 10000000)],
)
def test_parses_yuan_strings_to_fen(text: str, fen: int) -> None:
    assert Money.parse(text).fen == fen


@pytest.mark.parametrize(
    "bad", ["12.305", "-0", "-1.00", "1e3", "NaN", "inf", "", " 1", "1 ", "01", "1,00", "+1", "1."]
)
def test_refuses_ambiguous_text_naming_the_field(bad: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        Money.parse(bad, field="price")
    assert err.value.field == "price"
    assert "price" in err.value.message


@pytest.mark.parametrize("bad", [12.3, 12, None, True, [1]])
def test_refuses_non_strings(bad: object) -> None:
    with pytest.raises(ValidationFailed) as err:
        Money.parse(bad)
    assert err.value.code == "AMOUNT_INVALID"


def test_zero_is_refused_unless_allowed() -> None:
    with pytest.raises(ValidationFailed) as err:
        Money.parse("0.00")
    assert err.value.code == "AMOUNT_NOT_POSITIVE"
    assert Money.parse("0", allow_zero=True).fen == 0


def test_money_holds_only_ints() -> None:
    with pytest.raises(TypeError):
        Money(1.5)  # type: ignore[arg-type]


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_format_and_parse_round_trip(fen: int) -> None:
    text = fmt(fen)
    if fen > 0:
        assert Money.parse(text).fen == fen
    assert text.count(".") == 1
    assert len(text.split(".")[1]) == 2
