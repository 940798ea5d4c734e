"""Self-service pickup with remote authorization (seed 004 steps 4-6).

The platform makes a pickup code, keeps only its keyed hash, publishes a per-kiosk hash to
every kiosk of the school (kiosks pull changes since a version) and texts the code to the
parent. A kiosk checks a typed code locally, then asks here; one compare-and-set UPDATE makes
sure exactly one kiosk is ever authorized for a code. The kiosk dispenses, reports the card
number, and the card is bound (issuing/binding.py). A dispense failure after
authorization is retried on that kiosk or the authorization is released.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from campuscard.config import Settings
from campuscard.db import distribution
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction, savepoint, transaction
from campuscard.issuing import binding
from campuscard.issuing import pickup_code as codes
from campuscard.platform import audit, i18n, notifications
from campuscard.platform.actors import Actor, Grant
from campuscard.platform.auth import off_loop
from campuscard.platform.errors import Conflict, DomainError, NotFound, TooManyRequests
from campuscard.platform.idempotency import Outcome, run_idempotent
from campuscard.platform.sealing import seal

SMS_SEAL_PURPOSE = "sms"
INVALID_ZH = "取卡注册码无效"
ISSUED_ZH = "IC卡已完成发卡"
EXPIRED_ZH = "取卡注册码已过期"


@dataclass(frozen=True)
class Kiosk:
    terminal_id: int
    school_id: int
    sn: str

    @property
    def actor(self) -> Actor:
        """A kiosk issues cards with the card center's authority, for its own school only."""
        return Actor(
            name=f"kiosk:{self.sn}",
            school_id=self.school_id,
            grants=frozenset({Grant("card_center", self.school_id)}),
        )


def _master(settings: Settings) -> bytes:
    return settings.master_key.get_secret_value().encode()


def _event(school_id: int) -> dict[str, Any]:
    return {"type": "pickup.changed", "school_id": school_id}


# ---------------------------------------------------------------- issuing a code


def _kiosk_hashes(master: bytes, sns: list[str], code: str) -> list[str]:
    """Blocking (scrypt): the hash of ``code`` each kiosk checks against; run with off_loop."""
    return [codes.kiosk_hash(codes.kiosk_key(master, sn), code) for sn in sns]


async def issue_code(tx: Tx, settings: Settings, app_id: int) -> str:
    """Make the pickup code of a ready application, publish it to the school's kiosks and send
    it by SMS. Returns the code (to show once); only hashes stay in the database. Caller's tx."""
    app = await tx.fetchrow(
        """SELECT a.id, a.school_id, a.person_id, a.applicant_phone, a.applicant_user_id,
                  a.created_at, a.day_seq,
                  p.number, p.name, p.phone AS person_phone, s.timezone, s.name AS school_name
             FROM card_applications a
             JOIN persons p ON p.school_id = a.school_id AND p.id = a.person_id
             JOIN schools s ON s.id = a.school_id WHERE a.id = $1""",
        app_id,
    )
    if app is None:
        raise NotFound("application not found", field="application_id")
    from zoneinfo import ZoneInfo

    applied_local = app["created_at"].astimezone(ZoneInfo(app["timezone"]))
    key = codes.platform_key(_master(settings))
    expires = datetime.now(UTC) + timedelta(days=settings.pickup_code_days)
    for _ in range(5):
        code = codes.make_code(app["number"], applied_local, app["day_seq"])
        try:
            async with savepoint(tx):
                pickup_id: int = await tx.fetchval(
                    """INSERT INTO pickup_codes(school_id, application_id, person_id, code_hash,
                                                expires_at)
                       VALUES ($1, $2, $3, $4, $5) RETURNING id""",
                    app["school_id"],
                    app_id,
                    app["person_id"],
                    codes.code_hash(key, app["school_id"], code),
                    expires,
                )
            break
        except asyncpg.UniqueViolationError as err:
            if distribution.constraint_name(err) != "pickup_codes_code_hash_key":
                raise
    else:  # 10^8 random digits colliding five times running means something is broken
        raise DomainError("could not make a unique pickup code", code="PICKUP_CODE_COLLISION")
    kiosks = await tx.fetch(
        """SELECT id, sn FROM terminals
            WHERE school_id = $1 AND kind = 'kiosk' AND status = 'active'""",
        app["school_id"],
    )
    master = _master(settings)
    # the stretch is memory-hard CPU work (~15 ms): done in the hashing pool, so issuing codes
    # for a class does not stall payments on the event loop
    hashes = await off_loop(_kiosk_hashes, master, [k["sn"] for k in kiosks], code)
    await tx.executemany(
        "INSERT INTO pickup_kiosk_hashes(school_id, pickup_id, terminal_id, kiosk_hash) "
        "VALUES ($1, $2, $3, $4)",
        [(app["school_id"], pickup_id, k["id"], h) for k, h in zip(kiosks, hashes, strict=True)],
    )
    phones = await _parent_phones(tx, app)
    # worded now, in the applicant's language: the sealed text is never read back
    locale = (
        await notifications.reader_locale(tx, app["school_id"], user_id=app["applicant_user_id"])
        if app["applicant_user_id"] is not None
        else i18n.DEFAULT_LOCALE
    )
    text = i18n.word(
        locale,
        i18n.message(
            "sms.pickup_code",
            name=app["name"],
            code=codes.display(code),
            until=i18n.day(expires.astimezone(ZoneInfo(app["timezone"])).date()),
            school=app["school_name"],
        ),
    )
    for phone in phones:
        await notifications.enqueue(
            tx,
            "sms",
            {"phone": phone, "sealed_text": seal(master, SMS_SEAL_PURPOSE, text)},
            school_id=app["school_id"],
            dedupe_key=f"sms:pickup:{pickup_id}:{phone}",
        )
    await notifications.notify(
        tx,
        school_id=app["school_id"],
        kind="pickup.code_sent",
        title=i18n.message("notice.pickup_sent.title"),
        body=i18n.message(
            "notice.pickup_sent.body",
            until=i18n.day(expires.astimezone(ZoneInfo(app["timezone"])).date()),
        ),
        person_id=app["person_id"],
        data={"application_id": app_id, "pickup_id": pickup_id},
        dedupe_key=f"pickup:{pickup_id}:sent",
    )
    await notifications.publish_event(tx, _event(app["school_id"]))
    return code


