"""Bank card <-> campus card over the bank link: binding a card, loads (圈存), payouts.

Two-phase: a transfer row is committed 'pending' before the bank hears of it. For a payout
the money leaves the purse first (purse -> bank_clearing, in that same transaction), so it
cannot be spent twice. Then, outside any transaction, the request goes to the bank:
  approved   -> load: bank_clearing -> cash purse, 'posted'; payout: 'posted'
  declined   -> 'failed' (payout: the held money goes back to the purse)
  no answer  -> 'unknown', and a reversal (冲正) is sent at once, with retries; from then on
                only the reversal resolves it (a late approval is not booked)
A transfer is sent once (``sent_at``): a resent request answers its state.
A reversal confirmed by the bank makes the transfer 'reversed' (payout: money back). What the
immediate retries cannot settle, ``resolve_open_transfers`` (periodic) settles: reversal for
'unknown' and 'reversing', inquiry for a 'pending' row left by a crash. So "the bank debited
but the card was not credited" never stays: either the load is booked or it is reversed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from stdnum import luhn

from campuscard.adapters.bank import iso
from campuscard.adapters.bank.client import BankAnswer, BankClient, BankTimeout
from campuscard.config import Settings
from campuscard.db import distribution
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, transaction
from campuscard.ledger import postings
from campuscard.ledger.money import Money, fmt
from campuscard.offline import overdraft
from campuscard.platform import audit, i18n, idempotency, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, DomainError, NotFound, ValidationFailed

log = logging.getLogger("campuscard.bank")

MAX_LOAD_FEN = 200_000  # 2,000.00 yuan per load
OPEN_STATES = ("pending", "unknown", "reversing")

# What else happens, in the posting transaction, when the bank made a payout that another use
# case started: the use case registers a handler for its transfers' ``origin`` (leaving school
# registers 'leaving' and closes the account). The bank link calls out through this table
# instead of importing its callers, so the dependency points one way.
PayoutPosted = Callable[[Tx, dict[str, Any]], Awaitable[None]]
PAYOUT_POSTED: dict[str, PayoutPosted] = {}
# origins whose posted payout needs nothing more than the notice below
NOTHING_MORE = frozenset({"holder", "guardian", "auto", "card_cancel"})
# What a payout that did not happen (refused, reversed) also does, by origin, in the transaction
# that gives its money back (payroll tells the staff member their salary did not reach the card).
PAYOUT_RETURNED: dict[str, PayoutPosted] = {}
# origins whose handlers tell the holder themselves, in their own words (payroll: "salary
# paid"); the bank link's notices about the card ("paid to your bank card", "nothing was taken")
# are not sent for them
OWN_NOTICE: set[str] = set()
# where a payout that did not happen goes back to, when not to the holder's cash purse: the
# account the payout's hold took it from (a cancelled card's purse is closed: suspense)
RETURNS_TO = {"card_cancel": "suspense", "payroll": "payroll_clearing"}


def on_payout_posted(
    origin: str, handler: PayoutPosted, *, own_notice: bool = False
) -> PayoutPosted:
    """Register what a posted payout of ``origin`` also does (in the caller's transaction)."""
    PAYOUT_POSTED[origin] = handler
    if own_notice:
        OWN_NOTICE.add(origin)
    return handler


def on_payout_returned(origin: str, handler: PayoutPosted) -> PayoutPosted:
    """Register what a payout of ``origin`` that did not happen also does (same transaction as
    the money's return)."""
    PAYOUT_RETURNED[origin] = handler
    return handler


# ---- service hours ---------------------------------------------------------------------
def parse_hours(text: str) -> tuple[time, time | None]:
    """'06:00-23:30' -> (06:00, 23:30); an end of 24:00 means midnight (None)."""
    try:
        start_s, end_s = text.split("-")
        start = time.fromisoformat(start_s.strip())
        end = None if end_s.strip() == "24:00" else time.fromisoformat(end_s.strip())
    except ValueError as err:
        raise ValueError(f"bank_hours must look like '06:00-23:30', not {text!r}") from err
    return start, end


def bank_open(settings: Settings, at: datetime | None = None) -> bool:
    start, end = parse_hours(settings.bank_hours)
    now = (at or datetime.now(ZoneInfo(settings.bank_timezone))).astimezone(
        ZoneInfo(settings.bank_timezone)
    )
    t = now.time()
    return start <= t and (end is None or t < end)


def check_bank_open(settings: Settings) -> None:
    if not bank_open(settings):
        raise DomainError(
            f"the bank link is open {settings.bank_hours} ({settings.bank_timezone}); "
            "try again then",
            code="BANK_CLOSED",
            status=409,
        )


# ---- trace numbers ---------------------------------------------------------------------
async def next_trace(conn: PgPool | Conn) -> tuple[str, str]:
    """(rrn, stan): a 12-digit reference and the 6-digit trace number it ends with."""
    n: int = await conn.fetchval("SELECT nextval('bank_trace_seq')")
    rrn = f"{n % 10**12:012d}"
    return rrn, rrn[-6:]


# ---- binding ---------------------------------------------------------------------------
async def check_holder(conn: Conn, actor: Actor, person_id: int) -> dict[str, Any]:
    person = await conn.fetchrow(
        "SELECT id, school_id, name, account_status FROM persons WHERE id = $1", person_id
    )
    if person is None or not (
        actor.person_id == person_id or actor.has("settlement", school_id=person["school_id"])
    ):
        raise NotFound("person not found", field="person_id")
    return dict(person)


def card_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "bank_name": row["bank_name"],
        "masked_pan": row["masked_pan"],
        "holder_name": row["holder_name"],
        "status": row["status"],
        "created_at": row["created_at"].isoformat(),
    }


