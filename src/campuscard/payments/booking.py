"""Where a payment happens: check (preview), book, reverse (冲正) and refund at a merchant.

Booking is one database round trip: ``cc_pay`` (db/migrations/0011_payments.sql) records the
terminal's nonce, claims the client transaction id, checks terminal, merchant, payer, account,
limits and PIN, debits the purses in the school's order, credits one merchant shard, writes the
payment and the receipt and publishes the live event. Signatures are checked before, in Python.

The payer is either a card or an already verified payer (a payment code):

* ``CardPayer(number, uid)`` — a card read at the POS; the chip UID must belong to the number.
* ``VerifiedPayer(person_id, credential)`` — the caller (the payment-code verifier) has proved
  who pays; ``credential`` is a one-time reference (e.g. ``"paycode:<device>:<counter>"``) the
  database marks used, so a code pays once. Limits and the PIN rule are the same as for cards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.ledger.money import Money, fmt
from campuscard.payments import batching, rules
from campuscard.payments.terminals import SignedTerminal, record_nonce
from campuscard.platform import audit, idempotency, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import DomainError, NotFound, ValidationFailed
from campuscard.platform.event_batch import EventBatcher


@dataclass(frozen=True)
class CardPayer:
    number: str
    uid: str


@dataclass(frozen=True)
class VerifiedPayer:
    person_id: int
    credential: str


Payer = CardPayer | VerifiedPayer


class PaymentAnswer:
    """What the terminal is told: an HTTP status and a body (receipt or error).

    An answer of the booking function keeps its body as the JSON text PostgreSQL wrote
    (``raw``): a till's request sends it on as it is, and it is decoded only when read."""

    __slots__ = ("_body", "_raw", "replayed", "status")

    def __init__(
        self,
        status: int,
        body: dict[str, Any] | None = None,
        replayed: bool = False,
        *,
        raw: str | None = None,
    ) -> None:
        if body is None and raw is None:
            raise ValueError("an answer needs a body")
        self.status = status
        self.replayed = replayed
        self._body = body
        self._raw = raw

    @property
    def body(self) -> dict[str, Any]:
        if self._body is None:
            assert self._raw is not None
            self._body = orjson.loads(self._raw)
        return self._body

    @property
    def raw(self) -> bytes:
        """The body as JSON bytes, without decoding and encoding it again when it came as text."""
        if self._raw is not None:
            return self._raw.encode()
        return orjson.dumps(self._body, default=str)

    @property
    def error_code(self) -> str | None:
        if self.status == 200:
            return None
        error = self.body.get("error")
        return str(error.get("code")) if isinstance(error, dict) else None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PaymentAnswer):
            return NotImplemented
        return (self.status, self.body, self.replayed) == (other.status, other.body, other.replayed)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PaymentAnswer({self.status}, {self.body!r}, replayed={self.replayed})"


_PARTS = batching.PARTS
_PAY_SQL = batching.PAY_SQL
_PAY_ARGS = batching.PAY_ARGS


@dataclass(frozen=True)
class Prelude:
    """Data-modifying CTEs booked in the same statement as a payment, so both happen or
    neither without a transaction around them (e.g. spending a payment code). ``sql`` uses
    ``$1`` … ``$n`` for ``args`` and ends with a CTE named ``prelude`` returning one row."""

    sql: str
    args: tuple[Any, ...]

    def statement(self) -> str:
        n = len(self.args)
        params = ", ".join(f"${n + i}" for i in range(1, _PAY_ARGS + 1))
        return (
            f"WITH {self.sql}, pay AS (SELECT cc_pay({params}) AS r FROM prelude) "
            f"SELECT {_PARTS} FROM pay"
        )


def _payer_args(payer: Payer) -> tuple[str | None, str | None, int | None, str | None]:
    if isinstance(payer, CardPayer):
        return payer.number, payer.uid.upper(), None, None
    if not payer.credential or len(payer.credential) > 200:
        raise ValidationFailed("credential must be 1-200 characters", field="credential")
    return None, None, payer.person_id, payer.credential


def _payer_payload(payer: Payer) -> dict[str, Any]:
    if isinstance(payer, CardPayer):
        return {"card_number": payer.number, "card_uid": payer.uid.upper()}
    return {"person_id": payer.person_id, "credential": payer.credential}


