"""Payroll batches (工资管理): upload, approval by a second person, payment of each line once.

1. ``do_upload_sheet`` (the finance office): the frame's checksum is checked before anything is
   read; every row is checked against the school's staff (a student, someone who left, a name
   that differs, a bank line without a bound bank card) and the 合计 row against the lines; the
   sheet is refused whole with every bad row named, or stored as a batch with its lines and a
   pending proposal (four eyes, decision 0120). The same file for the same month again is the
   same batch, never a second one.
2. The approval (``four_eyes.do_decide``, by anyone but the uploader) runs ``_pay_batch`` in the
   decision's transaction: a campus line is booked payroll_clearing -> the cash purse and the
   staff member is told; a bank line becomes a pending bank-link payout whose hold is
   payroll_clearing -> bank_clearing, and an outbox job is deferred to send them.
3. The job (``send_batch``, outside any transaction) sends each unsent transfer through the
   bank link, which claims it first (``sent_at``): a rerun or a second worker sends nothing
   twice. A timeout leaves the transfer in doubt; the bank link's reversal and its periodic
   resolve settle it, and a line whose payout did not happen has its money back in the payroll
   account. Decision 0260.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.db.tx import Tx, owns_transaction
from campuscard.issuing import import_rules
from campuscard.issuing.import_rules import RowError
from campuscard.ledger import postings
from campuscard.ledger.money import fmt
from campuscard.moneyflows import bank_link
from campuscard.offline import overdraft
from campuscard.payroll import rules
from campuscard.platform import audit, four_eyes, i18n, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, NotFound, ValidationFailed

UPLOAD_LOCK = 740_660  # advisory lock class: one payroll upload per school at a time
SEND_TOPIC = "payroll.send"
UPLOADER_ROLES = ("settlement",)


@dataclass(frozen=True)
class UploadResult:
    batch_id: int
    approval_id: int
    period: str
    sha256: str
    rows: int
    total: str
    canonical: list[str]
    canonical_sha256: str
    replayed: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _refuse(errors: list[RowError]) -> ValidationFailed:
    return import_rules.refuse_rows(errors, what="the payroll sheet", outcome="stored")


async def _check_staff(
    tx: Tx, school_id: int, rows: list[rules.PayrollRow], errors: list[RowError]
) -> dict[str, Any]:
    """The staff records of the rows; a row that cannot be paid as written is an error."""
    people = {
        r["number"]: r
        for r in await tx.fetch(
            """SELECT p.id, p.number, p.name, p.kind, p.status, p.account_status,
                      EXISTS (SELECT 1 FROM bank_cards b WHERE b.school_id = p.school_id
                                 AND b.person_id = p.id AND b.status = 'active') AS has_card
                 FROM persons p WHERE p.school_id = $1 AND p.number = ANY($2::text[])""",
            school_id,
            [r.number for r in rows],
        )
    }
    for row in rows:
        person = people.get(row.number)
        params = {"number": row.number}
        if person is None:
            errors.append(
                RowError(row.row, "number", f"no staff member {row.number}", "NO_STAFF", params)
            )
        elif person["kind"] != "staff":
            errors.append(
                RowError(
                    row.row, "number", f"{row.number} is not a staff member", "NOT_STAFF", params
                )
            )
        elif person["status"] != "enrolled":
            errors.append(
                RowError(row.row, "number", f"{row.number} has left", "STAFF_LEFT", params)
            )
        elif row.name and row.name != person["name"]:
            errors.append(
                RowError(
                    row.row,
                    "name",
                    f"{row.number} is {person['name']}, not {row.name}",
                    "NAME_MISMATCH",
                    params | {"name": person["name"], "given": row.name},
                )
            )
        elif row.route == "campus" and person["account_status"] != "active":
            errors.append(
                RowError(
                    row.row,
                    "route",
                    f"{row.number} has no open campus card account",
                    "NO_ACCOUNT",
                    params,
                )
            )
        elif row.route == "bank" and not person["has_card"]:
            errors.append(
                RowError(
                    row.row,
                    "route",
                    f"{row.number} has no bound bank card",
                    "NO_BANK_CARD",
                    params,
                )
            )
    return people


@owns_transaction
async def do_upload_sheet(
    tx: Tx, actor: Actor, school_id: int, *, period: str, frame: bytes, filename: str
) -> UploadResult:
    """Check the frame and every row; store the batch and propose it, or refuse it whole."""
    actor.require(*UPLOADER_ROLES, school_id=school_id)
    rules.check_period(period)
    filename = (filename or "payroll.xlsx").strip()[:200] or "payroll.xlsx"
    payload, digest = import_rules.open_frame(frame)
    rows, errors = await asyncio.to_thread(rules.parse_sheet, payload)  # CPU: off the loop
    await tx.execute("SELECT pg_advisory_xact_lock($1, $2)", UPLOAD_LOCK, school_id)
    earlier = await tx.fetchrow(
        "SELECT id, approval_id FROM payroll_batches "
        "WHERE school_id = $1 AND period = $2 AND sha256 = $3",
        school_id,
        period,
        digest,
    )
    people = await _check_staff(tx, school_id, rows, errors)
    if errors and earlier is None:
        raise _refuse(errors)
    canonical = [r.canonical() for r in rows]
    canonical_sha = rules.canonical_sha256(canonical)
    total = sum(r.amount for r in rows)
    if earlier is not None:
        # the same bytes for the same month: the batch it made, whatever has happened since
        result = UploadResult(
            batch_id=earlier["id"],
            approval_id=earlier["approval_id"],
            period=period,
            sha256=digest,
            rows=len(rows),
            total=fmt(total),
            canonical=canonical,
            canonical_sha256=canonical_sha,
            replayed=True,
        )
        return result
    if actor.user_id is None:
        raise ValidationFailed("a payroll upload needs a signed-in person", field="actor")
    proposal = await four_eyes.propose(
        tx,
        actor,
        school_id,
        kind="payroll_batch",
        payload={"period": period, "sha256": digest},
        amount=total,
        summary=f"{period} · {len(rows)} · {filename}",  # words: the page's (approval_kind)
    )
    approval_id = int(proposal["approval"]["id"])
    batch_id: int = await tx.fetchval(
        """INSERT INTO payroll_batches(school_id, period, sha256, filename, content, lines, total,
               canonical_sha256, approval_id, uploaded_by, uploaded_by_name)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id""",
        school_id,
        period,
        digest,
        filename,
        payload,
        len(rows),
        total,
        canonical_sha,
        approval_id,
        actor.user_id,
        actor.name,
    )
    await tx.executemany(
        """INSERT INTO payroll_lines(school_id, batch_id, row_no, person_id, amount, route, memo)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        [
            (school_id, batch_id, r.row, people[r.number]["id"], r.amount, r.route, r.memo)
            for r in rows
        ],
    )
    await audit.record(
        tx,
        actor,
        "payroll.upload",
        school_id=school_id,
        target_type="payroll_batch",
        target_id=batch_id,
        after={
            "period": period,
            "lines": len(rows),
            "total": fmt(total),
            "sha256": digest,
            "filename": filename,
            "approval_id": approval_id,
        },
    )
    return UploadResult(
        batch_id=batch_id,
        approval_id=approval_id,
        period=period,
        sha256=digest,
        rows=len(rows),
        total=fmt(total),
        canonical=canonical,
        canonical_sha256=canonical_sha,
        replayed=False,
    )