async def _parent_phones(conn: Conn, app: Any) -> list[str]:
    if app["applicant_phone"]:
        return [app["applicant_phone"]]
    rows = await conn.fetch(
        "SELECT DISTINCT phone FROM guardians WHERE school_id = $1 AND person_id = $2"
        " ORDER BY phone",
        app["school_id"],
        app["person_id"],
    )
    phones = [r["phone"] for r in rows]
    if not phones and app["person_phone"]:
        phones = [app["person_phone"]]
    return phones


async def revoke_codes(tx: Tx, app_id: int) -> int:
    """Stop the live codes of an application (caller's tx)."""
    rows = await tx.fetch(
        """UPDATE pickup_codes SET state = 'revoked'
            WHERE application_id = $1 AND state = 'ready' RETURNING school_id""",
        app_id,
    )
    if rows:
        await notifications.publish_event(tx, _event(rows[0]["school_id"]))
    return len(rows)


# ---------------------------------------------------------------- what kiosks pull


async def kiosk_feed(conn: Conn, kiosk: Kiosk, *, since: int, limit: int = 500) -> dict[str, Any]:
    """Changes to this school's pickup codes after version ``since``. Live codes carry this
    kiosk's hash; others tell the kiosk to forget them."""
    rows = await conn.fetch(
        """SELECT pc.id, pc.version, pc.state, pc.expires_at, h.kiosk_hash,
                  p.name, p.number, c.name AS class_name
             FROM pickup_codes pc
             JOIN persons p ON p.school_id = pc.school_id AND p.id = pc.person_id
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
             LEFT JOIN pickup_kiosk_hashes h
                    ON h.school_id = pc.school_id AND h.pickup_id = pc.id AND h.terminal_id = $2
            WHERE pc.school_id = $1 AND pc.version > $3
            ORDER BY pc.version LIMIT $4""",
        kiosk.school_id,
        kiosk.terminal_id,
        since,
        limit,
    )
    items = [
        {
            "pickup_id": r["id"],
            "version": r["version"],
            "state": r["state"],
            "live": r["state"] == "ready" and r["kiosk_hash"] is not None,
            "kiosk_hash": r["kiosk_hash"] if r["state"] == "ready" else None,
            "expires_at": r["expires_at"].isoformat(),
            "student": {"name": r["name"], "number": r["number"], "class": r["class_name"]},
        }
        for r in rows
    ]
    version = items[-1]["version"] if items else since
    return {"version": version, "more": len(items) == limit, "items": items}


# ---------------------------------------------------------------- authorizing one kiosk


