"""The transactions rule (``campuscard.db.tx``), checked on the source with ``ast``.

- ``.transaction()`` is called only by the unit of work (``db/tx.py``) and the migration runner;
  everything else uses ``transaction(...)`` or ``savepoint(tx)``.
- A public ``do_*`` says in its first parameter how it meets its transaction: ``tx: Tx`` (with
  ``@owns_transaction``: it owns it; without: it runs in the caller's), ``pool: PgPool`` (it
  opens its own, maybe several), or ``conn: Conn`` only when it calls ``transaction(conn)``,
  ``run_idempotent(conn, ...)`` or ``require_idle(conn)`` (each refuses a connection that is
  already in a transaction).
- An ``@owns_transaction`` function takes ``tx: Tx`` first; a function that takes ``tx: Tx``
  never opens another transaction on it (``savepoint(tx)`` is the explicit nesting).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "campuscard"

# The unit of work itself, and migrations (each applied in its own transaction by the runner).
OWN_TRANSACTION_CALLS = {"db/tx.py", "db/migrate.py"}
# HTTP adapters that still record a terminal nonce in a transaction of their own; they move
# into the use cases with the rest of the SQL in api/.


def _first_param(fn: ast.AsyncFunctionDef) -> tuple[str, str]:
    args = fn.args.posonlyargs + fn.args.args
    if not args:
        return "", ""
    ann = ast.unparse(args[0].annotation) if args[0].annotation is not None else ""
    return args[0].arg, ann


def _is_owner(fn: ast.AsyncFunctionDef) -> bool:
    return any(
        ast.unparse(d) in ("owns_transaction", "tx.owns_transaction") for d in fn.decorator_list
    )


def _calls(fn: ast.AST, name: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
        for n in ast.walk(fn)
    )


def violations(source: str, where: str) -> list[str]:
    """Every breach of the rule in one module's source (``where`` names it in the message)."""
    found: list[str] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "transaction"
            and where not in OWN_TRANSACTION_CALLS
        ):
            found.append(f"{where}:{node.lineno}: .transaction(); use transaction() or savepoint()")
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.AsyncFunctionDef):
            continue
        name, ann = _first_param(fn)
        at = f"{where}:{fn.lineno}: {fn.name}"
        if _is_owner(fn) and (name, ann) != ("tx", "Tx"):
            found.append(f"{at}: @owns_transaction takes tx: Tx first")
        if ann == "Tx" and _calls(fn, "transaction"):
            found.append(f"{at}: runs in a transaction and opens another; use savepoint(tx)")
        if fn.name.startswith("do_") and fn in tree.body:
            if ann == "Tx" or (name, ann) == ("pool", "PgPool"):
                continue
            if ann == "Conn" and any(
                _calls(fn, f) for f in ("transaction", "require_idle", "run_idempotent")
            ):
                continue
            found.append(f"{at}: a do_* takes tx: Tx, pool: PgPool, or a Conn it opens on")
    return found


def test_the_source_keeps_the_transactions_rule() -> None:
    found: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        where = path.relative_to(SRC).as_posix()
        found += violations(path.read_text(encoding="utf-8"), where)
    assert found == []


def test_the_check_finds_each_kind_of_breach() -> None:
    # given: one module that breaks every part of the rule
    source = """
async def do_nests(conn: Conn) -> None:
    async with conn.transaction():
        pass

@owns_transaction
async def do_owner(conn: Conn) -> None: ...

async def writer(tx: Tx) -> None:
    async with transaction(tx):
        pass

async def do_hides_it(conn: Conn) -> None:
    await conn.execute("UPDATE t SET x = 1")
"""
    # when
    found = violations(source, "somewhere/use_cases.py")
    # then
    assert [f.split(": ", 1)[1] for f in found] == [
        ".transaction(); use transaction() or savepoint()",
        "do_nests: a do_* takes tx: Tx, pool: PgPool, or a Conn it opens on",
        "do_owner: @owns_transaction takes tx: Tx first",
        "do_owner: a do_* takes tx: Tx, pool: PgPool, or a Conn it opens on",
        "writer: runs in a transaction and opens another; use savepoint(tx)",
        "do_hides_it: a do_* takes tx: Tx, pool: PgPool, or a Conn it opens on",
    ]


def test_the_good_shapes_pass() -> None:
    source = """
@owns_transaction
async def do_owns(tx: Tx, actor: Actor) -> None:
    async with savepoint(tx):
        pass

async def do_in_callers(tx: Tx) -> None: ...

async def do_orchestrates(pool: PgPool) -> None:
    async with transaction(pool) as tx:
        await do_owns.in_tx(tx, actor)
"""
    assert violations(source, "somewhere/use_cases.py") == []
