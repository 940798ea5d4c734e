"""The ledger against a model: a dict of balances, floors and posting counts.

Hypothesis drives random sequences of bookings (balanced, unbalanced, overdrawing, concurrent)
through ``ledger.postings.post`` on a real PostgreSQL and, after every step, compares every
account with the model and proves I1-I4 over the whole database. A refused booking must change
nothing at all: no balance, no version, no journal row.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from campuscard.ledger import postings as ledger
from campuscard.ledger.checks import check_ledger
from campuscard.platform.errors import InsufficientFunds, ValidationFailed
from tests.property.support import Env
from tests.support import make_school, make_student

_school_codes = itertools.count()
CREDIT_LINE = 500  # fen a credit-line purse may go below zero


@dataclass
class Model:
    balance: dict[int, int] = field(default_factory=dict)
    floor: dict[int, int | None] = field(default_factory=dict)
    postings: dict[int, int] = field(default_factory=dict)
    transactions: int = 0

    def nets(self, legs: list[tuple[int, int]]) -> dict[int, int]:
        out: dict[int, int] = {}
        for account, amount in legs:
            out[account] = out.get(account, 0) + amount
        return {a: m for a, m in out.items() if m != 0}

    def allows(self, legs: list[tuple[int, int]]) -> bool:
        for account, amount in self.nets(legs).items():
            floor = self.floor[account]
            if floor is not None and self.balance[account] + amount < floor:
                return False
        return True

    def apply(self, legs: list[tuple[int, int]]) -> None:
        for account, amount in self.nets(legs).items():
            self.balance[account] += amount
            self.postings[account] += 1
        self.transactions += 1


amounts = st.integers(min_value=1, max_value=3_000)


class LedgerMachine(RuleBasedStateMachine):
    env: Env

    accounts = Bundle("accounts")

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.school_id = 0

    # given: a fresh school with three students' purses, one on a credit line, and clearing
    @initialize(target=accounts)
    def open_school(self) -> Any:
        async def setup() -> list[tuple[int, int | None]]:
            async with self.env.pool.acquire() as conn:
                school = await make_school(conn, f"P{next(_school_codes):05d}")
                self.school_id = school.id
                out: list[tuple[int, int | None]] = []
                for i in range(3):
                    person = await make_student(conn, school.id, f"S{i}")
                    purses = await ledger.open_purses(conn, school.id, person)
                    out += [(purses["cash"], 0), (purses["subsidy"], 0)]
                credit = out[0][0]
                await conn.execute(
                    "UPDATE accounts SET floor = $2 WHERE id = $1", credit, -CREDIT_LINE
                )
                out[0] = (credit, -CREDIT_LINE)
                for code in ("bank_clearing", "subsidy_fund", "suspense"):
                    out.append((await ledger.system_account(conn, school.id, code), None))
                return out

        opened = self.env.run(setup())
        for account, floor in opened:
            self.model.balance[account] = 0
            self.model.floor[account] = floor
            self.model.postings[account] = 0
        return multiple(*(a for a, _ in opened))

    async def _post(self, legs: list[tuple[int, int]]) -> str:
        async with self.env.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await ledger.post(
                        conn,
                        school_id=self.school_id,
                        kind="model",
                        legs=[ledger.Leg(a, m) for a, m in legs],
                    )
            except InsufficientFunds:
                return "insufficient"
            except ValidationFailed as err:
                return err.code
        return "ok"

    def _book(self, legs: list[tuple[int, int]]) -> None:
        expected = "ok" if self.model.allows(legs) else "insufficient"
        got = self.env.run(self._post(legs))
        assert got == expected, (legs, got, expected)
        if got == "ok":
            self.model.apply(legs)

    @rule(source=accounts, target_=accounts, fen=amounts)
    def transfer(self, source: int, target_: int, fen: int) -> None:
        self._book([(source, -fen), (target_, fen)])

    @rule(
        parts=st.lists(st.tuples(accounts, amounts), min_size=1, max_size=4),
        sink=accounts,
    )
    def split(self, parts: list[tuple[int, int]], sink: int) -> None:
        # many debits, one credit that balances them (a multi-leg booking)
        legs = [(a, -m) for a, m in parts]
        self._book([*legs, (sink, sum(m for _, m in parts))])

    @rule(source=accounts, target_=accounts, fen=amounts, skew=st.integers(1, 50))
    def unbalanced_is_refused(self, source: int, target_: int, fen: int, skew: int) -> None:
        got = self.env.run(self._post([(source, -fen), (target_, fen + skew)]))
        assert got == "LEDGER_UNBALANCED"

    @rule(
        batch=st.lists(st.tuples(accounts, accounts, amounts), min_size=2, max_size=6),
    )
    def concurrent(self, batch: list[tuple[int, int, int]]) -> None:
        # several bookings race on separate connections; the accepted ones must add up
        async def race() -> list[str]:
            return list(await asyncio.gather(*(self._post([(s, -m), (t, m)]) for s, t, m in batch)))

        results = self.env.run(race())
        for (s, t, m), got in zip(batch, results, strict=True):
            assert got in ("ok", "insufficient")
            if got == "ok":
                self.model.apply([(s, -m), (t, m)])
        for account, floor in self.model.floor.items():
            assert floor is None or self.model.balance[account] >= floor

    @invariant()
    def matches_model_and_invariants_hold(self) -> None:
        if not self.school_id:
            return

        async def snapshot() -> tuple[list[asyncpg.Record], int, Any]:
            async with self.env.pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT id, balance, version, floor FROM accounts WHERE school_id = $1",
                    self.school_id,
                )
                txs = await conn.fetchval(
                    "SELECT count(*) FROM journal_tx WHERE school_id = $1 AND kind = 'model'",
                    self.school_id,
                )
                return rows, txs, await check_ledger(conn)

        rows, txs, report = self.env.run(snapshot())
        assert report.ok, report.violations  # I1-I4 over the whole database
        assert sum(r["balance"] for r in rows) == 0  # I1 within the school
        for r in rows:
            if r["id"] in self.model.balance:
                assert r["balance"] == self.model.balance[r["id"]], r
                assert r["version"] == self.model.postings[r["id"]], r  # no gaps, no extras
                assert r["floor"] is None or r["balance"] >= r["floor"]  # I3
        assert txs == self.model.transactions


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_ledger_behaves_like_its_model(db_url: str) -> None:
    env = Env(db_url)
    LedgerMachine.env = env
    try:
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=40,
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        env.close()
