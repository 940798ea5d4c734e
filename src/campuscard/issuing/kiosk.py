"""Self-service at a kiosk (seed 002): balance and recent transactions, report loss, change PIN,
top up — for the cardholder standing at the kiosk.

The holder proves who they are once per visit: card on the reader plus PIN, or (a lost card)
student number plus sign-in password. The platform answers with a visit token bound to that
kiosk and person, valid a few minutes (HMAC under a key derived from the master key, nothing
stored); every later request of the visit carries it inside the kiosk's signed request.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

from campuscard.cards import lifecycle
from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import require_idle
from campuscard.issuing.pickup import Kiosk
from campuscard.ledger import postings
from campuscard.ledger.money import Money, fmt
from campuscard.moneyflows import topups
from campuscard.payments import pay_settings
from campuscard.payments import rules as pay_rules
from campuscard.platform import audit, auth
from campuscard.platform.actors import Actor, Grant
from campuscard.platform.errors import Forbidden, NotFound, TooManyRequests, Unauthorized

VISIT_SECONDS = 300
RECENT = 10


@dataclass(frozen=True)
class Visit:
    person_id: int
    school_id: int

    def holder(self, kiosk: Kiosk) -> Actor:
        """The holder as an actor for card actions a holder may take (report loss)."""
        return Actor(
            name=f"kiosk:{kiosk.sn}",
            school_id=self.school_id,
            person_id=self.person_id,
            grants=frozenset({Grant("cardholder", self.school_id)}),
        )


def _key(settings: Settings) -> bytes:
    master = settings.master_key.get_secret_value().encode()
    return hmac.new(master, b"campuscard/kiosk-visit/v1", hashlib.sha256).digest()


def _token(settings: Settings, kiosk: Kiosk, person_id: int, expires: int) -> str:
    message = f"{kiosk.terminal_id}|{person_id}|{expires}".encode()
    mac = hmac.new(_key(settings), message, hashlib.sha256).hexdigest()
    return f"{person_id}.{expires}.{mac}"


def check_visit(settings: Settings, kiosk: Kiosk, token: str) -> Visit:
    try:
        person_text, expires_text, _mac = token.split(".")
        person_id, expires = int(person_text), int(expires_text)
    except ValueError as err:
        raise Unauthorized(
            "start again: tap your card", code="VISIT_INVALID", field="visit"
        ) from err
    good = _token(settings, kiosk, person_id, expires)
    if not hmac.compare_digest(good, token):
        raise Unauthorized("start again: tap your card", code="VISIT_INVALID", field="visit")
    if expires < time.time():
        raise Unauthorized(
            "the session timed out: tap your card again", code="VISIT_EXPIRED", field="visit"
        )
    return Visit(person_id=person_id, school_id=kiosk.school_id)


def _visit_answer(settings: Settings, kiosk: Kiosk, person: Any) -> dict[str, Any]:
    expires = int(time.time()) + VISIT_SECONDS
    return {
        "visit": _token(settings, kiosk, person["id"], expires),
        "expires_in": VISIT_SECONDS,
        "name": person["name"],
        "number": person["number"],
    }


async def _check_pin(
    conn: Conn, settings: Settings, person_id: int, school_id: int, pin: str
) -> None:
    """The same PIN the POS asks for; wrong tries count towards its lock. A try is claimed in
    the database before the PIN is compared (one UPDATE … RETURNING), so parallel guesses get at
    most the school's limit of comparisons."""
    if len(pin) != pay_rules.PIN_LENGTH or not pin.isdigit():
        raise Unauthorized("the PIN is wrong", code="PIN_WRONG", field="pin")
    school = await pay_settings.school_rules(conn, school_id)
    require_idle(conn)
    claimed = await conn.fetchval(
        """UPDATE pay_settings SET pin_failures = pin_failures + 1, updated_at = now()
            WHERE school_id = $3 AND person_id = $1 AND pin_hash IS NOT NULL AND pin_failures < $2
        RETURNING pin_hash""",
        person_id,
        school.pin_max_failures,
        school_id,
    )
    if claimed is None:
        if not await conn.fetchval(
            "SELECT pin_hash IS NOT NULL FROM pay_settings WHERE school_id = $1 AND person_id = $2",
            school_id,
            person_id,
        ):
            raise Forbidden(
                "no PIN is set yet: set it online or at the card center",
                code="PIN_NOT_SET",
                field="pin",
            )
        raise TooManyRequests(
            "too many wrong PINs: the PIN is locked until it is reset",
            code="PIN_LOCKED",
            field="pin",
        )
    token = pay_rules.pin_token(pay_rules.pin_pepper(settings.master_key.get_secret_value()), pin)
    if not hmac.compare_digest(claimed, pay_rules.pin_hash(token, person_id)):
        raise Unauthorized("the PIN is wrong", code="PIN_WRONG", field="pin")
    await conn.execute(
        "UPDATE pay_settings SET pin_failures = 0 WHERE school_id = $1 AND person_id = $2",
        school_id,
        person_id,
    )