def _answer(result: dict[str, Any]) -> PaymentAnswer:
    return PaymentAnswer(int(result["status"]), result["body"], bool(result.get("replayed")))


def _answer_row(row: Any) -> PaymentAnswer:
    """A row of ``_PARTS``: status, body as text, event, replayed."""
    return PaymentAnswer(row[0], replayed=bool(row[3]), raw=row[1])


async def check_payment(
    conn: Conn, signed: SignedTerminal, *, payer: Payer, amount: Money, record_nonce: bool = True
) -> PaymentAnswer:
    """Preview: would this payment go through, does it need the PIN, what is left after it.
    Moves nothing; the nonce is recorded, unless ``record_nonce`` is false (a preview inside a
    request whose booking records it), and then it writes nothing at all."""
    number, uid, person_id, credential = _payer_args(payer)
    row = await conn.fetchrow(
        _PAY_SQL,
        signed.school_id,
        "check",
        signed.id,
        signed.key_version,
        signed.nonce if record_nonce else None,
        None,
        None,
        number,
        uid,
        person_id,
        credential,
        amount.fen,
        None,
    )
    return _answer_row(row)


def _book_args(
    settings: Settings,
    signed: SignedTerminal,
    *,
    client_id: str,
    payer: Payer,
    amount: Money,
    pin: str | None,
) -> batching.BookArgs:
    """cc_pay's book arguments after the mode; a malformed client id or PIN is refused here."""
    client_id = idempotency.check_client_id(client_id)
    number, uid, person_id, credential = _payer_args(payer)
    if pin is not None and (len(pin) != rules.PIN_LENGTH or not pin.isdigit()):
        raise ValidationFailed(
            f"pin must be {rules.PIN_LENGTH} digits", code="PIN_FORMAT", field="pin"
        )
    digest = idempotency.request_hash({"op": "pay", "amount": amount.fen, **_payer_payload(payer)})
    return (
        signed.id,
        signed.key_version,
        signed.nonce,
        client_id,
        digest,
        number,
        uid,
        person_id,
        credential,
        amount.fen,
        pin_token(settings, pin),
    )


def pin_token(settings: Settings, pin: str | None) -> str | None:
    """What the engine is given of a typed PIN: a peppered token, never the PIN."""
    if pin is None:
        return None
    return rules.pin_token(rules.pin_pepper(settings.master_key.get_secret_value()), pin)


async def book_payment_batched(
    batcher: batching.PaymentBatcher,
    settings: Settings,
    signed: SignedTerminal,
    *,
    client_id: str,
    payer: Payer,
    amount: Money,
    pin: str | None = None,
    events: EventBatcher,
    channel: str = "other",
) -> PaymentAnswer:
    """``book_payment`` for a request of its own (no caller's transaction, no prelude),
    booked with the other payments arriving at the same time in one call and one commit
    (payments/batching.py). The same answer, records and live event as ``book_payment``."""
    args = _book_args(settings, signed, client_id=client_id, payer=payer, amount=amount, pin=pin)
    booked = await batcher.book(signed.school_id, batching.Member(args), channel)
    if booked.event is not None:
        events.publish(booked.event)  # committed already
    return PaymentAnswer(booked.status, replayed=booked.replayed, raw=booked.body)


async def book_payment(
    conn: Conn,
    settings: Settings,
    signed: SignedTerminal,
    *,
    client_id: str,
    payer: Payer,
    amount: Money,
    pin: str | None = None,
    events: EventBatcher | None = None,
    deferred: list[dict[str, Any]] | None = None,
    prelude: Prelude | None = None,
) -> PaymentAnswer:
    """Book a payment once per (terminal, client_id): a retry with the same payload replays
    the stored answer (approved or refused), another payload under the same id is 409.

    The live ``payment`` event (for the student's page) is sent after commit through
    ``events`` when given and ``conn`` is not inside a transaction; inside the caller's
    transaction it is appended to ``deferred`` when given (the caller sends it once it has
    committed), else published in that transaction (sent when, and only if, it commits).
    A ``prelude`` runs in the same statement as the booking: both happen or neither."""
    args = _book_args(settings, signed, client_id=client_id, payer=payer, amount=amount, pin=pin)
    sql, first = (_PAY_SQL, ()) if prelude is None else (prelude.statement(), prelude.args)
    row = await conn.fetchrow(sql, *first, signed.school_id, "book", *args)
    assert row is not None
    event = row[2]
    if event is not None:
        if events is not None and not conn.is_in_transaction():
            events.publish(event)  # committed already: batched NOTIFY, off the commit path
        elif deferred is not None:
            deferred.append(event)
        else:
            # inside the caller's transaction: sent when (and only if) it commits
            await notifications.publish_event(conn, event)
    return _answer_row(row)


