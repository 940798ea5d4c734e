"""Daily reconciliation (对账) with the bank and the payment provider, through suspense.

``do_import_statement`` reads a statement file (all-or-nothing), takes every booking on the
source's clearing account not reconciled before (dated up to the statement date), and pairs
both sides by reference (settlement/reconciliation_rules.py). In one transaction:
  * matched references move from the clearing account to the settled account
    (``bank_account`` / ``provider_account``);
  * every other reference becomes a case, booked: their amount into the settled account, our
    amount off the clearing account, the difference into ``suspense``;
  * a reference that closes an earlier open case (a payment that crossed midnight, a payout the
    bank booked a day later) resolves that case as ``matched_late``.
So after every import the clearing account holds only what is newer than the statement, and
suspense holds exactly the open cases. An operator resolves each case (``do_resolve_case``):
post it to an account, refund it through the outside party, or write it off, which a second
operator must approve (``do_decide_write_off``).
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any, Literal, cast

from campuscard.bills import payments as bill_payments
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, transaction
from campuscard.ledger import postings
from campuscard.ledger.money import fmt
from campuscard.platform import audit, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from campuscard.settlement import reconciliation_rules as rules

Source = Literal["bank", "provider"]
CLEARING = {"bank": "bank_clearing", "provider": "provider_clearing"}
SETTLED = {"bank": "bank_account", "provider": "provider_account"}
LOOKBACK_DAYS = 31
_LOCK_NAMESPACE = 7071
# bookings of the reconciliation itself are never "our side"
OWN_KINDS = ("recon_match", "recon_suspense", "recon_match_late")

# Our side: every booking on the clearing account, named by the outside party's reference:
# an explicit meta.recon_ref, the bank transfer's RRN, the provider order's out_trade_no
# (":refund" for its refund), else the journal ref (payout instructions carry theirs there).
_OURS_SQL = """
WITH bank_refs AS (
    SELECT tx_id, rrn FROM bank_transfers WHERE school_id = $1 AND tx_id IS NOT NULL
    UNION ALL
    SELECT hold_tx_id, rrn FROM bank_transfers WHERE school_id = $1 AND hold_tx_id IS NOT NULL
    UNION ALL
    SELECT release_tx_id, rrn FROM bank_transfers
     WHERE school_id = $1 AND release_tx_id IS NOT NULL
), provider_refs AS (
    SELECT tx_id, out_trade_no AS ref FROM provider_orders
     WHERE school_id = $1 AND tx_id IS NOT NULL
    UNION ALL
    SELECT refund_tx_id, out_trade_no || ':refund' FROM provider_orders
     WHERE school_id = $1 AND refund_tx_id IS NOT NULL
)
SELECT j.id AS tx_id,
       coalesce(j.meta ->> 'recon_ref', br.rrn, pr.ref, j.meta ->> 'rrn',
                j.meta ->> 'out_trade_no', j.ref, 'tx:' || j.id) AS reference,
       -sum(p.amount)::bigint AS amount
  FROM journal_tx j
  JOIN postings p ON p.school_id = j.school_id AND p.tx_id = j.id AND p.account_id = $3
  LEFT JOIN bank_refs br ON br.tx_id = j.id
  LEFT JOIN provider_refs pr ON pr.tx_id = j.id
 WHERE j.school_id = $1
   AND j.business_date BETWEEN $2::date - $4::int AND $2::date
   AND j.kind <> ALL($5::text[])
   AND NOT EXISTS (SELECT 1 FROM recon_our_items r
                    WHERE r.school_id = j.school_id AND r.tx_id = j.id)
 GROUP BY j.school_id, j.id, br.rrn, pr.ref
