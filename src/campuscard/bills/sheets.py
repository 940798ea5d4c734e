"""Importing a bill sheet (学号, 收费项目, 金额) for a term: the student import's handshake
(decision 0041). The frame's checksum is checked before anything is read; every row is checked
against the school's students and the term's items; then all rows are applied or none, and the
server echoes the canonical lines it stored for the uploader to compare.

A row bills the student for the item at the sheet's amount (it overrides the item's rates). A
line already on the bill with the same amount is left alone (so a file sent again changes
nothing); a different amount is refused: a billed line changes only by an adjustment with four
eyes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from campuscard.bills import books, rules, sheet_rules
from campuscard.db.tx import Tx, owns_transaction
from campuscard.issuing import import_rules
from campuscard.issuing.import_rules import RowError
from campuscard.ledger.money import fmt
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import ValidationFailed

SHEET_LOCK = 740_560  # advisory lock class: one bill sheet per school at a time


@dataclass(frozen=True)
class SheetResult:
    import_id: int
    term: str
    sha256: str
    rows: int
    added: int
    unchanged: int
    amount: str
    canonical: list[str]
    canonical_sha256: str
    replayed: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _refuse(errors: list[RowError]) -> ValidationFailed:
    return import_rules.refuse_rows(errors, what="the sheet", outcome="imported")


@owns_transaction
async def do_import_sheet(
    tx: Tx, actor: Actor, school_id: int, *, term: str, frame: bytes, filename: str
) -> SheetResult:
    actor.require("settlement", school_id=school_id)
    rules.check_term(term)
    filename = (filename or "bills.xlsx").strip()[:200] or "bills.xlsx"
    payload, digest = import_rules.open_frame(frame)
    rows, errors = await asyncio.to_thread(sheet_rules.parse_sheet, payload)  # CPU: off the loop
    await tx.execute("SELECT pg_advisory_xact_lock($1, $2)", SHEET_LOCK, school_id)
    people = {
        r["number"]: r
        for r in await tx.fetch(
            "SELECT id, number, name, kind, status FROM persons "
            "WHERE school_id = $1 AND number = ANY($2::text[])",
            school_id,
            list({r.number for r in rows}),
        )
    }
    items = {
        r["name"]: r
        for r in await tx.fetch(
            "SELECT id, name, kind, due_date FROM fee_items WHERE school_id = $1 AND term = $2",
            school_id,
            term,
        )
    }
    existing = {
        (r["person_id"], r["item_id"]): r["amount"]
        for r in await tx.fetch(
            """SELECT b.person_id, l.item_id, l.amount FROM bill_lines l
                 JOIN bills b ON b.school_id = l.school_id AND b.id = l.bill_id
                WHERE l.school_id = $1 AND b.term = $2 AND l.item_id IS NOT NULL""",
            school_id,
            term,
        )
    }
    todo: list[tuple[sheet_rules.SheetRow, Any, Any]] = []
    unchanged = 0
    for row in rows:
        person = people.get(row.number)
        item = items.get(row.item)
        if person is None or person["kind"] != "student":
            errors.append(
                RowError(
                    row.row,
                    "number",
                    f"no student {row.number} in this school",
                    "NO_STUDENT",
                    {"number": row.number},
                )
            )
        elif person["status"] != "enrolled":
            errors.append(
                RowError(
                    row.row,
                    "number",
                    f"student {row.number} has left",
                    "STUDENT_LEFT",
                    {"number": row.number},
                )
            )
        elif row.name and row.name != person["name"]:
            errors.append(
                RowError(
                    row.row,
                    "name",
                    f"student {row.number} is {person['name']}, not {row.name}",
                    "NAME_MISMATCH",
                    {"number": row.number, "name": person["name"], "given": row.name},
                )
            )
        if item is None:
            errors.append(
                RowError(
                    row.row,
                    "item",
                    f"term {term} has no item {row.item!r}",
                    "NO_ITEM",
                    {"term": term, "item": row.item},
                )
            )
        if person is None or item is None:
            continue
        before = existing.get((person["id"], item["id"]))
        if before is None:
            todo.append((row, person, item))
        elif before == row.amount:
            unchanged += 1
        else:
            errors.append(
                RowError(
                    row.row,
                    "amount",
                    f"{row.number}'s {row.item} is already billed at {fmt(before)}; "
                    "change it by an adjustment",
                    "ALREADY_BILLED",
                    {"number": row.number, "item": row.item, "amount": fmt(before)},
                )
            )
    if errors:
        raise _refuse(errors)
    canonical = [r.canonical() for r in rows]
    canonical_sha = sheet_rules.canonical_sha256(canonical)
    earlier = await tx.fetchrow(
        "SELECT id FROM bill_sheet_imports WHERE school_id = $1 AND term = $2 AND sha256 = $3",
        school_id,
        term,
        digest,
    )
    touched: set[int] = set()
    for row, person, item in todo:
        if row.amount == 0:
            continue
        bill_id = await tx.fetchval(
            """INSERT INTO bills(school_id, person_id, term, due_date) VALUES ($1, $2, $3, $4)
               ON CONFLICT (school_id, person_id, term)
               DO UPDATE SET due_date = least(bills.due_date, EXCLUDED.due_date)
               RETURNING id""",
            school_id,
            person["id"],
            term,
            item["due_date"],
        )
        await tx.execute(
            """INSERT INTO bill_lines(school_id, bill_id, item_id, kind, name, original, amount,
                                      due_date)
               VALUES ($1, $2, $3, $4, $5, $6, $6, $7)""",
            school_id,
            bill_id,
            item["id"],
            item["kind"],
            item["name"],
            row.amount,
            item["due_date"],
        )
        touched.add(bill_id)
    for bill_id in sorted(touched):
        await books.refresh_bill(tx, school_id, bill_id)
    added = sum(1 for r, _, _ in todo if r.amount > 0)
    amount = sum(r.amount for r, _, _ in todo)
    if earlier is not None:
        import_id = int(earlier["id"])
    else:
        import_id = await tx.fetchval(
            """INSERT INTO bill_sheet_imports(school_id, term, sha256, filename, content, rows,
                   added, unchanged, canonical_sha256, imported_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id""",
            school_id,
            term,
            digest,
            filename,
            payload,
            len(rows),
            added,
            unchanged,
            canonical_sha,
            actor.name,
        )
    result = SheetResult(
        import_id=import_id,
        term=term,
        sha256=digest,
        rows=len(rows),
        added=added,
        unchanged=unchanged,
        amount=fmt(amount),
        canonical=canonical,
        canonical_sha256=canonical_sha,
        replayed=earlier is not None,
    )
    await audit.record(
        tx,
        actor,
        "bills.sheet.import",
        school_id=school_id,
        target_type="bill_sheet",
        target_id=import_id,
        after={k: v for k, v in result.as_dict().items() if k != "canonical"}
        | {"filename": filename},
    )
    return result


def echo_matches(sent: list[sheet_rules.SheetRow], echoed: list[str]) -> bool:
    """The uploader's check: the server stored exactly the rows that were sent."""
    return [r.canonical() for r in sent] == list(echoed)
