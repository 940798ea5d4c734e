"""Manual ledger adjustments (调账) by the settlement center: move money between two accounts
of one school with a reason. One person proposes (idempotent by client id), a second person
approves, and only then does the money move (``platform/four_eyes.py``). At approval the
system accounts that stand for real money (subsidy fund, cash desk) cannot go below zero, and a
purse cannot go above the school's cap. Audited at each step."""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import PgPool
from campuscard.db.tx import Tx
from campuscard.ledger import limits, postings
from campuscard.ledger.money import Money, fmt
from campuscard.ledger.queries import person_total, school_limits
from campuscard.platform import audit, four_eyes, idempotency
from campuscard.platform.actors import Actor
from campuscard.platform.errors import DomainError, NotFound, ValidationFailed


async def _accounts(tx: Tx, school_id: int, from_account: int, to_account: int) -> dict[int, Any]:
    rows = await tx.fetch(
        "SELECT id, kind, system_code, person_id FROM accounts "
        "WHERE id = ANY($1::bigint[]) AND school_id = $2",
        [from_account, to_account],
        school_id,
    )
    found = {r["id"]: r for r in rows}
    for field, account in (("from_account", from_account), ("to_account", to_account)):
        if account not in found:
            raise NotFound(f"account {account} not found in this school", field=field)
    return found


async def propose_adjustment(
    tx: Tx,
    *,
    actor: Actor,
    school_id: int,
    client_id: str,
    from_account: int,
    to_account: int,
    amount: Money,
    memo: str,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """Write the adjustment as a pending proposal (caller's transaction); the money moves
    when a second person approves it (``_approved_adjustment``)."""
    await _accounts(tx, school_id, from_account, to_account)
    return await four_eyes.propose(
        tx,
        actor,
        school_id,
        kind="adjustment",
        payload=payload | {"client_id": client_id},
        amount=amount.fen,
        summary=f"#{from_account} → #{to_account} · {memo}",
    )


@four_eyes.executor("adjustment")
async def _approved_adjustment(
    tx: Tx, approver: Actor, proposal: four_eyes.Proposal
) -> dict[str, Any]:
    p = proposal.payload
    return await _book_adjustment(
        tx,
        actor=proposal.proposer(),
        school_id=proposal.school_id,
        client_id=str(p["client_id"]),
        from_account=int(p["from_account"]),
        to_account=int(p["to_account"]),
        amount=Money(int(p["amount"])),
        memo=str(p["memo"]),
        payload={k: v for k, v in p.items() if k != "client_id"}
        | {"approval_id": proposal.id, "approved_by": approver.name},
    )


async def _book_adjustment(
    tx: Tx,
    *,
    actor: Actor,
    school_id: int,
    client_id: str,
    from_account: int,
    to_account: int,
    amount: Money,
    memo: str,
    payload: dict[str, Any],
) -> dict[str, Any]:
    accounts = await _accounts(tx, school_id, from_account, to_account)
    tx_id = await postings.post(
        tx,
        school_id=school_id,
        kind="adjustment",
        legs=postings.legs_move(from_account, to_account, amount.fen),
        ref=f"adjustment:{client_id}",
        memo=memo,
        actor=actor.name,
    )
    balances = {
        r["id"]: r["balance"]
        for r in await tx.fetch(
            "SELECT id, balance FROM accounts WHERE id = ANY($1::bigint[])",
            [from_account, to_account],
        )
    }
    source = accounts[from_account]
    if source["system_code"] in limits.REAL_MONEY_ACCOUNTS and balances[from_account] < 0:
        raise DomainError(
            f"an adjustment cannot take {source['system_code']} below zero "
            f"(it would be {fmt(balances[from_account])})",
            code="SYSTEM_ACCOUNT_BELOW_ZERO",
            field="from_account",
            status=409,
        )
    target = accounts[to_account]
    if target["kind"] == "purse":
        cap = await school_limits(tx, school_id)
        limits.check_purse_cap(cap, await person_total(tx, target["person_id"]), "to_account")
    await audit.record(
        tx,
        actor,
        "ledger.adjustment",
        school_id=school_id,
        target_type="journal_tx",
        target_id=tx_id,
        after={**payload, "amount": fmt(amount.fen)},
    )
    return {
        "tx_id": tx_id,
        "amount": fmt(amount.fen),
        "from_balance": fmt(balances[from_account]),
        "to_balance": fmt(balances[to_account]),
    }


async def do_adjustment(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    *,
    client_id: str,
    from_account: int,
    to_account: int,
    amount: Money,
    memo: str,
) -> idempotency.Outcome:
    """Propose an adjustment; a second person approves it before any money moves."""
    actor.require("settlement", school_id=school_id)
    if from_account == to_account:
        raise ValidationFailed("to_account must differ from from_account", field="to_account")
    if not memo.strip():
        raise ValidationFailed("memo must say why the money moves", field="memo")
    payload = {
        "from_account": from_account,
        "to_account": to_account,
        "amount": amount.fen,
        "memo": memo,
    }

    async with pool.acquire() as conn:
        return await idempotency.run_idempotent(
            conn,
            school_id=school_id,
            scope=f"user:{actor.user_id}",
            key=client_id,
            payload=payload,
            success_status=202,
            work=lambda tx: propose_adjustment(
                tx,
                actor=actor,
                school_id=school_id,
                client_id=client_id,
                from_account=from_account,
                to_account=to_account,
                amount=amount,
                memo=memo,
                payload=payload,
            ),
        )