"""


def _parse(source: str, text: str, statement_date: date | None) -> rules.Statement:
    if source == "bank":
        st = rules.parse_bank_statement(text)
        if statement_date is not None and statement_date != st.statement_date:
            raise ValidationFailed(
                f"the file is the statement of {st.statement_date}, not {statement_date}",
                code="STATEMENT_DATE_MISMATCH",
                field="statement_date",
            )
        return st
    if source == "provider":
        if statement_date is None:
            raise ValidationFailed(
                "the provider bill carries no date: give statement_date",
                field="statement_date",
            )
        return rules.parse_provider_bill(text, statement_date)
    raise ValidationFailed("source must be bank or provider", field="source")


async def do_import_statement(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    *,
    source: str,
    content: bytes,
    file_name: str = "",
    statement_date: date | None = None,
) -> dict[str, Any]:
    """Import one day's statement and reconcile it; the same file again replays the result."""
    if not (actor.name == "system" and actor.user_id is None):
        actor.require("settlement", school_id=school_id)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValidationFailed("the file must be UTF-8 text", field="file") from err
    statement = _parse(source, text, statement_date)
    digest = hashlib.sha256(content).hexdigest()
    async with transaction(pool) as tx:
        await tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            _LOCK_NAMESPACE,
            school_id * 2 + (source == "bank"),
        )
        existing = await tx.fetchrow(
            "SELECT id, file_sha256 FROM recon_imports WHERE school_id = $1 AND source = $2 "
            "AND statement_date = $3",
            school_id,
            source,
            statement.statement_date,
        )
        if existing is not None:
            if existing["file_sha256"] != digest:
                raise Conflict(
                    f"the {source} statement of {statement.statement_date} was already imported "
                    "from a different file",
                    code="STATEMENT_ALREADY_IMPORTED",
                    field="file",
                )
            return await import_view(tx, school_id, existing["id"]) | {"replayed": True}
        import_id = await _reconcile(tx, actor, school_id, statement, file_name, digest)
        view = await import_view(tx, school_id, import_id)
    return view | {"replayed": False}


