"""The migrator on a real PostgreSQL: migrations, then database code files re-applied when they
change (decision 0100), in one transaction; databases migrated before the code moved out of
the migrations keep upgrading."""

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from campuscard.db import migrate
from campuscard.db.pool import connect

_BODY = re.compile(r"\$(\w*)\$(.*?)\$\1\$", re.S)


def _copy_code(to: Path) -> Path:
    for f in migrate.CODE_ROOT.glob(migrate.CODE_GLOB):
        target = to / f.relative_to(migrate.CODE_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, target)
    return to


def _copy_migrations(to: Path, extra: dict[str, str]) -> Path:
    shutil.copytree(migrate.MIGRATIONS_DIR, to)
    for name, sql in extra.items():
        (to / name).write_text(sql, encoding="utf-8")
    return to


def _write(root: Path, path: str, sql: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(sql, encoding="utf-8")


async def _functions(conn: Any) -> dict[str, str]:
    rows = await conn.fetch(
        """SELECT p.proname, p.prosrc FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public'"""
    )
    # procrastinate's functions come from the installed library (migrate.vendor_schemas)
    return {
        r["proname"]: r["prosrc"] for r in rows if not r["proname"].startswith("procrastinate_")
    }


async def _triggers(conn: Any) -> dict[str, tuple[str, str]]:
    rows = await conn.fetch(
        """SELECT t.tgname, c.relname, p.proname FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE n.nspname = 'public' AND NOT t.tgisinternal"""
    )
    return {
        r["tgname"]: (r["relname"], r["proname"])
        for r in rows
        if not r["tgname"].startswith("procrastinate_")
    }


async def _assert_database_code_is_the_files(conn: Any) -> None:
    code = migrate.load_code()
    functions = await _functions(conn)
    files = {f.name: f for f in code if f.kind == "function"}
    assert set(functions) == set(files)
    for name, body in functions.items():
        # the stored body is the text between the file's dollar quotes, to the character
        m = _BODY.search(files[name].sql)
        assert m is not None and m.group(2) == body, name
    triggers = await _triggers(conn)
    files = {f.name: f for f in code if f.kind == "trigger"}
    assert set(triggers) == set(files)
    for name, (table, function) in triggers.items():
        assert re.search(rf"\bON {table}\b", files[name].sql), name
        # the trigger calls the function named in pg_trigger (with or without arguments)
        assert re.search(rf"EXECUTE FUNCTION {function}\(", files[name].sql), name
    views = await conn.fetch(
        "SELECT viewname FROM pg_views WHERE schemaname = 'public'"
        " UNION ALL SELECT matviewname FROM pg_matviews WHERE schemaname = 'public'"
    )
    assert {r[0] for r in views} == {f.name for f in code if f.kind == "view"}


@pytest.fixture
async def empty_db_url(pg_admin_url: str) -> AsyncIterator[str]:
    name = f"cc_empty_{id(object())}"
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield pg_admin_url.rpartition("/")[0] + "/" + name
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_a_migrated_database_holds_exactly_the_code_files(conn: Any) -> None:
    await _assert_database_code_is_the_files(conn)
    recorded = dict(await conn.fetch("SELECT path, checksum FROM schema_code"))
    assert recorded == {f.path: f.checksum for f in migrate.load_code()}
    assert "cc_pay_inner" in await _functions(conn)


async def test_upgrading_again_changes_nothing(conn: Any) -> None:
    assert await migrate.upgrade(conn) == []
    state = await migrate.status(conn)
    assert state.up_to_date
    assert [m.version for m in state.applied] == [m.version for m in migrate.load_migrations()]


async def test_a_database_migrated_before_the_code_files_upgrades_to_the_same_code(
    conn: Any,
) -> None:
    # given: the migrations recorded with the checksums they had while they held the code,
    # no code recorded, and functions as an earlier migration left them
    for version, checksum in migrate.EARLIER_CHECKSUMS.items():
        await conn.execute(
            "UPDATE schema_migrations SET checksum = $2 WHERE version = $1", version, checksum
        )
    await conn.execute("DROP TABLE schema_code")
    await conn.execute(
        """CREATE OR REPLACE FUNCTION cc_card_blacklist() RETURNS trigger LANGUAGE plpgsql
           AS $$ BEGIN RETURN NEW; END $$"""
    )
    # when
    applied = await migrate.upgrade(conn)
    # then: no migration runs again, every code file is applied once, in order
    assert applied == [f.path for f in migrate.load_code()]
    await _assert_database_code_is_the_files(conn)
    assert (await migrate.status(conn)).up_to_date
    deferred = await conn.fetchval(
        "SELECT tgdeferrable AND tginitdeferred FROM pg_trigger WHERE tgname = 'postings_balanced'"
    )
    assert deferred is True
    assert await migrate.upgrade(conn) == []


async def test_a_changed_code_file_is_reapplied_and_recorded(conn: Any, tmp_path: Path) -> None:
    code = _copy_code(tmp_path / "code")
    path = "payments/db/cc_mask_name.sql"
    _write(
        code,
        path,
        "CREATE OR REPLACE FUNCTION cc_mask_name(p_name text) RETURNS text LANGUAGE sql IMMUTABLE"
        " AS $$ SELECT left(p_name, 1) || '**' $$;\n",
    )
    state = await migrate.status(conn, code_root=code)
    assert [f.path for f in state.code_changed] == [path]
    assert not state.pending and not state.code_new and not state.up_to_date

    assert await migrate.upgrade(conn, code_root=code) == [path]

    assert await conn.fetchval("SELECT cc_mask_name('欧阳修')") == "欧**"
    recorded = await conn.fetchval("SELECT checksum FROM schema_code WHERE path = $1", path)
    assert recorded == next(f.checksum for f in migrate.load_code(code) if f.path == path)
    assert (await migrate.status(conn, code_root=code)).up_to_date


async def test_new_code_goes_functions_views_triggers_and_a_migration_gets_what_it_requires(
    conn: Any, tmp_path: Path
) -> None:
    migrations = _copy_migrations(
        tmp_path / "migrations",
        {
            "9000_zz_table.sql": "CREATE TABLE zz (id int PRIMARY KEY, doubled int);\n",
            # rows this data change inserts need the trigger filling ``doubled`` and its calls
            "9001_zz_rows.sql": "-- requires: zz/db/cc_zz_times.sql\n"
            "-- requires: zz/db/cc_zz_double.sql\n"
            "-- requires: zz/db/zz_double.sql\n"
            "INSERT INTO zz(id) VALUES (1), (2);\n",
        },
    )
    code = _copy_code(tmp_path / "code")
    _write(
        code,
        "zz/db/cc_zz_double.sql",
        "CREATE OR REPLACE FUNCTION cc_zz_double() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN NEW.doubled := cc_zz_times(NEW.id, 2); RETURN NEW; END $$;\n",
    )
    _write(
        code,
        "zz/db/zz_double.sql",
        "CREATE OR REPLACE TRIGGER zz_double BEFORE INSERT ON zz\n"
        "    FOR EACH ROW EXECUTE FUNCTION cc_zz_double();\n",
    )
    # a SQL function calling one from a file applied after it: bodies are checked at run time
    _write(
        code,
        "zz/db/cc_zz_a_sum.sql",
        "CREATE OR REPLACE FUNCTION cc_zz_a_sum() RETURNS bigint LANGUAGE sql STABLE AS $$\n"
        "    SELECT sum(cc_zz_b_ten(doubled)) FROM zz $$;\n",
    )
    _write(
        code,
        "zz/db/cc_zz_b_ten.sql",
        "CREATE OR REPLACE FUNCTION cc_zz_b_ten(a int) RETURNS int LANGUAGE sql IMMUTABLE"
        " AS $$ SELECT cc_zz_times(a, 10) $$;\n",
    )
    _write(
        code,
        "zz/db/cc_zz_times.sql",
        "CREATE OR REPLACE FUNCTION cc_zz_times(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE"
        " AS $$ SELECT a * b $$;\n",
    )
    # a view sorts first by name and still comes after the functions it calls
    _write(
        code, "zz/db/a_zz_total.sql", "CREATE OR REPLACE VIEW a_zz_total AS SELECT cc_zz_a_sum();\n"
    )

    applied = await migrate.upgrade(conn, migrations_dir=migrations, code_root=code)

    assert applied == [
        "9000_zz_table",
        "zz/db/cc_zz_times.sql",
        "zz/db/cc_zz_double.sql",
        "zz/db/zz_double.sql",
        "9001_zz_rows",
        "zz/db/cc_zz_a_sum.sql",
        "zz/db/cc_zz_b_ten.sql",
        "zz/db/a_zz_total.sql",
    ]
    assert await conn.fetchval("SELECT * FROM a_zz_total") == (2 + 4) * 10
    assert await migrate.upgrade(conn, migrations_dir=migrations, code_root=code) == []


async def test_a_migration_requiring_a_missing_code_file_is_refused(
    conn: Any, tmp_path: Path
) -> None:
    migrations = _copy_migrations(
        tmp_path / "migrations", {"9000_zz.sql": "-- requires: zz/db/nothing.sql\nSELECT 1;\n"}
    )
    with pytest.raises(RuntimeError, match=r"requires missing zz/db/nothing\.sql"):
        await migrate.upgrade(conn, migrations_dir=migrations)


async def test_an_edited_migration_is_refused_and_nothing_is_applied(
    conn: Any, tmp_path: Path
) -> None:
    migrations = _copy_migrations(
        tmp_path / "migrations", {"9000_zz_table.sql": "CREATE TABLE zz (id int);\n"}
    )
    edited = migrations / "0004_notifications.sql"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n-- edited\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="0004_notifications changed after it was applied"):
        await migrate.upgrade(conn, migrations_dir=migrations)
    assert await conn.fetchval("SELECT to_regclass('zz')") is None
    assert [m.label for m in (await migrate.status(conn, migrations_dir=migrations)).changed] == [
        "0004_notifications"
    ]


