"""Sign-in: argon2 passwords, web sessions and API tokens, locking after failures.

Hashing runs in a small thread pool, never on the event loop: one argon2 check is tens of
milliseconds of CPU, and a sign-in flood must not stall payments. Failed sign-ins are counted
in the database *before* the password is checked (one UPDATE … RETURNING), so parallel guesses
cannot slip past the limit. Unknown names are counted the same way in ``login_throttle`` and
checked against a dummy hash: a stranger cannot tell a real account from a made-up one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from campuscard.config import Settings, get_settings
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, transaction
from campuscard.platform import audit, logs, metrics
from campuscard.platform.actors import Actor, Grant
from campuscard.platform.errors import TooManyRequests, Unauthorized, ValidationFailed

T = TypeVar("T")

_hasher: PasswordHasher | None = None
_executor: ThreadPoolExecutor | None = None
_dummy_hash: str | None = None


def hasher() -> PasswordHasher:
    """argon2id with the configured parameters; each stored hash carries its own, and a hash
    made with other parameters is replaced at the next successful sign-in."""
    global _hasher
    if _hasher is None:
        s = get_settings()
        _hasher = PasswordHasher(
            time_cost=s.argon2_time_cost,
            memory_cost=s.argon2_memory_kib,
            parallelism=s.argon2_parallelism,
        )
    return _hasher


def hashing_threads() -> int:
    configured = get_settings().password_hash_threads
    return configured if configured > 0 else max(1, (os.cpu_count() or 2) // 2)


def _yield_to_payments() -> None:
    """Hashing threads run at the lowest CPU priority (Linux sets it per thread): when the
    cores are busy, the event loop and the database come first, sign-ins wait."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class HashingBudget:
    """At most ``share`` of the wall clock spent hashing in this process, one hash at a time.

    Priority alone is not enough: a hash keeps both cores' caches and memory bus busy, and a
    payment running beside it takes a millisecond or two longer. So after a hash that took
    *d* seconds the next one starts no sooner than *d · (1/share − 1)* later: with the default
    share of 0.25 a flood leaves three quarters of the time free of hashing, whatever its size.
    A sign-in asks for room (``ensure_room``) before it counts its attempt: with
    ``max_waiting`` hashes queued it is told to come back (``HASHING_BUSY``, 429 with
    ``Retry-After``) with nothing done, so a flood cannot lock anyone out either.
    """

    def __init__(self, share: float, max_waiting: int) -> None:
        self.share = share
        self.max_waiting = max_waiting
        self.waiting = 0
        self._next_start = 0.0
        self._last_took = 0.0
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _lock_for(self, loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop, self._next_start = asyncio.Lock(), loop, 0.0
        return self._lock

    def ensure_room(self) -> None:
        if self.waiting >= self.max_waiting:
            wait = max(1, round(self.waiting * self._last_took / self.share))
            raise TooManyRequests(
                "sign-in is busy; try again in a few seconds",
                code="HASHING_BUSY",
                details={"retry_after": wait},
            )

    async def run(self, executor: ThreadPoolExecutor, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        lock = self._lock_for(loop)
        self.waiting += 1
        try:
            async with lock:
                delay = self._next_start - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                started = loop.time()
                try:
                    return await loop.run_in_executor(executor, fn, *args)
                finally:
                    took = loop.time() - started
                    self._last_took = took
                    self._next_start = loop.time() + took * (1 / self.share - 1)
        finally:
            self.waiting -= 1


_budget: HashingBudget | None = None


def hashing_budget() -> HashingBudget:
    global _budget
    if _budget is None:
        s = get_settings()
        _budget = HashingBudget(s.password_hash_cpu_share, s.password_hash_max_waiting)
    return _budget


async def off_loop(fn: Callable[..., T], *args: object) -> T:
    """Run CPU-heavy ``fn`` (argon2, scrypt) in the hashing pool, within the hashing budget:
    a flood queues, then is refused, instead of taking the cores from the payment path."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            hashing_threads(), thread_name_prefix="argon2", initializer=_yield_to_payments
        )
    return await hashing_budget().run(_executor, fn, *args)


def _check_password_rules(password: str) -> None:
    if not isinstance(password, str) or len(password) < 8:
        raise ValidationFailed(
            "password must have at least 8 characters", code="PASSWORD_TOO_SHORT", field="password"
        )


def hash_password(password: str) -> str:
    """Blocking: call ``make_password_hash`` from async code."""
    _check_password_rules(password)
    return hasher().hash(password)


def verify_password(stored: str, password: str) -> bool:
    """Blocking: call ``check_password`` from async code."""
    try:
        return hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return hasher().check_needs_rehash(stored)
    except InvalidHashError:
        return True


async def make_password_hash(password: str) -> str:
    _check_password_rules(password)
    return await off_loop(hash_password, password)


async def check_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; with no stored hash the same work is done
    against a dummy, so the answer takes as long either way."""
    global _dummy_hash
    if stored is None:
        if _dummy_hash is None:
            _dummy_hash = await off_loop(hash_password, "campuscard-dummy-password")
        await off_loop(verify_password, _dummy_hash, password)
        return False
    return await off_loop(verify_password, stored, password)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Session:
    token: str
    csrf_token: str
    expires_at: datetime
    actor: Actor


@dataclass(frozen=True)
class Account:
    """The account a sign-in names, as found (``None`` fields: no such account)."""

    user_id: int | None
    school_id: int | None
    password_hash: str | None
    is_active: bool


NO_ACCOUNT = Account(None, None, None, False)

# An attempt claims a place before the password is looked at: at most ``limit`` attempts are
# checked between two successes, however many arrive at once. A lock that has run out starts a
# fresh count. Parameters: user id (or school id, name), limit.
_CLAIM_USER = """
UPDATE users SET
    failed_logins = CASE WHEN locked_until <= $3 THEN 1 ELSE failed_logins + 1 END,
    locked_until = CASE WHEN locked_until <= $3 THEN NULL ELSE locked_until END
 WHERE id = $1
   AND (locked_until IS NULL OR locked_until <= $3)
   AND (CASE WHEN locked_until <= $3 THEN 0 ELSE failed_logins END) < $2
RETURNING failed_logins"""

_CLAIM_NAME = """
INSERT INTO login_throttle AS t(school_id, name, failures) VALUES ($1, $2, 1)
ON CONFLICT (school_id, name) DO UPDATE SET
    failures = CASE WHEN t.locked_until <= $4 THEN 1 ELSE t.failures + 1 END,
    locked_until = CASE WHEN t.locked_until <= $4 THEN NULL ELSE t.locked_until END,
    updated_at = $4
 WHERE (t.locked_until IS NULL OR t.locked_until <= $4)
   AND (CASE WHEN t.locked_until <= $4 THEN 0 ELSE t.failures END) < $3
RETURNING failures"""

# No place left: the account is locked (if it is not yet, from now: the attempts in flight may
# still clear it by succeeding). Returns the lock's end and whether this set it. Parameters:
# user id (or school id, name), the lock's end if it is not locked yet (a parameter: Citus refuses
# a function of the clock or time zone inside coalesce on a reference or distributed table).
_LOCK_USER = """
WITH old AS (SELECT locked_until FROM users WHERE id = $1 FOR UPDATE)
UPDATE users u
   SET locked_until = coalesce(old.locked_until, $2::timestamptz)
  FROM old WHERE u.id = $1
RETURNING u.locked_until, old.locked_until IS NULL AS newly"""

_LOCK_NAME = """
WITH old AS (SELECT locked_until FROM login_throttle WHERE school_id = $1 AND name = $2
             FOR UPDATE)
UPDATE login_throttle t
   SET locked_until = coalesce(old.locked_until, $3::timestamptz),
       updated_at = now()
  FROM old WHERE t.school_id = $1 AND t.name = $2
RETURNING t.locked_until, old.locked_until IS NULL AS newly"""

# A failed check that used the last place locks. Parameters: user id (or school id, name),
# limit, minutes.
_FAIL_USER = """
UPDATE users SET locked_until = now() + make_interval(mins => $3)
 WHERE id = $1 AND locked_until IS NULL AND failed_logins >= $2
RETURNING locked_until"""

_FAIL_NAME = """
UPDATE login_throttle SET locked_until = now() + make_interval(mins => $4), updated_at = now()
 WHERE school_id = $1 AND name = $2 AND locked_until IS NULL AND failures >= $3
RETURNING locked_until"""


def _locked(until: datetime) -> TooManyRequests:
    return TooManyRequests(
        "too many failed sign-ins; the account is locked until "
        f"{until.isoformat(timespec='seconds')}",
        code="ACCOUNT_LOCKED",
    )


async def check_sign_in(
    pool: PgPool,
    settings: Settings,
    account: Account,
    password: str,
    *,
    throttle: tuple[int, str],
    who: str,
    refusal: Unauthorized,
) -> int:
    """The id of ``account`` if ``password`` is its password; otherwise ``refusal``, or
    ACCOUNT_LOCKED once ``settings.login_max_failures`` attempts have failed in a row.

    Known and unknown accounts take the same steps (count, check a hash, record the
    outcome), so neither the answers nor their timing say whether the account exists.
    ``throttle`` (school id or 0, name as typed) counts the attempts at a name with no
    account."""
    limit, minutes = settings.login_max_failures, settings.login_lock_minutes
    school_key, name = throttle
    known = account.user_id is not None
    key: tuple[object, ...] = (account.user_id,) if known else (school_key, name)
    hashing_budget().ensure_room()  # before the attempt counts
    async with pool.acquire() as conn:
        # the clock is a parameter: Citus refuses now() inside a CASE of an UPDATE of users
        # (a reference table) or login_throttle, as it must evaluate it before sending
        claimed = await conn.fetchval(
            _CLAIM_USER if known else _CLAIM_NAME, *key, limit, datetime.now(UTC)
        )
        if claimed is None:
            until = datetime.now(UTC) + timedelta(minutes=minutes)
            lock = await conn.fetchrow(_LOCK_USER if known else _LOCK_NAME, *key, until)
            assert lock is not None  # the claim found the row (or the name's row exists)
            if known and lock["newly"]:
                await _audit_lock(conn, who, account, lock["locked_until"], limit)
                metrics.LOCKOUTS.inc()
            metrics.SIGN_IN_FAILURES.labels("locked").inc()
            raise _locked(lock["locked_until"])
    # no connection is held while the hash is checked: a queue of sign-ins must not drain the
    # pool the payments need
    ok = await check_password(account.password_hash, password) and account.is_active
    rehashed = None
    if ok and account.password_hash is not None and needs_rehash(account.password_hash):
        rehashed = await off_loop(hasher().hash, password)  # the parameters changed since
    async with transaction(pool) as tx:
        if not ok:
            until = await tx.fetchval(_FAIL_USER if known else _FAIL_NAME, *key, limit, minutes)
            if until is not None and known:
                await _audit_lock(tx, who, account, until, limit)
                metrics.LOCKOUTS.inc()
        else:
            assert account.user_id is not None
            assert account.password_hash is not None
            await tx.execute(
                "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1",
                account.user_id,
            )
            if rehashed is not None:
                await tx.execute(
                    "UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3",
                    account.user_id,
                    rehashed,
                    account.password_hash,
                )
            return account.user_id
    metrics.SIGN_IN_FAILURES.labels("wrong_password" if known else "unknown_user").inc()
    raise refusal


async def _audit_lock(
    conn: Conn, who: str, account: Account, until: datetime, failures: int
) -> None:
    await audit.record(
        conn,
        Actor(name=who),
        "user.locked",
        school_id=account.school_id,
        target_type="user",
        target_id=account.user_id,
        after={"locked_until": until.isoformat(), "failures": failures},
    )


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
    """Check the password; after repeated failures lock (for a made-up name too) and audit it."""
    if not username:
        raise ValidationFailed("username is required", code="FIELD_REQUIRED", field="username")
    if not password:
        raise ValidationFailed("password is required", code="FIELD_REQUIRED", field="password")
    async with pool.acquire() as conn:
        user = await conn.fetchrow(
            """SELECT u.id, u.password_hash, u.is_active, u.school_id
                 FROM users u LEFT JOIN schools s ON s.id = u.school_id
                WHERE lower(u.username) = lower($1)
                  AND (($2::text IS NULL AND u.school_id IS NULL) OR s.code = $2)""",
            username,
            school_code or None,
        )
        school_key = (
            await conn.fetchval("SELECT id FROM schools WHERE code = $1", school_code)
            if school_code
            else None
        )
    account = (
        Account(user["id"], user["school_id"], user["password_hash"], user["is_active"])
        if user is not None
        else NO_ACCOUNT
    )
    name = f"{'' if school_key else (school_code or '')}/{username.lower()}"[:200]
    user_id = await check_sign_in(
        pool,
        settings,
        account,
        password,
        throttle=(school_key or 0, name),
        who=username,
        refusal=Unauthorized("wrong username or password", code="LOGIN_FAILED"),
    )
    async with transaction(pool) as tx:
        return await _open_session(tx, settings, user_id, kind)


async def _open_session(conn: Tx, settings: Settings, user_id: int, kind: str) -> Session:
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
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            # the clock is a parameter: on Citus sessions are joined with users (a reference
            # table), and Citus refuses now() inside the CASE of such an UPDATE
            """UPDATE auth_sessions s
                  SET last_seen_at = $4,
                      expires_at = CASE WHEN s.kind = 'web' THEN $3 ELSE s.expires_at END
                 FROM users u
                WHERE s.token_hash = $1 AND s.kind = $2 AND s.revoked_at IS NULL
                  AND s.expires_at > $4 AND u.id = s.user_id AND u.is_active
            RETURNING s.user_id, s.csrf_token""",
            token_digest(token),
            kind,
            now + timedelta(minutes=settings.session_idle_minutes),
            now,
        )
        if row is None:
            raise Unauthorized("sign in again: the session has expired", code="SESSION_EXPIRED")
        actor = await load_actor(conn, row["user_id"])
    logs.bind_actor(actor.name, actor.school_id, actor.user_id)
    return actor, row["csrf_token"]


async def revoke_sessions(tx: Tx, user_id: int, *, keep: str | None = None) -> None:
    """End the user's open sessions, all but the one whose token is ``keep``."""
    await tx.execute(
        "UPDATE auth_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL "
        "AND ($2::bytea IS NULL OR token_hash <> $2)",
        user_id,
        token_digest(keep) if keep else None,
    )


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
        await make_password_hash(password),
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


async def set_locale(conn: Conn | PgPool, user_id: int, locale: str) -> None:
    """The language a user reads in (the pages' switch): their notifications' SMS is worded
    in it. Only a supported language is stored (the column refuses others)."""
    await conn.execute(
        "UPDATE users SET locale = $2 WHERE id = $1 AND locale <> $2", user_id, locale
    )