# Claim a place among the wrong codes of one scope: no row comes back once ``$4`` attempts were
# made in the window. One statement, so parallel guesses are counted one after another. The
# instant is the proposed row's window_start (its default, now()), and the window's end is
# compared as an interval: Citus refuses a function that is not immutable (now(), timestamptz
# minus interval) in an upsert's DO UPDATE.
_CLAIM_GUESS = """
INSERT INTO pickup_guesses AS g(school_id, scope, key, attempts) VALUES ($1, $2, $3, 1)
ON CONFLICT (school_id, scope, key) DO UPDATE SET
    attempts = CASE WHEN EXCLUDED.window_start - g.window_start >= $5::interval THEN 1
                    ELSE g.attempts + 1 END,
    window_start = CASE WHEN EXCLUDED.window_start - g.window_start >= $5::interval
                        THEN EXCLUDED.window_start ELSE g.window_start END
 WHERE EXCLUDED.window_start - g.window_start >= $5::interval OR g.attempts < $4
RETURNING attempts"""

_LOCKED_WHAT = {
    "session": "too many wrong codes in this session: start again",
    "kiosk": "too many wrong codes on this kiosk",
    "code": "too many wrong tries at this pickup code",
}


@dataclass(frozen=True)
class GuessScope:
    """One count a pickup attempt is held to: its name, key and limit per window."""

    scope: str  # "session" | "kiosk" | "code"
    key: str
    limit: int


def guess_scopes(
    settings: Settings, kiosk: Kiosk, *, session_id: str | None, pickup_id: int | None
) -> list[GuessScope]:
    """What an attempt counts against: always the kiosk (a ceiling high enough that one person
    cannot lock it for everyone, and the only limit of kiosks that send no session id), the
    kiosk session (one person's visit) when given, and the pickup code aimed at when named."""
    scopes = [GuessScope("kiosk", str(kiosk.terminal_id), settings.pickup_kiosk_guess_limit)]
    if session_id is not None:
        key = f"{kiosk.terminal_id}:{session_id}"
        scopes.append(GuessScope("session", key, settings.pickup_guess_limit))
    if pickup_id is not None:
        scopes.append(GuessScope("code", str(pickup_id), settings.pickup_guess_limit))
    return scopes


async def _claim_guesses(
    conn: Conn, settings: Settings, kiosk: Kiosk, scopes: list[GuessScope]
) -> list[int]:
    """Count this attempt in every scope before the code is checked (each claim commits at
    once, so the refusal that may follow does not undo it); KIOSK_GUESS_LIMIT when a scope's
    attempts are used up, with the places already claimed given back."""
    window = timedelta(minutes=settings.pickup_guess_window_minutes)
    counts: list[int] = []
    for i, s in enumerate(scopes):
        count = await conn.fetchval(_CLAIM_GUESS, kiosk.school_id, s.scope, s.key, s.limit, window)
        if count is None:
            await _release_guesses(conn, kiosk, scopes[:i])
            opened = await conn.fetchval(
                "SELECT window_start FROM pickup_guesses "
                "WHERE school_id = $1 AND scope = $2 AND key = $3",
                kiosk.school_id,
                s.scope,
                s.key,
            )
            until = opened + window
            raise TooManyRequests(
                f"{_LOCKED_WHAT[s.scope]}; try again after {until:%H:%M} UTC",
                code="KIOSK_GUESS_LIMIT",
                field="session_id" if s.scope == "session" else "code",
            )
        counts.append(count)
    return counts


async def _release_guesses(conn: Conn, kiosk: Kiosk, scopes: list[GuessScope]) -> None:
    """Give back the places of an attempt that was not a wrong guess."""
    for s in scopes:
        await conn.execute(
            "UPDATE pickup_guesses SET attempts = attempts - 1 "
            "WHERE school_id = $1 AND scope = $2 AND key = $3 AND attempts > 0",
            kiosk.school_id,
            s.scope,
            s.key,
        )


async def _audit_limits(
    conn: Conn, kiosk: Kiosk, scopes: list[GuessScope], counts: list[int]
) -> None:
    """A wrong code that used up a scope's attempts is audited (the next one is refused)."""
    for s, count in zip(scopes, counts, strict=True):
        if count >= s.limit:
            await audit.record(
                conn,
                kiosk.actor,
                "kiosk.guess_limit",
                school_id=kiosk.school_id,
                target_type="terminal",
                target_id=kiosk.terminal_id,
                after={"scope": s.scope, "key": s.key, "failures": count},
            )


def _invalid() -> DomainError:
    return DomainError(
        f"{INVALID_ZH} / the pickup code is not valid",
        code="PICKUP_CODE_INVALID",
        field="code",
        status=422,
    )


