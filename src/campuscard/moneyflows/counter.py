"""The settlement-center counter (结算中心柜台): cash deposit and withdrawal, subsidy grant and
deduction, balance zeroing, and the operator's cash drawer for the day.

Every operation needs the 'settlement' role, is idempotent by the operator's client id,
is written to the audit log in its own transaction, and is listed in ``counter_ops`` so the
per-operator daily summary can be balanced against the counted cash in the drawer.

Money is created only with two people (``platform/four_eyes.py``): a subsidy grant, and a
deposit above the school's threshold, are proposed by the operator and booked when a second
person approves. One operation is capped (``counter_op_cap``), and a purse cannot go above the
school's ``purse_cap``. A drawer opens with the cash counted at its last close; a different
float needs a second person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, transaction
from campuscard.ledger import limits, postings
from campuscard.ledger.money import Money, fmt
from campuscard.ledger.queries import person_total, school_limits
from campuscard.offline import overdraft
from campuscard.platform import audit, four_eyes, i18n, idempotency, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, DomainError, NotFound, ValidationFailed

CounterKind = Literal["deposit", "withdrawal", "subsidy_grant", "subsidy_deduct", "zeroing"]
CASH_KINDS = ("deposit", "withdrawal", "zeroing", "leaving_payout")


@dataclass(frozen=True)
class Identity:
    """How the operator made sure the holder is the one at the desk."""

    method: Literal["campus_card", "student_id"]
    holder_present: bool
    card_number: str | None = None
    holder_name: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "holder_present": self.holder_present}
        if self.card_number:
            # the card number is not secret, but keep the record short and recognisable
            out["card_number"] = self.card_number
        if self.holder_name:
            out["holder_name"] = self.holder_name
        return out


async def person_by_number(conn: Conn, school_id: int, number: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT id, school_id, number, name, phone, account_status, status FROM persons "
        "WHERE school_id = $1 AND number = $2",
        school_id,
        number,
    )
    if row is None:
        raise NotFound(f"no person with number {number!r} in this school", field="person_number")
    return dict(row)


async def check_identity(conn: Conn, person: dict[str, Any], identity: Identity | None) -> None:
    """Refuse a cash payout unless the holder is present and identified."""
    if identity is None:
        raise ValidationFailed(
            "paying out cash needs the holder's identity",
            code="IDENTITY_REQUIRED",
            field="identity",
        )
    if not identity.holder_present:
        raise ValidationFailed(
            "the holder must be present at the counter", field="identity.holder_present"
        )
    if identity.method == "campus_card":
        if not identity.card_number:
            raise ValidationFailed("card_number is required", field="identity.card_number")
        ok = await conn.fetchval(
            "SELECT true FROM cards WHERE school_id = $1 AND person_id = $2 AND number = $3 "
            "AND state IN ('issued', 'active', 'frozen')",
            person["school_id"],
            person["id"],
            identity.card_number,
        )
        if not ok:
            raise DomainError(
                "this card does not belong to the holder or is not valid",
                code="IDENTITY_MISMATCH",
                field="identity.card_number",
                status=422,
            )
    else:
        if not identity.holder_name or identity.holder_name.strip() != person["name"]:
            raise DomainError(
                "the name on the student ID does not match the holder",
                code="IDENTITY_MISMATCH",
                field="identity.holder_name",
                status=422,
            )


async def open_session_for(conn: Conn, actor: Actor, school_id: int) -> dict[str, Any]:
    """The operator's open drawer for today; cash operations need one."""
    row = await conn.fetchrow(
        "SELECT * FROM cash_desk_sessions WHERE operator_id = $1 AND school_id = $2 "
        "AND business_date = cc_business_date($2) FOR UPDATE",
        actor.user_id,
        school_id,
    )
    if row is None or row["status"] != "open":
        raise Conflict(
            "open your cash drawer for today first (opening float)",
            code="DRAWER_NOT_OPEN",
            field="drawer",
        )
    return dict(row)


async def check_drawer_cash(conn: Conn, session: dict[str, Any], fen: int) -> None:
    """Refuse to pay out more cash than the drawer should hold."""
    in_drawer: int = session["opening_float"] + await conn.fetchval(
        "SELECT coalesce(sum(cash_effect), 0)::bigint FROM counter_ops WHERE session_id = $1",
        session["id"],
    )
    if fen > in_drawer:
        raise Conflict(
            f"the drawer should hold only {fmt(in_drawer)}; fetch cash from the safe first",
            code="DRAWER_SHORT",
            field="amount",
        )


