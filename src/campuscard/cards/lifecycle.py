"""Card center: issue, activate, report loss, unblock, freeze, unfreeze, replace, cancel, expire,
and the device blacklist. Every transition is checked by cards/rules.py, recorded in
card_events, audited and told to the holder, in one transaction. The blacklist follows the
card state through a database trigger (db/migrations/0010_card_life_terminals.sql).

``issue_card`` is the stable entry point the self-service issuing kiosk and the card center
both use.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from campuscard.bills import holds as bill_holds
from campuscard.cards import rules
from campuscard.db import distribution
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction, savepoint
from campuscard.ledger import postings
from campuscard.ledger.money import fmt
from campuscard.platform import audit, i18n, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import (
    Conflict,
    Forbidden,
    InsufficientFunds,
    NotFound,
    ValidationFailed,
)

CARD_COLUMNS = (
    "c.id, c.school_id, c.person_id, c.number, c.uid, c.kind, c.state, c.deposit, c.expires_on, "
    "c.replaced_by, c.created_at, c.state_changed_at, c.activated_at, c.closed_at"
)
# where a deposit comes from (or a payout goes to): a system account, or the holder's purse
DEPOSIT_SOURCES = ("cash_desk", "bank_clearing", "provider_clearing", "purse")
PAYOUT_ROUTES = ("cash_desk", "bank_clearing", "provider_clearing")
DEFAULT_REPLACEMENT_FEE = 2000  # 20.00 yuan unless the school sets cards.replacement_fee


def card_view(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    card = dict(row)
    card["deposit"] = fmt(card["deposit"])
    return card


async def _card_for_update(conn: Conn, card_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"SELECT {CARD_COLUMNS} FROM cards c WHERE c.school_id = $1 AND c.id = $2 FOR UPDATE",
        await distribution.school_of(conn, "cards", card_id),
        card_id,
    )
    if row is None:
        raise NotFound("no such card", field="card_id")
    return dict(row)


def _check_operator(actor: Actor, school_id: int) -> None:
    actor.require("card_center", school_id=school_id)


def _check_holder_or_operator(actor: Actor, card: dict[str, Any]) -> None:
    if actor.has("card_center", school_id=card["school_id"]):
        return
    if actor.person_id == card["person_id"] and actor.has(
        "cardholder", school_id=card["school_id"]
    ):
        return
    # a card the actor may not touch is answered as if it did not exist
    raise NotFound("no such card", field="card_id")


async def _record(
    conn: Conn,
    actor: Actor,
    card: dict[str, Any],
    action: str,
    to_state: str,
    *,
    channel: str,
    reason: str,
    data: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO card_events(school_id, card_id, action, from_state, to_state, actor,
                                   channel, reason, data)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        card["school_id"],
        card["id"],
        action,
        card["state"] if action != "issue" else None,
        to_state,
        actor.name,
        channel,
        reason,
        data or {},
    )
    await audit.record(
        conn,
        actor,
        f"card.{action}",
        school_id=card["school_id"],
        target_type="card",
        target_id=card["id"],
        before={"state": card["state"]} if action != "issue" else None,
        after={"state": to_state, "channel": channel, "reason": reason, **(data or {})},
    )
    tail = card["number"][-4:]
    phone = await conn.fetchval("SELECT phone FROM persons WHERE id = $1", card["person_id"])
    await notifications.notify(
        conn,
        school_id=card["school_id"],
        kind=f"card.{action}",
        # notice.card.issue, .activate, .report_loss, .unblock, .freeze, .unfreeze, .replace,
        # .cancel, .expire
        title=i18n.message(f"notice.card.{action}"),
        body=i18n.message(
            "notice.card.body", tail=tail, what=i18n.message(f"notice.card.{action}")
        ),
        person_id=card["person_id"],
        data={"card_id": card["id"], "state": to_state},
        # loss, replacement and cancellation also go by SMS: the holder may not have the card
        sms_phone=phone if action in ("report_loss", "unblock", "replace", "cancel") else None,
        dedupe_key=None,
    )


async def _book_from_source(
    conn: Conn,
    *,
    school_id: int,
    person_id: int,
    source: str,
    target_code: str,
    fen: int,
    kind: str,
    ref: str,
    memo: str,
    actor: Actor,
) -> int | None:
    """Move ``fen`` from a source (system account or the holder's cash purse) to a system
    account. Returns the journal transaction id (None for zero)."""
    if fen == 0:
        return None
    if source not in DEPOSIT_SOURCES:
        raise ValidationFailed(
            f"source must be one of {', '.join(DEPOSIT_SOURCES)}", field="source"
        )
    if source == "purse":
        src = (await postings.open_purses(conn, school_id, person_id))["cash"]
    else:
        src = await postings.system_account(conn, school_id, source)
    target = await postings.system_account(conn, school_id, target_code)
    return await postings.post(
        conn,
        school_id=school_id,
        kind=kind,
        legs=postings.legs_move(src, target, fen),
        ref=ref,
        memo=memo,
        actor=actor.name,
    )


@owns_transaction
async def issue_card(
    tx: Tx,
    actor: Actor,
    *,
    person_id: int,
    number: str,
    uid: str,
    kind: str = "student",
    deposit_fen: int = 0,
    expires_on: date | None = None,
    deposit_source: str = "cash_desk",
    activate: bool = True,
    channel: str = "counter",
    reason: str = "",
) -> dict[str, Any]:
    """Issue a card to a person (card center, or the self-service kiosk acting with the
    card_center role). Opens the holder's purses, books the deposit from ``deposit_source``
    (cash_desk, bank_clearing, provider_clearing or the holder's purse) to card_deposits, and
    when ``activate`` sets the card and the holder's account active. Returns the card."""
    number = rules.check_card_number(number)
    uid = rules.check_uid(uid)
    kind = rules.check_kind(kind)
    if type(deposit_fen) is not int or deposit_fen < 0:
        raise ValidationFailed("deposit must be zero or more fen", field="deposit")
    if deposit_source not in DEPOSIT_SOURCES:
        raise ValidationFailed(
            f"deposit_source must be one of {', '.join(DEPOSIT_SOURCES)}", field="deposit_source"
        )
    person = await tx.fetchrow(
        "SELECT id, school_id, account_status, status FROM persons "
        "WHERE school_id = $1 AND id = $2 FOR UPDATE",
        await distribution.school_of(tx, "persons", person_id),
        person_id,
    )
    if person is None or not actor.has("card_center", school_id=person["school_id"]):
        raise NotFound("no such person", field="person_id")
    school_id = person["school_id"]
    if person["status"] == "left" or person["account_status"] == "closed":
        raise Conflict(
            "this person has left or their account is closed",
            code="ACCOUNT_CLOSED",
            field="person_id",
        )
    if expires_on is not None:
        today = await tx.fetchval("SELECT cc_business_date($1)", school_id)
        if expires_on <= today:
            raise ValidationFailed("expires_on must be in the future", field="expires_on")
    await postings.open_purses(tx, school_id, person_id)
    state = "active" if activate else "issued"
    try:
        async with savepoint(tx):
            row = await tx.fetchrow(
                f"""INSERT INTO cards AS c(school_id, person_id, number, uid, kind, state,
                                          deposit, expires_on, activated_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                            CASE WHEN $6 = 'active' THEN now() END)
                    RETURNING {CARD_COLUMNS}""",
                school_id,
                person_id,
                number,
                uid,
                kind,
                state,
                deposit_fen,
                expires_on,
            )
    except asyncpg.UniqueViolationError as err:
        detail = (distribution.constraint_name(err) or "") + str(err)
        if "one_live" in detail:
            raise Conflict(
                "this person already holds a card; replace or cancel it first",
                code="CARD_ALREADY_HELD",
                field="person_id",
            ) from err
        if "uid" in (distribution.constraint_name(err) or ""):
            raise Conflict(
                "this chip UID is on another card", code="CARD_UID_TAKEN", field="uid"
            ) from err
        raise Conflict(
            "this card number is already used", code="CARD_NUMBER_TAKEN", field="number"
        ) from err
    assert row is not None
    card = dict(row)
    try:
        await _book_from_source(
            tx,
            school_id=school_id,
            person_id=person_id,
            source=deposit_source,
            target_code="card_deposits",
            fen=deposit_fen,
            kind="card_deposit",
            ref=f"card:{card['id']}",
            memo=f"deposit for card {number}",
            actor=actor,
        )
    except InsufficientFunds as err:
        # name the request's field, not the ledger's internal "amount"
        raise InsufficientFunds(
            f"the cash purse cannot pay the deposit of {fmt(deposit_fen)}; "
            "take it at the cash desk (deposit_source=cash_desk)",
            field="deposit_source",
        ) from err
    if activate and person["account_status"] in ("none", "active"):
        await tx.execute(
            "UPDATE persons SET account_status = 'active', updated_at = now() WHERE id = $1",
            person_id,
        )
    await _record(
        tx,
        actor,
        card,
        "issue",
        state,
        channel=channel,
        reason=reason,
        data={
            "number": number,
            "uid": uid,
            "deposit": fmt(deposit_fen),
            "deposit_source": deposit_source,
        },
    )
    return card_view(card)


@owns_transaction
async def _simple_transition(
    tx: Tx,
    actor: Actor,
    card_id: int,
    action: str,
    *,
    channel: str,
    reason: str,
    holder_allowed: bool,
) -> dict[str, Any]:
    card = await _card_for_update(tx, card_id)
    if holder_allowed:
        _check_holder_or_operator(actor, card)
    elif not actor.has("card_center", school_id=card["school_id"]):
        if actor.person_id == card["person_id"]:
            raise Forbidden(
                f"only the card center can {action.replace('_', ' ')} a card",
                code="ROLE_REQUIRED",
            )
        raise NotFound("no such card", field="card_id")
    target = rules.next_state(card["state"], action)
    # the transaction's now() as a parameter: Citus refuses now() inside a CASE of an UPDATE
    row = await tx.fetchrow(
        f"""UPDATE cards c SET state = $2, state_changed_at = $4, updated_at = $4,
                  activated_at = CASE WHEN $2 = 'active' AND activated_at IS NULL
                                      THEN $4 ELSE activated_at END
             WHERE school_id = $3 AND id = $1 RETURNING {CARD_COLUMNS}""",
        card_id,
        target,
        card["school_id"],
        await tx.fetchval("SELECT now()"),
    )
    assert row is not None
    if action == "activate":
        await tx.execute(
            "UPDATE persons SET account_status = 'active', updated_at = now() "
            "WHERE id = $1 AND account_status = 'none'",
            card["person_id"],
        )
    await _record(tx, actor, card, action, target, channel=channel, reason=reason)
    return card_view(row)


async def activate_card(
    conn: Conn, actor: Actor, card_id: int, *, channel: str = "counter"
) -> dict[str, Any]:
    return await _simple_transition(
        conn, actor, card_id, "activate", channel=channel, reason="", holder_allowed=True
    )


async def report_loss(
    conn: Conn, actor: Actor, card_id: int, *, channel: str = "counter", reason: str = ""
) -> dict[str, Any]:
    """The holder (online, at a kiosk) or an operator reports the card lost: devices refuse it
    from the next blacklist version on, and payments with it are refused at once."""
    return await _simple_transition(
        conn, actor, card_id, "report_loss", channel=channel, reason=reason, holder_allowed=True
    )


async def unblock_card(
    conn: Conn, actor: Actor, card_id: int, *, verification: str, channel: str = "counter"
) -> dict[str, Any]:
    """解挂: an operator, after checking who the holder is (``verification`` says how)."""
    if not verification.strip():
        raise ValidationFailed(
            "say how the holder was verified (e.g. 'ID card checked at the counter')",
            field="verification",
        )
    return await _simple_transition(
        conn,
        actor,
        card_id,
        "unblock",
        channel=channel,
        reason=verification,
        holder_allowed=False,
    )


async def freeze_card(conn: Conn, actor: Actor, card_id: int, *, reason: str) -> dict[str, Any]:
    if not reason.strip():
        raise ValidationFailed("say why the card is frozen", field="reason")
    return await _simple_transition(
        conn, actor, card_id, "freeze", channel="counter", reason=reason, holder_allowed=False
    )


async def unfreeze_card(conn: Conn, actor: Actor, card_id: int, *, reason: str) -> dict[str, Any]:
    return await _simple_transition(
        conn, actor, card_id, "unfreeze", channel="counter", reason=reason, holder_allowed=False
    )


async def replacement_fee(conn: Conn, school_id: int) -> int:
    fee = await conn.fetchval(
        "SELECT (settings #>> '{cards,replacement_fee}')::bigint FROM schools WHERE id = $1",
        school_id,
    )
    return DEFAULT_REPLACEMENT_FEE if fee is None else int(fee)


@owns_transaction
async def replace_card(
    tx: Tx,
    actor: Actor,
    card_id: int,
    *,
    number: str,
    uid: str,
    fee_source: str = "purse",
    expires_on: date | None = None,
    reason: str = "",
    channel: str = "counter",
    fee_settled: bool = False,
) -> dict[str, Any]:
    """补卡: a new card for the same account. The old card is blacklisted for ever, the balance
    stays with the account, the deposit moves to the new card, and the school's replacement fee
    is charged (from the holder's cash purse, or paid at the cash desk) to fee_income.
    ``fee_settled``: the card's fee was already settled elsewhere (an online card application
    charges the school's card fee, or waives it, before the card is made), so none is charged
    here."""
    number = rules.check_card_number(number)
    uid = rules.check_uid(uid)
    if fee_source not in ("purse", "cash_desk"):
        raise ValidationFailed("fee_source must be purse or cash_desk", field="fee_source")
    old = await _card_for_update(tx, card_id)
    if not actor.has("card_center", school_id=old["school_id"]):
        raise NotFound("no such card", field="card_id")
    target = rules.next_state(old["state"], "replace")
    school_id = old["school_id"]
    if not fee_settled:
        # an online application for a replacement was checked when it was made
        await bill_holds.check_none(tx, school_id, old["person_id"], "card_replacement")
    await tx.execute(
        "UPDATE cards SET state = $2, state_changed_at = now(), updated_at = now(), "
        "closed_at = now() WHERE id = $1",
        card_id,
        target,
    )
    try:
        async with savepoint(tx):
            row = await tx.fetchrow(
                f"""INSERT INTO cards AS c(school_id, person_id, number, uid, kind, state,
                                          deposit, expires_on, activated_at)
                    VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, now())
                    RETURNING {CARD_COLUMNS}""",
                school_id,
                old["person_id"],
                number,
                uid,
                old["kind"],
                old["deposit"],
                expires_on or old["expires_on"],
            )
    except asyncpg.UniqueViolationError as err:
        field = "uid" if "uid" in (distribution.constraint_name(err) or "") else "number"
        raise Conflict(
            f"this card {field} is already used", code="CARD_TAKEN", field=field
        ) from err
    assert row is not None
    await tx.execute("UPDATE cards SET replaced_by = $2 WHERE id = $1", card_id, row["id"])
    fee = 0 if fee_settled else await replacement_fee(tx, school_id)
    try:
        await _book_from_source(
            tx,
            school_id=school_id,
            person_id=old["person_id"],
            source=fee_source,
            target_code="fee_income",
            fen=fee,
            kind="card_replacement_fee",
            ref=f"card:{row['id']}",
            memo=f"replacement of card {old['number']} by {number}",
            actor=actor,
        )
    except InsufficientFunds as err:
        raise InsufficientFunds(
            f"the cash purse cannot pay the replacement fee of {fmt(fee)}; "
            "take it at the cash desk (fee_source=cash_desk)",
            field="fee_source",
        ) from err
    await _record(
        tx,
        actor,
        old,
        "replace",
        target,
        channel=channel,
        reason=reason,
        data={
            "new_card_id": row["id"],
            "new_number": number,
            "fee": fmt(fee),
            "fee_source": "application" if fee_settled else fee_source,
        },
    )
    await tx.execute(
        """INSERT INTO card_events(school_id, card_id, action, from_state, to_state, actor,
                                   channel, reason, data)
           VALUES ($1, $2, 'issue', NULL, 'active', $3, $6, $4, $5)""",
        school_id,
        row["id"],
        actor.name,
        "replacement",
        {"replaces_card_id": card_id},
        channel,
    )
    return card_view(row) | {"replaces": card_id, "fee": fmt(fee)}


@owns_transaction
async def cancel_card(
    tx: Tx,
    actor: Actor,
    card_id: int,
    *,
    route: str,
    reason: str,
) -> dict[str, Any]:
    """注销: the card is cancelled, the deposit and the remaining balance of both purses are paid
    out through ``route`` (cash_desk: at the counter now; bank_clearing / provider_clearing: an
    outbox ``payout.requested`` row tells the money-out worker to send it), and the holder's
    account is closed. An expired card cancelled while the holder already uses a newer card
    pays out only its own deposit; the balance and the account stay with the newer card."""
    if route not in PAYOUT_ROUTES:
        raise ValidationFailed(f"route must be one of {', '.join(PAYOUT_ROUTES)}", field="route")
    if not reason.strip():
        raise ValidationFailed("say why the card is cancelled", field="reason")
    card = await _card_for_update(tx, card_id)
    if not actor.has("card_center", school_id=card["school_id"]):
        raise NotFound("no such card", field="card_id")
    target = rules.next_state(card["state"], "cancel")
    school_id, person_id = card["school_id"], card["person_id"]
    # the person row is locked so no card is issued to them while we decide
    await tx.execute(
        "SELECT 1 FROM persons WHERE school_id = $1 AND id = $2 FOR UPDATE", school_id, person_id
    )
    # an old (expired) card handed back while a newer card is in use: only its deposit is
    # paid out; the balance and the account stay with the card in use
    in_use = await tx.fetchval(
        "SELECT id FROM cards WHERE person_id = $1 AND id <> $2 "
        "AND state IN ('issued', 'active', 'lost', 'frozen')",
        person_id,
        card_id,
    )
    purses = await postings.open_purses(tx, school_id, person_id)
    balances = {
        r["id"]: r["balance"]
        for r in await tx.fetch(
            """SELECT id, balance FROM accounts WHERE school_id = $2 AND id = ANY($1::bigint[])
                ORDER BY id FOR UPDATE""",
            [] if in_use else list(purses.values()),
            school_id,
        )
    }
    deposits = await postings.system_account(tx, school_id, "card_deposits")
    payout_account = await postings.system_account(tx, school_id, route)
    legs = [postings.Leg(acc, -bal) for acc, bal in balances.items() if bal]
    if card["deposit"]:
        legs.append(postings.Leg(deposits, -card["deposit"]))
    total = -sum(leg.amount for leg in legs)
    tx_id = None
    if total:
        legs.append(postings.Leg(payout_account, total))
        tx_id = await postings.post(
            tx,
            school_id=school_id,
            kind="card_cancel_payout",
            legs=legs,
            ref=f"card:{card_id}",
            memo=f"cancel card {card['number']}: {reason}",
            actor=actor.name,
        )
    await tx.execute(
        "UPDATE cards SET state = $2, state_changed_at = now(), updated_at = now(), "
        "closed_at = now() WHERE id = $1",
        card_id,
        target,
    )
    if not in_use:
        await tx.execute(
            "UPDATE persons SET account_status = 'closed', updated_at = now() WHERE id = $1",
            person_id,
        )
    balance_total = sum(balances.values())
    payout = {
        "route": route,
        "balance": fmt(balance_total),
        "deposit": fmt(card["deposit"]),
        "total": fmt(total),
        "tx_id": tx_id,
    }
    if route != "cash_desk" and total:
        await notifications.enqueue(
            tx,
            "payout.requested",
            {
                "school_id": school_id,
                "person_id": person_id,
                "card_id": card_id,
                "route": route,
                "amount_fen": total,
                "tx_id": tx_id,
            },
            school_id=school_id,
            dedupe_key=f"payout:card:{card_id}",
        )
    await _record(tx, actor, card, "cancel", target, channel="counter", reason=reason, data=payout)
    return card_view(await _card_row(tx, card_id)) | {"payout": payout}


async def _card_row(conn: Conn, card_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(f"SELECT {CARD_COLUMNS} FROM cards c WHERE c.id = $1", card_id)
    if row is None:
        raise NotFound("no such card", field="card_id")
    return dict(row)


@owns_transaction
async def expire_due_cards(tx: Tx, actor: Actor, *, limit: int = 500) -> int:
    """Move cards past their expiry date (the school's business day) to expired, up to
    ``limit``, school by school (on Citus a statement that locks rows names its school)."""
    done = 0
    for school_id in [r["id"] for r in await tx.fetch("SELECT id FROM schools ORDER BY id")]:
        if done >= limit:
            break
        rows = await tx.fetch(
            f"""SELECT {CARD_COLUMNS} FROM cards c
                 WHERE c.school_id = $2 AND c.state IN ('issued', 'active', 'lost', 'frozen')
                   AND c.expires_on < cc_business_date($2)
                 ORDER BY c.id LIMIT $1 FOR UPDATE SKIP LOCKED""",
            limit - done,
            school_id,
        )
        for row in rows:
            card = dict(row)
            await tx.execute(
                "UPDATE cards SET state = 'expired', state_changed_at = now(), "
                "updated_at = now() WHERE school_id = $2 AND id = $1",
                card["id"],
                school_id,
            )
            await _record(
                tx, actor, card, "expire", "expired", channel="system", reason="past expires_on"
            )
            done += 1
    return done


async def expire_card(tx: Tx, actor: Actor, school_id: int, card_id: int, *, reason: str) -> bool:
    """Expire one card of ``school_id`` that is still live (a visitor's card at the end of its
    window); False when it was no longer live (returned, lost and replaced…)."""
    row = await tx.fetchrow(
        f"""SELECT {CARD_COLUMNS} FROM cards c WHERE c.school_id = $1 AND c.id = $2
              AND c.state IN ('issued', 'active', 'lost', 'frozen') FOR UPDATE""",
        school_id,
        card_id,
    )
    if row is None:
        return False
    await tx.execute(
        "UPDATE cards SET state = 'expired', state_changed_at = now(), updated_at = now() "
        "WHERE school_id = $1 AND id = $2",
        school_id,
        card_id,
    )
    await _record(tx, actor, dict(row), "expire", "expired", channel="system", reason=reason)
    return True


async def get_card(conn: Conn, actor: Actor, card_id: int) -> dict[str, Any]:
    card = await _card_row(conn, card_id)
    _check_holder_or_operator(actor, card)
    events = await conn.fetch(
        """SELECT action, from_state, to_state, actor, channel, reason, created_at
             FROM card_events WHERE card_id = $1 ORDER BY id""",
        card_id,
    )
    return card_view(card) | {"events": [dict(e) for e in events]}


async def list_cards(
    conn: Conn,
    actor: Actor,
    school_id: int,
    *,
    person_id: int | None = None,
    number: str | None = None,
    state: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    _check_operator(actor, school_id)
    rows = await conn.fetch(
        f"""SELECT {CARD_COLUMNS}, p.name AS holder, p.number AS person_number
              FROM cards c JOIN persons p ON p.id = c.person_id
             WHERE c.school_id = $1 AND ($2::bigint IS NULL OR c.person_id = $2)
               AND ($3::text IS NULL OR c.number = $3) AND ($4::text IS NULL OR c.state = $4)
             ORDER BY c.id DESC LIMIT $5""",
        school_id,
        person_id,
        number,
        state,
        limit,
    )
    return [card_view(r) for r in rows]


async def cards_of_person(conn: Conn, person_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {CARD_COLUMNS} FROM cards c WHERE c.person_id = $1 ORDER BY c.id DESC", person_id
    )
    return [card_view(r) for r in rows]


async def blacklist(conn: Conn, school_id: int, *, since: int | None) -> dict[str, Any]:
    """The device blacklist: the changes since version ``since`` (additions and removals), or
    the full list when ``since`` is missing or newer than the server's version (after a
    server restore). Every change is kept, so any older version gets an exact delta."""
    head = int(
        await conn.fetchval("SELECT version FROM blacklist_heads WHERE school_id = $1", school_id)
        or 0
    )
    if since is None or since < 0 or since > head:
        rows = await conn.fetch(
            """SELECT number, uid, reason, version FROM blacklist_entries
                WHERE school_id = $1 AND version <= $2 ORDER BY number""",
            school_id,
            head,
        )
        return {
            "version": head,
            "full": True,
            "cards": [dict(r) for r in rows],
            "added": [],
            "removed": [],
        }
    rows = await conn.fetch(
        """SELECT DISTINCT ON (card_id) card_id, number, uid, op, reason, version,
                  (SELECT b.op FROM blacklist_changes b
                    WHERE b.school_id = c.school_id AND b.card_id = c.card_id AND b.version <= $2
                    ORDER BY b.version DESC LIMIT 1) AS op_at_since
             FROM blacklist_changes c
            WHERE school_id = $1 AND version > $2 AND version <= $3
            ORDER BY card_id, version DESC""",
        school_id,
        since,
        head,
    )
    added = [
        {"number": r["number"], "uid": r["uid"], "reason": r["reason"], "version": r["version"]}
        for r in rows
        if r["op"] == "add"
    ]
    # removed: cards the device's list held at ``since`` (a card both added and removed
    # after it never was on that list); a card re-added since with a new reason is in
    # ``added`` with that reason
    removed = [
        {"number": r["number"], "uid": r["uid"], "version": r["version"]}
        for r in rows
        if r["op"] == "remove" and r["op_at_since"] == "add"
    ]
    return {
        "version": head,
        "full": False,
        "since": since,
        "cards": [],
        "added": sorted(added, key=lambda x: x["number"]),
        "removed": sorted(removed, key=lambda x: x["number"]),
    }
