"""Where every table lives on Citus, and the rules a table must meet to get there.

A province cloud runs CampusCard on Citus (docs/scale-out.md, decision 0230). Each table is one
of three kinds, declared here:

- **reference**: platform-wide data with no school (provinces, the schools themselves, job
  worker heartbeats). Citus copies a reference table to every worker. Listed in
  ``REFERENCE_TABLES``.
- **coordinator**: the migrator's own records, read only by the process that upgrades the
  schema, and procrastinate's job queue (decision 0240), whose row locks, SKIP LOCKED fetches
  and NOTIFY wake-ups need one node; job workers connect to the coordinator. Listed in
  ``COORDINATOR_TABLES``.
- **distributed**: every other table. It is sharded by ``school_id`` and all of them are
  co-located, so everything of one school is on one worker. For Citus to keep the rules the
  database keeps today, such a table must:

  1. have a ``school_id`` column that is NOT NULL;
  2. have a primary key whose first column is ``school_id``;
  3. include ``school_id`` in every unique constraint and unique index (partial ones too);
  4. include ``school_id`` in every foreign key to another distributed table, paired with that
     table's ``school_id`` (no foreign key crosses schools); a foreign key to a reference
     table (``school_id -> schools(id)``) is fine.

  A reference or coordinator table has no foreign key to a distributed table, and a
  distributed table none to a coordinator table (the workers do not have it).

``schema_violations`` reads these rules off the catalog of a migrated database; the normal test
suite runs it on a freshly migrated database (tests/integration/test_schema_distribution.py),
so it needs no Citus. ``KNOWN_VIOLATIONS`` (known_violations.txt) lists, one by one, what the
tables that existed before the rules were written still break; the list only shrinks (a fixed
entry must leave it, a new violation fails the test). A new table meets every rule from its
first commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from campuscard.db.pool import Conn

DISTRIBUTION_COLUMN = "school_id"

# Platform-wide data, copied to every worker.
REFERENCE_TABLES: frozenset[str] = frozenset(
    {"provinces", "schools", "worker_heartbeats", "users", "user_roles"}
)

# The migrator's records: they stay on the coordinator, which runs every migration. The job
# queue's tables (procrastinate's schema, decision 0240) stay there too: plain local tables.
COORDINATOR_TABLES: frozenset[str] = frozenset(
    {
        "schema_migrations",
        "schema_code",
        "schema_vendor",
        "procrastinate_jobs",
        "procrastinate_events",
        "procrastinate_periodic_defers",
        "procrastinate_workers",
        "provider_callbacks",
        "auth_sessions",
        "audit_log",
        "outbox",
    }
)

# What the tables that predate the rules still break, one per line of known_violations.txt,
# exactly as schema_violations words it. Never add to it: a new table or constraint follows
# the rules. Remove a line when a migration fixes it (the test says which).
KNOWN_VIOLATIONS: frozenset[str] = frozenset(
    line
    for line in (Path(__file__).parent / "known_violations.txt").read_text("utf-8").splitlines()
    if line and not line.startswith("#")
)


@dataclass(frozen=True)
class _Table:
    name: str
    columns: dict[str, bool]  # column -> NOT NULL


_TABLES = """
SELECT c.relname AS name,
       coalesce(jsonb_object_agg(a.attname, a.attnotnull)
                FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}') AS columns
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
 GROUP BY c.relname
 ORDER BY c.relname
"""

# Keys: primary keys, unique and exclusion constraints, and unique indexes that back none of
# them (CREATE UNIQUE INDEX, partial ones included).
_KEYS = """
SELECT t.relname AS table_name, k.conname AS name, k.contype::text AS kind,
       array(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(attnum, pos)
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
              ORDER BY u.pos)::text[] AS columns
  FROM pg_constraint k
  JOIN pg_class t ON t.oid = k.conrelid
 WHERE t.relnamespace = 'public'::regnamespace AND k.contype IN ('p', 'u', 'x')
UNION ALL
SELECT t.relname, ic.relname, 'i',
       array(SELECT coalesce(a.attname, '(expression)')
               FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(attnum, pos)
               LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.attnum
              ORDER BY u.pos)::text[]
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
 WHERE t.relnamespace = 'public'::regnamespace AND i.indisunique
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                                                   AND k.conrelid = i.indrelid)
 ORDER BY 1, 2
"""

_FOREIGN_KEYS = """
SELECT t.relname AS table_name, k.conname AS name, r.relname AS ref_table,
       array(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(attnum, pos)
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
              ORDER BY u.pos)::text[] AS columns,
       array(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(attnum, pos)
               JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum
              ORDER BY u.pos)::text[] AS ref_columns
  FROM pg_constraint k
  JOIN pg_class t ON t.oid = k.conrelid
  JOIN pg_class r ON r.oid = k.confrelid
 WHERE t.relnamespace = 'public'::regnamespace AND k.contype = 'f'
 ORDER BY 1, 2