async def record_op(
    conn: Conn,
    actor: Actor,
    *,
    school_id: int,
    kind: str,
    person_id: int,
    amount: int,
    cash_effect: int,
    tx_id: int | None,
    client_id: str,
    session_id: int | None,
    identity: dict[str, Any] | None = None,
    memo: str = "",
) -> int:
    assert actor.user_id is not None
    op_id: int = await conn.fetchval(
        """INSERT INTO counter_ops(school_id, operator_id, session_id, business_date, kind,
                                   person_id, amount, cash_effect, tx_id, identity, memo,
                                   client_id)
           VALUES ($1, $2, $3, cc_business_date($1), $4, $5, $6, $7, $8, $9, $10, $11)
           RETURNING id""",
        school_id,
        actor.user_id,
        session_id,
        kind,
        person_id,
        amount,
        cash_effect,
        tx_id,
        identity or {},
        memo,
        client_id,
    )
    return op_id


def _require_operator(actor: Actor, school_id: int) -> None:
    actor.require("settlement", school_id=school_id)
    if actor.user_id is None:
        raise ValidationFailed("counter operations need a signed-in operator", field="actor")


async def _book_counter_op(
    tx: Tx,
    *,
    actor: Actor,
    school_id: int,
    kind: CounterKind,
    client_id: str,
    person_number: str,
    amount: Money | None,
    purse: Literal["cash", "subsidy"],
    identity: Identity | None,
    memo: str,
) -> dict[str, Any]:
    person = await person_by_number(tx, school_id, person_number)
    if person["account_status"] == "closed":
        raise Conflict("this account is closed", code="ACCOUNT_CLOSED", field="person_number")
    purses = await postings.open_purses(tx, school_id, person["id"])
    session: dict[str, Any] | None = None
    fen = amount.fen if amount else 0
    cash_effect = 0
    id_json: dict[str, Any] | None = None
    if kind == "deposit":
        session = await open_session_for(tx, actor, school_id)
        source = await postings.system_account(tx, school_id, "cash_desk")
        legs = postings.legs_move(source, purses["cash"], fen)
        cash_effect = fen
    elif kind == "withdrawal":
        session = await open_session_for(tx, actor, school_id)
        await check_identity(tx, person, identity)
        await check_drawer_cash(tx, session, fen)
        id_json = identity.as_json() if identity else None
        target = await postings.system_account(tx, school_id, "cash_desk")
        legs = postings.legs_move(purses["cash"], target, fen)
        cash_effect = -fen
    elif kind == "subsidy_grant":
        fund = await postings.system_account(tx, school_id, "subsidy_fund")
        legs = postings.legs_move(fund, purses["subsidy"], fen)
    elif kind == "subsidy_deduct":
        fund = await postings.system_account(tx, school_id, "subsidy_fund")
        legs = postings.legs_move(purses["subsidy"], fund, fen)
    else:  # zeroing: the whole purse; cash is paid out, a subsidy goes back to the fund
        fen = await tx.fetchval(
            "SELECT balance FROM accounts WHERE school_id = $2 AND id = $1 FOR UPDATE",
            purses[purse],
            school_id,
        )
        if fen <= 0:
            raise Conflict("the purse is already empty", code="NOTHING_TO_ZERO", field="purse")
        if purse == "cash":
            session = await open_session_for(tx, actor, school_id)
            await check_identity(tx, person, identity)
            await check_drawer_cash(tx, session, fen)
            id_json = identity.as_json() if identity else None
            target = await postings.system_account(tx, school_id, "cash_desk")
            cash_effect = -fen
        else:
            target = await postings.system_account(tx, school_id, "subsidy_fund")
        legs = postings.legs_move(purses[purse], target, fen)
    if kind != "zeroing":
        limits.check_counter_amount(await school_limits(tx, school_id), fen)
    tx_id = await postings.post(
        tx,
        school_id=school_id,
        kind=f"counter_{kind}",
        legs=legs,
        ref=f"counter:{actor.user_id}:{client_id}",
        memo=memo,
        actor=actor.name,
        meta={"operator_id": actor.user_id, "purse": purse},
    )
    if kind == "deposit":  # a top-up repays the holder's offline overdraft first
        await overdraft.repay_overdraft(tx, school_id, person["id"])
    if kind in ("deposit", "subsidy_grant"):
        caps = await school_limits(tx, school_id)
        limits.check_purse_cap(caps, await person_total(tx, person["id"]))
    op_id = await record_op(
        tx,
        actor,
        school_id=school_id,
        kind=kind,
        person_id=person["id"],
        amount=fen,
        cash_effect=cash_effect,
        tx_id=tx_id,
        client_id=client_id,
        session_id=session["id"] if session else None,
        identity=id_json,
        memo=memo,
    )
    balances = await postings.purse_balances(tx, person["id"])
    held = await postings.purse_held(tx, person["id"])
    await audit.record(
        tx,
        actor,
        f"counter.{kind}",
        school_id=school_id,
        target_type="person",
        target_id=person["id"],
        after={
            "op_id": op_id,
            "amount": fmt(fen),
            "purse": purse if kind == "zeroing" else None,
            "identity": id_json,
            "memo": memo,
            "tx_id": tx_id,
        },
    )
    await notifications.notify(
        tx,
        school_id=school_id,
        person_id=person["id"],
        kind=f"counter_{kind}",
        title=i18n.message(f"notice.counter.{kind}"),
        body=i18n.message(
            "notice.counter.body",
            what=i18n.message(f"notice.counter.{kind}"),
            amount=i18n.money(fen),
            balance=i18n.money(sum(balances.values())),
        ),
        dedupe_key=f"counter_op:{op_id}",
    )
    return {
        "op_id": op_id,
        "kind": kind,
        "tx_id": tx_id,
        "person_id": person["id"],
        "person_number": person["number"],
        "amount": fmt(fen),
        "cash_effect": fmt(cash_effect),
        "balances": postings.balances_view(balances, held),
    }