async def test_a_failed_upgrade_leaves_the_database_as_it_was(conn: Any, tmp_path: Path) -> None:
    migrations = _copy_migrations(
        tmp_path / "migrations",
        {"9000_zz_table.sql": "CREATE TABLE zz (id int);\n", "9001_broken.sql": "SELEC 1;\n"},
    )
    code = _copy_code(tmp_path / "code")
    _write(
        code,
        "zz/db/cc_zz.sql",
        "CREATE OR REPLACE FUNCTION cc_zz() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n",
    )
    with pytest.raises(asyncpg.PostgresSyntaxError):
        await migrate.upgrade(conn, migrations_dir=migrations, code_root=code)
    assert await conn.fetchval("SELECT to_regclass('zz')") is None
    newest = max(m.version for m in migrate.load_migrations())
    assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == newest
    assert "cc_zz" not in await _functions(conn)


async def test_an_empty_database_is_all_pending_then_upgraded_once_by_racing_processes(
    empty_db_url: str,
) -> None:
    conns = [await connect(empty_db_url) for _ in range(2)]
    try:
        state = await migrate.status(conns[0])
        assert state.applied == [] and not state.up_to_date
        assert len(state.pending) == len(migrate.load_migrations())
        assert len(state.code_new) == len(migrate.load_code())
        assert state.vendor_pending == ["procrastinate"]

        results = await asyncio.gather(*(migrate.upgrade(c) for c in conns))

        assert sorted(len(r) for r in results) == [
            0,
            len(migrate.load_migrations())
            + len(migrate.load_code())
            + len(migrate.vendor_schemas()),
        ]
        await _assert_database_code_is_the_files(conns[0])
        assert (await migrate.status(conns[1])).up_to_date
    finally:
        for c in conns:
            await c.close()