async def reverse_payment(conn: Conn, signed: SignedTerminal, *, client_id: str) -> PaymentAnswer:
    """冲正 by the terminal that sent the payment, named by its client id. Safe to repeat; if
    the payment has not arrived yet, it is refused when it does."""
    client_id = idempotency.check_client_id(client_id)
    result = await conn.fetchval(
        "SELECT cc_reverse($1, $2, $3, $4, $5, $6)",
        signed.school_id,
        signed.id,
        signed.key_version,
        signed.nonce,
        client_id,
        f"terminal:{signed.terminal.sn}",
    )
    if result.get("event") is not None:
        # the reversal committed (or commits with the caller's transaction, which sends it then)
        await notifications.publish_event(conn, result["event"])
    return _answer(result)


async def can_refund(conn: Conn, actor: Actor, school_id: int, merchant_id: int) -> bool:
    """Settlement operators, the merchant's managers, and its staff granted 'refund'."""
    if actor.has("settlement", school_id=school_id):
        return True
    for grant in actor.grants:
        if grant.merchant_id != merchant_id or grant.school_id != school_id:
            continue
        if grant.role == "merchant_manager":
            return True
        if grant.role == "merchant_staff" and actor.user_id is not None:
            allowed = await conn.fetchval(
                "SELECT 1 FROM merchant_permissions WHERE user_id = $1 AND merchant_id = $2 "
                "AND permission = 'refund'",
                actor.user_id,
                merchant_id,
            )
            if allowed:
                return True
    return False


async def refund_payment(
    pool: PgPool,
    actor: Actor,
    *,
    payment_id: int,
    amount: Money,
    client_id: str,
    reason: str,
    terminal: SignedTerminal | None = None,
) -> idempotency.Outcome:
    """Refund all or part of a payment back to the purses that paid (cash first, then subsidy)
    by someone allowed to (``can_refund``); never more than what is left of it, also when two
    refunds race (the payment row is locked). Idempotent per (terminal, client_id) for a
    device, whoever is signed in on it, and per (user, client_id) otherwise."""
    client_id = idempotency.check_client_id(client_id)
    reason = reason.strip()
    if len(reason) > 200:
        raise ValidationFailed("reason is at most 200 characters", field="reason")
    async with pool.acquire() as conn:
        pay = await conn.fetchrow(
            "SELECT id, school_id, merchant_id, terminal_id FROM payments WHERE id = $1",
            payment_id,
        )
        if pay is None or not (actor.is_platform_admin or pay["school_id"] in actor.schools()):
            raise NotFound("no such payment", field="payment_id")
        if terminal is not None and terminal.terminal.merchant_id != pay["merchant_id"]:
            raise NotFound("no such payment at this merchant", field="payment_id")
        # a payment one may not see answers as one that does not exist (no 403 that tells)
        if not (
            actor.has("settlement", school_id=pay["school_id"])
            or pay["merchant_id"] in actor.merchant_ids()
        ):
            raise NotFound("no such payment", field="payment_id")
        if not await can_refund(conn, actor, pay["school_id"], pay["merchant_id"]):
            raise DomainError(
                "refunds need the merchant's refund permission",
                code="REFUND_NOT_PERMITTED",
                status=403,
            )

        async def work(c: Conn) -> dict[str, Any]:
            if terminal is not None:
                await record_nonce(c, terminal)
            result = await c.fetchval(
                "SELECT cc_refund($1, $2, $3, $4, $5, $6)",
                pay["school_id"],
                payment_id,
                amount.fen,
                terminal.id if terminal is not None else None,
                actor.name,
                reason,
            )
            if result["status"] != 200:
                err = result["body"]["error"]
                raise DomainError(
                    err["message"],
                    code=err["code"],
                    field=err.get("field"),
                    status=result["status"],
                    details=err.get("details"),
                )
            body: dict[str, Any] = result["body"]
            await notifications.publish_event(c, result["event"])  # sent when this commits
            await audit.record(
                c,
                actor,
                "payment.refund",
                school_id=pay["school_id"],
                target_type="payment",
                target_id=payment_id,
                after={"amount": fmt(amount.fen), "reason": reason, "refund_id": body["refund_id"]},
            )
            return body

        return await idempotency.run_idempotent(
            conn,
            school_id=pay["school_id"],
            # a device's client id belongs to the device: a resend after a cashier change
            # replays the first answer instead of refunding again
            scope=(
                f"refund:terminal:{terminal.id}"
                if terminal is not None
                else f"refund:user:{actor.user_id}"
            ),
            key=client_id,
            payload={"payment_id": payment_id, "amount": amount.fen, "reason": reason},
            work=work,
        )


