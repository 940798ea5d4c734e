"""Client-generated ids: the first attempt's outcome is stored with the work and replayed.

The key row is inserted first in the work's transaction. A concurrent duplicate blocks on it
until the first commits and then replays; a key reused with another payload is refused; a
refusal (a DomainError) is stored too, so a failed attempt stays failed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from campuscard.db.pool import Conn
from campuscard.db.tx import Source, Tx, savepoint, transaction
from campuscard.platform.errors import Conflict, DomainError, ValidationFailed

_KEY = re.compile(r"[A-Za-z0-9_.:-]{8,64}")


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any]
    replayed: bool


def check_client_id(key: object, field: str = "client_id") -> str:
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise ValidationFailed(
            f"{field} must be 8-64 characters of letters, digits, '_', '.', ':' or '-'",
            code="CLIENT_ID_INVALID",
            field=field,
        )
    return key


def request_hash(payload: Mapping[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def school_of_person(conn: Conn, person_id: int) -> int:
    """The school whose key guards work on ``person_id``: 0 for no such person (the work then
    refuses the request, and the refusal is kept under school 0)."""
    school_id: int = await conn.fetchval(
        "SELECT coalesce((SELECT school_id FROM persons WHERE id = $1), 0)", person_id
    )
    return school_id


Work = Callable[[Tx], Awaitable[dict[str, Any]]]
"""The work of one request, in the key's transaction: a named function of the use case."""


async def run_idempotent(
    source: Source,
    *,
    school_id: int,
    scope: str,
    key: str,
    payload: Mapping[str, Any],
    work: Work,
    success_status: int = 200,
    field: str = "client_id",
) -> Outcome:
    """Run ``work`` once per (scope, key) in one transaction it opens on ``source``. The key
    belongs to ``school_id``, the school whose work it guards (0 when the request named no
    school we know: the work refuses it)."""
    digest = request_hash(payload)
    async with transaction(source) as tx:
        inserted = await tx.fetchval(
            """INSERT INTO idempotency_keys(school_id, scope, key, request_hash)
               VALUES ($4, $1, $2, $3) ON CONFLICT DO NOTHING RETURNING true""",
            scope,
            key,
            digest,
            school_id,
        )
        if not inserted:
            row = await tx.fetchrow(
                "SELECT request_hash, status_code, response FROM idempotency_keys "
                "WHERE school_id = $3 AND scope = $1 AND key = $2",
                scope,
                key,
                school_id,
            )
            assert row is not None
            if row["request_hash"] != digest:
                raise Conflict(
                    f"{field} {key!r} was already used for a different request",
                    code="IDEMPOTENCY_KEY_REUSED",
                    field=field,
                )
            return Outcome(row["status_code"], row["response"], replayed=True)
        try:
            async with savepoint(tx):  # a refusal undoes the work, keeps the key
                body = await work(tx)
            status = success_status
        except DomainError as err:
            status, body = err.status, {"error": err.to_dict()}
        await tx.execute(
            "UPDATE idempotency_keys SET status_code = $3, response = $4 "
            "WHERE school_id = $5 AND scope = $1 AND key = $2",
            scope,
            key,
            status,
            body,
            school_id,
        )
    return Outcome(status, body, replayed=False)
