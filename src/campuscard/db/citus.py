"""Turning a Citus coordinator's database into a CampusCard database, and keeping it one.

`campuscard db citus` (docs/scale-out.md, decision 0232) runs on a database of a Citus
coordinator that has the ``citus`` extension and its workers registered:

1. every migration and database code file, as on a single node (tables are created local);
2. every table placed as ``campuscard.db.distribution`` declares it: reference tables copied
   to every worker, the school's tables distributed by ``school_id``, all co-located (one
   school's rows of every table are on one worker),
   coordinator tables left where they are;
3. the booking functions that take their school as an argument registered as distributed
   functions, delegated by that argument, so a call runs on the worker that holds the school.

Later migrations run with ``campuscard db upgrade`` as usual: Citus propagates DDL on
distributed tables to their shards, and ``distribute`` places whatever new table a migration
created. Both steps are idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from campuscard.db import distribution
from campuscard.db.pool import Conn
from campuscard.db.tx import transaction

# Booking functions delegated to the worker holding their school argument (the first): each
# names its school in every statement, so the whole call runs there (decision 0320).
DELEGATED_FUNCTIONS: dict[str, str] = {
    "cc_post(integer, text, text, text, text, bigint[], bigint[], jsonb)": "p_school",
    "cc_post_many(integer, text[], text[], text[], text[], text[], integer[], bigint[], "
    "bigint[])": "p_school",
    "cc_pay(integer, text, bigint, integer, text, text, text, text, text, bigint, text, bigint, "
    "text)": "p_school",
    "cc_pay_batch(integer, jsonb)": "p_school",
    "cc_pay_code(integer, bigint, integer, text, text, text, bigint, text, text, text, bigint, "
    "bigint, integer, text, text, timestamp with time zone, timestamp with time zone)": "p_school",
    "cc_reverse(integer, bigint, integer, text, text, text)": "p_school",
    "cc_refund(integer, bigint, bigint, bigint, text, text)": "p_school",
    "cc_hold_place(integer, text, bigint, text, bigint, text, text, text, bigint, text, text)": (
        "p_school"
    ),
    "cc_hold_capture(integer, text, bigint, text)": "p_school",
    "cc_hold_void(integer, text, text)": "p_school",
    "cc_hold_expire(integer, integer)": "p_school",
    "cc_offline_repay(integer, bigint)": "p_school",
}


class NotCitus(RuntimeError):
    """The database is not on a Citus coordinator with workers."""


@dataclass
class Placed:
    reference: list[str] = field(default_factory=list)
    distributed: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)

    def labels(self) -> list[str]:
        """What was placed, as ``db upgrade`` reports it."""
        return [f"placed {line.split()[1]}" for line in self.lines()]

    def lines(self) -> list[str]:
        return (
            [f"reference   {t}" for t in self.reference]
            + [f"distributed {t} by school_id" for t in self.distributed]
            + [f"delegated   {f}" for f in self.functions]
        )


async def is_citus(conn: Conn) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'citus'"))


async def is_set_up(conn: Conn) -> bool:
    """Whether ``distribute`` has placed the schema already (some table is distributed)."""
    return bool(await conn.fetchval("SELECT 1 FROM pg_dist_partition WHERE partmethod = 'h'"))


async def check_cluster(conn: Conn) -> int:
    """The number of active workers; refuses a database without Citus or without workers."""
    if not await is_citus(conn):
        raise NotCitus(
            "this database has no citus extension: connect to a Citus coordinator's database "
            "and run CREATE EXTENSION citus there and on every worker (docs/scale-out.md)"
        )
    workers: int = await conn.fetchval("SELECT count(*) FROM citus_get_active_worker_nodes()")
    if workers == 0:
        raise NotCitus(
            "the coordinator has no active worker in this database: add them with "
            "SELECT citus_add_node(host, port) (docs/scale-out.md)"
        )
    return workers


async def _placed(conn: Conn) -> dict[str, str]:
    """table -> 'reference' / 'distributed' / 'local' for the tables in Citus' metadata (a
    local table linked to a reference table by a foreign key is a Citus local table)."""
    rows = await conn.fetch(
        """SELECT logicalrelid::regclass::text AS name,
                  CASE WHEN partmethod = 'h' THEN 'distributed'
                       WHEN repmodel = 't' THEN 'reference' ELSE 'local' END AS how
             FROM pg_dist_partition"""
    )
    return {r["name"]: r["how"] for r in rows}


async def _tables(conn: Conn) -> list[str]:
    return [
        r["relname"]
        for r in await conn.fetch(
            """SELECT c.relname FROM pg_class c
                WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
                  AND NOT c.relispartition ORDER BY c.relname"""
        )
    ]


async def _foreign_keys(conn: Conn, tables: set[str]) -> list[tuple[str, str, str]]:
    """(table, constraint, definition) of every foreign key from or to one of ``tables``."""
    rows = await conn.fetch(
        """SELECT k.conrelid::regclass::text AS t, k.confrelid::regclass::text AS r,
                  k.conname, pg_get_constraintdef(k.oid) AS def
             FROM pg_constraint k
            WHERE k.contype = 'f' AND k.connamespace = 'public'::regnamespace
            ORDER BY 1, 3"""
    )
    return [(r["t"], r["conname"], r["def"]) for r in rows if r["t"] in tables or r["r"] in tables]


async def distribute(conn: Conn, *, shard_count: int | None = None) -> Placed:
    """Place every table not yet placed and register the delegated functions, in one
    transaction. Refuses a schema that breaks the distribution rules. ``shard_count`` is for
    the first table only (the others are co-located with it); by default Citus' setting."""
    await check_cluster(conn)
    broken = await distribution.schema_violations(conn)
    if broken:
        raise RuntimeError("the schema breaks the distribution rules:\n" + "\n".join(broken[:20]))
    placed = Placed()
    known = await _placed(conn)
    todo = [
        t
        for t in await _tables(conn)
        if known.get(t) not in ("reference", "distributed")
        and distribution.placement(t) != "coordinator"
    ]
    anchor = next((t for t, how in known.items() if how == "distributed"), None)
    async with transaction(conn) as tx:
        await tx.execute("SET LOCAL citus.multi_shard_modify_mode = 'sequential'")
        if shard_count is not None:
            await tx.execute(f"SET LOCAL citus.shard_count = {int(shard_count)}")
        # trigger functions run on the shards (balances, append-only rows, version counters);
        # each touches the rows of its own school only
        await tx.execute("SET LOCAL citus.enable_unsafe_triggers = on")
        # A database that ran on one node first brings its rows: placing a table copies them
        # into its shards, and the copy must not fire the row triggers again (a posting would
        # move its balance twice, an account "starts" at the balance it has). As replica, no
        # ordinary trigger fires; Citus passes the setting to the workers' connections. It is a
        # superuser's setting, asked for only when there are rows to move.
        moving = any([await tx.fetchval(f'SELECT EXISTS (SELECT FROM "{t}")') for t in todo])
        if moving:
            await tx.execute("SET LOCAL citus.propagate_set_commands = 'local'")
            await tx.execute("SET LOCAL session_replication_role = replica")
        # Citus places a table only when the tables its foreign keys point at are placed, and
        # turns a local table linked to a reference table into a Citus local table on the way:
        # the foreign keys of the tables to place are dropped, the tables placed, and the keys
        # added back (Citus checks them and creates them on the shards).
        fks = await _foreign_keys(tx, set(todo))
        for table, name, _ in fks:
            await tx.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
        now = await _placed(tx)
        for table in todo:
            if now.get(table) == "local":
                await tx.execute("SELECT undistribute_table($1)", table)
        for table in todo:
            if distribution.placement(table) == "reference":
                await tx.execute("SELECT create_reference_table($1)", table)
                placed.reference.append(table)
            else:
                await tx.execute(
                    "SELECT create_distributed_table($1, $2, colocate_with => $3)",
                    table,
                    distribution.DISTRIBUTION_COLUMN,
                    anchor or "none",
                )
                anchor = anchor or table
                placed.distributed.append(table)
        for table, name, definition in fks:
            await tx.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
        # the copied rows' originals stay in the coordinator's table, unread: free them (only
        # when rows were moved: a TRUNCATE outside replica fires the append-only tables' refusal)
        for table in (placed.distributed + placed.reference) if moving else []:
            await tx.execute("SELECT truncate_local_data_after_distributing_table($1)", table)
    # Triggers that keep one table in step with another (a posting moves its account's
    # balance, a card's state its blacklist entry) run on the shard and write the co-located
    # shard of the other table: the same school, on the same node, in the same transaction.
    # Citus refuses such nested statements unless told; every node is told, for this database.
    setting = "ALTER DATABASE {} SET citus.allow_nested_distributed_execution = on"
    database = await conn.fetchval("SELECT quote_ident(current_database())")
    await conn.execute(setting.format(database))
    await conn.execute("SELECT run_command_on_workers($1)", setting.format(database))
    # Every CampusCard function on every worker: Citus copies a function when it is created on
    # a coordinator with workers, but not one whose argument is the row type of a table that
    # was still local then (cc_hold_view(holds)); a function called on a worker must be there.
    for row in await conn.fetch(
        """SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'cc\\_%'
              AND NOT EXISTS (SELECT 1 FROM pg_dist_object o
                               WHERE o.classid = 'pg_proc'::regclass AND o.objid = p.oid)"""
    ):
        await conn.execute("SELECT create_distributed_function($1::regprocedure)", row["fn"])
    for signature, arg in DELEGATED_FUNCTIONS.items():
        if await conn.fetchval("SELECT to_regprocedure($1)", signature) is None:
            raise RuntimeError(f"no function {signature}")
        delegated = await conn.fetchval(
            "SELECT distribution_argument_index IS NOT NULL FROM pg_dist_object "
            "WHERE classid = 'pg_proc'::regclass AND objid = $1::regprocedure",
            signature,
        )
        if delegated:
            continue
        await conn.execute(
            "SELECT create_distributed_function($1::regprocedure, $2::text, "
            "colocate_with => $3::text, force_delegation => true)",
            signature,
            arg,
            anchor,
        )
        placed.functions.append(signature)
    return placed
