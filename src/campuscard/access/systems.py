"""Other campus systems asking about a card: the library, computer labs, the exam system.

Each system is registered by the school's administrators and given its own API token (shown
once; only its sha256 is kept) and a rate per minute, counted in the database so every server
process shares it. A system learns who holds a card and whether it is valid now — the person's
number, name, role and class, the card's state — and nothing else (no phone, no money). A lab
also signs students in and out of a station by card."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, owns_transaction
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)

KINDS = ("library", "lab", "exam", "other")
TOKEN_PREFIX = "ccsys_"  # noqa: S105 - how a system token starts, not a secret
ADMIN_ROLES = ("school_admin",)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class NewSystem:
    id: int
    name: str
    kind: str
    per_minute: int
    token: str  # shown once


@dataclass(frozen=True)
class System:
    school_id: int
    id: int
    name: str
    kind: str


@owns_transaction
async def register_system(
    tx: Tx, actor: Actor, school_id: int, *, name: str, kind: str, per_minute: int
) -> NewSystem:
    actor.require(*ADMIN_ROLES, school_id=school_id)
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise ValidationFailed("name: 1 to 64 characters", field="name")
    if kind not in KINDS:
        raise ValidationFailed(f"kind is one of {', '.join(KINDS)}", field="kind")
    if not 1 <= per_minute <= 6000:
        raise ValidationFailed("per_minute is 1 to 6000", field="per_minute")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        system_id: int = await tx.fetchval(
            """INSERT INTO campus_systems(school_id, name, kind, token_hash, token_hint,
                                          per_minute, created_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
            school_id,
            name,
            kind,
            digest(token),
            token[-4:],
            per_minute,
            actor.name,
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict("a system of this name is already registered", field="name") from err
    await audit.record(
        tx,
        actor,
        "access.system.register",
        school_id=school_id,
        target_type="campus_system",
        target_id=system_id,
        after={"name": name, "kind": kind, "per_minute": per_minute},
    )
    return NewSystem(system_id, name, kind, per_minute, token)


@owns_transaction
async def revoke_system(tx: Tx, actor: Actor, school_id: int, system_id: int) -> None:
    """The token stops working at once (a system retired, a token leaked); revoking it
    again changes nothing."""
    actor.require(*ADMIN_ROLES, school_id=school_id)
    active = await tx.fetchval(
        "SELECT active FROM campus_systems WHERE school_id = $1 AND id = $2 FOR UPDATE",
        school_id,
        system_id,
    )
    if active is None:
        raise NotFound("no such system in this school", field="system_id")
    if not active:
        return
    await tx.execute(
        """UPDATE campus_systems SET active = false, revoked_at = now()
            WHERE school_id = $1 AND id = $2""",
        school_id,
        system_id,
    )
    await audit.record(
        tx,
        actor,
        "access.system.revoke",
        school_id=school_id,
        target_type="campus_system",
        target_id=system_id,
    )


async def list_systems(conn: Conn, actor: Actor, school_id: int) -> list[dict[str, Any]]:
    actor.require(*ADMIN_ROLES, school_id=school_id)
    rows = await conn.fetch(
        """SELECT id, name, kind, token_hint, per_minute, active, lookups, last_used_at,
                  created_by, created_at, revoked_at
             FROM campus_systems WHERE school_id = $1 ORDER BY active DESC, name""",
        school_id,
    )
    return [dict(r) for r in rows]


async def authenticate(pool: PgPool, school_id: int, token: str | None) -> System:
    """The system this token belongs to, within its rate: 401 for no or a wrong token, 429
    with Retry-After past the minute's allowance."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        raise Unauthorized("give the system's API token: Authorization: Bearer ccsys_…")
    now = datetime.now(UTC)
    window = now.replace(second=0, microsecond=0)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT id, name, kind, token_hash, per_minute FROM campus_systems
                WHERE school_id = $1 AND token_hash = $2 AND active""",
            school_id,
            digest(token),
        )
        if row is None or not hmac.compare_digest(row["token_hash"], digest(token)):
            raise Unauthorized("this API token is unknown or revoked")
        used: int = await conn.fetchval(
            """INSERT INTO campus_system_windows(school_id, system_id, window_start, used)
               VALUES ($1, $2, $3, 1)
               ON CONFLICT (school_id, system_id) DO UPDATE
                  SET used = CASE WHEN campus_system_windows.window_start = EXCLUDED.window_start
                                  THEN campus_system_windows.used + 1 ELSE 1 END,
                      window_start = EXCLUDED.window_start
               RETURNING used""",
            school_id,
            row["id"],
            window,
        )
        if used > row["per_minute"]:
            retry = 60 - now.second
            raise TooManyRequests(
                f"this system may ask {row['per_minute']} times a minute; try again in {retry} s",
                details={"retry_after": retry},
            )
        await conn.execute(
            """UPDATE campus_systems SET lookups = lookups + 1, last_used_at = $3
                WHERE school_id = $1 AND id = $2""",
            school_id,
            row["id"],
            now,
        )
    return System(school_id, row["id"], row["name"], row["kind"])


@dataclass(frozen=True)
class Identity:
    card_number: str
    card_kind: str
    card_state: str
    valid: bool
    reason: str  # why not valid: card_<state>, person_left, visit_not_started, visit_ended
    person_number: str
    name: str
    role: str  # student, staff, visitor
    class_name: str | None
    valid_until: datetime | None  # a visitor's card: the end of the visit


