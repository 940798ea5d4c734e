"""Transactions: who owns one is written in the signature, the same way everywhere.

The rule (``tests/unit/test_transactions_rule.py`` keeps it):

- ``Tx`` is a connection inside an open transaction. Only this module hands one out:
  ``async with transaction(pool) as tx:`` acquires a connection, begins, commits on exit and
  rolls back on an exception.
- A use case that owns its transaction is ``@owns_transaction async def do_x(tx: Tx, ...)``
  and is called with a pool or an idle connection: ``await do_x(pool, ...)``. Called with a
  connection that is already in a transaction it raises ``TransactionNested`` instead of
  silently becoming a savepoint; a caller that holds a ``Tx`` and wants the work in its own
  transaction calls ``do_x.in_tx(tx, ...)``.
- A use case that runs several transactions (a network call between them, a batch committed
  in parts) takes ``pool: PgPool`` and opens each with ``transaction(pool)``.
- A use case that runs its steps each in a transaction of its own on one connection takes
  ``conn: Conn`` and starts with ``require_idle(conn)`` (or opens ``transaction(conn)``).
  ``Conn`` in a signature therefore means "not in a transaction", ``Tx`` means "in one".
- A writer that runs in the caller's transaction takes ``tx: Tx``; mypy refuses a bare
  connection there, so a writer cannot run outside a transaction by accident.
- ``savepoint(tx)`` is the one explicit nesting, for work that must be undone while the
  transaction goes on (a refusal stored under an idempotency key).
- Nothing else calls ``.transaction()``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    NewType,
    ParamSpec,
    TypeVar,
    cast,
)

import asyncpg

from campuscard.db.pool import Conn, PgPool

if TYPE_CHECKING:
    Tx = NewType("Tx", asyncpg.Connection[Any])
else:
    Tx = NewType("Tx", asyncpg.Connection)

Source = PgPool | Conn
"""Where a transaction comes from: a pool, or a connection that is not in one."""

Isolation = Literal["read_committed", "repeatable_read", "serializable"]

P = ParamSpec("P")
R = TypeVar("R")


class TransactionNested(RuntimeError):
    """A use case that owns its transaction was handed a connection already in one."""


def require_idle(conn: Conn) -> None:
    """A step-by-step use case that takes ``conn: Conn`` (each step its own transaction)
    refuses a connection already in a transaction, like ``transaction`` does."""
    if conn.is_in_transaction():
        raise TransactionNested(
            "this use case runs its own transactions; call it outside any transaction"
        )


@asynccontextmanager
async def _begin(conn: Conn, isolation: Isolation | None, readonly: bool) -> AsyncIterator[Tx]:
    if conn.is_in_transaction():
        raise TransactionNested(
            "this use case owns its transaction; inside another one call its .in_tx(tx, ...)"
        )
    async with conn.transaction(isolation=isolation, readonly=readonly):
        yield cast(Tx, conn)


@asynccontextmanager
async def transaction(
    source: Source, *, isolation: Isolation | None = None, readonly: bool = False
) -> AsyncIterator[Tx]:
    """Begin a transaction on ``source`` (a pool: acquire a connection for it)."""
    if isinstance(source, asyncpg.Pool):
        async with source.acquire() as conn, _begin(conn, isolation, readonly) as tx:
            yield tx
    else:
        async with _begin(source, isolation, readonly) as tx:
            yield tx


@asynccontextmanager
async def savepoint(tx: Tx) -> AsyncIterator[Tx]:
    """Work that is undone on an exception while the caller's transaction goes on."""
    async with tx.transaction():
        yield tx


class OwnsTransaction(Generic[P, R]):
    """A use case that owns its transaction: ``await do_x(pool_or_idle_conn, ...)``.

    ``do_x.in_tx(tx, ...)`` runs the same work in the caller's transaction."""

    def __init__(self, work: Callable[Concatenate[Tx, P], Awaitable[R]]) -> None:
        functools.update_wrapper(self, work)
        self.in_tx = work

    async def __call__(self, source: Source, /, *args: P.args, **kwargs: P.kwargs) -> R:
        async with transaction(source) as tx:
            return await self.in_tx(tx, *args, **kwargs)


def owns_transaction(work: Callable[Concatenate[Tx, P], Awaitable[R]]) -> OwnsTransaction[P, R]:
    """Mark a use case as the owner of one transaction (see the module docstring)."""
    return OwnsTransaction(work)