async def do_counter_op(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    *,
    kind: CounterKind,
    client_id: str,
    person_number: str,
    amount: Money | None,
    purse: Literal["cash", "subsidy"] = "cash",
    identity: Identity | None = None,
    memo: str = "",
) -> idempotency.Outcome:
    """Deposit, withdrawal, subsidy grant/deduction or zeroing at the counter."""
    _require_operator(actor, school_id)
    idempotency.check_client_id(client_id)
    if kind != "zeroing" and amount is None:
        raise ValidationFailed("amount is required", field="amount")
    if amount is not None and amount.fen <= 0:
        raise ValidationFailed("amount must be more than 0.00", field="amount")
    if kind in ("subsidy_grant", "subsidy_deduct", "zeroing") and not memo.strip():
        raise ValidationFailed("memo must say why", field="memo")
    payload = {
        "kind": kind,
        "person_number": person_number,
        "amount": amount.fen if amount else None,
        "purse": purse,
        "identity": identity.as_json() if identity else None,
        "memo": memo,
    }

    async with pool.acquire() as conn:
        caps = await school_limits(conn, school_id)
        if amount is not None:
            limits.check_counter_amount(caps, amount.fen)
        # money that comes from nowhere but the operator's word needs a second person
        second_person = kind == "subsidy_grant" or (
            kind == "deposit"
            and amount is not None
            and limits.needs_second_person_for_deposit(caps, amount.fen)
        )

        async def work(tx: Tx) -> dict[str, Any]:
            if second_person:
                return await _propose_counter_op(
                    tx, actor=actor, school_id=school_id, payload=payload, client_id=client_id
                )
            return await _book_counter_op(
                tx,
                actor=actor,
                school_id=school_id,
                kind=kind,
                client_id=client_id,
                person_number=person_number,
                amount=amount,
                purse=purse,
                identity=identity,
                memo=memo,
            )

        return await idempotency.run_idempotent(
            conn,
            school_id=school_id,
            scope=f"counter:{actor.user_id}",
            key=client_id,
            payload=payload,
            work=work,
            success_status=202 if second_person else 201,
        )


async def _propose_counter_op(
    tx: Tx, *, actor: Actor, school_id: int, payload: dict[str, Any], client_id: str
) -> dict[str, Any]:
    person = await person_by_number(tx, school_id, str(payload["person_number"]))
    if person["account_status"] == "closed":
        raise Conflict("this account is closed", code="ACCOUNT_CLOSED", field="person_number")
    if payload["kind"] == "deposit":
        await open_session_for(tx, actor, school_id)  # the cash goes into my drawer
    fen = int(payload["amount"])
    caps = await school_limits(tx, school_id)
    await postings.open_purses(tx, school_id, person["id"])
    limits.check_purse_cap(caps, await person_total(tx, person["id"]) + fen)
    return await four_eyes.propose(
        tx,
        actor,
        school_id,
        kind="counter_op",
        payload=payload | {"client_id": client_id},
        amount=fen,
        summary=f"{person['name']} ({person['number']}) · {payload['memo']}".rstrip(" ·"),
    )