async def do_authorize(
    conn: Conn,
    settings: Settings,
    kiosk: Kiosk,
    typed: str,
    *,
    session_id: str | None = None,
    pickup_id: int | None = None,
) -> dict[str, Any]:
    """Authorize this kiosk to issue the card for ``typed``; exactly one kiosk ever wins.

    Wrong codes are limited per kiosk session (``session_id``: one person's visit), per pickup
    code aimed at (``pickup_id``, the entry the kiosk's local check or the person picked) and,
    with a higher ceiling, per kiosk (see ``guess_scopes``). ``conn`` must not be in a
    transaction."""
    scopes = guess_scopes(settings, kiosk, session_id=session_id, pickup_id=pickup_id)
    counts = await _claim_guesses(conn, settings, kiosk, scopes)
    code = codes.normalize(typed)
    key = codes.platform_key(_master(settings))
    row = None
    if code is not None:
        row = await conn.fetchrow(
            "SELECT id, state, expires_at, terminal_id FROM pickup_codes "
            "WHERE code_hash = $1 AND school_id = $2",
            codes.code_hash(key, kiosk.school_id, code),
            kiosk.school_id,
        )
    if (
        row is None
        or row["state"] == "revoked"
        or (pickup_id is not None and row["id"] != pickup_id)
    ):
        await _audit_limits(conn, kiosk, scopes, counts)
        raise _invalid()
    # the right code: not a guess, whatever the answer below
    await _release_guesses(conn, kiosk, scopes)
    async with transaction(conn) as tx:
        won = await tx.fetchrow(
            """UPDATE pickup_codes SET state = 'authorized', terminal_id = $2,
                      authorized_at = now()
                WHERE school_id = $3 AND id = $1 AND state = 'ready' AND expires_at > now()
                RETURNING id""",
            row["id"],
            kiosk.terminal_id,
            kiosk.school_id,
        )
        current = await tx.fetchrow(
            "SELECT * FROM pickup_codes WHERE school_id = $1 AND id = $2 FOR UPDATE",
            kiosk.school_id,
            row["id"],
        )
        assert current is not None
        if won is None:
            if current["state"] == "authorized" and current["terminal_id"] == kiosk.terminal_id:
                pass  # this kiosk asking again (a lost answer, or a retry after a jam)
            elif current["state"] in ("authorized", "issued"):
                raise Conflict(
                    f"{ISSUED_ZH} / this card has already been issued",
                    code="CARD_ALREADY_ISSUED",
                    field="code",
                )
            else:  # past its time (the expiry job tells every kiosk)
                raise DomainError(
                    f"{EXPIRED_ZH} / the pickup code has expired",
                    code="PICKUP_CODE_EXPIRED",
                    field="code",
                    status=410,
                )
        else:
            await audit.record(
                tx,
                kiosk.actor,
                "pickup.authorize",
                school_id=kiosk.school_id,
                target_type="pickup",
                target_id=row["id"],
                after={"terminal_id": kiosk.terminal_id},
            )
            await notifications.publish_event(tx, _event(kiosk.school_id))
        student = await tx.fetchrow(
            """SELECT p.name, p.number, c.name AS class_name, s.name AS school_name
                 FROM persons p JOIN schools s ON s.id = p.school_id
                 LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
                WHERE p.school_id = $2 AND p.id = $1""",
            current["person_id"],
            kiosk.school_id,
        )
    assert student is not None  # a pickup code always belongs to a person
    return {
        "pickup_id": current["id"],
        "state": "authorized",
        "authorized_at": current["authorized_at"].isoformat(),
        "dispense_failures": current["dispense_failures"],
        # what the kiosk writes onto the card (seed 004 step 5)
        "card_data": {
            "name": student["name"],
            "number": student["number"],
            "class": student["class_name"],
            "school": student["school_name"],
        },
    }


async def _lock_authorized(conn: Conn, kiosk: Kiosk, pickup_id: int) -> Any:
    row = await conn.fetchrow(
        "SELECT * FROM pickup_codes WHERE id = $1 AND school_id = $2 FOR UPDATE",
        pickup_id,
        kiosk.school_id,
    )
    if row is None:
        raise NotFound("pickup not found", field="pickup_id")
    if row["state"] != "authorized" or row["terminal_id"] != kiosk.terminal_id:
        raise Conflict(
            "this kiosk holds no authorization for this pickup",
            code="NOT_AUTHORIZED",
            field="pickup_id",
        )
    return row