async def _reconcile(
    conn: Conn,
    actor: Actor,
    school_id: int,
    st: rules.Statement,
    file_name: str,
    digest: str,
) -> int:
    source = st.source
    clearing = await postings.system_account(conn, school_id, CLEARING[source])
    settled = await postings.system_account(conn, school_id, SETTLED[source])
    suspense = await postings.system_account(conn, school_id, "suspense")
    if source == "bank":
        # transfers quoting a student's payment reference pay that student's bills now, so
        # they are on our side below and match (bills/payments.py)
        await bill_payments.claim_bank_lines(
            cast(Tx, conn), school_id, rules.net_by_reference(st.lines)
        )
    ours_rows = await conn.fetch(
        _OURS_SQL, school_id, st.statement_date, clearing, LOOKBACK_DAYS, list(OWN_KINDS)
    )
    ours: dict[str, int] = {}
    for r in ours_rows:
        ours[r["reference"]] = ours.get(r["reference"], 0) + r["amount"]
    theirs = rules.net_by_reference(st.lines)
    outcomes = rules.match(theirs, ours)
    open_cases = {
        r["reference"]: r
        for r in await conn.fetch(
            """SELECT id, reference, difference FROM recon_cases
                WHERE school_id = $1 AND source = $2 AND status = 'open'
                  AND reference = ANY($3::text[]) ORDER BY id""",
            school_id,
            source,
            [o.reference for o in outcomes],
        )
    }
    late = [
        (o, open_cases[o.reference])
        for o in outcomes
        if o.reference in open_cases and open_cases[o.reference]["difference"] + o.difference == 0
    ]
    late_refs = {o.reference for o, _ in late}
    matched = [o for o in outcomes if o.reason is None and o.reference not in late_refs]
    new_cases = [o for o in outcomes if o.reason is not None and o.reference not in late_refs]
    import_id: int = await conn.fetchval(
        "SELECT nextval(pg_get_serial_sequence('recon_imports', 'id'))"
    )

    def legs(their: int, our: int) -> list[postings.Leg]:
        out = [
            postings.Leg(settled, -their),  # what they hold for us moves into the settled account
            postings.Leg(clearing, our),  # our booking leaves the clearing account
            postings.Leg(suspense, their - our),  # the difference waits in suspense
        ]
        return [leg for leg in out if leg.amount]

    matched_amount = sum(o.theirs for o in matched)
    match_legs = legs(matched_amount, sum(o.ours for o in matched))
    match_tx = None
    if len(match_legs) >= 2:
        match_tx = await postings.post(
            conn,
            school_id=school_id,
            kind="recon_match",
            legs=match_legs,
            ref=f"recon_import:{import_id}",
            memo=f"{source} statement {st.statement_date} matched",
            actor=actor.name,
        )
    await conn.execute(
        """INSERT INTO recon_imports(id, school_id, source, statement_date, file_name,
               file_sha256, line_count, total_in, total_out, matched_count, matched_amount,
               case_count, late_count, match_tx_id, imported_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)""",
        import_id,
        school_id,
        source,
        st.statement_date,
        file_name[:200],
        digest,
        len(st.lines),
        st.total_in,
        st.total_out,
        len(matched),
        matched_amount,
        len(new_cases),
        len(late),
        match_tx,
        actor.name,
    )
    await conn.executemany(
        """INSERT INTO recon_lines(school_id, import_id, line_no, reference, kind, amount,
                                   occurred_at, raw)
           VALUES ($8, $1, $2, $3, $4, $5, $6, $7)""",
        [
            (
                import_id,
                ln.line_no,
                ln.reference,
                ln.kind,
                ln.amount,
                ln.occurred_at,
                ln.raw,
                school_id,
            )
            for ln in st.lines
        ],
    )
    await conn.executemany(
        """INSERT INTO recon_our_items(tx_id, school_id, source, import_id, reference, amount)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        [
            (r["tx_id"], school_id, source, import_id, r["reference"], r["amount"])
            for r in ours_rows
        ],
    )
    for o, old in late:
        # this statement (or our late booking) completes an earlier case
        tx = await postings.post(
            conn,
            school_id=school_id,
            kind="recon_match_late",
            legs=legs(o.theirs, o.ours),
            ref=f"recon_case:{old['id']}:late",
            memo=f"{o.reference} matched late on the {st.statement_date} statement",
            actor=actor.name,
        )
        await conn.execute(
            """UPDATE recon_cases SET status = 'resolved', resolution = 'matched_late',
                      resolved_by = $2, resolved_at = now(), resolution_tx_id = $3,
                      note = $4 WHERE id = $1 AND school_id = $5""",
            old["id"],
            actor.name,
            tx,
            f"matched by the {source} statement of {st.statement_date}",
            school_id,
        )
    for o in new_cases:
        tx = await postings.post(
            conn,
            school_id=school_id,
            kind="recon_suspense",
            legs=legs(o.theirs, o.ours),
            ref=f"recon_import:{import_id}:{o.reference}",
            memo=f"{o.reason}: {o.reference}",
            actor=actor.name,
        )
        await conn.execute(
            """INSERT INTO recon_cases(school_id, source, import_id, reference, reason,
                   their_amount, our_amount, difference, suspense_tx_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            school_id,
            source,
            import_id,
            o.reference,
            o.reason,
            o.theirs,
            o.ours,
            o.difference,
            tx,
        )
    summary = {
        "source": source,
        "statement_date": st.statement_date.isoformat(),
        "lines": len(st.lines),
        "matched": len(matched),
        "cases": len(new_cases),
        "matched_late": len(late),
    }
    await audit.record(
        conn,
        actor,
        "reconciliation.import",
        school_id=school_id,
        target_type="recon_import",
        target_id=import_id,
        after=summary,
    )
    await notifications.publish_event(
        conn, {"type": "reconciliation_imported", "school_id": school_id, **summary}
    )
    return import_id


def _case_view(r: Any) -> dict[str, Any]:
    c = dict(r)
    for k in ("their_amount", "our_amount", "difference"):
        c[k] = fmt(c[k])
    for k in ("created_at", "requested_at", "resolved_at"):
        if c.get(k) is not None:
            c[k] = c[k].isoformat()
    return c


_CASE_COLUMNS = """id, source, import_id, reference, reason, their_amount, our_amount, difference,
    status, resolution, target_account, note, requested_by, requested_at, resolved_by,
    approved_by, resolved_at, suspense_tx_id, resolution_tx_id, created_at"""


async def import_view(conn: Conn, school_id: int, import_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT * FROM recon_imports WHERE id = $1 AND school_id = $2", import_id, school_id
    )
    if row is None:
        raise NotFound("no such statement import", field="import_id")
    cases = await conn.fetch(
        f"SELECT {_CASE_COLUMNS} FROM recon_cases WHERE school_id = $1 AND import_id = $2 "
        "ORDER BY id",
        school_id,
        import_id,
    )
    return {
        "id": row["id"],
        "source": row["source"],
        "statement_date": row["statement_date"].isoformat(),
        "file_name": row["file_name"],
        "file_sha256": row["file_sha256"],
        "lines": row["line_count"],
        "total_in": fmt(row["total_in"]),
        "total_out": fmt(row["total_out"]),
        "matched": row["matched_count"],
        "matched_amount": fmt(row["matched_amount"]),
        "cases": [_case_view(c) for c in cases],
        "matched_late": row["late_count"],
        "imported_by": row["imported_by"],
        "imported_at": row["imported_at"].isoformat(),
    }


async def list_imports(conn: Conn, school_id: int, *, limit: int = 60) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, source, statement_date, line_count, matched_count, case_count, late_count,
                  imported_by, imported_at FROM recon_imports WHERE school_id = $1
            ORDER BY statement_date DESC, source LIMIT $2""",
        school_id,
        limit,
    )
    return [
        dict(r)
        | {
            "statement_date": r["statement_date"].isoformat(),
            "imported_at": r["imported_at"].isoformat(),
        }
        for r in rows
    ]


async def list_cases(
    conn: Conn, school_id: int, *, status: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {_CASE_COLUMNS} FROM recon_cases
             WHERE school_id = $1 AND ($2::text IS NULL OR status = $2)
             ORDER BY id DESC LIMIT $3""",
        school_id,
        status,
        limit,
    )
    return [_case_view(r) for r in rows]