async def get_payment(conn: Conn, actor: Actor, payment_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        """SELECT p.*, m.name AS merchant, o.name AS outlet, t.sn AS terminal
             FROM payments p JOIN merchants m ON m.id = p.merchant_id
             JOIN terminals t ON t.id = p.terminal_id LEFT JOIN outlets o ON o.id = p.outlet_id
            WHERE p.id = $1""",
        payment_id,
    )
    if row is None:
        raise NotFound("no such payment", field="payment_id")
    allowed = (
        actor.has("settlement", school_id=row["school_id"])
        or actor.person_id == row["person_id"]
        or row["merchant_id"] in actor.merchant_ids()
    )
    if not allowed:
        raise NotFound("no such payment", field="payment_id")
    refunds = await conn.fetch(
        "SELECT id, amount, to_cash, to_subsidy, reason, actor, created_at FROM refunds "
        "WHERE payment_id = $1 ORDER BY id",
        payment_id,
    )
    return payment_view(dict(row)) | {
        "refunds": [
            dict(r) | {k: fmt(r[k]) for k in ("amount", "to_cash", "to_subsidy")} for r in refunds
        ]
    }


_MONEY_FIELDS = (
    "amount",
    "from_cash",
    "from_subsidy",
    "refunded",
    "refunded_cash",
    "refunded_subsidy",
)


def payment_view(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("credential", "merchant_account_id")}
    for k in _MONEY_FIELDS:
        if k in out:
            out[k] = fmt(out[k])
    return out


async def list_payments(
    conn: Conn,
    actor: Actor,
    school_id: int,
    *,
    merchant_id: int | None = None,
    person_id: int | None = None,
    business_date: Any = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Payments for the settlement center, a merchant (its own) or a cardholder (their own)."""
    own_merchant = merchant_id is not None and merchant_id in actor.merchant_ids()
    own_payments = actor.person_id is not None and person_id == actor.person_id
    if not (own_merchant or own_payments):
        actor.require("settlement", school_id=school_id)
    rows = await conn.fetch(
        """SELECT p.id, p.business_date, p.created_at, p.merchant_id, m.name AS merchant,
                  p.outlet_id, o.name AS outlet, p.terminal_id, t.sn AS terminal, p.channel,
                  p.method, p.person_id, p.amount, p.from_cash, p.from_subsidy, p.refunded,
                  p.status, p.client_id
             FROM payments p JOIN merchants m ON m.id = p.merchant_id
             JOIN terminals t ON t.id = p.terminal_id LEFT JOIN outlets o ON o.id = p.outlet_id
            WHERE p.school_id = $1 AND ($2::bigint IS NULL OR p.merchant_id = $2)
              AND ($3::bigint IS NULL OR p.person_id = $3)
              AND ($4::date IS NULL OR p.business_date = $4)
              AND ($6::bigint IS NULL OR p.id < $6)
            ORDER BY p.id DESC LIMIT $5""",
        school_id,
        merchant_id,
        person_id,
        business_date,
        limit,
        before_id,
    )
    return [payment_view(dict(r)) for r in rows]
