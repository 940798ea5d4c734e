"""Payment codes: binding a phone, minting codes, and checking a scanned code (either scheme).

The two schemes sit behind one interface (``PaycodeScheme``): ``check_code`` parses the digits,
picks the scheme by the first digit and returns a ``VerifiedCode`` naming the payer;
``do_use_code`` then records the code as used (the database refuses a second use) and returns
the one-time credential reference the payment books against. Both run inside the caller's
transaction, so a payment and the use of its code commit together or not at all (a payment
the student confirms on the phone is checked this way).

A till's scan takes the short road (``read_scanned``): Python checks what only it can — the
digits and a phone's HMAC, with the binding's secret derived from the master key — and
``cc_pay_code`` checks the rest and books in the same call (payments/code_payments.py). A phone
bound since decision 0401 (scheme 6) has a secret derived from what its codes carry, so its code
is checked before anything is read; a phone bound before (scheme 7) has a salted secret, and its
binding is read (once per process) for the salt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import secrets
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg

from campuscard.config import Settings
from campuscard.db import distribution
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, owns_transaction
from campuscard.payments import batching, code_rules
from campuscard.platform import audit, i18n, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    TooManyRequests,
    ValidationFailed,
)

# card states that stop every way of paying from the account (挂失 / 冻结)
BLOCKING_CARD_STATES = ("lost", "frozen")
# codes that do not check out, per token: this many within the window lock the token a while
# (cc_pay_code counts a till's wrong codes with the same two numbers)
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class BoundDevice:
    id: int
    token: str
    secret: bytes
    step_seconds: int
    label: str
    bound_at: datetime
    revoked_device_id: int | None
    # the first digit of the phone's codes (code_rules.SCHEME_DEVICE_KEYED for every new binding)
    scheme: str = code_rules.SCHEME_DEVICE_KEYED

    def view(self) -> dict[str, Any]:
        """What the phone keeps (the secret is shown this once, then only derivable)."""
        return {
            "device_id": self.id,
            "token": self.token,
            "secret": self.secret.hex(),
            "scheme": self.scheme,
            "step_seconds": self.step_seconds,
            "label": self.label,
            "bound_at": self.bound_at.isoformat(),
            "server_time": time.time(),
            "revoked_device_id": self.revoked_device_id,
        }


@dataclass(frozen=True)
class MintedCode:
    id: int
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class VerifiedCode:
    """A scanned code that checked out: who pays, and which one-time credential it was."""

    scheme: str  # "device" | "minted"
    school_id: int
    person_id: int
    device_id: int | None = None
    step: int | None = None
    counter: int | None = None
    minted_id: int | None = None


def _master(settings: Settings) -> bytes:
    return settings.master_key.get_secret_value().encode()


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# Refusals of a scanned code, by name (cc_pay_code answers with these names): the error class,
# the code the till reads (when it is not the name), the words, and the status when the class
# does not give it.
_REFUSALS: dict[str, tuple[type[DomainError], str | None, str, int | None]] = {
    "PAYCODE_LOCKED": (
        TooManyRequests,
        None,
        "too many wrong codes for this account lately: wait a few minutes, then show a fresh code",
        None,
    ),
    "PAYCODE_UNKNOWN": (DomainError, None, "this payment code is not recognised here", 404),
    "PAYCODE_DEVICE_REVOKED": (
        DomainError,
        None,
        "this phone was unbound: its payment codes no longer work",
        403,
    ),
    "PAYCODE_EXPIRED": (
        DomainError,
        None,
        "the payment code has expired (or the phone's clock is wrong): refresh it",
        422,
    ),
    "PAYCODE_REPLACED": (
        DomainError,
        "PAYCODE_EXPIRED",
        "a newer code replaced this one: show the newest code",
        422,
    ),
    "PAYCODE_MINTED_EXPIRED": (
        DomainError,
        "PAYCODE_EXPIRED",
        "the payment code has expired: get a new one",
        422,
    ),
    "PAYCODE_INVALID": (DomainError, None, "the payment code does not check out", 422),
    "PAYCODE_USED": (
        DomainError,
        None,
        "this payment code was already used: show a fresh one",
        409,
    ),
    "ACCOUNT_UNKNOWN": (NotFound, "NOT_FOUND", "no such account in this school", None),
    "ACCOUNT_FROZEN": (Forbidden, None, "the account is frozen", None),
    "ACCOUNT_CLOSED": (Forbidden, None, "the account is not open for payments", None),
    "CARD_LOST": (
        Forbidden,
        None,
        "the card was reported lost: the account is blocked until it is unblocked or replaced",
        None,
    ),
    "CARD_FROZEN": (Forbidden, None, "the card is frozen", None),
}


def refusal(name: str, field: str = "code") -> DomainError:
    """The refusal ``name`` (a key of ``_REFUSALS``) as the till and the phone are told it."""
    cls, code, message, status = _REFUSALS[name]
    return cls(message, code=code or name, field=field, status=status)


async def check_payer(
    conn: Conn,
    school_id: int,
    person_id: int,
    field: str = "code",
    *,
    credential: str | None = None,
) -> None:
    """Refuse when the account may not pay: frozen/closed, person left, card lost or frozen;
    with ``credential`` (a scanned code's), first refuse a code already used (same query)."""
    row = await conn.fetchrow(
        """SELECT p.school_id, p.account_status, p.status,
                  (SELECT c.state FROM cards c
                    WHERE c.school_id = $4 AND c.person_id = p.id
                      AND c.state = ANY($2::text[]) LIMIT 1) AS card_block,
                  EXISTS (SELECT 1 FROM paycode_uses u
                           WHERE u.school_id = $4 AND u.credential = $3) AS used
             FROM persons p WHERE p.school_id = $4 AND p.id = $1""",
        person_id,
        list(BLOCKING_CARD_STATES),
        credential,
        school_id,
    )
    if row is not None and row["used"]:
        raise used_error()
    if row is None or row["school_id"] != school_id:
        raise refusal("ACCOUNT_UNKNOWN", field)
    if row["account_status"] == "frozen":
        raise refusal("ACCOUNT_FROZEN", field)
    if row["account_status"] != "active" or row["status"] != "enrolled":
        raise refusal("ACCOUNT_CLOSED", field)
    if row["card_block"] == "lost":
        raise refusal("CARD_LOST", field)
    if row["card_block"] == "frozen":
        raise refusal("CARD_FROZEN", field)


# ---- binding a phone ---------------------------------------------------------------------


async def _fresh_token(conn: Conn, table: str) -> str:
    # 10^8 tokens; a collision (astronomically rare while tables are small) just draws again
    for _ in range(20):
        token = f"{secrets.randbelow(10**code_rules.TOKEN_DIGITS):0{code_rules.TOKEN_DIGITS}d}"
        taken = await conn.fetchval(f"SELECT 1 FROM {table} WHERE token = $1", token)
        if not taken:
            return token
    raise DomainError("could not allocate a code token; try again", code="TOKEN_EXHAUSTED")


def require_cardholder(actor: Actor) -> int:
    if actor.person_id is None:
        raise Forbidden(
            "only a cardholder signed in as themselves can do this", code="CARDHOLDER_REQUIRED"
        )
    return actor.person_id


@owns_transaction
async def do_bind_device(
    tx: Tx, settings: Settings, actor: Actor, *, label: str = ""
) -> BoundDevice:
    """Bind the signed-in cardholder's phone; the previous phone (if any) stops working."""
    person_id = require_cardholder(actor)
    label = label.strip()
    if len(label) > 64:
        raise ValidationFailed("label must be at most 64 characters", field="label")
    # lock the person: two binds at once end with exactly one active phone
    person = await tx.fetchrow(
        "SELECT school_id, account_status, status FROM persons "
        "WHERE school_id = $1 AND id = $2 FOR UPDATE",
        actor.school_id,
        person_id,
    )
    if person is None:
        raise NotFound("your account was not found", field="person")
    await check_payer(tx, person["school_id"], person_id, field="person")
    old = await tx.fetchrow(
        """UPDATE paycode_devices
              SET status = 'revoked', revoked_at = now(), revoked_by = $2,
                  revoked_reason = 'another phone was bound'
            WHERE school_id = $3 AND person_id = $1 AND status = 'active' RETURNING id, label""",
        person_id,
        actor.user_id,
        person["school_id"],
    )
    token = await _fresh_token(tx, "paycode_devices")
    # no salt: the secret is keyed by the token (scheme 6, decision 0401)
    row = await tx.fetchrow(
        """INSERT INTO paycode_devices(school_id, person_id, bound_by, token, step_seconds, label)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, bound_at""",
        person["school_id"],
        person_id,
        actor.user_id,
        token,
        settings.paycode_step_seconds,
        label,
    )
    assert row is not None
    await audit.record(
        tx,
        actor,
        "paycode.device.bind",
        school_id=person["school_id"],
        target_type="paycode_device",
        target_id=row["id"],
        before={"device_id": old["id"], "label": old["label"]} if old else None,
        after={"device_id": row["id"], "label": label, "person_id": person_id},
    )
    phone = label or i18n.message("notice.paycode.new_phone")
    await notifications.notify(
        tx,
        school_id=person["school_id"],
        kind="paycode.device_bound",
        person_id=person_id,
        title=i18n.message("notice.paycode_bound.title"),
        body=i18n.message("notice.paycode_bound.replaced", phone=phone)
        if old
        else i18n.message("notice.paycode_bound.body", phone=phone),
        data={"device_id": row["id"]},
    )
    return BoundDevice(
        id=row["id"],
        token=token,
        secret=code_rules.derive_keyed_secret(
            _master(settings), person["school_id"], token, settings.paycode_step_seconds
        ),
        step_seconds=settings.paycode_step_seconds,
        label=label,
        bound_at=row["bound_at"],
        revoked_device_id=old["id"] if old else None,
    )


@owns_transaction
async def do_unbind_device(
    tx: Tx, actor: Actor, device_id: int, *, reason: str = ""
) -> dict[str, Any]:
    """Revoke a bound phone: by its holder, or by the card center of the school."""
    row = await distribution.lock_row(
        tx, "paycode_devices", device_id, "id, school_id, person_id, status, label"
    )
    if row is None or not (
        actor.is_platform_admin
        or actor.person_id == row["person_id"]
        or row["school_id"] in actor.schools()
    ):
        raise NotFound("no such bound phone", field="device_id")
    holder = actor.person_id == row["person_id"]
    if not holder:
        actor.require("card_center", school_id=row["school_id"])
    if row["status"] == "revoked":
        raise Conflict(
            "this phone is already unbound", code="DEVICE_ALREADY_UNBOUND", field="device_id"
        )
    why = reason.strip() or ("unbound by the holder" if holder else "unbound by an operator")
    await tx.execute(
        """UPDATE paycode_devices SET status = 'revoked', revoked_at = now(),
                  revoked_by = $2, revoked_reason = $3 WHERE id = $1""",
        device_id,
        actor.user_id,
        why[:200],
    )
    await audit.record(
        tx,
        actor,
        "paycode.device.unbind",
        school_id=row["school_id"],
        target_type="paycode_device",
        target_id=device_id,
        before={"status": "active"},
        after={"status": "revoked", "reason": why[:200]},
    )
    await notifications.notify(
        tx,
        school_id=row["school_id"],
        kind="paycode.device_unbound",
        person_id=row["person_id"],
        title=i18n.message("notice.paycode_unbound.title"),
        body=i18n.message(
            "notice.paycode_unbound.body",
            phone=row["label"] or i18n.message("notice.paycode.the_phone"),
            # a typed reason as typed; else who did it, in the reader's language
            why=reason.strip()[:60]
            or i18n.message(f"notice.paycode_unbound.by_{'holder' if holder else 'operator'}"),
        ),
        data={"device_id": device_id},
    )
    return {"device_id": device_id, "status": "revoked", "reason": why[:200]}


async def list_devices(conn: Conn, actor: Actor, person_id: int) -> list[dict[str, Any]]:
    """The phones bound (now and before) to an account: its holder or an operator sees them."""
    school_id = await conn.fetchval("SELECT school_id FROM persons WHERE id = $1", person_id)
    if school_id is None or not (
        actor.person_id == person_id or actor.is_platform_admin or school_id in actor.schools()
    ):
        raise NotFound("no such account", field="person_id")
    if actor.person_id != person_id:
        actor.require("card_center", school_id=school_id)
    # a phone's last use is its latest code's (a payment writes its use, not the phone's row;
    # last_used_at holds what was written before that)
    rows = await conn.fetch(
        """SELECT d.id, d.label, d.status, d.step_seconds, d.bound_at,
                  coalesce((SELECT u.used_at FROM paycode_uses u
                             WHERE u.school_id = d.school_id AND u.device_id = d.id
                             ORDER BY u.step DESC, u.counter DESC LIMIT 1),
                           d.last_used_at) AS last_used_at,
                  d.revoked_at, d.revoked_reason
             FROM paycode_devices d
            WHERE d.school_id = $2 AND d.person_id = $1 ORDER BY d.id DESC LIMIT 50""",
        person_id,
        school_id,
    )
    return [dict(r) for r in rows]


# ---- server-minted codes (seed 000) --------------------------------------------------------


def _verification_hash(settings: Settings, token: str, verification: str) -> bytes:
    message = f"cc-paycode-minted:v1:{token}:{verification}".encode()
    return hmac.new(_master(settings), message, hashlib.sha256).digest()


@owns_transaction
async def do_mint_code(
    tx: Tx, settings: Settings, actor: Actor, *, now: float | None = None
) -> MintedCode:
    """Mint a one-time code for a phone that cannot compute one: a random verification code is
    registered in the back office (hashed); any earlier unused minted code is cancelled."""
    person_id = require_cardholder(actor)
    now = time.time() if now is None else now
    school_id = await tx.fetchval(
        "SELECT school_id FROM persons WHERE school_id = $1 AND id = $2 FOR UPDATE",
        actor.school_id,
        person_id,
    )
    if school_id is None:
        raise NotFound("your account was not found", field="person")
    await check_payer(tx, school_id, person_id, field="person")
    await tx.execute(
        """UPDATE paycode_minted SET cancelled_at = $2
            WHERE person_id = $1 AND used_at IS NULL AND cancelled_at IS NULL""",
        person_id,
        _utc(now),
    )
    token = await _fresh_token(tx, "paycode_minted")
    verification = f"{secrets.randbelow(10**code_rules.PAYLOAD_DIGITS):010d}"
    expires_at = _utc(now + settings.paycode_minted_ttl_seconds)
    minted_id: int = await tx.fetchval(
        """INSERT INTO paycode_minted(school_id, person_id, token, verification_hash,
                                      minted_by, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
        school_id,
        person_id,
        token,
        _verification_hash(settings, token, verification),
        actor.user_id,
        _utc(now),
        expires_at,
    )
    return MintedCode(minted_id, code_rules.minted(token, verification), expires_at)


# ---- checking a scanned code: one interface, two schemes ------------------------------------


class PaycodeScheme(Protocol):
    name: str

    async def check(
        self,
        conn: Conn,
        settings: Settings,
        school_id: int,
        parsed: code_rules.ParsedCode,
        now: float,
    ) -> VerifiedCode: ...


class DeviceScheme:
    """Schemes 6 and 7: computed on the phone from its secret and the clock (TOTP-like)."""

    name = "device"

    async def check(
        self,
        conn: Conn,
        settings: Settings,
        school_id: int,
        parsed: code_rules.ParsedCode,
        now: float,
    ) -> VerifiedCode:
        device = await conn.fetchrow(
            """SELECT id, school_id, person_id, salt, step_seconds, status
                 FROM paycode_devices WHERE token = $1""",
            parsed.token,
        )
        if device is None or device["school_id"] != school_id:
            raise refusal("PAYCODE_UNKNOWN")
        if device["status"] != "active":
            raise refusal("PAYCODE_DEVICE_REVOKED")
        now_step = code_rules.time_step(now, device["step_seconds"])
        if not code_rules.candidate_steps(parsed.step_low, now_step):
            raise refusal("PAYCODE_EXPIRED")
        secret = code_rules.binding_secret(
            _master(settings),
            school_id,
            device["id"],
            parsed.token,
            None if device["salt"] is None else bytes(device["salt"]),
            device["step_seconds"],
        )
        step = code_rules.verify_device_code(secret, parsed, now_step)
        if step is None:
            raise refusal("PAYCODE_INVALID")
        return VerifiedCode(
            scheme=self.name,
            school_id=school_id,
            person_id=device["person_id"],
            device_id=device["id"],
            step=step,
            counter=parsed.counter,
        )


class MintedScheme:
    """Scheme 8: minted by the server with a random verification code (seed 000)."""

    name = "minted"

    async def check(
        self,
        conn: Conn,
        settings: Settings,
        school_id: int,
        parsed: code_rules.ParsedCode,
        now: float,
    ) -> VerifiedCode:
        row = await conn.fetchrow(
            """SELECT id, school_id, person_id, verification_hash, expires_at, used_at,
                      cancelled_at FROM paycode_minted WHERE token = $1""",
            parsed.token,
        )
        if row is None or row["school_id"] != school_id:
            raise refusal("PAYCODE_UNKNOWN")
        expected = _verification_hash(settings, parsed.token, parsed.payload)
        if not hmac.compare_digest(expected, row["verification_hash"]):
            raise refusal("PAYCODE_INVALID")
        if row["cancelled_at"] is not None:
            raise refusal("PAYCODE_REPLACED")
        if row["expires_at"] <= _utc(now):
            raise refusal("PAYCODE_MINTED_EXPIRED")
        return VerifiedCode(
            scheme=self.name,
            school_id=school_id,
            person_id=row["person_id"],
            minted_id=row["id"],
        )


SCHEMES: dict[str, PaycodeScheme] = {
    code_rules.SCHEME_DEVICE_KEYED: DeviceScheme(),
    code_rules.SCHEME_DEVICE: DeviceScheme(),
    code_rules.SCHEME_MINTED: MintedScheme(),
}


def credential_for(verified: VerifiedCode) -> str:
    """The one-time credential a payment books against: the same code always gives the same
    reference, so the payment engine's own single-use record agrees with ours."""
    if verified.scheme == "device":
        return f"paycode:d:{verified.device_id}:{verified.step}:{verified.counter}"
    return f"paycode:m:{verified.minted_id}"


async def check_not_throttled(conn: Conn, school_id: int, token: str) -> None:
    """Refuse a token that failed too often lately (someone guessing the HMAC digits). A till's
    scan is counted and checked in ``cc_pay_code``, with the same limits."""
    locked = await conn.fetchval(
        "SELECT 1 FROM paycode_throttle WHERE school_id = $1 AND token = $2 "
        "AND attempts >= $3 AND window_start > now() - $4::interval",
        school_id,
        token,
        MAX_FAILURES,
        FAILURE_WINDOW,
    )
    if locked:
        raise refusal("PAYCODE_LOCKED")


# ---- a code scanned at a till: what Python checks before the one call that books ----------


@dataclass(frozen=True)
class _Binding:
    """What never changes about a bound phone (its token is never given to another binding)."""

    id: int
    person_id: int
    salt: bytes | None  # none: keyed by the token (scheme 6)
    step_seconds: int


# bound phones this process has seen, by (school, token): a phone's next payment needs no lookup
_BINDINGS: dict[tuple[int, str], _Binding] = {}
BINDINGS_KEPT = 50_000
_BINDINGS_SQL = (
    "SELECT token, id, person_id, salt, step_seconds FROM paycode_devices "
    "WHERE school_id = $1 AND token = ANY($2::text[])"
)


class _BindingReads:
    """The phones' bindings this process reads, gathered: a lookup that finds one under way
    waits, and when it ends everything waiting of one school goes in the next query (one round
    trip for many phones' first payments at a busy till; a lone lookup waits for nothing), as
    the group commit gathers bookings (payments/batching.py)."""

    def __init__(self) -> None:
        self.busy = False
        self.waiting: list[tuple[PgPool, int, str, asyncio.Future[_Binding | None]]] = []

    async def read(self, pool: PgPool, school_id: int, token: str) -> _Binding | None:
        if self.busy:
            future: asyncio.Future[_Binding | None] = asyncio.get_running_loop().create_future()
            self.waiting.append((pool, school_id, token, future))
            return await future
        self.busy = True
        try:
            return (await self._query(pool, school_id, [token])).get(token)
        finally:
            self._next()

    async def _query(self, pool: PgPool, school_id: int, tokens: list[str]) -> dict[str, _Binding]:
        async with pool.acquire() as conn:
            rows = await conn.fetch(_BINDINGS_SQL, school_id, tokens)
        found = {}
        for row in rows:
            if len(_BINDINGS) >= BINDINGS_KEPT:
                del _BINDINGS[next(iter(_BINDINGS))]
            found[row["token"]] = _BINDINGS[(school_id, row["token"])] = _Binding(
                row["id"],
                row["person_id"],
                None if row["salt"] is None else bytes(row["salt"]),
                row["step_seconds"],
            )
        return found

    def _next(self) -> None:
        """Start the next query for the waiting lookups of the first one's pool and school."""
        if not self.waiting:
            self.busy = False
            return
        pool, school_id = self.waiting[0][0], self.waiting[0][1]
        batch = [w for w in self.waiting if w[0] is pool and w[1] == school_id]
        self.waiting = [w for w in self.waiting if not (w[0] is pool and w[1] == school_id)]
        task = asyncio.get_running_loop().create_task(self._run(pool, school_id, batch))
        _READ_TASKS.add(task)
        task.add_done_callback(_READ_TASKS.discard)

    async def _run(
        self,
        pool: PgPool,
        school_id: int,
        batch: list[tuple[PgPool, int, str, asyncio.Future[_Binding | None]]],
    ) -> None:
        try:
            found = await self._query(pool, school_id, sorted({w[2] for w in batch}))
        except BaseException as err:
            batching.fail_waiters([w[3] for w in batch], err)
            if not isinstance(err, Exception):
                raise
        else:
            for _, _, token, future in batch:
                if not future.done():
                    future.set_result(found.get(token))
        finally:
            self._next()


# one per event loop (a process serves on one; tests run one per test)
_READS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _BindingReads] = (
    weakref.WeakKeyDictionary()
)
_READ_TASKS: set[asyncio.Task[None]] = set()


async def _binding(pool: PgPool, school_id: int, token: str, *, fresh: bool) -> _Binding | None:
    found = None if fresh else _BINDINGS.get((school_id, token))
    if found is None:
        reads = _READS.setdefault(asyncio.get_running_loop(), _BindingReads())
        found = await reads.read(pool, school_id, token)
    return found


@dataclass(frozen=True)
class ScannedCode:
    """A scanned code as far as Python checks it: the digits, and for a phone's code its clock
    window and HMAC (the binding's secret is derived here, never in the database). The rest —
    throttle, binding status, minted registration, payer, single use — is ``cc_pay_code``'s.
    ``error`` is Python's refusal, answered unless the client id's earlier answer or a locked
    token comes first (``verdict`` names it to the database). A scheme-6 code that checked out
    before its binding was read has no ``device_id`` or ``person_id``: the database finds them
    by the token."""

    text: str
    scheme: str | None = None
    token: str | None = None
    device_id: int | None = None
    person_id: int | None = None
    step: int | None = None
    counter: int | None = None
    minted_hash: str | None = None
    error: DomainError | None = None
    verdict: str | None = None


async def read_scanned(
    pool: PgPool, settings: Settings, *, school_id: int, code: object, now: float
) -> ScannedCode:
    """What Python can tell of a scanned ``code`` (``ScannedCode``); it refuses nothing itself.
    A scheme-6 code is checked with the secret its token and the platform's step length give,
    before anything is read; any other phone's code (and a scheme-6 code that does not check out
    that way: a binding of another step length, an old code, a guess) with its binding's, read
    once per process (``_BINDINGS``) and again before a code that does not check out is taken
    for a guess."""
    text = code.strip() if isinstance(code, str) else ""
    try:
        parsed = code_rules.parse(code)
    except DomainError as err:
        return ScannedCode(text, error=err, verdict="PAYCODE_MALFORMED")
    if parsed.scheme == code_rules.SCHEME_MINTED:
        digest = _verification_hash(settings, parsed.token, parsed.payload)
        return ScannedCode(text, "minted", parsed.token, minted_hash=digest.hex())
    scanned = ScannedCode(text, "device", parsed.token)
    if parsed.scheme == code_rules.SCHEME_DEVICE_KEYED:
        step_seconds = settings.paycode_step_seconds
        secret = code_rules.derive_keyed_secret(
            _master(settings), school_id, parsed.token, step_seconds
        )
        step = code_rules.verify_device_code(
            secret, parsed, code_rules.time_step(now, step_seconds)
        )
        if step is not None:
            return dataclasses.replace(scanned, step=step, counter=parsed.counter)
    for fresh in (False, True):
        binding = await _binding(pool, school_id, parsed.token, fresh=fresh)
        if binding is None:
            return _with_verdict(scanned, "PAYCODE_UNKNOWN")
        now_step = code_rules.time_step(now, binding.step_seconds)
        if not code_rules.candidate_steps(parsed.step_low, now_step):
            return _with_verdict(scanned, "PAYCODE_EXPIRED")
        secret = code_rules.binding_secret(
            _master(settings),
            school_id,
            binding.id,
            parsed.token,
            binding.salt,
            binding.step_seconds,
        )
        step = code_rules.verify_device_code(secret, parsed, now_step)
        if step is not None:
            return dataclasses.replace(
                scanned,
                device_id=binding.id,
                person_id=binding.person_id,
                step=step,
                counter=parsed.counter,
            )
    return _with_verdict(scanned, "PAYCODE_INVALID")


def _with_verdict(scanned: ScannedCode, name: str) -> ScannedCode:
    return dataclasses.replace(scanned, error=refusal(name), verdict=name)


def used_error() -> DomainError:
    """What a second use of a code is told."""
    return refusal("PAYCODE_USED")


async def check_code(
    conn: Conn,
    settings: Settings,
    *,
    school_id: int,
    code: object,
    now: float | None = None,
) -> VerifiedCode:
    """Who a scanned code belongs to, if it may pay now; otherwise a refusal naming why.

    Refuses: malformed digits or a wrong check digit, an unknown code or another school's,
    a revoked phone, a code outside the clock window (±1 step), a wrong HMAC or verification
    code, a code already used, and an account that may not pay (frozen, closed, card lost)."""
    parsed = code_rules.parse(code)
    now = time.time() if now is None else now
    await check_not_throttled(conn, school_id, parsed.token)
    scheme = SCHEMES[parsed.scheme]
    verified = await scheme.check(conn, settings, school_id, parsed, now)
    await check_payer(conn, school_id, verified.person_id, credential=credential_for(verified))
    return verified


# Marks a code used, as a data-modifying CTE: alone (``do_use_code``) or in front of the
# payment's booking in one statement (a payment the phone confirms, payments/code_payments.py;
# a till's code payment marks it in cc_pay_code). Parameters: ``use_args``.
USE_CTE = """used AS (
        INSERT INTO paycode_uses(school_id, person_id, scheme, device_id, step, counter,
                                 minted_id, terminal_id, amount, client_id, credential)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id),
    minted AS (UPDATE paycode_minted SET used_at = now() WHERE id = $7),
    prelude AS (SELECT id FROM used)"""


def use_args(
    verified: VerifiedCode,
    *,
    terminal_id: int | None = None,
    amount: int | None = None,
    client_id: str | None = None,
) -> tuple[Any, ...]:
    return (
        verified.school_id,
        verified.person_id,
        verified.scheme,
        verified.device_id,
        verified.step,
        verified.counter,
        verified.minted_id,
        terminal_id,
        amount,
        client_id,
        credential_for(verified),
    )


async def do_use_code(
    tx: Tx,
    verified: VerifiedCode,
    *,
    terminal_id: int | None = None,
    amount: int | None = None,
    client_id: str | None = None,
) -> int:
    """Mark the code used (in the caller's transaction, one statement); returns the id of the
    use. A second use of the same code, even concurrently, is refused by the database: the
    refusal aborts the caller's transaction, which then rolls back whatever it did."""
    try:
        use_id: int = await tx.fetchval(
            f"WITH {USE_CTE} SELECT id FROM prelude",
            *use_args(verified, terminal_id=terminal_id, amount=amount, client_id=client_id),
        )
    except asyncpg.UniqueViolationError:
        raise used_error() from None
    return use_id


@owns_transaction
async def do_accept_code(
    tx: Tx,
    settings: Settings,
    *,
    school_id: int,
    code: object,
    terminal_id: int | None = None,
    amount: int | None = None,
    now: float | None = None,
) -> tuple[VerifiedCode, int]:
    """check_code + do_use_code in one transaction: the code is spent if this commits."""
    verified = await check_code(tx, settings, school_id=school_id, code=code, now=now)
    use_id = await do_use_code(tx, verified, terminal_id=terminal_id, amount=amount)
    return verified, use_id