@four_eyes.executor("counter_op")
async def _approved_counter_op(
    tx: Tx, approver: Actor, proposal: four_eyes.Proposal
) -> dict[str, Any]:
    p = proposal.payload
    identity = p.get("identity")
    return await _book_counter_op(
        tx,
        actor=proposal.proposer(),
        school_id=proposal.school_id,
        kind=p["kind"],
        client_id=str(p["client_id"]),
        person_number=str(p["person_number"]),
        amount=Money(int(p["amount"])),
        purse=p["purse"],
        identity=Identity(**identity) if identity else None,
        memo=str(p["memo"]),
    )


async def _last_close(conn: Conn, school_id: int, operator_id: int) -> int:
    """The cash counted when this operator's drawer last closed (0 before the first day)."""
    counted: int | None = await conn.fetchval(
        "SELECT counted_cash FROM cash_desk_sessions WHERE school_id = $1 AND operator_id = $2 "
        "AND status = 'closed' ORDER BY business_date DESC LIMIT 1",
        school_id,
        operator_id,
    )
    return counted or 0


async def do_open_drawer(
    pool: PgPool, actor: Actor, school_id: int, *, opening_float: Money | None = None
) -> dict[str, Any]:
    """Open today's drawer with the float of its last close. A different counted float is
    proposed: a second person approves it before the drawer's float changes."""
    _require_operator(actor, school_id)
    if opening_float is not None and opening_float.fen < 0:
        raise ValidationFailed("opening_float cannot be negative", field="opening_float")
    async with transaction(pool) as tx:
        caps = await school_limits(tx, school_id)
        if opening_float is not None:
            limits.check_drawer_float(caps, opening_float.fen)
        carried = await _last_close(tx, school_id, actor.user_id or 0)
        row = await tx.fetchrow(
            """INSERT INTO cash_desk_sessions(school_id, operator_id, business_date, opening_float)
               VALUES ($1, $2, cc_business_date($1), $3)
               ON CONFLICT (school_id, operator_id, business_date) DO NOTHING RETURNING id""",
            school_id,
            actor.user_id,
            carried,
        )
        if row is None:
            raise Conflict(
                "your drawer for today is already open (or closed)",
                code="DRAWER_ALREADY_OPENED",
                field="opening_float",
            )
        await audit.record(
            tx,
            actor,
            "counter.drawer_open",
            school_id=school_id,
            target_type="cash_desk_session",
            target_id=row["id"],
            after={"opening_float": fmt(carried)},
        )
        proposal: dict[str, Any] | None = None
        if opening_float is not None and opening_float.fen != carried:
            proposal = await four_eyes.propose(
                tx,
                actor,
                school_id,
                kind="drawer_float",
                payload={"session_id": row["id"], "from": carried, "to": opening_float.fen},
                amount=opening_float.fen,
                summary=f"{fmt(carried)} → {fmt(opening_float.fen)}",
            )
        summary = await _summary(tx, school_id, actor.user_id or 0, None)
        return summary | {"float_approval": proposal["approval"] if proposal else None}


@four_eyes.executor("drawer_float")
async def _approved_drawer_float(
    tx: Tx, approver: Actor, proposal: four_eyes.Proposal
) -> dict[str, Any]:
    p = proposal.payload
    limits.check_drawer_float(await school_limits(tx, proposal.school_id), int(p["to"]))
    updated = await tx.fetchval(
        "UPDATE cash_desk_sessions SET opening_float = $3 WHERE school_id = $1 AND id = $2 "
        "AND status = 'open' AND opening_float = $4 RETURNING id",
        proposal.school_id,
        int(p["session_id"]),
        int(p["to"]),
        int(p["from"]),
    )
    if updated is None:
        raise Conflict(
            "the drawer is closed or its float changed since the proposal",
            code="DRAWER_CHANGED",
            field="approval_id",
        )
    await audit.record(
        tx,
        approver,
        "counter.drawer_float",
        school_id=proposal.school_id,
        target_type="cash_desk_session",
        target_id=updated,
        before={"opening_float": fmt(int(p["from"]))},
        after={"opening_float": fmt(int(p["to"])), "proposed_by": proposal.proposed_by_name},
    )
    return {"session_id": updated, "opening_float": fmt(int(p["to"]))}


