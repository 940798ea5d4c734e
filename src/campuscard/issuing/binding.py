"""Binding a newly made card to its student (seed 004 step 6): back up the student's record,
issue the card through services/cards.issue_card (which activates the account), record the card
number on the student's record, move the application to issued, and tell the teacher and the
parents. Used by the kiosk pickup and by the card center's production queue. Caller's tx."""

from __future__ import annotations

from typing import Any

from campuscard.cards import lifecycle
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx
from campuscard.platform import audit, i18n, notifications
from campuscard.platform.actors import Actor


async def _snapshot(conn: Conn, school_id: int, person_id: int) -> dict[str, Any]:
    person = await conn.fetchrow(
        """SELECT p.number, p.name, c.name AS class_name, p.account_status, p.status,
                  sr.ic_card_no, sr.import_file_id
             FROM persons p
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
             LEFT JOIN student_records sr ON sr.school_id = p.school_id AND sr.person_id = p.id
            WHERE p.school_id = $1 AND p.id = $2""",
        school_id,
        person_id,
    )
    held = await conn.fetch(
        "SELECT number, uid, state FROM cards WHERE school_id = $1 AND person_id = $2 ORDER BY id",
        school_id,
        person_id,
    )
    return {**dict(person or {}), "cards": [dict(c) for c in held]}


async def do_bind_card(
    tx: Tx,
    actor: Actor,
    *,
    school_id: int,
    person_id: int,
    card_number: str,
    card_uid: str,
    application_id: int,
    via: str,
) -> int:
    """Returns the new card's id."""
    before = await _snapshot(tx, school_id, person_id)
    await tx.execute(
        """INSERT INTO student_record_backups(school_id, person_id, reason, record)
           VALUES ($1, $2, $3, $4)""",
        school_id,
        person_id,
        f"card issued via {via}",
        before,
    )
    channel = "kiosk" if via.startswith("kiosk") else "counter"
    lost = await tx.fetchval(
        "SELECT id FROM cards WHERE school_id = $1 AND person_id = $2 AND state = 'lost' "
        "ORDER BY id DESC LIMIT 1",
        school_id,
        person_id,
    )
    if lost is not None:
        # 挂失和补卡申请 (seed 000): the application replaces the lost card, so the balance and
        # the deposit move to the new card and the lost one stays blacklisted; the card fee
        # was settled with the application
        card = await lifecycle.replace_card.in_tx(
            tx,
            actor,
            int(lost),
            number=card_number,
            uid=card_uid,
            reason=f"application #{application_id}",
            channel=channel,
            fee_settled=True,
        )
    else:
        card = await lifecycle.issue_card.in_tx(
            tx,
            actor,
            person_id=person_id,
            number=card_number,
            uid=card_uid,
            channel=channel,
            reason=f"application #{application_id}",
        )
    await tx.execute(
        """INSERT INTO student_records(person_id, school_id, ic_card_no) VALUES ($1, $2, $3)
           ON CONFLICT (school_id, person_id) DO UPDATE SET ic_card_no = EXCLUDED.ic_card_no,
                                                 updated_at = EXCLUDED.updated_at""",
        person_id,
        school_id,
        card["number"],
    )
    await tx.execute(
        """UPDATE card_applications SET status = 'issued', issued_at = now(), updated_at = now(),
                  card_id = $2, card_number = $3 WHERE school_id = $4 AND id = $1""",
        application_id,
        card["id"],
        card["number"],
        school_id,
    )
    await audit.record(
        tx,
        actor,
        "student_record.card_bound",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        before={"ic_card_no": before.get("ic_card_no")},
        after={"ic_card_no": card["number"], "application_id": application_id, "via": via},
    )
    await _tell_teacher_and_parents(tx, school_id, person_id, card["number"], before)
    return int(card["id"])


async def _tell_teacher_and_parents(
    conn: Conn, school_id: int, person_id: int, card_number: str, before: dict[str, Any]
) -> None:
    name, number = before.get("name", ""), before.get("number", "")
    masked = "*" * max(len(card_number) - 4, 0) + card_number[-4:]
    title = i18n.message("notice.card_bound.title")
    body = i18n.message("notice.card_bound.body", name=name, number=number, card=masked)
    data = {"person_id": person_id, "card_number": card_number}
    teachers = await conn.fetch(
        """SELECT DISTINCT u.id FROM student_records sr JOIN users u ON u.id = sr.imported_by
            WHERE sr.school_id = $2 AND sr.person_id = $1
           UNION
           SELECT DISTINCT f.imported_by FROM student_import_files f
             JOIN student_records sr ON sr.school_id = f.school_id AND sr.import_file_id = f.id
            WHERE f.school_id = $2 AND sr.person_id = $1 AND f.imported_by IS NOT NULL""",
        person_id,
        school_id,
    )
    for t in teachers:
        await notifications.notify(
            conn,
            school_id=school_id,
            kind="student_record.card_changed",
            title=title,
            body=body,
            user_id=t["id"],
            data=data,
            dedupe_key=f"card_changed:{card_number}:teacher:{t['id']}",
        )
    parents = await conn.fetch(
        "SELECT user_id FROM guardian_links WHERE school_id = $1 AND person_id = $2 "
        "ORDER BY user_id",
        school_id,
        person_id,
    )
    for p in parents:
        await notifications.notify(
            conn,
            school_id=school_id,
            kind="student_record.card_changed",
            title=title,
            body=body,
            user_id=p["user_id"],
            data=data,
            dedupe_key=f"card_changed:{card_number}:parent:{p['user_id']}",
        )
    phones = await conn.fetch(
        "SELECT DISTINCT phone FROM guardians WHERE school_id = $1 AND person_id = $2 "
        "ORDER BY phone",
        school_id,
        person_id,
    )
    # the student's own inbox, and an SMS to each guardian phone on record
    for i, g in enumerate(phones or [None]):
        await notifications.notify(
            conn,
            school_id=school_id,
            kind="student_record.card_changed",
            title=title,
            body=body,
            person_id=person_id,
            data=data,
            sms_phone=g["phone"] if g else None,
            dedupe_key=f"card_changed:{card_number}:person:{i}",
        )