async def test_a_removed_code_file_is_forgotten_so_adding_it_back_applies_it(
    conn: Any, tmp_path: Path
) -> None:
    code = _copy_code(tmp_path / "code")
    path = "payments/db/cc_mask_name.sql"
    sql = (code / path).read_text(encoding="utf-8")
    (code / path).unlink()
    state = await migrate.status(conn, code_root=code)
    assert state.code_removed == [path] and not state.up_to_date
    assert await migrate.upgrade(conn, code_root=code) == []
    assert await conn.fetchval("SELECT count(*) FROM schema_code WHERE path = $1", path) == 0

    _write(code, path, sql)
    assert await migrate.upgrade(conn, code_root=code) == [path]


async def test_a_migration_that_drops_code_forgets_it_so_the_upgrade_applies_it_again(
    conn: Any, tmp_path: Path
) -> None:
    # e.g. a function dropped with CASCADE took an unchanged file's trigger with it
    migrations = _copy_migrations(
        tmp_path / "migrations",
        {
            "9000_rebuild.sql": "DROP TRIGGER card_events_append_only ON card_events;\n"
            "DELETE FROM schema_code WHERE path = 'cards/db/card_events_append_only.sql';\n"
        },
    )
    applied = await migrate.upgrade(conn, migrations_dir=migrations)
    assert applied == ["9000_rebuild", "cards/db/card_events_append_only.sql"]
    assert "card_events_append_only" in await _triggers(conn)
