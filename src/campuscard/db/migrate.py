"""The database schema: versioned migrations, then database code re-applied when it changes.

- Tables, indexes, constraints and data changes are migrations,
  src/campuscard/db/migrations/NNNN_name.sql, applied in order, once. A changed file that was
  already applied is refused by checksum.
- Functions, views and triggers are database code, one file per object in the owning package's
  ``db/`` folder (src/campuscard/<package>/db/<object name>.sql). A code file is applied when its
  checksum differs from the one recorded in ``schema_code`` (or none is recorded): functions
  first, then views, then triggers, with ``check_function_bodies`` off so functions may come in
  any order. docs/decisions/0100-database-code-in-files.md

- Schemas that come with a library (procrastinate's job tables and functions) are applied from
  the installed library, once, before the migrations, and recorded with the library's version
  in ``schema_vendor``; a newer library brings its own migration files, applied in order on
  upgrade. Decision 0240.

One upgrade is one transaction under an advisory lock: the library schemas, the pending
migrations, then the code files that changed. Several processes starting at once apply each
exactly once, and an upgrade that fails leaves the database as it was.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from campuscard.db.pool import Conn

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
CODE_ROOT = Path(__file__).resolve().parents[1]  # src/campuscard: <package>/db/*.sql below it
CODE_GLOB = "*/db/*.sql"
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
_LOCK_ID = 0x0CA4D  # any constant shared by every CampusCard process

# The checksums these migrations had while they still defined functions and triggers
# themselves, before that code moved into the packages' db/ folders. A database migrated then
# recorded them; the objects they made are the ones the code files now (re)create.
EARLIER_CHECKSUMS: dict[int, str] = {
    1: "20e6f5d6576132d6df141a050e59e5d6a626e798996a2832483337043be72256",
    2: "1a4acde3c0e9353e57f2676fed7ea6dd9bc00d7f782eb47e432664a37ca8a4ac",
    3: "72ba4973feafd349dda5551b96b55c7bdef0314118cd6a7d3cf72a9e03e1134b",
    10: "6eb57bd84a5de7e43e9697aa5bb31888054ae42110446ff1aba2a8d2dc545d60",
    11: "bfce08a4b9c57c1c78ec4ab22ed1f54c320c07ec877bf7804589c78f037449ab",
    12: "707444efc98300bcdc84bf1c24da3122e11abd8373dc301fc6047b6a5d9b1a61",
    13: "5307e7b556b663a392bf1c1934cf48cd77ac0b373ea8c3c47a58aeac7c01dfb2",
    20: "dea860c2581db1c6b686c938c82494b1a4b7bd1fb084028ff355c027c05f6286",
    40: "56177a434832fef02251035b5fd6367cf6827425b98993bbc4c94dd6de7a04f4",
    70: "864042e63c27a8575c0a11d41f74257109dabdfebb03934daecdac636e1c003a",
    71: "31dc2c792341f05f1e299ce6d55e90d10e4088d8f2fe756242316dc296b8d835",
    74: "86aedb6a79be4a1dd5ae314edc6f4eedfa55aecdc6be4bc2cf274499597279b9",
    90: "7ddce7fe520d058862d801b2a25adbb585b9a9c008a4e7500e92e63babd14816",
    91: "c7e6e448116ee25bc6ca92158711da197348fdf26fc695e2e4dd3b63f868aac3",
}

# the order code files are applied in: a view may call functions, a trigger may use both
CODE_KINDS = ("function", "view", "trigger")
_REQUIRES = re.compile(r"^--\s*requires:\s*(\S+)\s*$", re.M)
_COMMENT = re.compile(r"--[^\n]*")
_DOLLAR_QUOTED = re.compile(r"\$(\w*)\$.*?\$\1\$", re.S)
_CREATE = re.compile(r"\bCREATE\b", re.I)
_OBJECT = re.compile(
    r"\bCREATE\s+(OR\s+REPLACE\s+)?(CONSTRAINT\s+)?(FUNCTION|PROCEDURE|VIEW|TRIGGER)\s+(\w+)",
    re.I,
)


@dataclass(frozen=True)
class VendorSchema:
    """A schema a library ships: created from ``schema_sql`` when absent; brought from the
    recorded version to ``version`` by the library's migration files (named after the version
    that introduced them, ``03.04.00_01_name.sql``)."""

    name: str
    version: str
    schema_sql: Path
    migrations_dir: Path

    def migrations_after(self, recorded: str) -> list[Path]:
        low, high = _version_key(recorded), _version_key(self.version)
        return [
            p
            for p in sorted(self.migrations_dir.glob("*.sql"))
            if low < _version_key(p.name.split("_", 1)[0]) <= high
        ]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def vendor_schemas() -> list[VendorSchema]:
    import procrastinate

    root = Path(procrastinate.__file__).parent / "sql"
    version = importlib.metadata.version("procrastinate")
    return [VendorSchema("procrastinate", version, root / "schema.sql", root / "migrations")]


def _checksum(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return _checksum(self.sql)

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    @property
    def requires(self) -> list[str]:
        """Code files this migration's data changes need (``-- requires: ledger/db/x.sql``)."""
        return _REQUIRES.findall(self.sql)

    def accepts(self, recorded: str) -> bool:
        """Whether a database that recorded this checksum applied this migration."""
        return recorded in (self.checksum, EARLIER_CHECKSUMS.get(self.version))


