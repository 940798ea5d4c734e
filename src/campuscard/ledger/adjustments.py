"""Manual ledger adjustments (调账) by the settlement center: move money between two accounts
of one school with a reason. Idempotent by client id and audited."""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import PgPool
from campuscard.db.tx import Tx
from campuscard.ledger import postings
from campuscard.ledger.money import Money, fmt
from campuscard.platform import audit, idempotency
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound, ValidationFailed


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
    rows = await tx.fetch(
        "SELECT id FROM accounts WHERE id = ANY($1::bigint[]) AND school_id = $2",
        [from_account, to_account],
        school_id,
    )
    found = {r["id"] for r in rows}
    for field, account in (("from_account", from_account), ("to_account", to_account)):
        if account not in found:
            raise NotFound(f"account {account} not found in this school", field=field)
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
            scope=f"user:{actor.user_id}",
            key=client_id,
            payload=payload,
            work=lambda tx: _book_adjustment(
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