def _paid_notice(amount: int, period: str, to_bank: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The salary notice, worded in the reader's language when read (decision 0290)."""
    body = "notice.payroll_paid.body_bank" if to_bank else "notice.payroll_paid.body_campus"
    return i18n.message("notice.payroll_paid.title"), i18n.message(
        body, period=period, amount=i18n.money(amount)
    )


async def _pay_line(
    tx: Tx,
    batch: Any,
    line: Any,
    route: str,
    source: int,
    *,
    requested_by: int | None,
    requested_by_name: str,
    approved_by: str,
) -> int:
    """Pay one line by ``route`` and point the line at what paid it: a campus line is booked
    payroll_clearing -> the cash purse (the staff member is told now), a bank line becomes a
    pending payout held payroll_clearing -> bank_clearing (sent by the job). The booking's or
    the transfer's id."""
    school_id = batch["school_id"]
    ref = f"payroll:{batch['id']}:{line['row_no']}"
    if route == "campus":
        if line["account_status"] != "active":
            raise Conflict(
                f"row {line['row_no']}: the campus card account is no longer open",
                code="ACCOUNT_NOT_ACTIVE",
                field="batch",
            )
        cash = (await postings.open_purses(tx, school_id, line["person_id"]))["cash"]
        tx_id = await postings.post(
            tx,
            school_id=school_id,
            kind="payroll",
            legs=postings.legs_move(source, cash, line["amount"]),
            ref=ref,
            memo=f"{batch['period']} {line['memo']}".strip(),
            actor=requested_by_name,
            meta={"batch_id": batch["id"], "row": line["row_no"], "approved_by": approved_by},
        )
        # like any money in, a salary repays the offline overdraft first (and keeps an
        # overdue credit line's stop at what is still owed)
        await overdraft.repay_overdraft(tx, school_id, line["person_id"])
        await tx.execute(
            "UPDATE payroll_lines SET route = 'campus', transfer_id = NULL, tx_id = $4 "
            "WHERE school_id = $1 AND batch_id = $2 AND row_no = $3",
            school_id,
            batch["id"],
            line["row_no"],
            tx_id,
        )
        title, body = _paid_notice(line["amount"], batch["period"], to_bank=False)
        await notifications.notify(
            tx,
            school_id=school_id,
            person_id=line["person_id"],
            kind="payroll_paid",
            title=title,
            body=body,
            data={"batch_id": batch["id"], "row": line["row_no"]},
            dedupe_key=f"payroll_paid:{school_id}:{batch['id']}:{line['row_no']}",
        )
        return tx_id
    card = await bank_link.bound_card(tx, line["person_id"])
    if card is None:
        raise Conflict(
            f"row {line['row_no']}: the staff member has no bank card bound",
            code="NO_BANK_CARD",
            field="batch",
        )
    transfer = await bank_link.create_transfer(
        tx,
        school_id=school_id,
        person_id=line["person_id"],
        card=card,
        direction="payout",
        origin="payroll",
        amount=line["amount"],
        requested_by=requested_by,
        actor_name=requested_by_name,
        source=source,
        memo=f"{batch['period']} payroll to bank card {card['masked_pan']}",
    )
    await tx.execute(
        "UPDATE payroll_lines SET route = 'bank', tx_id = NULL, transfer_id = $4 "
        "WHERE school_id = $1 AND batch_id = $2 AND row_no = $3",
        school_id,
        batch["id"],
        line["row_no"],
        transfer["id"],
    )
    transfer_id: int = transfer["id"]
    return transfer_id


@four_eyes.executor("payroll_batch")
async def _pay_batch(tx: Tx, actor: Actor, proposal: four_eyes.Proposal) -> dict[str, Any]:
    """The approval: every line is booked or handed to the bank link, once (the batch row is
    locked and ``paid_at`` is set in this transaction)."""
    school_id = proposal.school_id
    batch = await tx.fetchrow(
        "SELECT * FROM payroll_batches WHERE school_id = $1 AND approval_id = $2 FOR UPDATE",
        school_id,
        proposal.id,
    )
    if batch is None:
        raise NotFound("no payroll batch for this approval", field="approval_id")
    if batch["paid_at"] is not None:
        raise Conflict("this payroll batch is already paid", code="PAYROLL_PAID", field="batch")
    lines = await tx.fetch(
        """SELECT l.*, p.account_status FROM payroll_lines l
             JOIN persons p ON p.school_id = l.school_id AND p.id = l.person_id
            WHERE l.school_id = $1 AND l.batch_id = $2 ORDER BY l.row_no""",
        school_id,
        batch["id"],
    )
    source = await postings.system_account(tx, school_id, "payroll_clearing")
    booked = sent = 0
    for line in lines:
        await _pay_line(
            tx,
            batch,
            line,
            line["route"],
            source,
            requested_by=proposal.proposed_by,
            requested_by_name=proposal.proposed_by_name,
            approved_by=actor.name,
        )
        if line["route"] == "campus":
            booked += 1
        else:
            sent += 1
    await tx.execute(
        "UPDATE payroll_batches SET paid_at = now() WHERE school_id = $1 AND id = $2",
        school_id,
        batch["id"],
    )
    if sent:
        await notifications.enqueue(
            tx,
            SEND_TOPIC,
            {"school_id": school_id, "batch_id": batch["id"]},
            school_id=school_id,
            dedupe_key=f"payroll_send:{school_id}:{batch['id']}",
        )
    await audit.record(
        tx,
        actor,
        "payroll.pay",
        school_id=school_id,
        target_type="payroll_batch",
        target_id=batch["id"],
        after={"booked": booked, "to_bank": sent, "total": fmt(batch["total"])},
    )
    return {"batch_id": batch["id"], "booked": booked, "to_bank": sent}


REPAY_ROUTES = ("bank", "campus")


@owns_transaction
async def do_repay_line(
    tx: Tx,
    actor: Actor,
    school_id: int,
    batch_id: int,
    row_no: int,
    *,
    failed_transfer_id: int,
    route: str,
) -> dict[str, Any]:
    """Pay a failed bank line again (the finance office): to the bank card (once the staff
    member has fixed it; a job sends it) or to the campus account (booked now). The request
    names the failed payout it replaces, so the same request again pays nothing twice and
    answers what the first did (``replayed``); a line that is paid, at the bank or waiting for
    approval is refused."""
    actor.require(*UPLOADER_ROLES, school_id=school_id)
    if route not in REPAY_ROUTES:
        raise ValidationFailed("route must be bank or campus", field="route")
    if actor.user_id is None:
        raise ValidationFailed("paying a line again needs a signed-in person", field="actor")
    line = await tx.fetchrow(
        """SELECT l.*, p.account_status, b.period, a.decided_by_name FROM payroll_lines l
             JOIN persons p ON p.school_id = l.school_id AND p.id = l.person_id
             JOIN payroll_batches b ON b.school_id = l.school_id AND b.id = l.batch_id
             JOIN approvals a ON a.school_id = b.school_id AND a.id = b.approval_id
            WHERE l.school_id = $1 AND l.batch_id = $2 AND l.row_no = $3
              FOR UPDATE OF l""",
        school_id,
        batch_id,
        row_no,
    )
    if line is None:
        raise NotFound("no such line in this payroll batch", field="row")
    earlier = await tx.fetchrow(
        "SELECT * FROM payroll_line_repays WHERE school_id = $1 AND failed_transfer_id = $2",
        school_id,
        failed_transfer_id,
    )
    if earlier is not None:
        if (earlier["batch_id"], earlier["row_no"]) != (batch_id, row_no):
            raise Conflict(
                "that payout belongs to another line",
                code="PAYROLL_NOT_THIS_LINE",
                field="failed_transfer_id",
            )
        return _repay_view(earlier, replayed=True)
    if line["transfer_id"] != failed_transfer_id:
        raise Conflict(
            "that payout is not this line's",
            code="PAYROLL_NOT_THIS_LINE",
            field="failed_transfer_id",
        )
    status = await tx.fetchval(
        "SELECT status FROM bank_transfers WHERE school_id = $1 AND id = $2",
        school_id,
        failed_transfer_id,
    )
    if rules.line_state(line["route"], line["tx_id"], status) != "failed":
        raise Conflict(
            "only a line whose bank payout failed can be paid again",
            code="PAYROLL_LINE_NOT_FAILED",
            field="row",
        )
    batch = {"school_id": school_id, "id": batch_id, "period": line["period"]}
    source = await postings.system_account(tx, school_id, "payroll_clearing")
    paid_by = await _pay_line(
        tx,
        batch,
        line,
        route,
        source,
        requested_by=actor.user_id,
        requested_by_name=actor.name,
        approved_by=line["decided_by_name"] or "",
    )
    row = await tx.fetchrow(
        """INSERT INTO payroll_line_repays(school_id, failed_transfer_id, batch_id, row_no, route,
               tx_id, transfer_id, repaid_by, repaid_by_name)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *""",
        school_id,
        failed_transfer_id,
        batch_id,
        row_no,
        route,
        paid_by if route == "campus" else None,
        paid_by if route == "bank" else None,
        actor.user_id,
        actor.name,
    )
    if route == "bank":
        await notifications.enqueue(
            tx,
            SEND_TOPIC,
            {"school_id": school_id, "batch_id": batch_id},
            school_id=school_id,
            dedupe_key=f"payroll_send:{school_id}:{batch_id}:{paid_by}",
        )
    await audit.record(
        tx,
        actor,
        "payroll.repay",
        school_id=school_id,
        target_type="payroll_batch",
        target_id=batch_id,
        before={"row": row_no, "route": line["route"], "transfer_id": failed_transfer_id},
        after={"row": row_no, "route": route, "paid_by": paid_by, "amount": fmt(line["amount"])},
    )
    return _repay_view(row, replayed=False)


def _repay_view(row: Any, *, replayed: bool) -> dict[str, Any]:
    return {
        "batch_id": row["batch_id"],
        "row": row["row_no"],
        "failed_transfer_id": row["failed_transfer_id"],
        "route": row["route"],
        "tx_id": row["tx_id"],
        "transfer_id": row["transfer_id"],
        "repaid_by_name": row["repaid_by_name"],
        "repaid_at": row["repaid_at"].isoformat(),
        "replayed": replayed,
    }


async def send_batch(pool: PgPool, settings: Settings, school_id: int, batch_id: int) -> int:
    """Send the batch's unsent bank payouts, one at a time, outside any transaction. The bank
    link claims each before sending, so a rerun of this job sends nothing twice; what is
    already in flight or in doubt is left to the bank link's resolve. How many were sent."""
    rows = await pool.fetch(
        """SELECT t.id FROM payroll_lines l
             JOIN bank_transfers t ON t.school_id = l.school_id AND t.id = l.transfer_id
            WHERE l.school_id = $1 AND l.batch_id = $2
              AND t.status = 'pending' AND t.sent_at IS NULL
            ORDER BY l.row_no""",
        school_id,
        batch_id,
    )
    for row in rows:
        await bank_link.execute_transfer(pool, settings, row["id"])
    return len(rows)


async def _bank_paid(tx: Tx, transfer: dict[str, Any]) -> None:
    """The bank made a payroll payout: tell the staff member, in payroll's words."""
    line = await tx.fetchrow(
        """SELECT l.batch_id, l.row_no, b.period FROM payroll_lines l
             JOIN payroll_batches b ON b.school_id = l.school_id AND b.id = l.batch_id
            WHERE l.school_id = $1 AND l.transfer_id = $2""",
        transfer["school_id"],
        transfer["id"],
    )
    if line is None:  # a payroll payout is always made for a line
        raise RuntimeError(f"payroll transfer {transfer['id']} has no line")
    title, body = _paid_notice(transfer["amount"], line["period"], to_bank=True)
    await notifications.notify(
        tx,
        school_id=transfer["school_id"],
        person_id=transfer["person_id"],
        kind="payroll_paid",
        title=title,
        body=body,
        data={"batch_id": line["batch_id"], "row": line["row_no"], "transfer_id": transfer["id"]},
        dedupe_key=f"payroll_paid:{transfer['school_id']}:{line['batch_id']}:{line['row_no']}",
    )


async def _bank_returned(tx: Tx, transfer: dict[str, Any]) -> None:
    """The bank refused a payroll payout, or it was reversed: the money is back in the payroll
    account; the staff member is told the salary did not reach the card (the finance office
    sees the failed line in the batch's report)."""
    line = await tx.fetchrow(
        """SELECT l.batch_id, l.row_no, b.period FROM payroll_lines l
             JOIN payroll_batches b ON b.school_id = l.school_id AND b.id = l.batch_id
            WHERE l.school_id = $1 AND l.transfer_id = $2""",
        transfer["school_id"],
        transfer["id"],
    )
    if line is None:  # a payroll payout is always made for a line
        raise RuntimeError(f"payroll transfer {transfer['id']} has no line")
    await notifications.notify(
        tx,
        school_id=transfer["school_id"],
        person_id=transfer["person_id"],
        kind="payroll_returned",
        title=i18n.message("notice.payroll_returned.title"),
        body=i18n.message(
            "notice.payroll_returned.body",
            period=line["period"],
            amount=i18n.money(transfer["amount"]),
        ),
        data={"batch_id": line["batch_id"], "row": line["row_no"], "transfer_id": transfer["id"]},
        dedupe_key=f"payroll_returned:{transfer['school_id']}:{transfer['id']}",
    )


bank_link.on_payout_posted("payroll", _bank_paid, own_notice=True)
bank_link.on_payout_returned("payroll", _bank_returned)
