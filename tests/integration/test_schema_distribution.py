"""The schema can be distributed by school on Citus (campuscard.db.distribution, decision 0230):
read off the catalog of a freshly migrated database, so it runs without Citus in the normal
suite. Every table is distributed by school_id or declared a reference table, every key of a
distributed table includes school_id, and no foreign key crosses schools."""

from __future__ import annotations

import pytest

from campuscard.db import citus, distribution
from campuscard.db.pool import connect

RULES = (
    "Each table is distributed by school_id or declared in REFERENCE_TABLES "
    "(src/campuscard/db/distribution.py): school_id NOT NULL and first in the primary key, "
    "in every unique constraint or index, and paired with school_id in every foreign key to "
    "another distributed table. See docs/scale-out.md."
)


async def test_every_table_follows_the_distribution_rules(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        found = set(await distribution.schema_violations(conn))
    finally:
        await conn.close()
    new = sorted(found - distribution.KNOWN_VIOLATIONS)
    assert not new, RULES + "\nBroken:\n" + "\n".join(new)
    fixed = sorted(distribution.KNOWN_VIOLATIONS - found)
    assert not fixed, "These no longer happen; remove them from KNOWN_VIOLATIONS:\n" + "\n".join(
        fixed
    )


async def test_the_rules_catch_each_kind_of_mistake(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        await conn.execute(
            """
            CREATE TABLE good_parent (
                school_id int NOT NULL REFERENCES schools(id),
                id bigserial,
                code text NOT NULL,
                PRIMARY KEY (school_id, id),
                UNIQUE (school_id, code)
            );
            CREATE TABLE good_child (
                school_id int NOT NULL REFERENCES schools(id),
                id bigserial,
                parent_id bigint NOT NULL,
                PRIMARY KEY (school_id, id),
                FOREIGN KEY (school_id, parent_id) REFERENCES good_parent(school_id, id)
            );
            CREATE UNIQUE INDEX good_child_one ON good_child(school_id, parent_id)
                WHERE id > 0;
            CREATE TABLE no_school (id bigserial PRIMARY KEY);
            CREATE TABLE bad_child (
                school_id int,
                id bigserial PRIMARY KEY,
                parent_id bigint REFERENCES no_school(id),
                token text UNIQUE
            );
            CREATE UNIQUE INDEX bad_child_parent ON bad_child(parent_id) WHERE token IS NULL;
            CREATE TABLE keyless (school_id int NOT NULL);
            ALTER TABLE good_child ADD COLUMN session_id bigint REFERENCES auth_sessions(id);
            ALTER TABLE provinces ADD COLUMN parent_id bigint;
            ALTER TABLE provinces ADD CONSTRAINT provinces_parent
                FOREIGN KEY (parent_id) REFERENCES no_school(id);
            """
        )
        found = await distribution.schema_violations(conn)
    finally:
        await conn.close()
    mine = [
        v
        for v in found
        if v.split(":")[0] in {"good_parent", "good_child", "no_school", "bad_child", "keyless"}
        or v.startswith("provinces:")
    ]
    assert mine == sorted(
        [
            "bad_child: school_id may be NULL",
            "keyless: no primary key",
            "no_school: no school_id column, and not declared a reference table",
            "bad_child: primary key (id) does not start with school_id",
            "no_school: primary key (id) does not start with school_id",
            "bad_child: unique index bad_child_parent (parent_id) lacks school_id",
            "bad_child: unique bad_child_token_key (token) lacks school_id",
            "bad_child: foreign key bad_child_parent_id_fkey (parent_id) -> no_school(id) "
            "does not pair school_id with school_id",
            "provinces: reference table has foreign key provinces_parent (parent_id) "
            "-> no_school(id)",
            "good_child: foreign key good_child_session_id_fkey (session_id) "
            "-> auth_sessions(id) points at a coordinator table",
        ]
    )


def test_each_table_has_one_place() -> None:
    assert not distribution.REFERENCE_TABLES & distribution.COORDINATOR_TABLES
    assert distribution.placement("schools") == "reference"
    assert distribution.placement("schema_migrations") == "coordinator"
    assert distribution.placement("payments") == "distributed"


async def test_db_citus_refuses_a_database_without_citus(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        with pytest.raises(citus.NotCitus, match="no citus extension"):
            await citus.check_cluster(conn)
        assert not await citus.is_citus(conn)
    finally:
        await conn.close()
