"""Money is an integer number of fen (0.01 yuan). Floats never touch it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from campuscard.platform.errors import ValidationFailed

# "12", "12.3", "12.30"; no sign, no exponent, no spaces, at most two decimals.
_YUAN = re.compile(r"(0|[1-9][0-9]{0,11})(?:\.([0-9]{1,2}))?")
MAX_FEN = 10**13  # 100 billion yuan: far above any campus amount, far below int64


@dataclass(frozen=True, order=True, slots=True)
class Money:
    fen: int

    def __post_init__(self) -> None:
        if type(self.fen) is not int:
            raise TypeError("Money holds an int number of fen")

    @classmethod
    def parse(cls, text: object, *, field: str = "amount", allow_zero: bool = False) -> Money:
        """Parse a yuan amount given as a string like "12.30"; refuse anything ambiguous."""
        fen, problem = _parse_fen(text, allow_zero=allow_zero)
        if problem is not None:
            code, reason = problem
            raise ValidationFailed(f"{field} {reason}", code=code, field=field)
        return cls(fen)

    def __str__(self) -> str:
        sign = "-" if self.fen < 0 else ""
        whole, part = divmod(abs(self.fen), 100)
        return f"{sign}{whole}.{part:02d}"

    def __add__(self, other: Money) -> Money:
        return Money(self.fen + other.fen)

    def __sub__(self, other: Money) -> Money:
        return Money(self.fen - other.fen)

    def __neg__(self) -> Money:
        return Money(-self.fen)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # Request bodies give yuan strings; responses render "12.30".
        return core_schema.no_info_plain_validator_function(
            _validate_money,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
            json_schema_input_schema=core_schema.str_schema(pattern=_YUAN.pattern),
        )


def _parse_fen(text: object, *, allow_zero: bool) -> tuple[int, tuple[str, str] | None]:
    if isinstance(text, bool) or not isinstance(text, str):
        kind = "null" if text is None else type(text).__name__
        return 0, ("AMOUNT_INVALID", f'must be a string of yuan such as "12.30", not {kind}')
    m = _YUAN.fullmatch(text)
    if m is None:
        return 0, (
            "AMOUNT_INVALID",
            'must look like "12.30": digits, an optional point and at most two decimals, '
            f"no sign; got {text[:40]!r}",
        )
    fen = int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))
    if fen == 0 and not allow_zero:
        return 0, ("AMOUNT_NOT_POSITIVE", "must be greater than zero")
    if fen > MAX_FEN:
        return 0, ("AMOUNT_TOO_LARGE", "is too large")
    return fen, None


def _validate_money(value: object) -> Money:
    if isinstance(value, Money):
        return value
    fen, problem = _parse_fen(value, allow_zero=False)
    if problem is not None:
        # The API's validation handler turns this into our error format with the field path.
        raise PydanticCustomError(problem[0], problem[1])
    return Money(fen)


def fmt(fen: int) -> str:
    """Render fen as yuan text, "-1.05" for -105."""
    return str(Money(fen))