async def balances(conn: Conn, school_id: int) -> dict[str, Any]:
    """The accounts reconciliation keeps honest: clearing, settled and suspense."""
    rows = await conn.fetch(
        """SELECT system_code, balance FROM accounts WHERE school_id = $1 AND kind = 'system'
              AND system_code = ANY($2::text[])""",
        school_id,
        [*CLEARING.values(), *SETTLED.values(), "suspense", "recon_writeoff"],
    )
    open_cases = await conn.fetchval(
        "SELECT count(*) FROM recon_cases WHERE school_id = $1 AND status <> 'resolved'",
        school_id,
    )
    return {r["system_code"]: fmt(r["balance"]) for r in rows} | {"open_cases": open_cases}


async def _locked_case(conn: Conn, school_id: int, case_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT * FROM recon_cases WHERE id = $1 AND school_id = $2 FOR UPDATE", case_id, school_id
    )
    if row is None:
        raise NotFound("no such reconciliation case", field="case_id")
    return dict(row)


async def do_resolve_case(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    case_id: int,
    *,
    action: str,
    note: str,
    target_account: int | None = None,
) -> dict[str, Any]:
    """Resolve an open case: 'post' its difference to an account of the school, 'refund' a
    surplus through the outside party, or ask for a 'write_off' (a second operator approves)."""
    actor.require("settlement", school_id=school_id)
    if not note.strip():
        raise ValidationFailed("note must say why", field="note")
    if action not in ("post", "refund", "write_off"):
        raise ValidationFailed("action must be post, refund or write_off", field="action")
    async with transaction(pool) as tx:
        case = await _locked_case(tx, school_id, case_id)
        if case["status"] != "open":
            raise Conflict(f"this case is {case['status']}", code="CASE_NOT_OPEN", field="case_id")
        before = {"status": "open", "difference": fmt(case["difference"])}
        if action == "write_off":
            if actor.user_id is None:
                raise Forbidden("a write-off is requested by a signed-in operator", field="action")
            await tx.execute(
                """UPDATE recon_cases SET status = 'pending_approval', requested_by = $2,
                          requested_at = now(), note = $3, resolution = NULL
                    WHERE id = $1 AND school_id = $4""",
                case_id,
                actor.user_id,
                note,
                school_id,
            )
            after: dict[str, Any] = {"status": "pending_approval", "action": "write_off"}
        else:
            journal_id = await _book_resolution(
                tx, actor, school_id, case, action, target_account, note
            )
            await tx.execute(
                """UPDATE recon_cases SET status = 'resolved', resolution = $2,
                          target_account = $3, note = $4, resolved_by = $5, resolved_at = now(),
                          resolution_tx_id = $6 WHERE id = $1 AND school_id = $7""",
                case_id,
                action,
                target_account,
                note,
                actor.name,
                journal_id,
                school_id,
            )
            after = {"status": "resolved", "action": action, "target_account": target_account}
        await audit.record(
            tx,
            actor,
            f"reconciliation.{action}",
            school_id=school_id,
            target_type="recon_case",
            target_id=case_id,
            before=before,
            after=after | {"note": note},
        )
        row = await tx.fetchrow(
            f"SELECT {_CASE_COLUMNS} FROM recon_cases WHERE id = $1 AND school_id = $2",
            case_id,
            school_id,
        )
    return _case_view(row)


