"""Offline POS rules, pure (no I/O): the risk limits a till gets with its blacklist, how a record
is signed, the walk along a card's chain, how a debit splits over the purses and the overdraft,
and a device's sequence gaps.

A card carries an offline area the till reads and writes: ``counter`` (+1 for every offline
sale, never reset), and the offline count and total since the card was last used online (reset
to 0 by an online payment). A record says what the till saw: the counter it wrote and the
total before and after the sale. The chain holds when the counter is the last one + 1 and
the total before is the last total after (or 0 after an online payment in between), and
``total_after - total_before == amount``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from campuscard.ledger.money import fmt
from campuscard.ledger.purse_order import PurseOrder
from campuscard.platform.errors import ValidationFailed

SETTINGS_KEY = "offline"
# Most records in one upload (a 64 KiB body holds about 250).
MAX_BATCH = 200
# An online payment this long before a record's device time still explains a reset total
# (device clocks drift while offline).
CLOCK_SLACK = timedelta(minutes=10)


@dataclass(frozen=True)
class RiskLimits:
    """What a till may approve without the server (school settings ``offline.*``, fen)."""

    per_tx_limit: int = 2_000  # one offline sale
    max_consecutive: int = 10  # offline sales of one card since it was last online
    max_total: int = 10_000  # their sum
    max_stored: int = 5_000  # records a till keeps before it refuses offline sales
    overdraft_limit: int = 0  # a holder owing more than this is on the blacklist
    chain_wait_hours: int = 72  # a record waits this long for a missing card counter

    def to_json(self) -> dict[str, Any]:
        return {
            "per_tx_limit": fmt(self.per_tx_limit),
            "max_consecutive": self.max_consecutive,
            "max_total": fmt(self.max_total),
            "max_stored": self.max_stored,
        }


_LIMIT_BOUNDS: dict[str, tuple[int, int]] = {
    "per_tx_limit": (0, 1_000_000),
    "max_consecutive": (0, 1_000),
    "max_total": (0, 10_000_000),
    "max_stored": (0, 100_000),
    "overdraft_limit": (0, 10_000_000),
    "chain_wait_hours": (1, 24 * 31),
}


def risk_limits(school_settings: Mapping[str, Any] | None) -> RiskLimits:
    """The school's limits; a missing or unusable value keeps the safe default."""
    given = (school_settings or {}).get(SETTINGS_KEY) or {}
    values: dict[str, int] = {}
    if isinstance(given, Mapping):
        for name, (low, high) in _LIMIT_BOUNDS.items():
            v = given.get(name)
            if type(v) is int and low <= v <= high:
                values[name] = v
    return RiskLimits(**values)


def check_limits(given: Mapping[str, Any]) -> dict[str, int]:
    """Validate limits an operator sets; names the field and the reason."""
    out: dict[str, int] = {}
    for name, v in given.items():
        if name not in _LIMIT_BOUNDS:
            raise ValidationFailed(f"unknown offline limit {name!r}", field=name)
        low, high = _LIMIT_BOUNDS[name]
        if type(v) is not int or not low <= v <= high:
            raise ValidationFailed(
                f"{name} must be a whole number from {low} to {high}", field=name
            )
        out[name] = v
    return out


# -- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One offline sale as the till stored it (amounts in fen, time in unix seconds)."""

    seq: int
    card_number: str
    card_uid: str
    amount: int
    made_at: int
    card_counter: int
    total_before: int
    total_after: int
    key_version: int
    signature: str


def record_message(sn: str, r: Record) -> bytes:
    """What the till signs: one line, fields joined by ``|``."""
    return "|".join(
        (
            "offline/v1",
            sn,
            str(r.seq),
            r.card_number,
            r.card_uid.upper(),
            str(r.amount),
            str(r.made_at),
            str(r.card_counter),
            str(r.total_before),
            str(r.total_after),
        )
    ).encode()


def sign_record(key: bytes, sn: str, r: Record) -> str:
    return hmac.new(key, record_message(sn, r), hashlib.sha256).hexdigest()


def signature_ok(key: bytes, sn: str, r: Record) -> bool:
    return hmac.compare_digest(sign_record(key, sn, r), r.signature)


# -- a card's chain -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainHead:
    last_counter: int
    last_total: int
    last_made_at: datetime | None


@dataclass(frozen=True)
class Pending:
    """A stored record waiting on its card's chain."""

    terminal_id: int
    seq: int
    amount: int
    made_at: datetime
    received_at: datetime
    card_counter: int
    total_before: int
    total_after: int


@dataclass
class ChainWalk:
    settle: list[tuple[Pending, str | None]] = field(default_factory=list)  # (record, break)
    head: ChainHead | None = None