@dataclass(frozen=True)
class CodeFile:
    path: str  # relative to src/campuscard, e.g. "ledger/db/cc_post.sql"
    kind: str  # one of CODE_KINDS
    name: str  # the object it defines: the file's name without .sql
    sql: str

    @property
    def checksum(self) -> str:
        return _checksum(self.sql)


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.fullmatch(path.name)
        if m is None:
            raise RuntimeError(f"migration file name must be NNNN_name.sql: {path.name}")
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {versions}")
    return found


def parse_code_file(path: str, sql: str) -> CodeFile:
    """Read what a code file defines; refuse one that is not exactly one re-appliable object."""
    bare = _DOLLAR_QUOTED.sub("$$", _COMMENT.sub("", sql))
    objects = _OBJECT.findall(bare)
    if len(objects) != 1 or len(_CREATE.findall(bare)) != 1:
        raise RuntimeError(
            f"{path}: a code file holds exactly one CREATE OR REPLACE FUNCTION, VIEW or TRIGGER"
        )
    or_replace, constraint, kind, name = objects[0]
    stem = Path(path).stem
    if name.lower() != stem:
        raise RuntimeError(f"{path}: the file is named after its object, {name.lower()}.sql")
    if constraint:
        # a constraint trigger cannot be replaced: the file drops it first
        drop = re.compile(rf"\bDROP\s+TRIGGER\s+IF\s+EXISTS\s+{re.escape(name)}\s+ON\b", re.I)
        if not drop.search(bare):
            raise RuntimeError(f"{path}: a constraint trigger starts with DROP TRIGGER IF EXISTS")
    elif not or_replace:
        raise RuntimeError(f"{path}: write CREATE OR REPLACE so the file can be applied again")
    kind = kind.lower()
    return CodeFile(path, "function" if kind == "procedure" else kind, stem, sql)


