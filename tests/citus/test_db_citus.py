"""`campuscard db citus` on a real cluster: a database that ran on one node first (migrated, a
school with money in its purses) becomes a distributed CampusCard database with every table
placed as campuscard.db.distribution declares and its rows moved into the shards unchanged (the
migration path of an existing campus; a fresh database is set up the same way by the fixture
every other citus test uses), a later migration's new table is placed too, and a report across
schools runs on the coordinator."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from campuscard.db import citus, distribution, migrate, runtime
from campuscard.db.pool import connect
from campuscard.ledger.checks import check_ledger
from tests.support import fund, make_school, make_student

pytestmark = pytest.mark.citus

LATER_MIGRATION = """
-- a later migration: a new school table with a foreign key to a distributed one, an index on
-- it, and a column added to a table that is distributed already
CREATE TABLE later_notes (
    school_id int NOT NULL REFERENCES schools(id),
    id bigserial,
    person_id bigint NOT NULL,
    note text NOT NULL,
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id)
);
CREATE INDEX later_notes_person ON later_notes (school_id, person_id);
ALTER TABLE classes ADD COLUMN later_room text NOT NULL DEFAULT '';
"""


async def test_db_citus_places_every_table_and_later_migrations_follow(
    citus_db: str, tmp_path: Path
) -> None:
    # given a database on the coordinator (citus extension, two workers) that ran as one node
    # first: migrated, a school whose students have money (accounts, postings, balances)
    conn = await connect(citus_db)
    try:
        fresh = await migrate.upgrade(conn)
        school = await make_school(conn)
        students = [await make_student(conn, school.id, f"S{n}", cash=n * 10_000) for n in (1, 2)]
        kept = ("persons", "accounts", "journal_tx", "postings")
        before = {t: await conn.fetch(f"SELECT * FROM {t} ORDER BY school_id, id") for t in kept}
    finally:
        await conn.close()
    # when `campuscard db citus` runs (two shards a table keep the test short)
    applied, placed = await runtime.set_up_citus(citus_db, shard_count=2)
    conn = await connect(citus_db)
    try:
        # then its rows are in the shards as they were (balances and versions not moved again
        # by the triggers), the coordinator's copies freed, and the ledger holds
        assert applied == []
        for t in kept:
            assert await conn.fetch(f"SELECT * FROM {t} ORDER BY school_id, id") == before[t], t
        assert await conn.fetchval("SELECT pg_relation_size('postings')") == 0
        # and the school books on the cluster as before (cc_post, delegated to its worker)
        await fund(conn, school.id, students[0], cash=500)
        assert (
            await conn.fetchval(
                "SELECT balance FROM accounts WHERE school_id = $1 AND person_id = $2 "
                "AND purse = 'cash'",
                school.id,
                students[0],
            )
            == 10_500
        )
        assert (await check_ledger(conn)).ok
        placements = {
            r["name"]: r
            for r in await conn.fetch(
                """SELECT logicalrelid::regclass::text AS name, partmethod::text AS method,
                          repmodel::text AS rep, colocationid,
                          column_to_column_name(logicalrelid, partkey) AS column_name
                     FROM pg_dist_partition"""
            )
        }
        tables = [
            r["relname"]
            for r in await conn.fetch(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                "AND relkind = 'r'"
            )
        ]
        delegated = await conn.fetch(
            """SELECT objid::regprocedure::text AS fn, distribution_argument_index AS arg,
                      force_delegation
                 FROM pg_dist_object
                WHERE classid = 'pg_proc'::regclass AND distribution_argument_index IS NOT NULL"""
        )

        # every migration ran (on one node, before), and every table is where it is declared
        assert len([a for a in fresh if not a.endswith(".sql")]) >= len(migrate.load_migrations())
        for table in tables:
            where = distribution.placement(table)
            row = placements.get(table)
            if where == "reference":
                assert row is not None and (row["method"], row["rep"]) == ("n", "t"), table
            elif where == "distributed":
                assert row is not None and row["method"] == "h", table
                assert row["column_name"] == "school_id", table
            else:  # coordinator tables stay local (Citus may know them as local tables)
                assert row is None or (row["method"] == "n" and row["rep"] != "t"), table
        distributed = [t for t in tables if distribution.placement(t) == "distributed"]
        assert sorted(placed.distributed) == sorted(distributed)
        # all co-located: one school's rows of every table are on one worker
        assert len({placements[t]["colocationid"] for t in distributed}) == 1
        # the booking functions are delegated by their school argument (the first)
        assert {r["fn"].split("(")[0] for r in delegated} == {
            f.split("(")[0] for f in citus.DELEGATED_FUNCTIONS
        }
        assert all(r["arg"] == 0 and r["force_delegation"] for r in delegated)

        # and running it again places nothing
        assert (await citus.distribute(conn)).lines() == []

        # when a later migration runs on the distributed database
        later = tmp_path / "migrations"
        shutil.copytree(migrate.MIGRATIONS_DIR, later)
        (later / "9990_later_notes.sql").write_text(LATER_MIGRATION)
        assert await migrate.upgrade(conn, migrations_dir=later) == ["9990_later_notes"]
        again = await citus.distribute(conn)

        # then its new table is distributed with the others, with its foreign key, and the
        # column reached the shards of the table that was distributed already
        assert again.distributed == ["later_notes"]
        assert (
            await conn.fetchval(
                "SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'later_notes'::regclass"
            )
            == placements["persons"]["colocationid"]
        )
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = 'later_notes'::regclass "
                "AND contype = 'f'"
            )
            == 2
        )
        shards_with_column = await conn.fetchval(
            """SELECT count(*) FROM run_command_on_shards('classes',
                   $$SELECT count(*) FROM information_schema.columns
                      WHERE table_name = '%s' AND column_name = 'later_room'$$)
                WHERE result = '1'"""
        )
        assert shards_with_column == 2

        # and a report across schools runs on the coordinator over the shards of both workers
        for n in range(1, 7):
            school = await conn.fetchval(
                "INSERT INTO schools(province_id, code, name) SELECT id, $1, $2 FROM provinces "
                "RETURNING id",
                f"S{n}",
                f"学校{n}",
            )
            await conn.executemany(
                "INSERT INTO classes(school_id, name) VALUES ($1, $2)",
                [(school, f"班级{k}") for k in range(n)],
            )
        report = await conn.fetch(
            """SELECT s.code, count(c.id) AS classes
                 FROM schools s LEFT JOIN classes c ON c.school_id = s.id
                GROUP BY s.code ORDER BY s.code"""
        )
        workers_used = await conn.fetchval(
            """SELECT count(DISTINCT nodeport) FROM citus_shards
                WHERE table_name = 'classes'::regclass AND shard_size >= 0"""
        )
    finally:
        await conn.close()
    assert [(r["code"], r["classes"]) for r in report] == [
        *((f"S{n}", n) for n in range(1, 7)),
        ("TST", 0),
    ]
    assert workers_used == 2