def walk_chain(
    head: ChainHead,
    waiting: Sequence[Pending],
    *,
    last_online_at: datetime | None,
    give_up_before: datetime,
) -> ChainWalk:
    """The records that settle now, in counter order, each with what broke the chain (None when
    it held). A record waits while the counter before it is missing, unless it has waited since
    before ``give_up_before``: then it settles with the gap named."""
    walk = ChainWalk(head=head)
    cur = head
    for p in sorted(waiting, key=lambda x: (x.card_counter, x.made_at, x.terminal_id, x.seq)):
        problems: list[str] = []
        if p.card_counter <= cur.last_counter:
            problems.append(f"counter {p.card_counter} already used")
        elif p.card_counter > cur.last_counter + 1:
            if p.received_at >= give_up_before:
                break  # wait for the missing record
            missing = (cur.last_counter + 1, p.card_counter - 1)
            problems.append(
                f"counter {missing[0]} missing"
                if missing[0] == missing[1]
                else f"counters {missing[0]}-{missing[1]} missing"
            )
        if p.total_after - p.total_before != p.amount:
            problems.append(f"total {p.total_before} + {p.amount} is not {p.total_after}")
        if p.total_before != cur.last_total and not (
            p.total_before == 0
            and last_online_at is not None
            and (cur.last_made_at is None or last_online_at >= cur.last_made_at - CLOCK_SLACK)
        ):
            problems.append(f"total before {p.total_before}, the card's last was {cur.last_total}")
        walk.settle.append((p, "; ".join(problems) or None))
        cur = ChainHead(
            last_counter=max(cur.last_counter, p.card_counter),
            last_total=p.total_after,
            last_made_at=p.made_at,
        )
    walk.head = cur
    return walk


# -- money ----------------------------------------------------------------------------------


def split_offline(order: PurseOrder, available: dict[str, int], amount: int) -> dict[str, int]:
    """How an offline sale is paid: the purses in the school's order as far as their available
    money goes, the rest is an overdraft. ``available`` is reduced in place."""
    first, second = ("subsidy", "cash") if order == "subsidy_first" else ("cash", "subsidy")
    out = {"cash": 0, "subsidy": 0, "overdraft": 0}
    rest = amount
    for purse in (first, second):
        take = min(max(available.get(purse, 0), 0), rest)
        out[purse] = take
        available[purse] = available.get(purse, 0) - take
        rest -= take
    out["overdraft"] = rest
    return out


# -- gaps -----------------------------------------------------------------------------------


def advance_contiguous(contiguous: int, seen: Iterable[int]) -> int:
    """The highest sequence number up to which every number has arrived."""
    have = set(seen)
    while contiguous + 1 in have:
        contiguous += 1
    return contiguous


def missing_ranges(contiguous: int, seen_above: Iterable[int]) -> list[list[int]]:
    """The gaps above ``contiguous``, as [first, last] pairs, given the numbers seen above it."""
    out: list[list[int]] = []
    prev = contiguous
    for s in sorted(set(seen_above)):
        if s > prev + 1:
            out.append([prev + 1, s - 1])
        prev = max(prev, s)
    return out


def count_missing(ranges: Iterable[Sequence[int]]) -> int:
    return sum(b - a + 1 for a, b in ranges)


# -- words for people -----------------------------------------------------------------------

_BREAKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("reused", re.compile(r"counter (?P<counter>\d+) already used")),
    ("missing_one", re.compile(r"counter (?P<first>\d+) missing")),
    ("missing_many", re.compile(r"counters (?P<first>\d+)-(?P<to>\d+) missing")),
    ("sum", re.compile(r"total (?P<before>\d+) \+ (?P<amount>\d+) is not (?P<after>\d+)")),
    ("total", re.compile(r"total before (?P<before>\d+), the card's last was (?P<last>\d+)")),
)
FEN_PARTS = {"before", "amount", "after", "last"}


def describe_break(text: str | None) -> list[tuple[str, dict[str, str]]]:
    """A stored chain break (``walk_chain``'s words) as (kind, figures) pairs a page translates;
    amounts as yuan. An unknown part comes back as ("other", {"text": part})."""
    out: list[tuple[str, dict[str, str]]] = []
    for part in (text or "").split("; "):
        if not part:
            continue
        for kind, pattern in _BREAKS:
            m = pattern.fullmatch(part)
            if m:
                out.append(
                    (
                        kind,
                        {k: fmt(int(v)) if k in FEN_PARTS else v for k, v in m.groupdict().items()},
                    )
                )
                break
        else:
            out.append(("other", {"text": part}))
    return out
