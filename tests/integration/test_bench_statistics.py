"""The benchmarks' seeds leave the tables the runs fill with a fresh install's statistics
(decision 0412): a table ANALYZE saw empty is planned as a page or less, and a booking
function's first plan of a lookup by key was then a sequential scan it kept while the table
grew."""

from __future__ import annotations

from typing import Any

import asyncpg
from bench.common import forget_empty_statistics


async def _stats(conn: asyncpg.Connection[Any], table: str) -> tuple[float, int]:
    row = await conn.fetchrow(
        "SELECT reltuples, relpages FROM pg_class WHERE oid = ('public.' || $1)::regclass", table
    )
    assert row is not None
    return float(row["reltuples"]), int(row["relpages"])


async def test_tables_analyzed_empty_get_a_fresh_installs_statistics_back(
    conn: asyncpg.Connection[Any],
) -> None:
    # (a copy of the migrated template: every table of the schema is there, and empty)
    await conn.execute("INSERT INTO provinces(code, name, name_en) VALUES ('99', '测试省', 'Test')")
    await conn.execute("ANALYZE provinces, idempotency_keys, paycode_uses")
    assert await _stats(conn, "idempotency_keys") == (0.0, 0)  # recorded as empty
    filled = await _stats(conn, "provinces")
    assert filled[0] >= 1

    forgotten = await forget_empty_statistics(conn)

    assert "idempotency_keys" in forgotten and "paycode_uses" in forgotten
    assert "provinces" not in forgotten
    assert (await _stats(conn, "idempotency_keys"))[0] == -1  # never analyzed, as after install
    assert (await _stats(conn, "paycode_uses"))[0] == -1
    assert await _stats(conn, "provinces") == filled  # a table with rows keeps what ANALYZE saw


async def test_only_the_tables_named_when_given(conn: asyncpg.Connection[Any]) -> None:
    await conn.execute("ANALYZE idempotency_keys, paycode_uses")

    assert await forget_empty_statistics(conn, ("paycode_uses",)) == ["paycode_uses"]

    assert (await _stats(conn, "paycode_uses"))[0] == -1
    assert (await _stats(conn, "idempotency_keys"))[0] == 0  # not named: as ANALYZE left it
