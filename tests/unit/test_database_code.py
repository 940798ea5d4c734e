"""Database code lives one object per file (decision 0100): each function, trigger and view is
defined in exactly one file of the tree, never in a migration, and the migrator can read every
code file (kind, name, re-appliable)."""

import re
from collections import Counter
from pathlib import Path

import pytest

from campuscard.db import migrate

ROOT = Path(__file__).resolve().parents[2]
# the product: what ships and what the benchmarks run (tests hold sample SQL of their own)
SEARCHED = [ROOT / "src", ROOT / "bench", ROOT / "scripts"]
DEFINITION = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?"
    r"(FUNCTION|PROCEDURE|TRIGGER|(?:MATERIALIZED\s+)?VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)",
    re.I,
)


def _definitions() -> list[tuple[str, str, Path]]:
    found = []
    for top in SEARCHED:
        for path in sorted(top.rglob("*")):
            if path.suffix not in {".sql", ".py"} or not path.is_file():
                continue
            for m in DEFINITION.finditer(path.read_text(encoding="utf-8")):
                found.append((m.group(1).split()[-1].lower(), m.group(2).lower(), path))
    return found


def test_each_function_trigger_and_view_is_defined_in_exactly_one_file() -> None:
    found = _definitions()
    counts = Counter((kind, name) for kind, name, _ in found)
    assert {key: n for key, n in counts.items() if n > 1} == {}
    in_migrations = [
        (name, path.name) for _, name, path in found if path.parent == migrate.MIGRATIONS_DIR
    ]
    assert in_migrations == []
    # ... and that one file is the package's db/<name>.sql
    misplaced = [
        str(path.relative_to(ROOT))
        for _, name, path in found
        if path.suffix == ".sql" and (path.parent.name != "db" or path.stem != name)
    ]
    assert misplaced == []


def test_the_tree_defines_the_payment_functions_once_each() -> None:
    names = {name for kind, name, _ in _definitions() if kind == "function"}
    # the functions that used to be copied into later migrations to change them
    assert {"cc_pay_inner", "cc_reverse", "cc_card_blacklist", "cc_check_tx_balanced"} <= names


def test_every_code_file_loads_in_kind_order() -> None:
    code = migrate.load_code()
    assert len(code) >= 50
    kinds = [migrate.CODE_KINDS.index(f.kind) for f in code]
    assert kinds == sorted(kinds)
    assert {f.path.split("/")[0] for f in code} <= {
        "platform", "ledger", "people", "cards", "payments", "issuing", "moneyflows", "settlement",
        "offline",
        "access", "payroll",
    }  # fmt: skip
    post = next(f for f in code if f.name == "cc_post")
    assert (post.path, post.kind) == ("ledger/db/cc_post.sql", "function")
    balanced = next(f for f in code if f.name == "postings_balanced")
    assert balanced.kind == "trigger"


def test_migrations_keep_their_earlier_checksums_known() -> None:
    versions = {m.version for m in migrate.load_migrations()}
    assert set(migrate.EARLIER_CHECKSUMS) <= versions
    mig = next(m for m in migrate.load_migrations() if m.version == 11)
    assert mig.accepts(mig.checksum)
    assert mig.accepts(migrate.EARLIER_CHECKSUMS[11])
    assert not mig.accepts("0" * 64)


def test_a_migration_names_the_code_its_data_change_needs() -> None:
    mig = migrate.Migration(
        9000, "x", "-- requires: ledger/db/cc_post.sql\n--requires:  a/db/b.sql\nSELECT 1;"
    )
    assert mig.requires == ["ledger/db/cc_post.sql", "a/db/b.sql"]


@pytest.mark.parametrize(
    ("path", "sql", "kind"),
    [
        ("x/db/cc_f.sql", "CREATE OR REPLACE FUNCTION cc_f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;", "function"),
        ("x/db/cc_p.sql", "create or replace procedure cc_p() language sql as $$ SELECT 1 $$;", "function"),
        ("x/db/cc_v.sql", "-- a view\nCREATE OR REPLACE VIEW cc_v AS SELECT 1 AS one;", "view"),
        ("x/db/t_a.sql", "CREATE OR REPLACE TRIGGER t_a BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();", "trigger"),
        ("x/db/t_c.sql", "DROP TRIGGER IF EXISTS t_c ON t;\nCREATE CONSTRAINT TRIGGER t_c AFTER INSERT ON t\n"
         "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION f();", "trigger"),
        # CREATE inside a body or a comment is not a second object
        ("x/db/cc_g.sql", "-- CREATE TABLE in a comment\nCREATE OR REPLACE FUNCTION cc_g() RETURNS void "
         "LANGUAGE plpgsql AS $body$ BEGIN CREATE TEMP TABLE x(a int); END $body$;", "function"),
    ],
)  # fmt: skip
def test_a_code_file_is_read_for_its_kind_and_name(path: str, sql: str, kind: str) -> None:
    parsed = migrate.parse_code_file(path, sql)
    assert (parsed.kind, parsed.name) == (kind, Path(path).stem)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("CREATE FUNCTION cc_f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;", "OR REPLACE"),
        ("CREATE OR REPLACE FUNCTION cc_other() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;", "named after"),
        ("CREATE OR REPLACE FUNCTION cc_f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
         "CREATE OR REPLACE FUNCTION cc_f(a int) RETURNS int LANGUAGE sql AS $$ SELECT a $$;", "exactly one"),
        ("CREATE TABLE cc_f(a int);", "exactly one"),
        ("CREATE OR REPLACE FUNCTION cc_f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
         "CREATE INDEX i ON t(a);", "exactly one"),
        ("CREATE CONSTRAINT TRIGGER cc_f AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();", "DROP TRIGGER"),
        ("CREATE MATERIALIZED VIEW cc_f AS SELECT 1;", "exactly one"),
    ],
)  # fmt: skip
def test_a_code_file_that_cannot_be_reapplied_is_refused(sql: str, reason: str) -> None:
    with pytest.raises(RuntimeError, match=reason):
        migrate.parse_code_file("x/db/cc_f.sql", sql)


def test_one_object_in_two_packages_is_refused(tmp_path: Path) -> None:
    for package in ("a", "b"):
        (tmp_path / package / "db").mkdir(parents=True)
        (tmp_path / package / "db" / "cc_f.sql").write_text(
            "CREATE OR REPLACE FUNCTION cc_f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;"
        )
    with pytest.raises(RuntimeError, match="more than one file"):
        migrate.load_code(tmp_path)