async def _book_resolution(
    conn: Conn,
    actor: Actor,
    school_id: int,
    case: dict[str, Any],
    action: str,
    target_account: int | None,
    note: str,
) -> int:
    d = case["difference"]
    suspense = await postings.system_account(conn, school_id, "suspense")
    ref = f"recon_case:{case['id']}"
    if action == "post":
        if target_account is None:
            raise ValidationFailed("post needs target_account", field="target_account")
        target = await conn.fetchrow(
            "SELECT id, kind, system_code FROM accounts WHERE id = $1 AND school_id = $2",
            target_account,
            school_id,
        )
        if target is None:
            raise NotFound("no such account in this school", field="target_account")
        if target["system_code"] == "suspense":
            raise ValidationFailed("the target cannot be suspense itself", field="target_account")
        return await postings.post(
            conn,
            school_id=school_id,
            kind="recon_resolve",
            legs=postings.legs_move(suspense, target_account, d),
            ref=ref,
            memo=note,
            actor=actor.name,
        )
    # refund: give a surplus back through the party that holds it. It goes out through the
    # clearing account, named so that the party's next statement (its refund line) matches it.
    if d <= 0:
        raise Conflict(
            "only money they hold and we do not (a surplus) can be refunded; post a shortfall "
            "to the account it belongs to, or write it off",
            code="REFUND_NEEDS_SURPLUS",
            field="action",
        )
    source = case["source"]
    clearing = await postings.system_account(conn, school_id, CLEARING[source])
    if source == "provider":
        recon_ref = f"{case['reference']}:refund"
        await notifications.enqueue(
            conn,
            "provider.refund",
            {
                "out_trade_no": case["reference"],
                "out_refund_no": f"{case['reference']}RC{case['id']}",
                "refund_fee": d,
            },
            school_id=school_id,
            dedupe_key=f"recon_refund:{case['id']}",
        )
    else:
        # the bank refund is executed by the operator at the bank with this reference
        recon_ref = f"RFD{case['id']:012d}"
    return await postings.post(
        conn,
        school_id=school_id,
        kind="recon_refund",
        legs=postings.legs_move(suspense, clearing, d),
        ref=ref,
        memo=note,
        actor=actor.name,
        meta={"recon_ref": recon_ref},
    )


async def do_decide_write_off(
    pool: PgPool, actor: Actor, school_id: int, case_id: int, *, approve: bool, note: str
) -> dict[str, Any]:
    """The second operator approves (books suspense -> recon_writeoff) or rejects a write-off."""
    actor.require("settlement", school_id=school_id)
    async with transaction(pool) as tx:
        case = await _locked_case(tx, school_id, case_id)
        if case["status"] != "pending_approval":
            raise Conflict(
                f"this case is {case['status']}, not waiting for approval",
                code="CASE_NOT_PENDING",
                field="case_id",
            )
        if actor.user_id is None or actor.user_id == case["requested_by"]:
            raise Forbidden(
                "a write-off needs a second operator: the one who asked cannot approve it",
                code="SECOND_APPROVAL_REQUIRED",
            )
        if approve:
            suspense = await postings.system_account(tx, school_id, "suspense")
            writeoff = await postings.system_account(tx, school_id, "recon_writeoff")
            journal_id = await postings.post(
                tx,
                school_id=school_id,
                kind="recon_write_off",
                legs=postings.legs_move(suspense, writeoff, case["difference"]),
                ref=f"recon_case:{case_id}",
                memo=f"{case['note']} / approved: {note}",
                actor=actor.name,
            )
            await tx.execute(
                """UPDATE recon_cases SET status = 'resolved', resolution = 'write_off',
                          approved_by = $2, resolved_by = $3, resolved_at = now(),
                          resolution_tx_id = $4 WHERE id = $1 AND school_id = $5""",
                case_id,
                actor.user_id,
                actor.name,
                journal_id,
                school_id,
            )
        else:
            await tx.execute(
                """UPDATE recon_cases SET status = 'open', requested_by = NULL,
                          requested_at = NULL WHERE id = $1 AND school_id = $2""",
                case_id,
                school_id,
            )
        await audit.record(
            tx,
            actor,
            "reconciliation.write_off_" + ("approved" if approve else "rejected"),
            school_id=school_id,
            target_type="recon_case",
            target_id=case_id,
            before={"status": "pending_approval"},
            after={"approve": approve, "note": note},
        )
        row = await tx.fetchrow(
            f"SELECT {_CASE_COLUMNS} FROM recon_cases WHERE id = $1 AND school_id = $2",
            case_id,
            school_id,
        )
    return _case_view(row)
