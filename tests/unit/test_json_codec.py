"""The pool's JSON codec (db/pool.py) is orjson; what it writes must read back as what the json
module wrote before, for the values CampusCard stores in json/jsonb columns."""

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson

from campuscard.db.pool import _dumps
from campuscard.payments.booking import PaymentAnswer


@dataclass
class _Point:
    x: int


def _old(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def test_codec_writes_what_the_json_module_wrote() -> None:
    values: list[Any] = [
        {"holder": "张*", "amount": "12.50", "ok": True, "none": None, "n": 12, "f": 1.5},
        {"at": datetime(2026, 12, 6, 8, 30, tzinfo=UTC), "day": date(2026, 12, 6)},
        {"fen": Decimal("12.50"), 3: "integer key", "list": [1, "二", {"x": []}]},
        {"point": _Point(1)},
        ["a", ("tuple", 2)],
    ]
    for value in values:
        assert json.loads(_dumps(value)) == json.loads(_old(value)), value


def test_an_answer_from_text_is_decoded_only_when_read() -> None:
    raw = '{"result": "approved", "holder": "张*", "amount": "3.00"}'
    answer = PaymentAnswer(200, raw=raw)
    assert answer.raw == raw.encode()  # sent on as PostgreSQL wrote it
    assert answer.body["holder"] == "张*"
    assert answer == PaymentAnswer(200, {"result": "approved", "holder": "张*", "amount": "3.00"})
    refused = PaymentAnswer(409, {"error": {"code": "INSUFFICIENT_FUNDS"}})
    assert refused.error_code == "INSUFFICIENT_FUNDS" and not refused.ok
    assert orjson.loads(refused.raw) == refused.body