async def _complete_pickup(
    tx: Tx,
    *,
    kiosk: Kiosk,
    pickup_id: int,
    card_number: str,
    card_uid: str,
) -> dict[str, Any]:
    row = await _lock_authorized(tx, kiosk, pickup_id)
    card_id = await binding.do_bind_card(
        tx,
        kiosk.actor,
        school_id=kiosk.school_id,
        person_id=row["person_id"],
        card_number=card_number,
        card_uid=card_uid,
        application_id=row["application_id"],
        via=f"kiosk {kiosk.sn}",
    )
    await tx.execute(
        """UPDATE pickup_codes SET state = 'issued', issued_at = now(), card_number = $2
            WHERE school_id = $3 AND id = $1""",
        pickup_id,
        card_number,
        kiosk.school_id,
    )
    await tx.execute(
        "DELETE FROM pickup_kiosk_hashes WHERE school_id = $1 AND pickup_id = $2",
        kiosk.school_id,
        pickup_id,
    )
    await audit.record(
        tx,
        kiosk.actor,
        "pickup.issue",
        school_id=kiosk.school_id,
        target_type="pickup",
        target_id=pickup_id,
        after={"card_number": card_number, "card_id": card_id},
    )
    await notifications.publish_event(tx, _event(kiosk.school_id))
    return {
        "pickup_id": pickup_id,
        "state": "issued",
        "card_id": card_id,
        "card_number": card_number,
    }


async def do_complete(
    conn: Conn,
    kiosk: Kiosk,
    pickup_id: int,
    *,
    card_number: str,
    card_uid: str,
    client_id: str,
) -> Outcome:
    """The kiosk dispensed a card and read its number: bind it to the student (seed 004 step
    6). A retry with the same ``client_id`` replays the answer."""

    return await run_idempotent(
        conn,
        school_id=kiosk.school_id,
        scope=f"kiosk-pickup:{kiosk.terminal_id}",
        key=client_id,
        payload={"pickup_id": pickup_id, "card_number": card_number, "card_uid": card_uid},
        work=lambda tx: _complete_pickup(
            tx, kiosk=kiosk, pickup_id=pickup_id, card_number=card_number, card_uid=card_uid
        ),
    )


@owns_transaction
async def do_report_failure(
    tx: Tx, kiosk: Kiosk, pickup_id: int, *, reason: str, release: bool
) -> dict[str, Any]:
    """The dispenser failed after authorization: keep it for a retry on this kiosk, or release
    it so the code works again on any kiosk."""
    row = await _lock_authorized(tx, kiosk, pickup_id)
    if release:
        await tx.execute(
            """UPDATE pickup_codes SET state = 'ready', terminal_id = NULL,
                      authorized_at = NULL, dispense_failures = dispense_failures + 1,
                      last_failure = $2 WHERE school_id = $3 AND id = $1""",
            pickup_id,
            reason,
            kiosk.school_id,
        )
    else:
        await tx.execute(
            """UPDATE pickup_codes SET dispense_failures = dispense_failures + 1,
                      last_failure = $2 WHERE school_id = $3 AND id = $1""",
            pickup_id,
            reason,
            kiosk.school_id,
        )
    await audit.record(
        tx,
        kiosk.actor,
        "pickup.release" if release else "pickup.dispense_failed",
        school_id=kiosk.school_id,
        target_type="pickup",
        target_id=pickup_id,
        before={"dispense_failures": row["dispense_failures"]},
        after={"reason": reason, "released": release},
    )
    await notifications.publish_event(tx, _event(kiosk.school_id))
    return {
        "pickup_id": pickup_id,
        "state": "ready" if release else "authorized",
        "dispense_failures": row["dispense_failures"] + 1,
    }


# ---------------------------------------------------------------- housekeeping (issuing/jobs.py)


async def expire_codes(conn: Conn) -> int:
    rows = await conn.fetch(
        """UPDATE pickup_codes SET state = 'expired'
            WHERE state = 'ready' AND expires_at <= now() RETURNING school_id"""
    )
    for school_id in {r["school_id"] for r in rows}:
        await notifications.publish_event(conn, _event(school_id))
    return len(rows)


async def release_stale_authorizations(conn: Conn, settings: Settings) -> int:
    """A kiosk that authorized and then went silent (power cut) must not hold a code forever."""
    rows = await conn.fetch(
        """UPDATE pickup_codes SET state = 'ready', terminal_id = NULL, authorized_at = NULL,
                  last_failure = 'authorization timed out'
            WHERE state = 'authorized' AND authorized_at < now() - $1::interval
            RETURNING id, school_id""",
        timedelta(minutes=settings.pickup_authorization_minutes),
    )
    for r in rows:
        await audit.record(
            conn,
            Actor(name="system"),
            "pickup.release_stale",
            school_id=r["school_id"],
            target_type="pickup",
            target_id=r["id"],
        )
        await notifications.publish_event(conn, _event(r["school_id"]))
    return len(rows)
