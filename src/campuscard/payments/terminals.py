"""Terminals (POS, kiosk, door reader): registration, keys, signed-request checks, heartbeats.

A terminal's key is derived from the master key, its SN and its key version
(platform/signing.py); nothing secret is stored. Rotating bumps the version; the previous one
keeps working until the device first signs with the new one.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any

import asyncpg

from campuscard.config import Settings
from campuscard.db import distribution
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, owns_transaction
from campuscard.platform import audit, signing
from campuscard.platform.actors import Actor, Grant
from campuscard.platform.errors import (
    Conflict,
    DomainError,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from campuscard.platform.logs import get_logger

KINDS = ("pos", "kiosk", "door", "shop")
# A terminal that has neither sent a heartbeat nor taken a payment for this long is offline.
OFFLINE_AFTER_SECONDS = 180
# Whether terminal ``t`` is online, as an SQL expression: a heartbeat or a payment within
# OFFLINE_AFTER_SECONDS (a busy till pays instead of beating; today's payments of that window
# are found through the settlement index). Every page and answer that says online uses it, in
# a query of one school's terminals whose first parameter ($1) is that school: on Citus a
# subquery beside outer joins stays on the school's shard only when it names the school itself.
ONLINE_SQL = f"""((t.last_seen_at IS NOT NULL
                   AND t.last_seen_at > now() - make_interval(secs => {OFFLINE_AFTER_SECONDS}))
                  OR EXISTS (SELECT 1 FROM payments p
                              WHERE p.school_id = $1
                                AND p.business_date = cc_business_date($1)
                                AND p.merchant_id = t.merchant_id AND p.terminal_id = t.id
                                AND p.created_at
                                    > now() - make_interval(secs => {OFFLINE_AFTER_SECONDS})))"""
# Nonces are kept long enough to cover every timestamp the skew window accepts.
NONCE_RETENTION_SECONDS = 3 * signing.MAX_SKEW_SECONDS
_CACHE_SECONDS = 5.0

log = get_logger("campuscard.terminals")


@dataclass(frozen=True)
class TerminalRow:
    id: int
    sn: str
    school_id: int
    kind: str
    status: str
    merchant_id: int | None
    outlet_id: int | None
    key_version: int
    prev_key_version: int | None


@dataclass(frozen=True)
class SignedTerminal:
    """A device request whose signature, timestamp and key version were checked."""

    terminal: TerminalRow
    key_version: int
    nonce: str
    timestamp: int
    body: bytes

    @property
    def id(self) -> int:
        return self.terminal.id

    @property
    def school_id(self) -> int:
        return self.terminal.school_id

    @property
    def actor(self) -> Actor:
        """The terminal as an actor (audit name ``terminal:SN``); it holds no user roles."""
        return Actor(
            name=f"terminal:{self.terminal.sn}",
            school_id=self.terminal.school_id,
            grants=frozenset[Grant](),
        )


# Per-process cache of terminal rows by SN: a payment should not cost an extra round trip.
# A request whose work checks the till again in the database (a booking: ``cc_pay_terminal``
# reads its status, key versions, kind and merchant in the call that books) uses the row however
# old it is, so the till is read once per process, and again only when its request does not
# check out against the cached row (a new key version, a signature that does not match, a
# disabled till). Any other request reads the row again once it is ``_CACHE_SECONDS`` old.
# Rows are kept per pool, that is per database: a pool to another database (a test's, a restored
# one) never sees a row, with its id, read from this one.
_caches: weakref.WeakKeyDictionary[PgPool, dict[str, tuple[float, TerminalRow]]] = (
    weakref.WeakKeyDictionary()
)


def forget_terminal(sn: str) -> None:
    for cache in list(_caches.values()):
        cache.pop(sn, None)


async def _load(pool: PgPool, sn: str, *, fresh: bool, max_age: float) -> TerminalRow | None:
    now = time.monotonic()
    cache = _caches.setdefault(pool, {})
    hit = cache.get(sn)
    if hit is not None and not fresh and now - hit[0] < max_age:
        return hit[1]
    rows = await pool.fetch(
        """SELECT id, sn, school_id, kind, status, merchant_id, outlet_id, key_version,
                  prev_key_version FROM terminals WHERE sn = $1 LIMIT 2""",
        sn,
    )
    # two schools with one serial (registered before serials were checked across schools)
    # would share a key: neither device is trusted until one is registered anew
    if len(rows) != 1:
        if rows:
            log.warning("terminal serial registered in more than one school", sn=sn)
        cache.pop(sn, None)
        return None
    row = rows[0]
    terminal = TerminalRow(**dict(row))
    cache[sn] = (now, terminal)
    return terminal


def _refuse(code: str, message: str, field: str, status: int = 401) -> DomainError:
    return DomainError(message, code=code, field=field, status=status)


async def verify_request(
    pool: PgPool,
    settings: Settings,
    *,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    now: float | None = None,
    rechecked: bool = False,
) -> SignedTerminal:
    """Check a device request's signature headers (not the nonce: the caller records it in
    the transaction of the work, see ``record_nonce``). ``rechecked``: the work's own database
    call checks the till's status and key version again (the booking functions do), so the
    cached row serves however old it is."""
    sn = headers.get(signing.HEADER_TERMINAL.lower(), "")
    if not sn:
        raise _refuse("SIGNATURE_MISSING", "the request is not signed", signing.HEADER_TERMINAL)
    version_text = headers.get(signing.HEADER_KEY_VERSION.lower(), "1")
    ts_text = headers.get(signing.HEADER_TIMESTAMP.lower(), "")
    nonce = headers.get(signing.HEADER_NONCE.lower(), "")
    signature = headers.get(signing.HEADER_SIGNATURE.lower(), "")
    if not version_text.isdigit() or len(version_text) > 6:
        raise _refuse(
            "KEY_VERSION_INVALID", "key version must be a number", signing.HEADER_KEY_VERSION
        )
    if not ts_text.isdigit() or len(ts_text) > 12:
        raise _refuse(
            "TIMESTAMP_INVALID", "timestamp must be unix seconds", signing.HEADER_TIMESTAMP
        )
    if signing.NONCE_RE.fullmatch(nonce) is None:
        raise _refuse("NONCE_INVALID", "nonce must be 16-64 of [A-Za-z0-9_-]", signing.HEADER_NONCE)
    if signing.SIGNATURE_RE.fullmatch(signature) is None:
        raise _refuse(
            "SIGNATURE_INVALID",
            "signature must be 64 lower-case hex digits",
            signing.HEADER_SIGNATURE,
        )
    timestamp = int(ts_text)
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > signing.MAX_SKEW_SECONDS:
        raise _refuse(
            "TIMESTAMP_STALE",
            f"timestamp is more than {signing.MAX_SKEW_SECONDS} s from the server clock "
            f"(server time {int(clock)})",
            signing.HEADER_TIMESTAMP,
        )
    key_version = int(version_text)
    master = settings.master_key.get_secret_value()
    terminal: TerminalRow | None = None
    max_age = float("inf") if rechecked else _CACHE_SECONDS
    for fresh in (False, True):
        terminal = await _load(pool, sn, fresh=fresh, max_age=max_age)
        if terminal is None:
            raise _refuse("TERMINAL_UNKNOWN", "unknown terminal", signing.HEADER_TERMINAL)
        if key_version not in (terminal.key_version, terminal.prev_key_version):
            continue  # maybe rotated since we cached it
        key = signing.derive_terminal_key(master, sn, key_version)
        if signing.signature_matches(key, method, path, ts_text, nonce, body, signature):
            break
    else:
        assert terminal is not None
        if key_version not in (terminal.key_version, terminal.prev_key_version):
            raise _refuse(
                "KEY_VERSION_INVALID",
                "this key version is no longer valid",
                signing.HEADER_KEY_VERSION,
            )
        raise _refuse("SIGNATURE_INVALID", "the signature does not match", signing.HEADER_SIGNATURE)
    if terminal.status != "active" and rechecked:
        # the cached row may be older than the till's re-enabling
        terminal = await _load(pool, sn, fresh=True, max_age=0.0)
        if terminal is None:
            raise _refuse("TERMINAL_UNKNOWN", "unknown terminal", signing.HEADER_TERMINAL)
    if terminal.status != "active":
        raise _refuse(
            "TERMINAL_DISABLED", "this terminal is disabled", signing.HEADER_TERMINAL, 403
        )
    return SignedTerminal(terminal, key_version, nonce, timestamp, body)


async def record_nonce(conn: Conn, signed: SignedTerminal) -> None:
    """Refuse a reused nonce; also retire the previous key once the new one is in use."""
    inserted = await conn.fetchval(
        "INSERT INTO terminal_nonces(school_id, terminal_id, nonce) VALUES ($3, $1, $2) "
        "ON CONFLICT DO NOTHING RETURNING true",
        signed.id,
        signed.nonce,
        signed.terminal.school_id,
    )
    if not inserted:
        raise _refuse("NONCE_REUSED", "this nonce was already used", signing.HEADER_NONCE)
    if signed.terminal.prev_key_version is not None and signed.key_version == (
        signed.terminal.key_version
    ):
        await conn.execute(
            "UPDATE terminals SET prev_key_version = NULL WHERE id = $1 AND key_version = $2",
            signed.id,
            signed.key_version,
        )
        forget_terminal(signed.terminal.sn)


@owns_transaction
async def do_record_nonce(tx: Tx, signed: SignedTerminal) -> None:
    """Spend a device request's nonce in a transaction of its own (a request that reads, or
    whose work runs after, still cannot be replayed)."""
    await record_nonce(tx, signed)


def terminal_key_hex(settings: Settings, sn: str, key_version: int) -> str:
    return signing.derive_terminal_key(
        settings.master_key.get_secret_value(), sn, key_version
    ).hex()


_SERIAL_LOCK = 7301  # advisory lock namespace: one registration of a serial at a time


async def claim_serial(tx: Tx, sn: str) -> None:
    """A device's serial is unique across every school of the platform: its key is derived from
    the serial, and a signed request names the serial alone. The table's own key can only say
    "within a school" (scale-out rules: every key starts with school_id), so a registration
    checks the other schools too, under a transaction lock on the serial (decision 0340)."""
    await tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _SERIAL_LOCK, sn)
    if await tx.fetchval("SELECT 1 FROM terminals WHERE sn = $1 LIMIT 1", sn):
        raise Conflict(f"terminal {sn!r} is already registered", field="sn")


@owns_transaction
async def register_terminal(
    tx: Tx,
    actor: Actor,
    settings: Settings,
    school_id: int,
    *,
    sn: str,
    kind: str,
    merchant_id: int | None = None,
    outlet_id: int | None = None,
    location: str = "",
) -> dict[str, Any]:
    """Register a device; the answer carries its key once, for provisioning the device."""
    actor.require("school_admin", "settlement", school_id=school_id)
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if kind in ("pos", "shop") and merchant_id is None:
        raise ValidationFailed(f"a {kind} terminal belongs to a merchant", field="merchant_id")
    if outlet_id is not None:
        ok = await tx.fetchval(
            "SELECT 1 FROM outlets WHERE id = $1 AND school_id = $2 AND merchant_id = $3",
            outlet_id,
            school_id,
            merchant_id,
        )
        if not ok:
            raise NotFound("no such outlet of this merchant", field="outlet_id")
    await claim_serial(tx, sn)
    try:
        row = await tx.fetchrow(
            """INSERT INTO terminals(school_id, sn, kind, merchant_id, outlet_id, location)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, key_version""",
            school_id,
            sn,
            kind,
            merchant_id,
            outlet_id,
            location,
        )
        assert row is not None
        await audit.record(
            tx,
            actor,
            "terminal.register",
            school_id=school_id,
            target_type="terminal",
            target_id=row["id"],
            after={
                "sn": sn,
                "kind": kind,
                "merchant_id": merchant_id,
                "outlet_id": outlet_id,
                "location": location,
            },
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(f"terminal {sn!r} is already registered", field="sn") from err
    except asyncpg.CheckViolationError as err:
        raise ValidationFailed("sn must be 4-40 of [A-Za-z0-9_-]", field="sn") from err
    except asyncpg.ForeignKeyViolationError as err:
        raise NotFound("no such merchant in this school", field="merchant_id") from err
    return {
        "id": row["id"],
        "sn": sn,
        "kind": kind,
        "key_version": row["key_version"],
        "key": terminal_key_hex(settings, sn, row["key_version"]),
    }


async def _terminal_for_update(conn: Conn, terminal_id: int) -> dict[str, Any]:
    row = await distribution.lock_row(conn, "terminals", terminal_id)
    if row is None:
        raise NotFound("no such terminal", field="terminal_id")
    return dict(row)


@owns_transaction
async def _rotate_key(tx: Tx, actor: Actor, settings: Settings, terminal_id: int) -> dict[str, Any]:
    """A new key version; the old one stops working at once (an operator rotates because a
    key may have leaked, so it keeps no grace; the device is given the new key by hand)."""
    t = await _terminal_for_update(tx, terminal_id)
    if not actor.has("school_admin", "settlement", school_id=t["school_id"]):
        raise NotFound("no such terminal", field="terminal_id")
    new_version = t["key_version"] + 1
    await tx.execute(
        """UPDATE terminals SET key_version = $2, prev_key_version = NULL,
                  key_rotated_at = now() WHERE id = $1""",
        terminal_id,
        new_version,
    )
    await audit.record(
        tx,
        actor,
        "terminal.rotate_key",
        school_id=t["school_id"],
        target_type="terminal",
        target_id=terminal_id,
        before={"key_version": t["key_version"]},
        after={"key_version": new_version},
    )
    return {
        "id": terminal_id,
        "sn": t["sn"],
        "key_version": new_version,
        "key": terminal_key_hex(settings, t["sn"], new_version),
    }


async def rotate_key(
    conn: Conn, actor: Actor, settings: Settings, terminal_id: int
) -> dict[str, Any]:
    answer = await _rotate_key(conn, actor, settings, terminal_id)
    forget_terminal(answer["sn"])  # after commit, so a reload in between cannot cache the old row
    return answer


@owns_transaction
async def _rotate_key_by_device(
    tx: Tx, settings: Settings, signed: SignedTerminal
) -> dict[str, Any]:
    """The device asks for a new key, signing with its current one. A resend signed with the
    old key (the answer was lost) gets the same new key again, until the device has used it
    (``record_nonce`` then retires the old version and this branch can no longer be reached)."""
    await record_nonce(tx, signed)
    t = await _terminal_for_update(tx, signed.id)
    if t["prev_key_version"] is not None and signed.key_version == t["prev_key_version"]:
        return {
            "key_version": t["key_version"],
            "key": terminal_key_hex(settings, t["sn"], t["key_version"]),
        }
    if signed.key_version != t["key_version"]:
        raise _refuse(
            "KEY_VERSION_INVALID",
            "rotate with the current key version",
            signing.HEADER_KEY_VERSION,
        )
    new_version = t["key_version"] + 1
    await tx.execute(
        """UPDATE terminals SET key_version = $2, prev_key_version = $3,
                  key_rotated_at = now() WHERE id = $1""",
        signed.id,
        new_version,
        t["key_version"],
    )
    await audit.record(
        tx,
        signed.actor,
        "terminal.rotate_key",
        school_id=t["school_id"],
        target_type="terminal",
        target_id=signed.id,
        before={"key_version": t["key_version"]},
        after={"key_version": new_version},
    )
    return {"key_version": new_version, "key": terminal_key_hex(settings, t["sn"], new_version)}


async def rotate_key_by_device(
    conn: Conn, settings: Settings, signed: SignedTerminal
) -> dict[str, Any]:
    answer = await _rotate_key_by_device(conn, settings, signed)
    forget_terminal(
        signed.terminal.sn
    )  # after commit, so a reload in between cannot cache the old row
    return answer


@owns_transaction
async def _set_status(
    tx: Tx, actor: Actor, terminal_id: int, *, status: str, reason: str
) -> dict[str, Any]:
    if status not in ("active", "disabled"):
        raise ValidationFailed("status must be active or disabled", field="status")
    t = await _terminal_for_update(tx, terminal_id)
    if not actor.has("school_admin", "settlement", school_id=t["school_id"]):
        raise NotFound("no such terminal", field="terminal_id")
    await tx.execute("UPDATE terminals SET status = $2 WHERE id = $1", terminal_id, status)
    await audit.record(
        tx,
        actor,
        "terminal.status",
        school_id=t["school_id"],
        target_type="terminal",
        target_id=terminal_id,
        before={"status": t["status"]},
        after={"status": status, "reason": reason},
    )
    return {"id": terminal_id, "sn": t["sn"], "status": status}


async def set_status(
    conn: Conn, actor: Actor, terminal_id: int, *, status: str, reason: str
) -> dict[str, Any]:
    answer = await _set_status(conn, actor, terminal_id, status=status, reason=reason)
    forget_terminal(answer["sn"])  # after commit, so a reload in between cannot cache the old row
    return answer


@owns_transaction
async def heartbeat(tx: Tx, signed: SignedTerminal, info: dict[str, Any]) -> dict[str, Any]:
    """A device says it is alive; answers the server time and the blacklist version, so the
    device knows whether to fetch blacklist changes."""
    await record_nonce(tx, signed)
    row = await tx.fetchrow(
        """UPDATE terminals SET last_seen_at = now(), heartbeat = $2,
                  blacklist_version = $3
            WHERE id = $1
        RETURNING last_seen_at,
                  (SELECT version FROM blacklist_heads WHERE school_id = terminals.school_id)
                  AS head""",
        signed.id,
        info,
        info.get("blacklist_version"),
    )
    assert row is not None
    return {
        "server_time": int(row["last_seen_at"].timestamp()),
        "blacklist_version": int(row["head"] or 0),
        "next_heartbeat_seconds": OFFLINE_AFTER_SECONDS // 3,
    }


async def list_terminals(conn: Conn, actor: Actor, school_id: int) -> list[dict[str, Any]]:
    """Every terminal with online/offline (``ONLINE_SQL``)."""
    actor.require("school_admin", "settlement", school_id=school_id)
    rows = await conn.fetch(
        f"""SELECT t.id, t.sn, t.kind, t.status, t.merchant_id, m.name AS merchant, t.outlet_id,
                   o.name AS outlet, t.location, t.key_version, t.last_seen_at, t.heartbeat,
                   t.blacklist_version, {ONLINE_SQL} AS online
              FROM terminals t
              LEFT JOIN merchants m ON m.school_id = t.school_id AND m.id = t.merchant_id
              LEFT JOIN outlets o ON o.school_id = t.school_id AND o.id = t.outlet_id
             WHERE t.school_id = $1 ORDER BY t.sn""",
        school_id,
    )
    return [dict(r) for r in rows]


async def purge_nonces(pool: PgPool) -> int:
    result = await pool.execute(
        "DELETE FROM terminal_nonces WHERE seen_at < now() - make_interval(secs => $1)",
        NONCE_RETENTION_SECONDS,
    )
    return int(result.split()[-1])


def unauthorized_terminal(message: str) -> Unauthorized:
    return Unauthorized(message, code="TERMINAL_UNAUTHORIZED", field=signing.HEADER_TERMINAL)
