"""Paying with a payment code at a till. The code is checked here (services/paycodes); the
money moves through the one payment path, ``payments.book_payment``, with a ``VerifiedPayer``
(the person and the code's one-time credential), so limits and the PIN rule are the card's.

At the till: scan → ``do_pay_with_code``. A preview (the engine's check mode: it writes
nothing) runs first, so a refusal (balance, limits, frozen account) does not spend the code.
Above the PIN threshold, without a PIN, the student is asked on the phone (they type the PIN
there) and the till gets 202 ``CONFIRM_ON_PHONE``; the till repeats the same request (same
client id) until the answer is final, or asks the PIN on its keypad and sends a new request
with it. A retry of a request that reached the payment engine replays that engine's stored
answer.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import transaction
from campuscard.ledger.money import Money
from campuscard.payments import booking, codes, terminals
from campuscard.payments.booking import PaymentAnswer, VerifiedPayer
from campuscard.payments.terminals import SignedTerminal, TerminalRow
from campuscard.platform import notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, DomainError, NotFound, ValidationFailed
from campuscard.platform.event_batch import EventBatcher
from campuscard.platform.idempotency import check_client_id

# how long the student has to confirm on the phone
CONFIRM_SECONDS = 90
PIN_LENGTH = 6


async def terminal_view(conn: Conn, terminal_id: int) -> dict[str, Any]:
    """The till with its merchant and outlet names (as customer_display expects)."""
    row = await conn.fetchrow(
        """SELECT t.id, t.school_id, t.sn, coalesce(m.name, '') AS merchant,
                  coalesce(o.name, '') AS outlet
             FROM terminals t LEFT JOIN merchants m ON m.id = t.merchant_id
             LEFT JOIN outlets o ON o.id = t.outlet_id WHERE t.id = $1""",
        terminal_id,
    )
    assert row is not None
    return dict(row)


async def _send(conn: Conn, events: EventBatcher | None, batch: list[dict[str, Any]]) -> None:
    """Send the live events of committed work, in order: through the app's batcher when given
    (no NOTIFY on the commit path of a payment), else one NOTIFY each."""
    for event in batch:
        if events is not None:
            events.publish(event)
        else:
            await notifications.publish_event(conn, event)


def _refusal_body(err: DomainError) -> dict[str, Any]:
    return {"error": err.to_dict()}


async def _preview(
    conn: Conn, signed: SignedTerminal, payer: VerifiedPayer, amount: Money
) -> PaymentAnswer:
    """The engine's check mode without the nonce (the booking that may follow records it):
    one round trip that writes nothing."""
    return await booking.check_payment(conn, signed, payer=payer, amount=amount, record_nonce=False)


async def _book(
    conn: Conn,
    settings: Settings,
    signed: SignedTerminal,
    verified: codes.VerifiedCode,
    *,
    client_id: str,
    amount: Money,
    pin: str | None,
    names: dict[str, Any],
    after: list[dict[str, Any]],
) -> PaymentAnswer:
    """Spend the code and book the payment in one statement (both or neither). The live
    events go to ``after``: the caller sends them once its transaction (if any) committed."""
    payer = VerifiedPayer(verified.person_id, codes.credential_for(verified))
    spend = booking.Prelude(
        codes.USE_CTE,
        codes.use_args(verified, terminal_id=signed.id, amount=amount.fen, client_id=client_id),
    )
    try:
        answer = await booking.book_payment(
            conn,
            settings,
            signed,
            client_id=client_id,
            payer=payer,
            amount=amount,
            pin=pin,
            deferred=after,
            prelude=spend,
        )
    except asyncpg.UniqueViolationError:
        raise codes.used_error() from None
    event: dict[str, Any] = {
        "type": "paycode.result",
        "school_id": signed.school_id,
        "terminal_id": signed.id,
        "person_id": verified.person_id,
        "merchant": names["merchant"],
        "outlet": names["outlet"],
        "amount": str(amount),
        "ok": answer.ok,
    }
    if answer.ok:
        event["balance"] = answer.body.get("balance")
        event["payment_id"] = answer.body.get("payment_id")
        # paid: the amount the display was showing is no longer asked
        await conn.execute("DELETE FROM pos_pending_amounts WHERE terminal_id = $1", signed.id)
    else:
        event["error"] = answer.body.get("error", {}).get("message", "")
    after.append(event)
    return answer


# What a till already sent under a client id, in one query: the code's use (the request
# reached the payment engine) and a confirmation waiting on the phone.
_EARLIER_SQL = """
    SELECT u.person_id, u.credential, c.id AS confirmation_id
      FROM (SELECT 1) one
      LEFT JOIN paycode_uses u ON u.terminal_id = $1 AND u.client_id = $2
      LEFT JOIN paycode_confirmations c ON c.terminal_id = $1 AND c.client_id = $2"""


async def _rebook(
    conn: Conn,
    settings: Settings,
    signed: SignedTerminal,
    use: Any,
    *,
    client_id: str,
    amount: Money,
    pin: str | None,
) -> PaymentAnswer | None:
    """A retry of a request that already reached the engine (``use``, a row of
    ``_EARLIER_SQL``): let the engine replay its answer (or refuse another payload under the
    same client id). None when it never reached the engine."""
    if use is None or use["person_id"] is None:
        return None
    return await booking.book_payment(
        conn,
        settings,
        signed,
        client_id=client_id,
        payer=VerifiedPayer(use["person_id"], use["credential"]),
        amount=amount,
        pin=pin,
    )


def _confirmation_answer(conf: Any) -> PaymentAnswer:
    if conf["status"] == "pending":
        return PaymentAnswer(
            202,
            {
                "result": "confirm_on_phone",
                "confirmation_id": conf["id"],
                "message": "waiting for the student to confirm on the phone; or ask the PIN "
                "and send it with a new client_id",
                "expires_at": conf["expires_at"].isoformat(),
            },
        )
    if conf["status"] in ("paid", "refused") and conf["result"]:
        return PaymentAnswer(int(conf["result"]["status"]), conf["result"]["body"], True)
    message = {
        "declined": "the student declined this payment on the phone",
        "expired": "the student did not confirm in time",
    }.get(conf["status"], "this payment was not confirmed")
    return PaymentAnswer(
        409,
        {
            "error": {
                "code": "PAYCODE_" + str(conf["status"]).upper(),
                "message": message,
                "field": "code",
            }
        },
        True,
    )


async def do_pay_with_code(
    pool: PgPool,
    settings: Settings,
    signed: SignedTerminal,
    *,
    client_id: str,
    code: str,
    amount: Money,
    pin: str | None = None,
    now: float | None = None,
    events: EventBatcher | None = None,
) -> PaymentAnswer:
    """A till scanned ``code`` for ``amount``: pay, ask the phone, or refuse (the code is spent
    only when the payment engine is reached). Live events go through ``events`` (the app's
    batcher) when given."""
    client_id = check_client_id(client_id)
    if pin is not None and (len(pin) != PIN_LENGTH or not pin.isdigit()):
        raise ValidationFailed(f"pin must be {PIN_LENGTH} digits", code="PIN_FORMAT", field="pin")
    now = time.time() if now is None else now
    async with pool.acquire() as conn:
        earlier = await conn.fetchrow(_EARLIER_SQL, signed.id, client_id)
        replayed = await _rebook(
            conn, settings, signed, earlier, client_id=client_id, amount=amount, pin=pin
        )
        if replayed is not None:
            return replayed
        if earlier is not None and earlier["confirmation_id"] is not None:
            conf = await conn.fetchrow(
                "SELECT * FROM paycode_confirmations WHERE id = $1", earlier["confirmation_id"]
            )
            assert conf is not None  # confirmations are never deleted
            if conf["code"] != code.strip() or conf["amount"] != amount.fen:
                raise Conflict(
                    f"client_id {client_id!r} was already used for a different request",
                    code="IDEMPOTENCY_KEY_REUSED",
                    field="client_id",
                )
            async with transaction(conn) as tx:
                await terminals.record_nonce(tx, signed)
                conf = await _expire_if_due(tx, conf)
            return _confirmation_answer(conf)

        try:
            verified = await codes.check_scanned_code(
                conn,
                settings,
                school_id=signed.school_id,
                code=code,
                now=now,
                terminal_id=signed.id,
            )
        except DomainError as err:
            first = await _first_try(conn, settings, signed, err.code, client_id, amount, pin)
            if first is not None:
                return first
            raise
        payer = VerifiedPayer(verified.person_id, codes.credential_for(verified))
        preview = await _preview(conn, signed, payer, amount)
        # an answer of the engine names the merchant and outlet; a refusal does not
        names = (
            {"merchant": preview.body["merchant"], "outlet": preview.body.get("outlet") or ""}
            if preview.ok
            else await terminal_view(conn, signed.id)
        )
        scanned = {
            "school_id": signed.school_id,
            "person_id": verified.person_id,
            "terminal_id": signed.id,
            "merchant": names["merchant"],
            "outlet": names["outlet"],
            "amount": str(amount),
        }
        if not preview.ok:
            error = preview.body.get("error", {})
            first = await _first_try(
                conn, settings, signed, error.get("code"), client_id, amount, pin
            )
            if first is not None:
                return first
            await _send(
                conn,
                events,
                [{"type": "paycode.refused", **scanned, "error": error.get("message", "")}],
            )
            return PaymentAnswer(preview.status, preview.body)
        # the student's page shows what is being asked before it is booked (seed 000)
        await _send(conn, events, [{"type": "paycode.scanned", **scanned}])
        if preview.body.get("pin_required") and pin is None:
            async with transaction(conn) as tx:
                await terminals.record_nonce(tx, signed)
                conf = await tx.fetchrow(
                    """INSERT INTO paycode_confirmations(school_id, person_id, terminal_id,
                                                         client_id, code, amount, expires_at)
                       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *""",
                    signed.school_id,
                    verified.person_id,
                    signed.id,
                    client_id,
                    code.strip(),
                    amount.fen,
                    datetime.fromtimestamp(now, UTC) + timedelta(seconds=CONFIRM_SECONDS),
                )
                assert conf is not None
                await notifications.publish_event(
                    tx, {"type": "paycode.confirm", **scanned, "confirmation_id": conf["id"]}
                )
            return _confirmation_answer(conf)
        after: list[dict[str, Any]] = []
        try:
            answer = await _book(
                conn,
                settings,
                signed,
                verified,
                client_id=client_id,
                amount=amount,
                pin=pin,
                names=names,
                after=after,
            )
        except DomainError as err:
            first = await _first_try(conn, settings, signed, err.code, client_id, amount, pin)
            if first is not None:
                return first
            raise
        await _send(conn, events, after)
        return answer


async def _first_try(
    conn: Conn,
    settings: Settings,
    signed: SignedTerminal,
    refusal: str | None,
    client_id: str,
    amount: Money,
    pin: str | None,
) -> PaymentAnswer | None:
    """A till that resends a request while its first try is still booking finds the code
    "used" — by that first try (PAYCODE_USED from the check or the booking, CREDENTIAL_USED
    from the engine's preview). Then it gets the first try's answer, not the refusal
    (found by tests/reliability/test_bank.py)."""
    if refusal not in ("PAYCODE_USED", "CREDENTIAL_USED"):
        return None
    use = await conn.fetchrow(_EARLIER_SQL, signed.id, client_id)
    return await _rebook(conn, settings, signed, use, client_id=client_id, amount=amount, pin=pin)


async def _expire_if_due(conn: Conn, conf: Any) -> Any:
    if conf["status"] == "pending" and conf["expires_at"] <= datetime.now(UTC):
        return await conn.fetchrow(
            """UPDATE paycode_confirmations SET status = 'expired', decided_at = now()
                WHERE id = $1 AND status = 'pending' RETURNING *""",
            conf["id"],
        ) or await conn.fetchrow("SELECT * FROM paycode_confirmations WHERE id = $1", conf["id"])
    return conf


async def list_confirmations(conn: Conn, actor: Actor) -> list[dict[str, Any]]:
    """The signed-in student's payments waiting for their confirmation."""
    person_id = codes.require_cardholder(actor)
    rows = await conn.fetch(
        """SELECT c.id, c.amount, c.created_at, c.expires_at, c.terminal_id,
                  coalesce(m.name, '') AS merchant, coalesce(o.name, '') AS outlet
             FROM paycode_confirmations c JOIN terminals t ON t.id = c.terminal_id
             LEFT JOIN merchants m ON m.id = t.merchant_id
             LEFT JOIN outlets o ON o.id = t.outlet_id
            WHERE c.person_id = $1 AND c.status = 'pending' AND c.expires_at > now()
            ORDER BY c.id DESC""",
        person_id,
    )
    return [dict(r) | {"amount": str(Money(r["amount"]))} for r in rows]


async def do_answer_confirmation(
    pool: PgPool,
    settings: Settings,
    actor: Actor,
    confirmation_id: int,
    *,
    accept: bool,
    pin: str | None,
) -> dict[str, Any]:
    """The student confirms (with their PIN, typed on their own phone) or declines a payment
    a till is waiting on. Confirming books it through the same payment path as the till."""
    person_id = codes.require_cardholder(actor)
    async with pool.acquire() as conn:
        async with transaction(conn) as tx:
            conf = await tx.fetchrow(
                "SELECT * FROM paycode_confirmations WHERE id = $1 FOR UPDATE", confirmation_id
            )
            if conf is None or conf["person_id"] != person_id:
                raise NotFound("no such payment waiting for you", field="confirmation_id")
            conf = await _expire_if_due(tx, conf)
            if conf["status"] != "pending":
                raise Conflict(
                    f"this payment is already {conf['status']}",
                    code="CONFIRMATION_CLOSED",
                    field="confirmation_id",
                )
            if not accept:
                await tx.execute(
                    "UPDATE paycode_confirmations SET status = 'declined', decided_at = now() "
                    "WHERE id = $1",
                    confirmation_id,
                )
                names = await terminal_view(tx, conf["terminal_id"])
                await notifications.publish_event(
                    tx,
                    {
                        "type": "paycode.result",
                        "school_id": conf["school_id"],
                        "terminal_id": conf["terminal_id"],
                        "person_id": person_id,
                        "merchant": names["merchant"],
                        "outlet": names["outlet"],
                        "amount": str(Money(conf["amount"])),
                        "ok": False,
                        "error": "declined on the phone",
                    },
                )
                return {"status": "declined"}
        if pin is None or len(pin) != PIN_LENGTH or not pin.isdigit():
            raise ValidationFailed(
                f"type your {PIN_LENGTH}-digit PIN to confirm", code="PIN_FORMAT", field="pin"
            )
        signed = await _signed_for_confirmation(conn, conf)
        after: list[dict[str, Any]] = []
        async with transaction(conn) as tx:
            # lock again: a double tap confirms once
            locked = await tx.fetchval(
                "SELECT status FROM paycode_confirmations WHERE id = $1 FOR UPDATE",
                confirmation_id,
            )
            if locked != "pending":
                raise Conflict(
                    f"this payment is already {locked}",
                    code="CONFIRMATION_CLOSED",
                    field="confirmation_id",
                )
            # the code was checked when scanned; check it again as of then (it may have
            # been revoked or the account frozen since)
            verified = await codes.check_code(
                tx,
                settings,
                school_id=conf["school_id"],
                code=conf["code"],
                now=conf["created_at"].timestamp(),
            )
            answer = await _book(
                tx,
                settings,
                signed,
                verified,
                client_id=conf["client_id"],
                amount=Money(conf["amount"]),
                pin=pin,
                names=await terminal_view(tx, conf["terminal_id"]),
                after=after,
            )
            await tx.execute(
                """UPDATE paycode_confirmations SET status = $2, result = $3, decided_at = now()
                    WHERE id = $1""",
                confirmation_id,
                "paid" if answer.ok else "refused",
                {"status": answer.status, "body": answer.body},
            )
        await _send(conn, None, after)
    return {"status": "paid" if answer.ok else "refused", "http_status": answer.status} | (
        answer.body
    )


async def _signed_for_confirmation(conn: Conn, conf: Any) -> SignedTerminal:
    """The till's identity for a booking the phone completes: the till signed the original
    request; the nonce names the confirmation so it is recorded once."""
    row = await conn.fetchrow(
        """SELECT id, sn, school_id, kind, status, merchant_id, outlet_id, key_version,
                  prev_key_version FROM terminals WHERE id = $1""",
        conf["terminal_id"],
    )
    assert row is not None
    terminal = TerminalRow(**dict(row))
    return SignedTerminal(
        terminal=terminal,
        key_version=terminal.key_version,
        nonce=f"phone-confirm-{conf['id']:012d}",
        timestamp=int(time.time()),
        body=b"",
    )
