"""Sign-in: argon2 passwords, web sessions and API tokens, slowing and locking after failures."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import transaction
from campuscard.platform import audit, logs, metrics
from campuscard.platform.actors import Actor, Grant
from campuscard.platform.errors import TooManyRequests, Unauthorized, ValidationFailed

_hasher = PasswordHasher()
# checked against when the user does not exist, so timing does not reveal usernames
_DUMMY_HASH = _hasher.hash("campuscard-dummy-password")


def hash_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < 8:
        raise ValidationFailed(
            "password must have at least 8 characters", code="PASSWORD_TOO_SHORT", field="password"
        )
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Session:
    token: str
    csrf_token: str
    expires_at: datetime
    actor: Actor


async def load_actor(conn: Conn, user_id: int) -> Actor:
    user = await conn.fetchrow(
        "SELECT id, username, school_id, person_id, locale FROM users WHERE id = $1", user_id
    )
    if user is None:
        raise Unauthorized("user no longer exists", code="SESSION_INVALID")
    # a merchant role counts only while its merchant is approved (or suspended: its staff still
    # see their takings); before that the user is an applicant (actors.MERCHANT_APPLICANT)
    grants = await conn.fetch(
        """SELECT CASE WHEN m.status IS NULL OR m.status IN ('approved', 'suspended') THEN r.role
                       ELSE 'merchant_applicant' END AS role,
                  r.school_id, r.merchant_id
             FROM user_roles r LEFT JOIN merchants m ON m.id = r.merchant_id
            WHERE r.user_id = $1""",
        user_id,
    )
    return Actor(
        name=user["username"],
        user_id=user["id"],
        school_id=user["school_id"],
        person_id=user["person_id"],
        locale=user["locale"],
        grants=frozenset(Grant(g["role"], g["school_id"], g["merchant_id"]) for g in grants),
    )


async def login(
    pool: PgPool,
    settings: Settings,
    *,
    username: str,
    password: str,
    school_code: str | None,
    kind: str,
) -> Session:
    """Check the password; after repeated failures answer slower, then lock and audit it."""
    if not username:
        raise ValidationFailed("username is required", code="FIELD_REQUIRED", field="username")
    if not password:
        raise ValidationFailed("password is required", code="FIELD_REQUIRED", field="password")
    async with pool.acquire() as conn:
        user = await conn.fetchrow(
            """SELECT u.id, u.password_hash, u.failed_logins, u.locked_until, u.is_active,
                      u.school_id
                 FROM users u LEFT JOIN schools s ON s.id = u.school_id
                WHERE lower(u.username) = lower($1)
                  AND (($2::text IS NULL AND u.school_id IS NULL) OR s.code = $2)""",
            username,
            school_code or None,
        )
    now = datetime.now(UTC)
    if user is None:
        verify_password(_DUMMY_HASH, password)
        metrics.SIGN_IN_FAILURES.labels("unknown_user").inc()
        raise Unauthorized("wrong username or password", code="LOGIN_FAILED")
    if user["locked_until"] is not None and user["locked_until"] > now:
        metrics.SIGN_IN_FAILURES.labels("locked").inc()
        raise TooManyRequests(
            "too many failed sign-ins; the account is locked until "
            f"{user['locked_until'].isoformat(timespec='seconds')}",
            code="ACCOUNT_LOCKED",
        )
    # slow down guessing: each recent failure adds half a second, up to 3 s
    if user["failed_logins"]:
        await asyncio.sleep(min(0.5 * user["failed_logins"], 3.0))
    ok = user["is_active"] and verify_password(user["password_hash"], password)
    async with transaction(pool) as tx:
        if not ok:
            failures = await tx.fetchval(
                "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 "
                "RETURNING failed_logins",
                user["id"],
            )
            if failures >= settings.login_max_failures:
                until = now + timedelta(minutes=settings.login_lock_minutes)
                await tx.execute(
                    "UPDATE users SET locked_until = $2, failed_logins = 0 WHERE id = $1",
                    user["id"],
                    until,
                )
                await audit.record(
                    tx,
                    Actor(name=username),
                    "user.locked",
                    school_id=user["school_id"],
                    target_type="user",
                    target_id=user["id"],
                    after={"locked_until": until.isoformat(), "failures": failures},
                )
                metrics.LOCKOUTS.inc()
        else:
            await tx.execute(
                "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1", user["id"]
            )
            return await _open_session(tx, settings, user["id"], kind)
    metrics.SIGN_IN_FAILURES.labels("wrong_password").inc()
    raise Unauthorized("wrong username or password", code="LOGIN_FAILED")


async def _open_session(conn: Conn, settings: Settings, user_id: int, kind: str) -> Session:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    life = (
        timedelta(minutes=settings.session_idle_minutes)
        if kind == "web"
        else timedelta(hours=settings.api_token_hours)
    )
    expires = datetime.now(UTC) + life
    await conn.execute(
        """INSERT INTO auth_sessions(token_hash, user_id, kind, csrf_token, expires_at)
           VALUES ($1, $2, $3, $4, $5)""",
        token_digest(token),
        user_id,
        kind,
        csrf,
        expires,
    )
    return Session(token, csrf, expires, await load_actor(conn, user_id))


async def resolve_session(
    pool: PgPool, settings: Settings, token: str, kind: str
) -> tuple[Actor, str]:
    """The actor behind a token; web sessions slide forward on use (idle timeout)."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """UPDATE auth_sessions s
                  SET last_seen_at = now(),
                      expires_at = CASE WHEN s.kind = 'web'
                                        THEN now() + make_interval(mins => $3)
                                        ELSE s.expires_at END
                 FROM users u
                WHERE s.token_hash = $1 AND s.kind = $2 AND s.revoked_at IS NULL
                  AND s.expires_at > now() AND u.id = s.user_id AND u.is_active
            RETURNING s.user_id, s.csrf_token""",
            token_digest(token),
            kind,
            settings.session_idle_minutes,
        )
        if row is None:
            raise Unauthorized("sign in again: the session has expired", code="SESSION_EXPIRED")
        actor = await load_actor(conn, row["user_id"])
    logs.bind_actor(actor.name, actor.school_id, actor.user_id)
    return actor, row["csrf_token"]


async def logout(pool: PgPool, token: str) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE auth_sessions SET revoked_at = now() "
            "WHERE token_hash = $1 AND revoked_at IS NULL",
            token_digest(token),
        )


async def create_user(
    conn: Conn,
    *,
    username: str,
    password: str,
    school_id: int | None,
    roles: list[tuple[str, int | None, int | None]],
    display_name: str = "",
    person_id: int | None = None,
    phone: str | None = None,
) -> int:
    user_id: int = await conn.fetchval(
        """INSERT INTO users(school_id, username, display_name, password_hash, person_id, phone)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        school_id,
        username,
        display_name,
        hash_password(password),
        person_id,
        phone,
    )
    for role, role_school, merchant_id in roles:
        await conn.execute(
            "INSERT INTO user_roles(user_id, role, school_id, merchant_id) VALUES ($1, $2, $3, $4)",
            user_id,
            role,
            role_school,
            merchant_id,
        )
    return user_id
