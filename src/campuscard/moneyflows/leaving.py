"""Leaving school (离校): the remaining balance goes back to the holder, the account closes.

The subsidy purse is not paid out: what is left returns to the subsidy fund. The cash purse
is paid either at the counter (cash, holder present and identified, in the operator's
drawer) or to the bound bank card (a two-phase payout over the bank link). The account is
closed (persons.account_status = 'closed', status = 'left') when the money has left: at
once at the counter, when the bank approves for a payout. A refused or reversed payout
puts the money back and leaves the account open, so the operator can pay at the counter.
"""

from __future__ import annotations

from typing import Any, Literal

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.db.tx import Tx
from campuscard.ledger import postings
from campuscard.ledger.money import fmt
from campuscard.moneyflows import bank_link, counter
from campuscard.platform import audit, i18n, idempotency, notifications
from campuscard.platform.actors import SYSTEM, Actor
from campuscard.platform.errors import Conflict


async def close_account(
    tx: Tx, school_id: int, person_id: int, *, reason: str, strict: bool = True
) -> bool:
    """Close the account once its purses are empty (caller's transaction). With
    ``strict=False`` (a payout the bank already made) money that arrived meanwhile leaves
    the account open instead of failing; returns whether it closed."""
    left = await tx.fetchval(
        "SELECT coalesce(sum(balance), 0) FROM accounts WHERE person_id = $1 AND kind = 'purse'",
        person_id,
    )
    if left != 0:
        if not strict:
            return False
        raise Conflict(
            f"{fmt(left)} is still in the purses", code="BALANCE_REMAINS", field="person_id"
        )
    await tx.execute(
        """UPDATE persons SET account_status = 'closed', status = 'left', updated_at = now()
            WHERE id = $1""",
        person_id,
    )
    await tx.execute(
        "UPDATE auto_topups SET enabled = false, updated_at = now() WHERE person_id = $1",
        person_id,
    )
    await audit.record(
        tx,
        SYSTEM,
        "account.close",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        after={"reason": reason},
    )
    await notifications.notify(
        tx,
        school_id=school_id,
        person_id=person_id,
        kind="account_closed",
        title=i18n.message("notice.account_closed.title"),
        body=i18n.message("notice.account_closed.body"),
        dedupe_key=f"account_closed:{person_id}",
    )
    return True


async def _bank_paid_out(tx: Tx, transfer: dict[str, Any]) -> None:
    """The bank made a leaving payout: close the account (money that arrived meanwhile
    leaves it open)."""
    await close_account(
        tx,
        transfer["school_id"],
        transfer["person_id"],
        reason="leaving, paid to bank",
        strict=False,
    )


bank_link.on_payout_posted("leaving", _bank_paid_out)