def load_code(root: Path = CODE_ROOT) -> list[CodeFile]:
    """Every code file under root, in the order they are applied."""
    found = [
        parse_code_file(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8"))
        for p in sorted(root.glob(CODE_GLOB))
    ]
    names = [f.name for f in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RuntimeError(f"database objects defined in more than one file: {twice}")
    return sorted(found, key=lambda f: (CODE_KINDS.index(f.kind), f.path))


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    applied_at: datetime


@dataclass(frozen=True)
class SchemaStatus:
    applied: list[AppliedMigration]
    pending: list[Migration]
    changed: list[Migration]  # applied, then edited: refused until a new migration replaces it
    code_changed: list[CodeFile]  # checksum differs from the one recorded
    code_new: list[CodeFile]  # never applied
    code_removed: list[str]  # recorded, no longer in the tree
    vendor_pending: list[str] = field(default_factory=list)  # library schemas absent or older

    @property
    def up_to_date(self) -> bool:
        return not (
            self.pending
            or self.changed
            or self.code_changed
            or self.code_new
            or self.code_removed
            or self.vendor_pending
        )


async def _create_bookkeeping(conn: Conn) -> None:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version int PRIMARY KEY,
               name text NOT NULL,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_code (
               path text PRIMARY KEY,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_vendor (
               name text PRIMARY KEY,
               version text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )


async def _vendor_recorded(conn: Conn) -> dict[str, str]:
    if not await conn.fetchval("SELECT to_regclass('schema_vendor') IS NOT NULL"):
        return {}
    return {r["name"]: r["version"] for r in await conn.fetch("SELECT * FROM schema_vendor")}


async def _apply_vendor(conn: Conn, schema: VendorSchema, recorded: str | None) -> list[str]:
    if recorded is None:
        await conn.execute(schema.schema_sql.read_text(encoding="utf-8"))
        applied = [f"{schema.name} {schema.version}"]
    else:
        if _version_key(recorded) > _version_key(schema.version):
            raise RuntimeError(
                f"the database holds {schema.name} {recorded}'s schema; this version installs "
                f"{schema.version}, which is older: install the newer one"
            )
        applied = []
        for path in schema.migrations_after(recorded):
            await conn.execute(path.read_text(encoding="utf-8"))
            applied.append(f"{schema.name} {path.name}")
    await conn.execute(
        """INSERT INTO schema_vendor(name, version) VALUES ($1, $2)
           ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, applied_at = now()""",
        schema.name,
        schema.version,
    )
    return applied


async def status(
    conn: Conn, *, migrations_dir: Path = MIGRATIONS_DIR, code_root: Path = CODE_ROOT
) -> SchemaStatus:
    """What the database holds against what the tree says; changes nothing."""
    return await _status(conn, load_migrations(migrations_dir), load_code(code_root))


async def _status(conn: Conn, migrations: list[Migration], code: list[CodeFile]) -> SchemaStatus:
    applied: list[AppliedMigration] = []
    done: dict[int, str] = {}
    if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        for r in await conn.fetch(
            "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
        ):
            applied.append(AppliedMigration(r["version"], r["name"], r["applied_at"]))
            done[r["version"]] = r["checksum"]
    recorded: dict[str, str] = {}
    if await conn.fetchval("SELECT to_regclass('schema_code') IS NOT NULL"):
        recorded = await _recorded(conn)
    paths = {f.path for f in code}
    vendor = await _vendor_recorded(conn)
    return SchemaStatus(
        vendor_pending=[v.name for v in vendor_schemas() if vendor.get(v.name) != v.version],
        applied=applied,
        pending=[m for m in migrations if m.version not in done],
        changed=[m for m in migrations if m.version in done and not m.accepts(done[m.version])],
        code_changed=[f for f in code if f.path in recorded and recorded[f.path] != f.checksum],
        code_new=[f for f in code if f.path not in recorded],
        code_removed=sorted(p for p in recorded if p not in paths),
    )


async def _recorded(conn: Conn) -> dict[str, str]:
    return {
        r["path"]: r["checksum"] for r in await conn.fetch("SELECT path, checksum FROM schema_code")
    }


async def _apply_code(conn: Conn, f: CodeFile) -> None:
    await conn.execute(f.sql)
    await conn.execute(
        """INSERT INTO schema_code(path, checksum) VALUES ($1, $2)
           ON CONFLICT (path) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()""",
        f.path,
        f.checksum,
    )


# One SQL statement of a migration: quoted text, dollar-quoted bodies and comments are skipped
# over whole, so a ';' inside them does not end the statement.
_STATEMENT_PART = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|(\$[A-Za-z_0-9]*\$).*?\1|--[^\n]*|/\*.*?\*/|[^'"$;/-]+|.""",
    re.S,
)
_NEW_TABLE = re.compile(r"\s*CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?", re.I)
_ON_TABLE = re.compile(
    r"\s*(?:ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?"
    r"|CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(?:\w+\s+)?ON\s+(?:ONLY\s+)?)(?:public\.)?\"?(\w+)\"?",
    re.I,
)


def split_statements(sql: str) -> list[str]:
    """The statements of a migration, in order, comments kept with the statement they precede."""
    statements: list[str] = []
    current: list[str] = []
    for m in _STATEMENT_PART.finditer(sql):
        if m.group(0) == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(m.group(0))
    statements.append("".join(current))
    return [s for s in statements if _COMMENT.sub("", s).strip()]


async def _execute_on_citus(conn: Conn, sql: str) -> None:
    """Run a migration on a Citus coordinator. Statements on existing tables run as usual (Citus
    changes their shards too); a new table, and what a later statement of the migration does to
    it, is made on the coordinator only, foreign keys to distributed tables included, which
    Citus would refuse for a table it does not know yet. ``campuscard.db.citus.distribute``
    places it after the upgrade, with those keys (docs/scale-out.md)."""
    new: set[str] = set()
    for statement in split_statements(sql):
        bare = _COMMENT.sub("", statement)
        on = _ON_TABLE.match(bare)
        local = _NEW_TABLE.match(bare) is not None or (
            on is not None
            and (
                on.group(1) in new
                or not await conn.fetchval(
                    "SELECT 1 FROM pg_dist_partition WHERE logicalrelid::text = $1", on.group(1)
                )
            )
        )
        if _NEW_TABLE.match(bare):
            name = re.match(r"\s*(?:public\.)?\"?(\w+)", bare[_NEW_TABLE.match(bare).end() :])  # type: ignore[union-attr]
            if name:
                new.add(name.group(1))
        if local:
            await conn.execute("SET LOCAL citus.enable_ddl_propagation = off")
        await conn.execute(statement)
        if local:
            await conn.execute("SET LOCAL citus.enable_ddl_propagation = on")


async def upgrade(
    conn: Conn, *, migrations_dir: Path = MIGRATIONS_DIR, code_root: Path = CODE_ROOT
) -> list[str]:
    """Apply every pending migration, then every changed code file; returns what it applied
    (migrations as NNNN_name, code files by path)."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        async with conn.transaction():
            await _create_bookkeeping(conn)
            code = load_code(code_root)
            state = await _status(conn, load_migrations(migrations_dir), code)
            if state.changed:
                raise RuntimeError(
                    f"migration {state.changed[0].label} changed after it was applied; "
                    "write a new migration instead"
                )
            vendor = await _vendor_recorded(conn)
            for schema in vendor_schemas():
                if vendor.get(schema.name) != schema.version:
                    applied_now += await _apply_vendor(conn, schema, vendor.get(schema.name))
            await conn.execute("SET LOCAL check_function_bodies = off")
            on_citus = bool(
                await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
            )
            by_path = {f.path: f for f in code}
            for mig in state.pending:
                for path in mig.requires:
                    # a data change that needs a function or trigger gets it first
                    if path not in by_path:
                        raise RuntimeError(f"migration {mig.label} requires missing {path}")
                    if (await _recorded(conn)).get(path) != by_path[path].checksum:
                        await _apply_code(conn, by_path[path])
                        applied_now.append(path)
                if _COMMENT.sub("", mig.sql).strip(" \n\t;"):
                    # (a migration whose code moved to a code file may hold comments only)
                    if on_citus:
                        await _execute_on_citus(conn, mig.sql)
                    else:
                        await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations(version, name, checksum) VALUES ($1, $2, $3)",
                    mig.version,
                    mig.name,
                    mig.checksum,
                )
                applied_now.append(mig.label)
            # read again: a migration that dropped an object forgets its file's record
            recorded = await _recorded(conn)
            for f in code:
                if recorded.get(f.path) != f.checksum:
                    await _apply_code(conn, f)
                    applied_now.append(f.path)
            await conn.execute(
                "DELETE FROM schema_code WHERE NOT path = ANY($1::text[])", list(by_path)
            )
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied_now