_LOOKUP = """SELECT c.number, c.kind, c.state, c.person_id, p.number AS person_number, p.name,
                    p.kind AS role, p.status, cl.name AS class_name,
                    v.valid_from, v.valid_until, v.state AS visit_state
               FROM cards c
               JOIN persons p ON p.school_id = c.school_id AND p.id = c.person_id
               LEFT JOIN classes cl ON cl.school_id = p.school_id AND cl.id = p.class_id
               LEFT JOIN access_visitors v ON v.school_id = c.school_id AND v.card_id = c.id
              WHERE c.school_id = $1 AND """


async def _find(conn: Conn, school_id: int, *, number: str | None, uid: str | None) -> Any:
    if number is not None:
        return await conn.fetchrow(_LOOKUP + "c.number = $2", school_id, number)
    return await conn.fetchrow(_LOOKUP + "c.uid = $2", school_id, (uid or "").upper())


def _identity(row: Any, now: datetime) -> Identity:
    reason = ""
    if row["state"] != "active":
        reason = f"card_{row['state']}"
    elif row["status"] != "enrolled":
        reason = "person_left"
    elif row["valid_from"] is not None and now < row["valid_from"]:
        reason = "visit_not_started"
    elif row["valid_until"] is not None and (
        now >= row["valid_until"] or row["visit_state"] != "active"
    ):
        reason = "visit_ended"
    return Identity(
        card_number=row["number"],
        card_kind=row["kind"],
        card_state=row["state"],
        valid=not reason,
        reason=reason,
        person_number=row["person_number"],
        name=row["name"],
        role=row["role"],
        class_name=row["class_name"],
        valid_until=row["valid_until"],
    )


async def identify(
    pool: PgPool, system: System, *, number: str | None = None, uid: str | None = None
) -> Identity:
    """Who holds this card (by its printed number or the chip's UID) and may they use it now."""
    async with pool.acquire() as conn:
        row = await _find(conn, system.school_id, number=number, uid=uid)
    if row is None:
        raise NotFound("no card with this number in this school", field="card")
    return _identity(row, datetime.now(UTC))


@dataclass(frozen=True)
class LabSession:
    id: int
    station: str
    card_number: str
    person_number: str
    name: str
    class_name: str | None
    started_at: datetime
    ended_at: datetime | None
    ended_by: str | None


@owns_transaction
async def lab_sign_in(
    tx: Tx, system: System, *, station: str, number: str | None, uid: str | None
) -> LabSession:
    """A valid card at a lab station starts a session; it ends the station's previous one
    (the next student sat down) and the student's session at another station (they moved)."""
    if system.kind != "lab":
        raise Forbidden("only a computer-lab system signs students in", code="NOT_A_LAB")
    if not 1 <= len(station) <= 64:
        raise ValidationFailed("station is 1 to 64 characters", field="station")
    row = await _find(tx, system.school_id, number=number, uid=uid)
    if row is None:
        raise NotFound("no card with this number in this school", field="card")
    who = _identity(row, datetime.now(UTC))
    if not who.valid:
        raise Conflict(f"this card may not be used now ({who.reason})", field="card")
    # the student first, then the station: two cards at one station, or one card at two
    # stations, wait for each other instead of both opening a session
    for key in (f"lab-person:{row['person_id']}", f"lab:{system.id}:{station}"):
        await tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))", key, system.school_id
        )
    await tx.execute(
        """UPDATE lab_sessions SET ended_at = now(),
                  ended_by = CASE WHEN person_id = $3 AND station <> $4 THEN 'moved'
                                  ELSE 'next_card' END
            WHERE school_id = $1 AND ended_at IS NULL
              AND ((system_id = $2 AND station = $4) OR person_id = $3)""",
        system.school_id,
        system.id,
        row["person_id"],
        station,
    )
    session = await tx.fetchrow(
        """INSERT INTO lab_sessions(school_id, system_id, station, person_id, card_number)
           VALUES ($1, $2, $3, $4, $5) RETURNING id, started_at""",
        system.school_id,
        system.id,
        station,
        row["person_id"],
        row["number"],
    )
    assert session is not None
    return LabSession(
        session["id"],
        station,
        row["number"],
        row["person_number"],
        row["name"],
        row["class_name"],
        session["started_at"],
        None,
        None,
    )


@owns_transaction
async def lab_sign_out(tx: Tx, system: System, session_id: int) -> LabSession:
    """The student signs out (their card again, or the lab's software on log-off); signing
    out a session already ended answers it as it ended."""
    row = await tx.fetchrow(
        """UPDATE lab_sessions SET ended_at = coalesce(ended_at, now()),
                  ended_by = coalesce(ended_by, 'card')
            WHERE school_id = $1 AND system_id = $2 AND id = $3
        RETURNING id, station, card_number, person_id, started_at, ended_at, ended_by""",
        system.school_id,
        system.id,
        session_id,
    )
    if row is None:
        raise NotFound("no such session of this lab", field="session_id")
    person = await tx.fetchrow(
        """SELECT p.number, p.name, c.name AS class_name FROM persons p
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
            WHERE p.school_id = $1 AND p.id = $2""",
        system.school_id,
        row["person_id"],
    )
    assert person is not None
    return LabSession(
        row["id"],
        row["station"],
        row["card_number"],
        person["number"],
        person["name"],
        person["class_name"],
        row["started_at"],
        row["ended_at"],
        row["ended_by"],
    )


async def open_lab_sessions(pool: PgPool, system: System) -> list[LabSession]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT s.id, s.station, s.card_number, p.number AS person_number, p.name,
                      c.name AS class_name, s.started_at, s.ended_at, s.ended_by
                 FROM lab_sessions s
                 JOIN persons p ON p.school_id = s.school_id AND p.id = s.person_id
                 LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
                WHERE s.school_id = $1 AND s.system_id = $2 AND s.ended_at IS NULL
                ORDER BY s.station""",
            system.school_id,
            system.id,
        )
    return [LabSession(**dict(r)) for r in rows]