async def do_bind_card(
    pool: PgPool,
    settings: Settings,
    actor: Actor,
    *,
    person_id: int,
    pan: str,
    holder_name: str,
    bank_name: str = "",
) -> dict[str, Any]:
    """Verify the card with the bank, keep its masked number and the bank's token only."""
    if not pan.isdigit() or not 16 <= len(pan) <= 19 or not luhn.is_valid(pan):
        raise ValidationFailed("this is not a valid bank card number", field="pan")
    async with pool.acquire() as conn:
        person = await check_holder(conn, actor, person_id)
        if person["account_status"] == "closed":
            raise Conflict("this account is closed", code="ACCOUNT_CLOSED", field="person_id")
        if await conn.fetchval(
            "SELECT true FROM bank_cards WHERE person_id = $1 AND status = 'active'", person_id
        ):
            raise Conflict(
                "a bank card is already bound; unbind it first",
                code="BANK_CARD_ALREADY_BOUND",
                field="pan",
            )
        _, stan = await next_trace(conn)
    try:
        answer = await BankClient.from_settings(settings).verify_account(
            pan=pan, holder_name=holder_name, stan=stan
        )
    except BankTimeout as err:
        raise DomainError(
            "the bank did not answer; try again", code="BANK_UNAVAILABLE", status=409
        ) from err
    if not answer.approved or not answer.token:
        reasons = {"14": "the bank does not know this card", "05": "the name does not match"}
        raise DomainError(
            reasons.get(answer.code, f"the bank refused the card ({answer.code})"),
            code="BANK_CARD_REFUSED",
            field="holder_name" if answer.code == "05" else "pan",
            status=422,
        )
    async with transaction(pool) as tx:
        try:
            row = await tx.fetchrow(
                """INSERT INTO bank_cards(school_id, person_id, bank_name, masked_pan,
                                          holder_name, bank_token)
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
                person["school_id"],
                person_id,
                bank_name,
                iso.mask_pan(pan),
                holder_name,
                answer.token,
            )
        except asyncpg.UniqueViolationError as err:  # bound concurrently
            raise Conflict(
                "a bank card is already bound", code="BANK_CARD_ALREADY_BOUND", field="pan"
            ) from err
        assert row is not None
        await audit.record(
            tx,
            actor,
            "bank_card.bind",
            school_id=person["school_id"],
            target_type="person",
            target_id=person_id,
            after={"masked_pan": row["masked_pan"], "bank_name": bank_name},
        )
        return card_view(row)


async def do_unbind_card(pool: PgPool, actor: Actor, *, person_id: int) -> dict[str, Any]:
    async with transaction(pool) as tx:
        person = await check_holder(tx, actor, person_id)
        row = await tx.fetchrow(
            """SELECT * FROM bank_cards WHERE school_id = $2 AND person_id = $1
                  AND status = 'active' FOR UPDATE""",
            person_id,
            person["school_id"],
        )
        if row is None:
            raise NotFound("no bank card is bound", field="person_id")
        busy = await tx.fetchval(
            "SELECT true FROM bank_transfers WHERE bank_card_id = $1 AND status = ANY($2)",
            row["id"],
            list(OPEN_STATES),
        )
        if busy:
            raise Conflict("a transfer with this card is still open", field="person_id")
        await tx.execute(
            "UPDATE bank_cards SET status = 'unbound', unbound_at = now() WHERE id = $1", row["id"]
        )
        await tx.execute(
            "UPDATE auto_topups SET enabled = false, updated_at = now() WHERE person_id = $1",
            person_id,
        )
        await audit.record(
            tx,
            actor,
            "bank_card.unbind",
            school_id=person["school_id"],
            target_type="person",
            target_id=person_id,
            before={"masked_pan": row["masked_pan"]},
        )
        return card_view(row) | {"status": "unbound"}


async def bound_card(conn: PgPool | Conn, person_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT * FROM bank_cards WHERE person_id = $1 AND status = 'active'", person_id
    )
    return dict(row) if row else None


# ---- transfers -------------------------------------------------------------------------
def transfer_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "direction": row["direction"],
        "origin": row["origin"],
        "person_id": row["person_id"],
        "amount": fmt(row["amount"]),
        "status": row["status"],
        "rrn": row["rrn"],
        "response_code": row["response_code"],
        "note": row["note"],
        "created_at": row["created_at"].isoformat(),
        "resolved_at": row["resolved_at"].isoformat() if row["resolved_at"] else None,
    }


async def create_transfer(
    conn: Conn,
    *,
    school_id: int,
    person_id: int,
    card: dict[str, Any],
    direction: str,
    origin: str,
    amount: int,
    requested_by: int | None,
    target: int | None = None,
    actor_name: str = "system",
    source: int | None = None,
    memo: str = "",
) -> dict[str, Any]:
    """Write a pending transfer (caller's transaction). A payout holds the money at once: it
    moves from ``source`` (default: the holder's cash purse) to bank_clearing."""
    rrn, stan = await next_trace(conn)
    row = await conn.fetchrow(
        """INSERT INTO bank_transfers(school_id, direction, origin, person_id, bank_card_id,
                                      amount, rrn, stan, requested_by, target)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *""",
        school_id,
        direction,
        origin,
        person_id,
        card["id"],
        amount,
        rrn,
        stan,
        requested_by,
        target,
    )
    assert row is not None
    if direction == "payout":
        if source is None:
            source = (await postings.open_purses(conn, school_id, person_id))["cash"]
        clearing = await postings.system_account(conn, school_id, "bank_clearing")
        hold = await postings.post(
            conn,
            school_id=school_id,
            kind="bank_payout",
            legs=postings.legs_move(source, clearing, amount),
            ref=f"bank_transfer:{row['id']}",
            memo=memo or f"to bank card {card['masked_pan']}",
            actor=actor_name,
            meta={"rrn": rrn},
        )
        await conn.execute(
            "UPDATE bank_transfers SET hold_tx_id = $2 WHERE id = $1", row["id"], hold
        )
    return dict(row)


async def execute_transfer(pool: PgPool, settings: Settings, transfer_id: int) -> dict[str, Any]:
    """Send a pending transfer to the bank and settle what it answers (outside any tx).

    Only the first caller sends it (it claims the row with ``sent_at``): a resent client
    request, or a second caller, gets the transfer's state back, 'pending' while the first
    try is in flight. A second copy at the bank could be approved after our own reversal of
    the first; the periodic job's inquiry settles a claimed row whose sender died."""
    claimed = await pool.fetchrow(
        "UPDATE bank_transfers SET sent_at = now(), updated_at = now() "
        "WHERE id = $1 AND status = 'pending' AND sent_at IS NULL RETURNING *",
        transfer_id,
    )
    if claimed is None:
        return await _get(pool, transfer_id)
    t = dict(claimed)
    card = await pool.fetchrow("SELECT bank_token FROM bank_cards WHERE id = $1", t["bank_card_id"])
    assert card is not None
    client = BankClient.from_settings(settings)
    try:
        answer = await client.transfer(
            direction=t["direction"],
            token=card["bank_token"],
            amount=t["amount"],
            rrn=t["rrn"],
            stan=t["stan"],
        )
    except BankTimeout as err:
        log.warning("bank transfer %s timed out: %s; reversing", t["rrn"], err)
        await _set_state(pool, transfer_id, "unknown", from_states=("pending",), note="timeout")
        return await reverse_transfer(pool, settings, transfer_id)
    return await settle_answer(pool, settings, transfer_id, answer)


async def settle_answer(
    pool: PgPool, settings: Settings, transfer_id: int, answer: BankAnswer
) -> dict[str, Any]:
    if not answer.approved:
        await _finish_failed(pool, transfer_id, answer.code, "failed")
        return await _get(pool, transfer_id)
    must_reverse = False
    async with transaction(pool) as tx:
        t = await distribution.lock_row(tx, "bank_transfers", transfer_id)
        assert t is not None
        if t["status"] != "pending":
            # in doubt ('unknown', 'reversing'), a transfer is resolved by its reversal only:
            # an approval arriving late is not booked, whatever it says
            return dict(t)
        if t["direction"] == "payout":
            await tx.execute(
                """UPDATE bank_transfers SET status = 'posted', response_code = $2, auth_code = $3,
                          tx_id = hold_tx_id, updated_at = now(), resolved_at = now()
                    WHERE id = $1""",
                transfer_id,
                answer.code,
                answer.auth_code,
            )
            await _after_posted(tx, dict(t))
        else:
            purses = await postings.open_purses(tx, t["school_id"], t["person_id"])
            balance = await tx.fetchval(
                "SELECT balance FROM accounts WHERE school_id = $2 AND id = $1 FOR UPDATE",
                purses["cash"],
                t["school_id"],
            )
            if t["target"] is not None and balance + t["amount"] > t["target"]:
                # money came in meanwhile: booking would overshoot the target; undo it
                await tx.execute(
                    """UPDATE bank_transfers SET status = 'reversing', response_code = $2,
                              note = 'would exceed the target balance', updated_at = now()
                        WHERE id = $1""",
                    transfer_id,
                    answer.code,
                )
                must_reverse = True
            else:
                clearing = await postings.system_account(tx, t["school_id"], "bank_clearing")
                tx_id = await postings.post(
                    tx,
                    school_id=t["school_id"],
                    kind="bank_load",
                    legs=postings.legs_move(clearing, purses["cash"], t["amount"]),
                    ref=f"bank_transfer:{t['id']}",
                    memo="圈存 bank card -> campus card",
                    meta={"rrn": t["rrn"], "auth_code": answer.auth_code, "origin": t["origin"]},
                )
                await tx.execute(
                    """UPDATE bank_transfers SET status = 'posted', response_code = $2,
                              auth_code = $3, tx_id = $4, updated_at = now(), resolved_at = now()
                        WHERE id = $1""",
                    transfer_id,
                    answer.code,
                    answer.auth_code,
                    tx_id,
                )
                # a top-up repays the holder's offline overdraft first
                repaid = await overdraft.repay_overdraft(tx, t["school_id"], t["person_id"])
                await _after_posted(tx, dict(t) | {"balance": balance + t["amount"] - repaid})
    if must_reverse:
        return await reverse_transfer(pool, settings, transfer_id)
    return await _get(pool, transfer_id)


async def reverse_transfer(pool: PgPool, settings: Settings, transfer_id: int) -> dict[str, Any]:
    """Send the reversal (冲正) with a few immediate retries; the periodic job goes on."""
    t = await _get(pool, transfer_id)
    if t["status"] not in ("unknown", "reversing", "pending"):
        return t
    client = BankClient.from_settings(settings)
    for _ in range(max(1, settings.bank_reversal_attempts)):
        _, stan = await next_trace(pool)
        await pool.execute(
            "UPDATE bank_transfers SET reversal_attempts = reversal_attempts + 1, "
            "updated_at = now() WHERE id = $1",
            transfer_id,
        )
        try:
            answer = await client.reverse(
                direction=t["direction"],
                amount=t["amount"],
                rrn=t["rrn"],
                stan=stan,
                original_stan=t["stan"],
            )
        except BankTimeout as err:
            log.warning("reversal of %s got no answer: %s", t["rrn"], err)
            continue
        if answer.approved:
            await _finish_failed(pool, transfer_id, t["response_code"] or "", "reversed")
            return await _get(pool, transfer_id)
        log.error("bank refused the reversal of %s: %s", t["rrn"], answer.code)
    return await _get(pool, transfer_id)


async def _finish_failed(pool: PgPool, transfer_id: int, code: str, status: str) -> None:
    """Declined or reversed: nothing moved at the bank; a held payout goes back."""
    async with transaction(pool) as tx:
        t = await distribution.lock_row(tx, "bank_transfers", transfer_id)
        assert t is not None
        if t["status"] not in OPEN_STATES:
            return
        release = None
        if t["direction"] == "payout" and t["hold_tx_id"] is not None:
            clearing = await postings.system_account(tx, t["school_id"], "bank_clearing")
            if t["origin"] in RETURNS_TO:
                # a cancelled card's account is closed: the money waits in suspense for the
                # counter; a payroll line's goes back to the payroll account
                back_to = await postings.system_account(tx, t["school_id"], RETURNS_TO[t["origin"]])
            else:
                back_to = (await postings.open_purses(tx, t["school_id"], t["person_id"]))["cash"]
            release = await postings.post(
                tx,
                school_id=t["school_id"],
                kind="bank_payout_release",
                legs=postings.legs_move(clearing, back_to, t["amount"]),
                ref=f"bank_transfer:{t['id']}:release",
                memo=f"payout {status}",
            )
        await tx.execute(
            """UPDATE bank_transfers SET status = $2, response_code = coalesce(nullif($3, ''),
                      response_code), release_tx_id = $4, updated_at = now(), resolved_at = now()
                WHERE id = $1""",
            transfer_id,
            status,
            code,
            release,
        )
        await _after_failed(tx, dict(t) | {"status": status, "response_code": code})


async def _after_posted(tx: Tx, t: dict[str, Any]) -> None:
    amount = i18n.money(t["amount"])
    if t["direction"] == "load":
        title = i18n.message("notice.bank_load.title")
        body = i18n.message(
            "notice.bank_load.body", amount=amount, balance=i18n.money(t.get("balance", 0))
        )
        if t["origin"] == "auto":
            await tx.execute(
                "UPDATE auto_topups SET last_result = 'posted', updated_at = now() "
                "WHERE person_id = $1",
                t["person_id"],
            )
    else:
        title = i18n.message("notice.bank_payout.title")
        body = i18n.message("notice.bank_payout.body", amount=amount)
        handler = PAYOUT_POSTED.get(t["origin"])
        if handler is not None:
            await handler(tx, t)
        elif t["origin"] not in NOTHING_MORE:
            # a caller's payout whose handler was never registered must not post half-done
            raise RuntimeError(f"no payout handler registered for origin {t['origin']!r}")
        if t["origin"] in OWN_NOTICE:
            return
    await notifications.notify(
        tx,
        school_id=t["school_id"],
        person_id=t["person_id"],
        kind=f"bank_{t['direction']}_posted",
        title=title,
        body=body,
        data={"transfer_id": t["id"]},
        dedupe_key=f"bank_transfer_posted:{t['id']}",
    )


async def _after_failed(conn: Tx, t: dict[str, Any]) -> None:
    returned = PAYOUT_RETURNED.get(t["origin"])
    if returned is not None and t["direction"] == "payout":
        await returned(conn, t)
    if t["origin"] == "auto":
        await conn.execute(
            "UPDATE auto_topups SET last_result = $2, updated_at = now() WHERE person_id = $1",
            t["person_id"],
            f"{t['status']} {t['response_code'] or ''}".strip(),
        )
    if t["origin"] in OWN_NOTICE:
        return
    if t["origin"] == "auto" or t["status"] == "failed":
        what = i18n.message(
            "notice.bank_failed.auto" if t["origin"] == "auto" else "notice.bank_failed.transfer"
        )
        await notifications.notify(
            conn,
            school_id=t["school_id"],
            person_id=t["person_id"],
            kind="auto_topup_failed" if t["origin"] == "auto" else "bank_transfer_failed",
            title=i18n.message("notice.bank_failed.title", what=what),
            body=i18n.message(
                "notice.bank_failed.body",
                what=what,
                amount=i18n.money(t["amount"]),
                # the bank's response code as it sent it; none means it never answered
                why=t["response_code"] or i18n.message("notice.bank_failed.timeout"),
            ),
            data={"transfer_id": t["id"]},
            dedupe_key=f"bank_transfer_failed:{t['id']}",
        )


async def _set_state(
    pool: PgPool, transfer_id: int, status: str, *, from_states: tuple[str, ...], note: str
) -> None:
    await pool.execute(
        "UPDATE bank_transfers SET status = $2, note = $3, updated_at = now() "
        "WHERE id = $1 AND status = ANY($4)",
        transfer_id,
        status,
        note,
        list(from_states),
    )


async def _get(pool: PgPool | Conn, transfer_id: int) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM bank_transfers WHERE id = $1", transfer_id)
    if row is None:
        raise NotFound("transfer not found", field="transfer_id")
    return dict(row)


async def resolve_open_transfers(
    pool: PgPool, settings: Settings, *, older_than: timedelta = timedelta(seconds=30)
) -> int:
    """The periodic job: settle every transfer still open after ``older_than``.
    'unknown'/'reversing' are reversed; a 'pending' one (we crashed) is asked about first."""
    rows = await pool.fetch(
        "SELECT id, status, rrn FROM bank_transfers WHERE status = ANY($1) "
        "AND updated_at <= now() - $2::interval ORDER BY id LIMIT 200",
        list(OPEN_STATES),
        older_than,
    )
    client = BankClient.from_settings(settings)
    settled = 0
    for row in rows:
        try:
            if row["status"] == "pending":
                _, stan = await next_trace(pool)
                answer = await client.inquire(rrn=row["rrn"], stan=stan)
                if answer.approved:
                    result = await settle_answer(pool, settings, row["id"], answer)
                elif answer.code == iso.REVERSED:
                    await _finish_failed(pool, row["id"], answer.code, "reversed")
                    result = await _get(pool, row["id"])
                elif answer.code == iso.NOT_FOUND:
                    # never reached the bank: a reversal leaves a marker so a late copy of
                    # the original is refused, then nothing moved
                    await _set_state(
                        pool, row["id"], "unknown", from_states=("pending",), note="not found"
                    )
                    result = await reverse_transfer(pool, settings, row["id"])
                else:
                    await _finish_failed(pool, row["id"], answer.code, "failed")
                    result = await _get(pool, row["id"])
            else:
                result = await reverse_transfer(pool, settings, row["id"])
        except BankTimeout as err:
            log.warning("resolving transfer %s: %s", row["id"], err)
            continue
        if result["status"] not in OPEN_STATES:
            settled += 1
    return settled


async def _start_load(
    tx: Tx,
    *,
    settings: Settings,
    actor: Actor,
    person_id: int,
    amount: Money,
) -> dict[str, Any]:
    person = await check_holder(tx, actor, person_id)
    if person["account_status"] in ("closed", "none"):
        raise Conflict("this account cannot receive money", code="ACCOUNT_NOT_ACTIVE")
    check_bank_open(settings)
    card = await bound_card(tx, person_id)
    if card is None:
        raise Conflict("bind a bank card first", code="NO_BANK_CARD", field="person_id")
    t = await create_transfer(
        tx,
        school_id=person["school_id"],
        person_id=person_id,
        card=card,
        direction="load",
        origin="holder",
        amount=amount.fen,
        requested_by=actor.user_id,
    )
    return {"transfer_id": t["id"]}


async def do_load(
    pool: PgPool,
    settings: Settings,
    actor: Actor,
    *,
    person_id: int,
    amount: Money,
    client_id: str,
) -> tuple[int, dict[str, Any], bool]:
    """The holder moves money from the bound bank card to the campus card (圈存)."""
    idempotency.check_client_id(client_id)
    if amount.fen > MAX_LOAD_FEN:
        raise ValidationFailed(f"one transfer is at most {fmt(MAX_LOAD_FEN)}", field="amount")

    async with pool.acquire() as conn:
        outcome = await idempotency.run_idempotent(
            conn,
            school_id=await idempotency.school_of_person(conn, person_id),
            scope=f"bank_load:{actor.user_id}",
            key=client_id,
            payload={"person_id": person_id, "amount": amount.fen},
            work=lambda tx: _start_load(
                tx, settings=settings, actor=actor, person_id=person_id, amount=amount
            ),
            success_status=201,
        )
    if outcome.status >= 400:
        return outcome.status, outcome.body, outcome.replayed
    t = await execute_transfer(pool, settings, outcome.body["transfer_id"])
    return outcome.status, transfer_view(t), outcome.replayed


async def list_transfers(pool: PgPool, actor: Actor, person_id: int) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        await check_holder(conn, actor, person_id)
        rows = await conn.fetch(
            "SELECT * FROM bank_transfers WHERE person_id = $1 ORDER BY id DESC LIMIT 50",
            person_id,
        )
        return [transfer_view(r) for r in rows]


async def do_requested_payout(pool: PgPool, settings: Settings, payload: dict[str, Any]) -> None:
    """Outbox 'payout.requested' (a cancelled card's balance, booked to a clearing account by
    services/cards.cancel_card): send it to the holder's bound bank card as a two-phase payout
    whose hold is that booking. Without a bound card, or for a route the bank link does not
    serve, the money moves to suspense for the settlement center to pay at the counter."""
    school_id, person_id = int(payload["school_id"]), int(payload["person_id"])
    amount, hold = int(payload["amount_fen"]), payload.get("tx_id")
    if amount <= 0 or hold is None:
        return
    async with transaction(pool) as tx:
        existing = await tx.fetchval(
            "SELECT id FROM bank_transfers WHERE hold_tx_id = $1", int(hold)
        )
        if existing is None:
            card = await bound_card(tx, person_id) if payload["route"] == "bank_clearing" else None
            if card is None:
                await _to_suspense(tx, school_id, person_id, payload, amount)
                return
            rrn, stan = await next_trace(tx)
            existing = await tx.fetchval(
                """INSERT INTO bank_transfers(school_id, direction, origin, person_id,
                                              bank_card_id, amount, rrn, stan, hold_tx_id)
                   VALUES ($1, 'payout', 'card_cancel', $2, $3, $4, $5, $6, $7) RETURNING id""",
                school_id,
                person_id,
                card["id"],
                amount,
                rrn,
                stan,
                int(hold),
            )
    await execute_transfer(pool, settings, existing)


async def _to_suspense(
    conn: Conn, school_id: int, person_id: int, payload: dict[str, Any], amount: int
) -> None:
    source = await postings.system_account(conn, school_id, str(payload["route"]))
    suspense = await postings.system_account(conn, school_id, "suspense")
    await postings.post(
        conn,
        school_id=school_id,
        kind="payout_to_suspense",
        legs=postings.legs_move(source, suspense, amount),
        ref=f"card:{payload.get('card_id')}:payout",
        memo="cancelled card: no bound bank card; pay the holder at the counter",
        meta={"person_id": person_id, "route": payload["route"]},
    )
    await notifications.notify(
        conn,
        school_id=school_id,
        person_id=person_id,
        kind="payout_at_counter",
        title=i18n.message("notice.payout_at_counter.title"),
        body=i18n.message("notice.payout_at_counter.body", amount=i18n.money(amount)),
        dedupe_key=f"payout_at_counter:{payload.get('tx_id')}",
    )