async def _settle_leaving(
    tx: Tx,
    *,
    actor: Actor,
    school_id: int,
    person_number: str,
    method: Literal["bank", "counter"],
    client_id: str,
    identity: counter.Identity | None,
) -> dict[str, Any]:
    person = await counter.person_by_number(tx, school_id, person_number)
    if person["account_status"] == "closed":
        raise Conflict("this account is already closed", code="ACCOUNT_CLOSED")
    busy = await tx.fetchval(
        "SELECT true FROM bank_transfers WHERE person_id = $1 AND status = ANY($2)",
        person["id"],
        list(bank_link.OPEN_STATES),
    )
    if busy:
        raise Conflict(
            "a bank transfer of this holder is still open; try again shortly",
            code="TRANSFER_OPEN",
            field="person_number",
        )
    purses = await postings.open_purses(tx, school_id, person["id"])
    rows = await tx.fetch(
        "SELECT id, purse, balance FROM accounts WHERE id = ANY($1::bigint[]) "
        "ORDER BY id FOR UPDATE",
        list(purses.values()),
    )
    bal = {r["purse"]: r["balance"] for r in rows}
    result: dict[str, Any] = {
        "person_id": person["id"],
        "method": method,
        "cash": fmt(bal["cash"]),
        "subsidy_returned": fmt(bal["subsidy"]),
    }
    if bal["subsidy"]:
        fund = await postings.system_account(tx, school_id, "subsidy_fund")
        await postings.post(
            tx,
            school_id=school_id,
            kind="leaving_subsidy_return",
            legs=postings.legs_move(purses["subsidy"], fund, bal["subsidy"]),
            ref=f"leaving:{person['id']}",
            memo="离校 subsidy returned to the fund",
            actor=actor.name,
        )
    if bal["cash"] == 0:
        await close_account(tx, school_id, person["id"], reason="leaving, nothing to pay")
        result["status"] = "closed"
    elif method == "counter":
        session = await counter.open_session_for(tx, actor, school_id)
        await counter.check_identity(tx, person, identity)
        await counter.check_drawer_cash(tx, session, bal["cash"])
        desk = await postings.system_account(tx, school_id, "cash_desk")
        tx_id = await postings.post(
            tx,
            school_id=school_id,
            kind="counter_leaving_payout",
            legs=postings.legs_move(purses["cash"], desk, bal["cash"]),
            ref=f"leaving:{person['id']}",
            memo="离校 paid in cash",
            actor=actor.name,
            meta={"operator_id": actor.user_id},
        )
        await counter.record_op(
            tx,
            actor,
            school_id=school_id,
            kind="leaving_payout",
            person_id=person["id"],
            amount=bal["cash"],
            cash_effect=-bal["cash"],
            tx_id=tx_id,
            client_id=client_id,
            session_id=session["id"],
            identity=identity.as_json() if identity else None,
            memo="leaving school",
        )
        await close_account(tx, school_id, person["id"], reason="leaving, paid at counter")
        result["status"] = "closed"
    else:
        card = await bank_link.bound_card(tx, person["id"])
        if card is None:
            raise Conflict(
                "no bank card is bound: pay at the counter instead",
                code="NO_BANK_CARD",
                field="method",
            )
        t = await bank_link.create_transfer(
            tx,
            school_id=school_id,
            person_id=person["id"],
            card=card,
            direction="payout",
            origin="leaving",
            amount=bal["cash"],
            requested_by=actor.user_id,
            actor_name=actor.name,
        )
        result |= {"status": "paying_out", "transfer_id": t["id"]}
    await audit.record(
        tx,
        actor,
        "account.leave",
        school_id=school_id,
        target_type="person",
        target_id=person["id"],
        after=result,
    )
    return result


async def do_leave(
    pool: PgPool,
    settings: Settings,
    actor: Actor,
    school_id: int,
    *,
    person_number: str,
    method: Literal["bank", "counter"],
    client_id: str,
    identity: counter.Identity | None = None,
) -> tuple[int, dict[str, Any], bool]:
    """Settle and close a leaving holder's account (settlement center)."""
    actor.require("settlement", school_id=school_id)
    idempotency.check_client_id(client_id)
    if method == "bank":
        bank_link.check_bank_open(settings)

    async with pool.acquire() as conn:
        outcome = await idempotency.run_idempotent(
            conn,
            school_id=school_id,
            scope=f"leaving:{actor.user_id}",
            key=client_id,
            payload={"person_number": person_number, "method": method},
            work=lambda tx: _settle_leaving(
                tx,
                actor=actor,
                school_id=school_id,
                person_number=person_number,
                method=method,
                client_id=client_id,
                identity=identity,
            ),
            success_status=201,
        )
    body = dict(outcome.body)
    if outcome.status < 400 and body.get("transfer_id"):
        t = await bank_link.execute_transfer(pool, settings, body["transfer_id"])
        body["transfer"] = bank_link.transfer_view(t)
        body["status"] = "closed" if t["status"] == "posted" else body["status"]
        if t["status"] in ("failed", "reversed"):
            body["status"] = "payout_failed"
    return outcome.status, body, outcome.replayed
