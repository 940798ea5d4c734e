"""Paying with a payment code at a till. The code is read here (``codes.read_scanned``: its
digits, and a phone's HMAC with the binding's secret); one database call, ``cc_pay_code``,
checks the rest (throttle, binding, payer, single use) and books through the one payment
engine (``cc_pay_inner``), so limits and the PIN rule are the card's
(docs/decisions/0310-one-call-per-code-payment.md).

At the till: scan → ``do_pay_with_code``. A refusal the student can fix (balance, limits, a
frozen account) leaves the code unspent. Above the PIN threshold, without a PIN, the student is
asked on the phone (they type the PIN there) and the till gets 202 ``CONFIRM_ON_PHONE``; the
till repeats the same request (same client id) until the answer is final, or asks the PIN on
its keypad and sends a new request with it. A retry of a request that reached the payment
engine replays its stored answer.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from campuscard.config import Settings
from campuscard.db import distribution
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import transaction
from campuscard.ledger.money import Money
from campuscard.payments import batching, booking, codes
from campuscard.payments.booking import PaymentAnswer, VerifiedPayer
from campuscard.payments.terminals import SignedTerminal, TerminalRow
from campuscard.platform import notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, NotFound, ValidationFailed
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
             FROM terminals t
             LEFT JOIN merchants m ON m.school_id = t.school_id AND m.id = t.merchant_id
             LEFT JOIN outlets o ON o.school_id = t.school_id AND o.id = t.outlet_id
            WHERE t.id = $1""",
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


def _code_args(
    settings: Settings,
    signed: SignedTerminal,
    scanned: codes.ScannedCode,
    *,
    client_id: str,
    amount: Money,
    pin: str | None,
    now: float,
) -> tuple[Any, ...]:
    """cc_pay_code's arguments after the school (batching.CODE_FIELDS)."""
    at = datetime.fromtimestamp(now, UTC)
    return (
        signed.id,
        signed.key_version,
        signed.nonce,
        client_id,
        scanned.text,
        amount.fen,
        booking.pin_token(settings, pin),
        scanned.scheme,
        scanned.token,
        scanned.device_id,
        scanned.step,
        scanned.counter,
        scanned.minted_hash,
        scanned.verdict,
        at,
        at + timedelta(seconds=CONFIRM_SECONDS),
    )


def _confirmation_answer(conf: Any) -> PaymentAnswer:
    """What the till is told of a payment waiting on the phone (``conf``: the confirmation's
    id, status, result and expires_at)."""
    expires_at = conf["expires_at"]
    if isinstance(expires_at, str):  # as cc_pay_code writes it: UTC, without the zone
        expires_at = datetime.fromisoformat(expires_at).replace(tzinfo=UTC)
    if conf["status"] == "pending":
        return PaymentAnswer(
            202,
            {
                "result": "confirm_on_phone",
                "confirmation_id": conf["id"],
                "message": "waiting for the student to confirm on the phone; or ask the PIN "
                "and send it with a new client_id",
                "expires_at": expires_at.isoformat(),
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
    batcher: batching.PaymentBatcher | None = None,
    channel: str = "other",
) -> PaymentAnswer:
    """A till scanned ``code`` for ``amount``: pay, ask the phone, or refuse. One database call
    (``cc_pay_code``) checks the code and books with one run of the payment engine; the code is
    spent only when the payment books or a PIN was tried for it. With ``batcher`` (the app's
    group commit) the call is shared with the payments of ``channel`` arriving at the same
    time. Live events go through ``events`` (the app's batcher) when given, after commit."""
    client_id = check_client_id(client_id)
    if pin is not None and (len(pin) != PIN_LENGTH or not pin.isdigit()):
        raise ValidationFailed(f"pin must be {PIN_LENGTH} digits", code="PIN_FORMAT", field="pin")
    now = time.time() if now is None else now
    scanned = await codes.read_scanned(
        pool, settings, school_id=signed.school_id, code=code, now=now
    )
    member = batching.Member(
        _code_args(settings, signed, scanned, client_id=client_id, amount=amount, pin=pin, now=now),
        "code",
        scanned.person_id,
    )
    if batcher is not None:
        booked = await batcher.book(signed.school_id, member, channel)
    else:
        async with pool.acquire() as conn:
            booked = await batching.book_one(conn, signed.school_id, member)
    return await _answered(pool, booked, scanned, client_id=client_id, events=events)


async def _answered(
    pool: PgPool,
    booked: batching.Booked,
    scanned: codes.ScannedCode,
    *,
    client_id: str,
    events: EventBatcher | None,
) -> PaymentAnswer:
    """``cc_pay_code``'s answer as the till gets it: a refusal of the code raised in its own
    words, live events sent (it has committed)."""
    rest = booked.event or {}
    refused = rest.get("refused")
    if refused == "IDEMPOTENCY_KEY_REUSED":
        raise Conflict(
            f"client_id {client_id!r} was already used for a different request",
            code="IDEMPOTENCY_KEY_REUSED",
            field="client_id",
        )
    if refused is not None:
        raise (
            scanned.error
            if scanned.error and refused == scanned.verdict
            else (codes.refusal(refused))
        )
    if rest.get("events"):
        if events is not None:
            for event in rest["events"]:
                events.publish(event)
        else:
            async with pool.acquire() as conn:
                await _send(conn, None, rest["events"])
    if rest.get("confirmation") is not None:
        return _confirmation_answer(rest["confirmation"])
    return PaymentAnswer(booked.status, replayed=booked.replayed, raw=booked.body)


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
             FROM paycode_confirmations c
             JOIN terminals t ON t.school_id = c.school_id AND t.id = c.terminal_id
             LEFT JOIN merchants m ON m.school_id = t.school_id AND m.id = t.merchant_id
             LEFT JOIN outlets o ON o.school_id = t.school_id AND o.id = t.outlet_id
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
            conf = await distribution.lock_row(tx, "paycode_confirmations", confirmation_id)
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
            locked_row = await distribution.lock_row(
                tx, "paycode_confirmations", confirmation_id, "status"
            )
            locked = None if locked_row is None else locked_row["status"]
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