"""


def placement(table: str) -> str:
    """'reference', 'coordinator' or 'distributed'."""
    if table in REFERENCE_TABLES:
        return "reference"
    if table in COORDINATOR_TABLES:
        return "coordinator"
    return "distributed"


def _cols(columns: list[str]) -> str:
    return ", ".join(columns)


async def schema_violations(conn: Conn) -> list[str]:
    """Every way the migrated schema in ``conn``'s database breaks the distribution rules,
    one sentence each, sorted."""
    found: list[str] = []
    tables = {r["name"]: _Table(r["name"], dict(r["columns"])) for r in await conn.fetch(_TABLES)}
    col = DISTRIBUTION_COLUMN
    for name in sorted(REFERENCE_TABLES | COORDINATOR_TABLES):
        if name not in tables:
            found.append(f"{name}: declared in campuscard.db.distribution but no such table")
    distributed = {n for n in tables if placement(n) == "distributed"}
    for name in sorted(distributed):
        not_null = tables[name].columns
        if col not in not_null:
            found.append(f"{name}: no {col} column, and not declared a reference table")
        elif not not_null[col]:
            found.append(f"{name}: {col} may be NULL")

    keys = await conn.fetch(_KEYS)
    primary = {r["table_name"]: list(r["columns"]) for r in keys if r["kind"] == "p"}
    for name in sorted(distributed):
        pk = primary.get(name)
        if pk is None:
            found.append(f"{name}: no primary key")
        elif pk[0] != col:
            found.append(f"{name}: primary key ({_cols(pk)}) does not start with {col}")
    for r in keys:
        name, columns = r["table_name"], list(r["columns"])
        if name not in distributed or r["kind"] == "p" or col in columns:
            continue
        what = {"u": "unique", "x": "exclusion constraint", "i": "unique index"}[r["kind"]]
        found.append(f"{name}: {what} {r['name']} ({_cols(columns)}) lacks {col}")

    for r in await conn.fetch(_FOREIGN_KEYS):
        name, ref = r["table_name"], r["ref_table"]
        columns, ref_columns = list(r["columns"]), list(r["ref_columns"])
        fk = f"{r['name']} ({_cols(columns)}) -> {ref}({_cols(ref_columns)})"
        if name not in distributed:
            if ref in distributed:
                found.append(f"{name}: {placement(name)} table has foreign key {fk}")
            continue
        if placement(ref) == "coordinator":
            found.append(f"{name}: foreign key {fk} points at a coordinator table")
            continue
        if ref not in distributed:
            continue  # to a reference table: every worker has it
        if (col, col) not in zip(columns, ref_columns, strict=True):
            found.append(f"{name}: foreign key {fk} does not pair {col} with {col}")
    return sorted(found)


async def school_of(conn: Conn, table: str, row_id: int) -> int | None:
    """The school of the row ``row_id`` of a school's ``table``, for a caller that knows the
    row by id alone and must lock it: on Citus a statement that locks rows (FOR UPDATE) must
    name the school, so the row is found first (a read of every shard) and then locked with
    its school. None if there is no such row."""
    school_id: int | None = await conn.fetchval(
        f'SELECT school_id FROM "{table}" WHERE id = $1',
        row_id,
    )
    return school_id


async def lock_row(conn: Conn, table: str, row_id: int, columns: str = "*") -> Any:
    """The row ``row_id`` of a school's ``table``, locked FOR UPDATE in a statement that names
    its school (``school_of``: a school's rows never move to another school); None if there is
    no such row."""
    school_id = await school_of(conn, table, row_id)
    if school_id is None:
        return None
    return await conn.fetchrow(
        f'SELECT {columns} FROM "{table}" WHERE school_id = $1 AND id = $2 FOR UPDATE',
        school_id,
        row_id,
    )


_CONSTRAINT_IN_MESSAGE = re.compile(r'constraint "([^"]+)"')


def constraint_name(err: asyncpg.PostgresError) -> str | None:
    """The constraint a refusal names. On Citus an error raised on a worker reaches the client
    without its constraint field (and names the shard, ``accounts_102047``, as the table); the
    name is then read from the message, which PostgreSQL words the same way."""
    name: str | None = getattr(err, "constraint_name", None)
    if name:
        return name
    m = _CONSTRAINT_IN_MESSAGE.search(str(err))
    return m.group(1) if m else None
