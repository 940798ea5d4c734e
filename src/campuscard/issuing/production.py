"""The card center's production queue (seed 000): approved applications that are not
self-service are printed (export: name, photo slot, number, class), marked produced, and
handed out (the card is bound like a kiosk pickup, issuing/binding.py)."""

from __future__ import annotations

import csv
import io
from typing import Any

from campuscard.db import distribution
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.documents.exports import safe_row, workbook_bytes
from campuscard.issuing import application_rules as rules
from campuscard.issuing import binding
from campuscard.issuing.applications import tell_applicant
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, NotFound, ValidationFailed

EXPORT_HEADER_ZH = ("申请号", "学生姓名", "照片", "学生学号", "学生班级")
EXPORT_HEADER_EN = ("Application", "Name", "Photo", "Student number", "Class")


async def production_queue(
    conn: Conn, actor: Actor, school_id: int, *, status: str = "in_production"
) -> list[dict[str, Any]]:
    actor.require("card_center", school_id=school_id)
    if status not in ("in_production", "produced"):
        raise ValidationFailed("status must be in_production or produced", field="status")
    rows = await conn.fetch(
        """SELECT a.id, p.id AS person_id, p.name, p.number, c.name AS class_name, a.status,
                  a.created_at, a.produced_at
             FROM card_applications a
             JOIN persons p ON p.school_id = a.school_id AND p.id = a.person_id
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
            WHERE a.school_id = $1 AND a.status = $2 AND a.delivery = 'counter'
            ORDER BY c.name NULLS LAST, p.number""",
        school_id,
        status,
    )
    return [dict(r) for r in rows]


def _photo_slot(number: str) -> str:
    """The file name the print shop matches a photo by (photos are not stored here)."""
    return f"{number}.jpg"


async def export_print_data(
    conn: Conn, actor: Actor, school_id: int, *, fmt: str
) -> tuple[bytes, str, str]:
    """(content, media type, file name) of the print data for the queue."""
    queue = await production_queue(conn, actor, school_id)
    records = [
        (r["id"], r["name"], _photo_slot(r["number"]), r["number"], r["class_name"] or "")
        for r in queue
    ]
    header = [f"{zh} {en}" for zh, en in zip(EXPORT_HEADER_ZH, EXPORT_HEADER_EN, strict=True)]
    await audit.record(
        conn,
        actor,
        "card_production.export",
        school_id=school_id,
        target_type="school",
        target_id=school_id,
        after={"rows": len(records), "format": fmt},
    )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(safe_row(header))
        writer.writerows(safe_row(record) for record in records)
        return out.getvalue().encode("utf-8-sig"), "text/csv; charset=utf-8", "print-data.csv"
    if fmt == "xlsx":
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.title = "print"
        sheet.append(header)
        for record in records:
            sheet.append(list(record))
        for column, width in zip("ABCDE", (10, 16, 18, 18, 18), strict=True):
            sheet.column_dimensions[column].width = width
        return (
            workbook_bytes(book),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "print-data.xlsx",
        )
    raise ValidationFailed("format must be csv or xlsx", field="format")


@owns_transaction
async def do_mark_produced(
    tx: Tx, actor: Actor, school_id: int, application_ids: list[int]
) -> list[int]:
    """Mark printed cards produced; all listed applications or none."""
    actor.require("card_center", school_id=school_id)
    if not application_ids:
        raise ValidationFailed("list at least one application", field="application_ids")
    rows = await tx.fetch(
        """SELECT id, status, delivery FROM card_applications
            WHERE id = ANY($1::bigint[]) AND school_id = $2 ORDER BY id FOR UPDATE""",
        application_ids,
        school_id,
    )
    found = {r["id"]: r for r in rows}
    for app_id in application_ids:
        row = found.get(app_id)
        if row is None:
            raise NotFound(f"application {app_id} not found", field="application_ids")
        if row["delivery"] != "counter":
            raise Conflict(
                f"application {app_id} is a self-service pickup", field="application_ids"
            )
        rules.check_transition(row["status"], "produced")
    await tx.execute(
        """UPDATE card_applications SET status = 'produced', produced_at = now(),
                  updated_at = now() WHERE id = ANY($1::bigint[])""",
        application_ids,
    )
    for app_id in application_ids:
        await tell_applicant(tx, app_id, "produced")
    await audit.record(
        tx,
        actor,
        "card_production.produced",
        school_id=school_id,
        target_type="card_application",
        target_id=",".join(map(str, application_ids)),
        after={"count": len(application_ids)},
    )
    return sorted(application_ids)


@owns_transaction
async def do_hand_out(
    tx: Tx,
    actor: Actor,
    app_id: int,
    *,
    card_number: str,
    card_uid: str,
) -> dict[str, Any]:
    """The student collects the produced card at the counter: bind it and close the
    application."""
    app = await distribution.lock_row(tx, "card_applications", app_id)
    if app is None:
        raise NotFound("application not found", field="application_id")
    actor.require("card_center", school_id=app["school_id"])
    rules.check_transition(app["status"], "issued")
    if app["delivery"] != "counter":
        raise Conflict("self-service applications are issued by a kiosk", field="application_id")
    card_id = await binding.do_bind_card(
        tx,
        actor,
        school_id=app["school_id"],
        person_id=app["person_id"],
        card_number=card_number,
        card_uid=card_uid,
        application_id=app_id,
        via=f"card center ({actor.name})",
    )
    return {
        "application_id": app_id,
        "status": "issued",
        "card_id": card_id,
        "card_number": card_number,
    }
