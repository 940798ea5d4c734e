"""Subsidy batches (补助): made from an xlsx/CSV list or a rule, approved by a second person,
issued from the subsidy fund to subsidy purses, optionally expiring with a clawback of the
unspent part, exact to the fen.

Which part of a subsidy purse is "unspent" of a given batch: spending is attributed to
grants in consumption order — the grant that expires first is eaten first (then older
before newer); grants without expiry, including counter grants, come last. Replaying the
purse's postings with that rule gives each batch's remaining part exactly. See
docs/decisions/0032-subsidy-expiry-attribution.md.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from typing import Any

from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, owns_transaction, transaction
from campuscard.ledger import postings, purse_order
from campuscard.ledger.money import Money, fmt
from campuscard.platform import audit, i18n, notifications, uploads
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, Forbidden, NotFound, ValidationFailed

MAX_LINES = 20_000
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_COLUMNS = 20
LIMITS = uploads.SheetLimits(rows=MAX_LINES, columns=MAX_COLUMNS)
NUMBER_HEADERS = ("学号", "工号", "number", "person_number")
AMOUNT_HEADERS = ("金额", "补助金额", "amount")
MEMO_HEADERS = ("备注", "memo")


@dataclass(frozen=True)
class Line:
    row: int
    number: str
    amount: str
    memo: str


# ---- reading the list ------------------------------------------------------------------
def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        # Excel stores typed numbers as floats: 12.3 -> "12.30" only if it is exact in fen
        text = f"{value:.2f}"
        return text if abs(float(text) - value) < 1e-9 else repr(value)
    return str(value).strip()


def read_rows(filename: str, content: bytes) -> list[list[str]]:
    if len(content) > MAX_FILE_BYTES:
        raise uploads.too_large(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    name = filename.lower()
    if name.endswith(".xlsx"):
        # streamed within LIMITS; the workbook's declared size is not trusted (platform/uploads.py)
        return [[_cell(v) for v in row] for row in uploads.xlsx_rows(content, LIMITS)]
    if name.endswith(".csv"):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = content.decode("gb18030")
            except UnicodeDecodeError as err:
                raise ValidationFailed(
                    "the CSV is neither UTF-8 nor GB18030", field="file"
                ) from err
        return [[c.strip() for c in row] for row in uploads.csv_rows(text, LIMITS)]
    raise ValidationFailed("upload a .xlsx or .csv file", field="file")


def parse_lines(rows: list[list[str]]) -> list[Line]:
    rows = [r for r in rows if any(c for c in r)]
    if not rows:
        raise ValidationFailed("the file is empty", field="file")
    header = [h.strip().lower() for h in rows[0]]

    def col(names: tuple[str, ...], required: bool) -> int | None:
        for n in names:
            if n.lower() in header:
                return header.index(n.lower())
        if required:
            raise ValidationFailed(
                f"the first row must name a column {' / '.join(names)}", field="file"
            )
        return None

    c_number = col(NUMBER_HEADERS, True)
    c_amount = col(AMOUNT_HEADERS, True)
    c_memo = col(MEMO_HEADERS, False)
    assert c_number is not None
    assert c_amount is not None
    out = []
    for i, r in enumerate(rows[1:], start=2):
        padded = r + [""] * (len(header) - len(r))
        out.append(
            Line(
                i,
                padded[c_number],
                padded[c_amount],
                padded[c_memo][:200] if c_memo is not None else "",
            )
        )
    if len(out) > MAX_LINES:
        raise ValidationFailed(f"at most {MAX_LINES} lines per batch", field="file")
    return out


# ---- creating batches ------------------------------------------------------------------
def batch_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "source": row["source"],
        "rule": row["rule"],
        "status": row["status"],
        "expires_on": row["expires_on"].isoformat() if row["expires_on"] else None,
        "total": fmt(row["total"]),
        "lines": row["lines"],
        "clawed_back": fmt(row["clawed_back"]),
        "created_by": row["created_by"],
        "approved_by": row["approved_by"],
        "reject_reason": row["reject_reason"],
        "created_at": row["created_at"].isoformat(),
        "issued_at": row["issued_at"].isoformat() if row["issued_at"] else None,
    }


async def _insert_batch(
    conn: Conn,
    actor: Actor,
    school_id: int,
    *,
    name: str,
    source: str,
    rule: dict[str, Any] | None,
    expires_on: date | None,
    lines: list[tuple[int, int, str]],
) -> dict[str, Any]:
    today = await conn.fetchval("SELECT cc_business_date($1)", school_id)
    if expires_on is not None and expires_on <= today:
        raise ValidationFailed("expires_on must be after today", field="expires_on")
    total = sum(a for _, a, _ in lines)
    row = await conn.fetchrow(
        """INSERT INTO subsidy_batches(school_id, name, source, rule, expires_on, total, lines,
                                       created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *""",
        school_id,
        name,
        source,
        rule,
        expires_on,
        total,
        len(lines),
        actor.user_id,
    )
    assert row is not None
    await conn.executemany(
        "INSERT INTO subsidy_lines(school_id, batch_id, person_id, amount, memo) "
        "VALUES ($1, $2, $3, $4, $5)",
        [(school_id, row["id"], p, a, m) for p, a, m in lines],
    )
    await audit.record(
        conn,
        actor,
        "subsidy_batch.create",
        school_id=school_id,
        target_type="subsidy_batch",
        target_id=row["id"],
        after={"name": name, "source": source, "total": fmt(total), "lines": len(lines)},
    )
    return batch_view(row)


def _require_maker(actor: Actor, school_id: int) -> None:
    actor.require("settlement", school_id=school_id)
    if actor.user_id is None:
        raise Forbidden("sign in as a person", field="actor")


async def do_create_batch_from_file(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    *,
    name: str,
    expires_on: date | None,
    filename: str,
    content: bytes,
) -> dict[str, Any]:
    """All or nothing: every bad row is reported (row, field, reason), nothing is stored."""
    _require_maker(actor, school_id)
    rows = await asyncio.to_thread(read_rows, filename, content)  # CPU: off the loop
    lines = parse_lines(rows)
    async with transaction(pool) as tx:
        people = {
            r["number"]: r
            for r in await tx.fetch(
                "SELECT id, number, account_status FROM persons WHERE school_id = $1 "
                "AND number = ANY($2::text[])",
                school_id,
                [line.number for line in lines],
            )
        }
        problems: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        good: list[tuple[int, int, str]] = []

        def problem(line: Any, field: str, code: str, message: str, **params: Any) -> None:
            # the page words each row by its code (a.sub_row.<code>); the API keeps the message
            problems.append(
                {"row": line.row, "field": field, "message": message, "code": code}
                | {"params": {k: str(v) for k, v in params.items()}}
            )

        for line in lines:
            person = people.get(line.number)
            if not line.number:
                problem(line, "number", "number_empty", "is empty")
            elif person is None:
                problem(
                    line, "number", "number_unknown", f"unknown {line.number!r}", number=line.number
                )
            elif person["account_status"] != "active":
                problem(
                    line, "number", "account_inactive", "account is not active", number=line.number
                )
            elif line.number in seen:
                first = seen[line.number]
                problem(line, "number", "number_twice", f"also on row {first}", first=first)
            try:
                amount = Money.parse(line.amount, field="amount").fen
            except ValidationFailed as err:
                problem(line, "amount", "amount_invalid", err.message, value=line.amount)
                amount = 0
            if person is not None and line.number not in seen and amount:
                good.append((person["id"], amount, line.memo))
            seen.setdefault(line.number, line.row)
        if problems:
            raise ValidationFailed(
                f"{len(problems)} row(s) are wrong; nothing was imported",
                code="IMPORT_ROWS_INVALID",
                field="file",
                details={"rows": problems},
            )
        return await _insert_batch(
            tx,
            actor,
            school_id,
            name=name,
            source="file",
            rule={"filename": filename[:100]},
            expires_on=expires_on,
            lines=good,
        )


async def do_create_batch_from_rule(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    *,
    name: str,
    amount: Money,
    expires_on: date | None,
    class_ids: list[int],
    grades: list[str],
    categories: list[str],
    kinds: list[str],
) -> dict[str, Any]:
    """Everyone with an active account matching every given criterion (any of its values)."""
    _require_maker(actor, school_id)
    if not (class_ids or grades or categories or kinds):
        raise ValidationFailed(
            "give at least one of class_ids, grades, categories, kinds", field="rule"
        )
    async with transaction(pool) as tx:
        rows = await tx.fetch(
            """SELECT p.id FROM persons p
                 LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
                WHERE p.school_id = $1 AND p.account_status = 'active'
                  AND (cardinality($2::bigint[]) = 0 OR p.class_id = ANY($2))
                  AND (cardinality($3::text[]) = 0 OR c.grade = ANY($3))
                  AND (cardinality($4::text[]) = 0 OR p.category = ANY($4))
                  AND (cardinality($5::text[]) = 0 OR p.kind = ANY($5))
                ORDER BY p.id""",
            school_id,
            class_ids,
            grades,
            categories,
            kinds,
        )
        if not rows:
            raise ValidationFailed(
                "nobody matches this rule", code="RULE_MATCHES_NOBODY", field="rule"
            )
        if len(rows) > MAX_LINES:
            raise ValidationFailed(f"the rule matches more than {MAX_LINES}", field="rule")
        rule = {"class_ids": class_ids, "grades": grades, "categories": categories, "kinds": kinds}
        return await _insert_batch(
            tx,
            actor,
            school_id,
            name=name,
            source="rule",
            rule=rule | {"amount": fmt(amount.fen)},
            expires_on=expires_on,
            lines=[(r["id"], amount.fen, "") for r in rows],
        )


# ---- approval and issue ----------------------------------------------------------------
async def _locked_batch(conn: Conn, school_id: int, batch_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT * FROM subsidy_batches WHERE id = $1 AND school_id = $2 FOR UPDATE",
        batch_id,
        school_id,
    )
    if row is None:
        raise NotFound("subsidy batch not found", field="batch_id")
    return dict(row)


@owns_transaction
async def do_approve_batch(tx: Tx, actor: Actor, school_id: int, batch_id: int) -> dict[str, Any]:
    """A second person approves; the batch is issued at once from the subsidy fund."""
    actor.require("settlement", school_id=school_id)
    batch = await _locked_batch(tx, school_id, batch_id)
    if batch["created_by"] == actor.user_id:
        raise Forbidden(
            "a second person must approve the batch, not its maker",
            code="SECOND_PERSON_REQUIRED",
        )
    if batch["status"] != "pending_approval":
        raise Conflict(f"the batch is {batch['status']}", code="BATCH_NOT_PENDING")
    lines = await tx.fetch(
        "SELECT person_id, amount FROM subsidy_lines WHERE school_id = $1 AND batch_id = $2"
        " ORDER BY person_id",
        school_id,
        batch_id,
    )
    legs = [
        postings.Leg(await postings.system_account(tx, school_id, "subsidy_fund"), -batch["total"])
    ]
    purse_ids = {
        r["person_id"]: r["id"]
        for r in await tx.fetch(
            "SELECT person_id, id FROM accounts WHERE school_id = $1 AND kind = 'purse' "
            "AND purse = 'subsidy' AND person_id = ANY($2::bigint[])",
            school_id,
            [r["person_id"] for r in lines],
        )
    }
    for r in lines:
        pid = purse_ids.get(r["person_id"])
        if pid is None:
            pid = (await postings.open_purses(tx, school_id, r["person_id"]))["subsidy"]
        legs.append(postings.Leg(pid, r["amount"]))
    tx_id = await postings.post(
        tx,
        school_id=school_id,
        kind="subsidy_issue",
        legs=legs,
        ref=f"subsidy_batch:{batch_id}",
        memo=batch["name"],
        actor=actor.name,
    )
    row = await tx.fetchrow(
        """UPDATE subsidy_batches SET status = 'issued', approved_by = $2, issued_at = cc_clock()
            WHERE school_id = $3 AND id = $1 RETURNING *""",
        batch_id,
        actor.user_id,
        school_id,
    )
    for r in lines:
        await notifications.notify(
            tx,
            school_id=school_id,
            person_id=r["person_id"],
            kind="subsidy_issued",
            title=i18n.message("notice.subsidy_issued.title"),
            body=i18n.message(
                "notice.subsidy_issued.until",
                name=batch["name"],
                amount=i18n.money(r["amount"]),
                until=i18n.day(batch["expires_on"]),
            )
            if batch["expires_on"]
            else i18n.message(
                "notice.subsidy_issued.body", name=batch["name"], amount=i18n.money(r["amount"])
            ),
            data={"batch_id": batch_id},
            dedupe_key=f"subsidy_issued:{batch_id}:{r['person_id']}",
        )
    await audit.record(
        tx,
        actor,
        "subsidy_batch.approve",
        school_id=school_id,
        target_type="subsidy_batch",
        target_id=batch_id,
        before={"status": "pending_approval"},
        after={"status": "issued", "tx_id": tx_id, "total": fmt(batch["total"])},
    )
    return batch_view(row)


async def do_reject_batch(
    pool: PgPool, actor: Actor, school_id: int, batch_id: int, *, reason: str
) -> dict[str, Any]:
    actor.require("settlement", school_id=school_id)
    async with transaction(pool) as tx:
        batch = await _locked_batch(tx, school_id, batch_id)
        if batch["status"] != "pending_approval":
            raise Conflict(f"the batch is {batch['status']}", code="BATCH_NOT_PENDING")
        row = await tx.fetchrow(
            "UPDATE subsidy_batches SET status = 'rejected', reject_reason = $2 "
            "WHERE school_id = $3 AND id = $1 RETURNING *",
            batch_id,
            reason,
            school_id,
        )
        await audit.record(
            tx,
            actor,
            "subsidy_batch.reject",
            school_id=school_id,
            target_type="subsidy_batch",
            target_id=batch_id,
            after={"reason": reason},
        )
        return batch_view(row)


async def list_batches(pool: PgPool, actor: Actor, school_id: int) -> list[dict[str, Any]]:
    actor.require("settlement", school_id=school_id)
    rows = await pool.fetch(
        "SELECT * FROM subsidy_batches WHERE school_id = $1 ORDER BY id DESC LIMIT 200", school_id
    )
    return [batch_view(r) for r in rows]


async def get_batch(pool: PgPool, actor: Actor, school_id: int, batch_id: int) -> dict[str, Any]:
    actor.require("settlement", school_id=school_id)
    row = await pool.fetchrow(
        "SELECT * FROM subsidy_batches WHERE id = $1 AND school_id = $2", batch_id, school_id
    )
    if row is None:
        raise NotFound("subsidy batch not found", field="batch_id")
    lines = await pool.fetch(
        """SELECT l.person_id, p.number, p.name, l.amount, l.clawed_back, l.memo
             FROM subsidy_lines l JOIN persons p ON p.school_id = l.school_id AND p.id = l.person_id
            WHERE l.school_id = $2 AND l.batch_id = $1 ORDER BY p.number LIMIT 5000""",
        batch_id,
        school_id,
    )
    return batch_view(row) | {
        "items": [
            {
                "person_id": r["person_id"],
                "number": r["number"],
                "name": r["name"],
                "amount": fmt(r["amount"]),
                "clawed_back": fmt(r["clawed_back"]),
                "memo": r["memo"],
            }
            for r in lines
        ]
    }


# ---- expiry and clawback ---------------------------------------------------------------
async def unspent_of(conn: Conn, batch: dict[str, Any], person_id: int) -> int:
    """What is left of ``batch``'s grant to ``person_id``: replay the subsidy purse's postings,
    each credit a lot, each spend eating the live lots in consumption order (see the module
    docstring). Exact to the fen; the purse row is locked while it is read."""
    school_id = batch["school_id"]
    purse = await conn.fetchval(
        "SELECT id FROM accounts WHERE school_id = $1 AND person_id = $2 AND kind = 'purse' "
        "AND purse = 'subsidy' FOR UPDATE",
        school_id,
        person_id,
    )
    if purse is None:
        return 0
    rows = await conn.fetch(
        """SELECT p.amount, j.kind, j.ref, b.id AS batch_id, b.expires_on
             FROM postings p JOIN journal_tx j ON j.school_id = p.school_id AND j.id = p.tx_id
             LEFT JOIN subsidy_batches b
                    ON b.school_id = p.school_id
                   AND j.kind = 'subsidy_issue' AND j.ref = 'subsidy_batch:' || b.id
            WHERE p.school_id = $2 AND p.account_id = $1 ORDER BY p.version""",
        purse,
        school_id,
    )
    # lot: [sort key, remaining, batch id or None]
    lots: list[list[Any]] = []
    for seq, r in enumerate(rows):
        if r["amount"] > 0:
            expiry = r["expires_on"] or date.max
            lots.append([(expiry, seq), r["amount"], r["batch_id"]])
            continue
        need = -r["amount"]
        if r["kind"] == "subsidy_clawback" and r["ref"]:
            clawed = int(r["ref"].split(":")[1])
            for lot in lots:
                if lot[2] == clawed:
                    take = min(lot[1], need)
                    lot[1] -= take
                    need -= take
        for lot in sorted(lots, key=lambda x: x[0]):
            if need == 0:
                break
            take = min(lot[1], need)
            lot[1] -= take
            need -= take
    return sum(lot[1] for lot in lots if lot[2] == batch["id"])


async def expire_due_batches(pool: PgPool, *, today: date | None = None) -> list[int]:
    """Claw back the unspent part of every batch past its expiry; returns the batch ids."""
    due = await pool.fetch(
        """SELECT id, school_id FROM subsidy_batches
            WHERE status = 'issued' AND expires_on IS NOT NULL
              AND expires_on < coalesce($1::date, cc_business_date(school_id))
            ORDER BY expires_on, issued_at, id""",
        today,
    )
    done: list[int] = []
    for b in due:
        async with transaction(pool) as tx:
            batch = await _locked_batch(tx, b["school_id"], b["id"])
            if batch["status"] != "issued":
                continue
            fund = await postings.system_account(tx, batch["school_id"], "subsidy_fund")
            lines = await tx.fetch(
                "SELECT person_id, amount FROM subsidy_lines WHERE school_id = $1 "
                "AND batch_id = $2 ORDER BY person_id",
                batch["school_id"],
                batch["id"],
            )
            total = 0
            for line in lines:
                back = min(line["amount"], await unspent_of(tx, batch, line["person_id"]))
                if back <= 0:
                    continue
                purses = await postings.open_purses(tx, batch["school_id"], line["person_id"])
                await postings.post(
                    tx,
                    school_id=batch["school_id"],
                    kind="subsidy_clawback",
                    legs=postings.legs_move(purses["subsidy"], fund, back),
                    ref=f"subsidy_batch:{batch['id']}:clawback",
                    memo=f"{batch['name']} expired",
                )
                await tx.execute(
                    "UPDATE subsidy_lines SET clawed_back = $3 "
                    "WHERE school_id = $4 AND batch_id = $1 AND person_id = $2",
                    batch["id"],
                    line["person_id"],
                    back,
                    batch["school_id"],
                )
                await notifications.notify(
                    tx,
                    school_id=batch["school_id"],
                    person_id=line["person_id"],
                    kind="subsidy_expired",
                    title=i18n.message("notice.subsidy_expired.title"),
                    body=i18n.message(
                        "notice.subsidy_expired.body", name=batch["name"], amount=i18n.money(back)
                    ),
                    dedupe_key=f"subsidy_expired:{batch['id']}:{line['person_id']}",
                )
                total += back
            await tx.execute(
                "UPDATE subsidy_batches SET status = 'expired', expired_at = now(), "
                "clawed_back = $2 WHERE school_id = $3 AND id = $1",
                batch["id"],
                total,
                batch["school_id"],
            )
            await audit.record(
                tx,
                actor_system(),
                "subsidy_batch.expire",
                school_id=batch["school_id"],
                target_type="subsidy_batch",
                target_id=batch["id"],
                after={"clawed_back": fmt(total)},
            )
        done.append(b["id"])
    return done


def actor_system() -> Actor:
    from campuscard.platform.actors import SYSTEM

    return SYSTEM


# ---- spending order --------------------------------------------------------------------
async def do_set_purse_order(
    pool: PgPool, actor: Actor, school_id: int, *, order: str
) -> dict[str, Any]:
    actor.require("settlement", school_id=school_id)
    if order not in purse_order.PURSE_ORDERS:
        raise ValidationFailed(
            f"purse_order is one of {', '.join(purse_order.PURSE_ORDERS)}", field="purse_order"
        )
    async with transaction(pool) as tx:
        before = await tx.fetchval("SELECT settings FROM schools WHERE id = $1", school_id)
        await tx.execute(
            "UPDATE schools SET settings = settings || jsonb_build_object($2::text, $3::text) "
            "WHERE id = $1",
            school_id,
            purse_order.SETTINGS_KEY,
            order,
        )
        await audit.record(
            tx,
            actor,
            "school.purse_order",
            school_id=school_id,
            target_type="school",
            target_id=school_id,
            before={"purse_order": purse_order.policy_of(before)},
            after={"purse_order": order},
        )
    return {"purse_order": order}


async def get_purse_order(pool: PgPool, school_id: int) -> str:
    settings = await pool.fetchval("SELECT settings FROM schools WHERE id = $1", school_id)
    return purse_order.policy_of(settings)