async def do_start_with_card(
    conn: Conn, settings: Settings, kiosk: Kiosk, *, card_number: str, card_uid: str, pin: str
) -> dict[str, Any]:
    require_idle(conn)
    card = await conn.fetchrow(
        """SELECT c.person_id, c.state, p.id, p.name, p.number FROM cards c
             JOIN persons p ON p.school_id = c.school_id AND p.id = c.person_id
            WHERE c.school_id = $1 AND c.number = $2 AND c.uid = $3""",
        kiosk.school_id,
        card_number,
        card_uid.upper(),
    )
    if card is None or card["state"] not in ("active", "issued", "frozen"):
        raise NotFound("this card is not in use here", code="CARD_UNKNOWN", field="card_number")
    await _check_pin(conn, settings, card["person_id"], kiosk.school_id, pin)
    return _visit_answer(settings, kiosk, card)


async def do_start_with_password(
    pool: PgPool, settings: Settings, kiosk: Kiosk, *, number: str, password: str
) -> dict[str, Any]:
    """For a holder without their card (to report it lost): student number + sign-in password.
    Wrong tries count towards the same lock as the sign-in page, and a locked account is
    refused here too; an unknown number is counted and answered alike."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT p.id, p.name, p.number, u.id AS user_id, u.password_hash, u.is_active
                 FROM persons p JOIN users u ON u.school_id = p.school_id AND u.person_id = p.id
                WHERE p.school_id = $1 AND p.number = $2""",
            kiosk.school_id,
            number,
        )
    account = (
        auth.Account(row["user_id"], kiosk.school_id, row["password_hash"], row["is_active"])
        if row is not None
        else auth.NO_ACCOUNT
    )
    await auth.check_sign_in(
        pool,
        settings,
        account,
        password,
        throttle=(kiosk.school_id, f"kiosk/{number}"[:200]),
        who=f"kiosk:{kiosk.sn}",
        refusal=Unauthorized(
            "wrong student number or password", code="LOGIN_FAILED", field="password"
        ),
    )
    assert row is not None  # check_sign_in refuses an unknown number
    return _visit_answer(settings, kiosk, row)


async def overview(conn: Conn, visit: Visit) -> dict[str, Any]:
    """Balances, cards and the last transactions of the holder's purses."""
    balances = await postings.purse_balances(conn, visit.person_id)
    on_hold = await postings.purse_held(conn, visit.person_id)
    rows = await conn.fetch(
        """SELECT t.created_at, t.kind, t.memo, a.purse, p.amount, p.balance_after
             FROM postings p JOIN accounts a ON a.school_id = p.school_id AND a.id = p.account_id
             JOIN journal_tx t ON t.school_id = p.school_id AND t.id = p.tx_id
            WHERE p.school_id = $3 AND a.person_id = $1 AND a.kind = 'purse'
            ORDER BY p.id DESC LIMIT $2""",
        visit.person_id,
        RECENT,
        visit.school_id,
    )
    held = await lifecycle.cards_of_person(conn, visit.person_id)
    return {
        "balances": postings.balances_view(balances, on_hold),
        "total": fmt(sum(balances.values())),
        "held": fmt(on_hold),
        "available": fmt(sum(balances.values()) - on_hold),
        "cards": [
            {"id": c["id"], "number": c["number"], "state": c["state"]}
            for c in held
            if c["state"] in ("active", "issued", "frozen", "lost")
        ],
        "recent": [
            {
                "at": r["created_at"].isoformat(timespec="seconds"),
                "kind": r["kind"],
                "memo": r["memo"],
                "purse": r["purse"],
                "amount": fmt(r["amount"]),
                "balance_after": fmt(r["balance_after"]),
            }
            for r in rows
        ],
    }


async def do_report_loss(conn: Conn, kiosk: Kiosk, visit: Visit, card_id: int) -> dict[str, Any]:
    require_idle(conn)
    owner = await conn.fetchval(
        "SELECT person_id FROM cards WHERE school_id = $1 AND id = $2", visit.school_id, card_id
    )
    if owner != visit.person_id:
        raise NotFound("no such card", field="card_id")
    return await lifecycle.report_loss(
        conn, visit.holder(kiosk), card_id, channel="kiosk", reason=f"reported at {kiosk.sn}"
    )


async def do_change_pin(
    conn: Conn, settings: Settings, kiosk: Kiosk, visit: Visit, *, pin: str, new_pin: str
) -> dict[str, Any]:
    """The current PIN again, then the new one (set with the kiosk's card-center authority)."""
    require_idle(conn)
    await _check_pin(conn, settings, visit.person_id, visit.school_id, pin)
    result = await pay_settings.set_pin(
        conn, kiosk.actor, settings, person_id=visit.person_id, new_pin=new_pin
    )
    await audit.record(
        conn,
        kiosk.actor,
        "kiosk.change_pin",
        school_id=visit.school_id,
        target_type="person",
        target_id=visit.person_id,
    )
    return result


async def do_start_topup(
    pool: PgPool, settings: Settings, visit: Visit, *, amount: Money, client_id: str
) -> tuple[int, dict[str, Any]]:
    """An online top-up order the holder pays with their phone (the kiosk shows its QR)."""
    async with pool.acquire() as conn:
        user_id = await conn.fetchval(
            "SELECT id FROM users WHERE school_id = $1 AND person_id = $2 AND is_active",
            visit.school_id,
            visit.person_id,
        )
        if user_id is None:
            raise Forbidden(
                "this card has no online account; top up at the counter", code="NO_ACCOUNT"
            )
        holder = await auth.load_actor(conn, user_id)
    status, order, _ = await topups.do_create_topup(
        pool, settings, holder, person_id=visit.person_id, amount=amount, client_id=client_id
    )
    return status, order
