"""The local Citus cluster works: two active workers, CampusCard's migrations apply on the
coordinator, and a table and a PL/pgSQL function distributed by school really run on the workers."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from campuscard.db import migrate
from campuscard.db.pool import connect
from tests.citus.cluster import Cluster
from tests.citus.workload import STAND_IN_SCHEMA

pytestmark = pytest.mark.citus


async def test_two_workers_are_active(citus_cluster: Cluster) -> None:
    # given a started cluster
    conn = await asyncpg.connect(citus_cluster.coordinator.url())
    try:
        # when the coordinator lists its workers
        rows = await conn.fetch("SELECT * FROM citus_get_active_worker_nodes()")
    finally:
        await conn.close()

    # then both workers are there
    assert sorted(r["node_port"] for r in rows) == sorted(w.port for w in citus_cluster.workers)


async def test_campuscard_migrations_apply_on_the_coordinator(citus_db: str) -> None:
    # given a fresh database with the citus extension on every node
    conn = await connect(citus_db)
    try:
        # when every migration is applied (tables stay local to the coordinator for now)
        applied = await migrate.upgrade(conn)

        # then all of them are recorded, and the citus extension is still in place
        recorded = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        code_recorded = await conn.fetchval("SELECT count(*) FROM schema_code")
        citus = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'citus'")
    finally:
        await conn.close()
    vendor = {f"{v.name} {v.version}" for v in migrate.vendor_schemas()}
    migrations = [name for name in applied if not name.endswith(".sql") and name not in vendor]
    code_files = [name for name in applied if name.endswith(".sql")]
    assert vendor <= set(applied)
    assert len(migrations) == len(migrate.load_migrations()) == recorded
    assert len(code_files) == len(migrate.load_code()) == code_recorded
    assert citus is not None


async def _connect_replanning(url: str) -> asyncpg.Connection[Any]:
    # Citus reports a delegated call while planning it; a cached prepared statement is not
    # planned again, so these connections prepare every statement afresh.
    return await asyncpg.connect(url, statement_cache_size=0)


async def test_a_function_distributed_by_school_runs_on_the_worker_holding_it(
    citus_db: str,
) -> None:
    # given two co-located tables distributed by school and a booking function delegated by
    # its school argument
    conn = await _connect_replanning(citus_db)
    try:
        await conn.execute(STAND_IN_SCHEMA)
        await conn.execute("SELECT create_distributed_table('purse', 'school_id')")
        await conn.execute(
            "SELECT create_distributed_table('payment', 'school_id', colocate_with => 'purse')"
        )
        await conn.execute(
            "SELECT create_distributed_function('pay(bigint, bigint, bigint)', "
            "distribution_arg_name => 'p_school_id', colocate_with => 'purse')"
        )
        await conn.executemany(
            "INSERT INTO purse (school_id, purse_id, balance) VALUES ($1, $2, $3)",
            [(school, 1, 10_000) for school in range(1, 11)],
        )
        placements = await conn.fetchval(
            "SELECT count(DISTINCT nodeport) FROM citus_shards WHERE table_name = 'purse'::regclass"
        )

        # when a payment is booked for school 7 (and Citus says where it ran)
        notices: list[str] = []

        def listen(_: Any, message: Any) -> None:
            notices.append(str(message))

        conn.add_log_listener(listen)
        await conn.execute("SET client_min_messages TO debug1")
        balance = await conn.fetchval("SELECT pay(7, 1, 1230)")
        await conn.execute("RESET client_min_messages")
        conn.remove_log_listener(listen)

        # and a payment that would overdraw is refused on the worker
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.fetchval("SELECT pay(7, 1, 100000)")

        # then the call was pushed down to a worker and the result is right
        assert any("pushing down the function call" in n for n in notices), notices
        assert balance == 10_000 - 1230
        assert placements == 2  # the shards are spread over both workers

        # and a cross-school report on the coordinator sees every school
        report = await conn.fetch(
            "SELECT school_id, sum(balance) AS total FROM purse GROUP BY school_id ORDER BY 1"
        )
        assert [r["school_id"] for r in report] == list(range(1, 11))
        assert {r["school_id"]: r["total"] for r in report}[7] == 10_000 - 1230
        assert await conn.fetchval("SELECT count(*) FROM payment WHERE school_id = 7") == 1
    finally:
        await conn.close()


async def test_inside_a_transaction_block_only_a_forced_delegation_is_pushed_down(
    citus_db: str,
) -> None:
    # given the same tables, and the booking function registered once without and once with
    # force_delegation (a use case calls it inside the transaction it owns)
    conn = await _connect_replanning(citus_db)
    try:
        await conn.execute(STAND_IN_SCHEMA)
        await conn.execute("SELECT create_distributed_table('purse', 'school_id')")
        await conn.execute(
            "SELECT create_distributed_table('payment', 'school_id', colocate_with => 'purse')"
        )
        await conn.execute("INSERT INTO purse VALUES (3, 1, 5000)")
        notices: list[str] = []

        def listen(_: Any, message: Any) -> None:
            notices.append(str(message))

        conn.add_log_listener(listen)

        async def pay_in_transaction() -> bool:
            notices.clear()
            async with conn.transaction():
                await conn.execute("SET LOCAL client_min_messages TO debug1")
                await conn.fetchval("SELECT pay(3, 1, 100)")
            return any("pushing down the function call" in n for n in notices)

        # when it is called inside a transaction block
        await conn.execute(
            "SELECT create_distributed_function('pay(bigint, bigint, bigint)', "
            "distribution_arg_name => 'p_school_id', colocate_with => 'purse')"
        )
        plain = await pay_in_transaction()
        await conn.execute(
            "SELECT create_distributed_function('pay(bigint, bigint, bigint)', "
            "distribution_arg_name => 'p_school_id', colocate_with => 'purse', "
            "force_delegation => true)"
        )
        forced = await pay_in_transaction()
        conn.remove_log_listener(listen)

        # then only the forced registration runs it on the worker; both book correctly
        assert (plain, forced) == (False, True)
        assert await conn.fetchval("SELECT balance FROM purse WHERE school_id = 3") == 4800
    finally:
        await conn.close()