async def do_close_drawer(
    pool: PgPool, actor: Actor, school_id: int, *, counted_cash: Money, note: str = ""
) -> dict[str, Any]:
    """Close today's drawer with the counted cash; the difference is shown and recorded."""
    _require_operator(actor, school_id)
    if counted_cash.fen < 0:
        raise ValidationFailed("counted_cash cannot be negative", field="counted_cash")
    async with transaction(pool) as tx:
        session = await open_session_for(tx, actor, school_id)
        summary = await _summary(tx, school_id, actor.user_id or 0, None)
        expected = summary["expected_cash_fen"]
        difference = counted_cash.fen - expected
        if difference != 0 and not note.strip():
            raise ValidationFailed(
                f"the drawer is {fmt(difference)} off: explain it in note", field="note"
            )
        await tx.execute(
            """UPDATE cash_desk_sessions SET status = 'closed', counted_cash = $2,
                      expected_cash = $3, difference = $4, note = $5, closed_at = now()
                WHERE id = $1""",
            session["id"],
            counted_cash.fen,
            expected,
            difference,
            note,
        )
        await audit.record(
            tx,
            actor,
            "counter.drawer_close",
            school_id=school_id,
            target_type="cash_desk_session",
            target_id=session["id"],
            after={
                "expected_cash": fmt(expected),
                "counted_cash": fmt(counted_cash.fen),
                "difference": fmt(difference),
                "note": note,
            },
        )
        return await _summary(tx, school_id, actor.user_id or 0, None)


async def get_drawer_summary(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    *,
    operator_id: int | None = None,
    day: date | None = None,
) -> dict[str, Any]:
    """An operator's day: opening float + cash in - cash out = expected cash in the drawer."""
    actor.require("settlement", school_id=school_id)
    who = operator_id if operator_id is not None else actor.user_id
    if who is None:
        raise ValidationFailed("operator_id is required", field="operator_id")
    async with pool.acquire() as conn:
        return await _summary(conn, school_id, who, day)


async def list_drawers(
    pool: PgPool, actor: Actor, school_id: int, *, day: date | None = None
) -> list[dict[str, Any]]:
    """Every operator who worked the counter that day, for the settlement supervisor."""
    actor.require("settlement", school_id=school_id)
    async with pool.acquire() as conn:
        ids = await conn.fetch(
            """SELECT operator_id FROM cash_desk_sessions
                WHERE school_id = $1 AND business_date = coalesce($2, cc_business_date($1))
               UNION
               SELECT operator_id FROM counter_ops
                WHERE school_id = $1 AND business_date = coalesce($2, cc_business_date($1))
               ORDER BY 1""",
            school_id,
            day,
        )
        return [await _summary(conn, school_id, r["operator_id"], day) for r in ids]


async def _summary(
    conn: Conn, school_id: int, operator_id: int, day: date | None
) -> dict[str, Any]:
    business_date: date = day or await conn.fetchval("SELECT cc_business_date($1)", school_id)
    session = await conn.fetchrow(
        "SELECT * FROM cash_desk_sessions WHERE school_id = $1 AND operator_id = $2 "
        "AND business_date = $3",
        school_id,
        operator_id,
        business_date,
    )
    rows = await conn.fetch(
        """SELECT kind, count(*) AS n, coalesce(sum(amount), 0)::bigint AS amount,
                  coalesce(sum(cash_effect), 0)::bigint AS cash
             FROM counter_ops WHERE school_id = $1 AND operator_id = $2 AND business_date = $3
            GROUP BY kind ORDER BY kind""",
        school_id,
        operator_id,
        business_date,
    )
    operator = await conn.fetchval(
        "SELECT coalesce(nullif(display_name, ''), username) FROM users WHERE id = $1",
        operator_id,
    )
    by_kind = {
        r["kind"]: {"count": r["n"], "amount": fmt(r["amount"]), "cash": fmt(r["cash"])}
        for r in rows
    }
    cash_in = sum(r["cash"] for r in rows if r["cash"] > 0)
    cash_out = -sum(r["cash"] for r in rows if r["cash"] < 0)
    opening = session["opening_float"] if session else 0
    expected = opening + cash_in - cash_out
    counted = session["counted_cash"] if session else None
    return {
        "operator_id": operator_id,
        "operator": operator,
        "business_date": business_date.isoformat(),
        "status": session["status"] if session else "not_opened",
        "opening_float": fmt(opening),
        "cash_in": fmt(cash_in),
        "cash_out": fmt(cash_out),
        "expected_cash": fmt(expected),
        "expected_cash_fen": expected,
        "counted_cash": fmt(counted) if counted is not None else None,
        "difference": fmt(session["difference"])
        if session and session["difference"] is not None
        else None,
        "note": session["note"] if session else "",
        "by_kind": by_kind,
    }
