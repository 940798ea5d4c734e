"""The demo campus has what self-service issuing needs, and loading it twice changes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg

from campuscard import demo
from campuscard.config import Settings
from campuscard.issuing import applications as apps
from campuscard.platform import auth


async def test_demo_parent_can_apply_for_a_new_student_and_get_a_code(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    await demo.load_demo(conn)
    await demo.load_demo(conn)  # idempotent
    assert await conn.fetchval("SELECT count(*) FROM student_import_files") == 1
    assert (
        await conn.fetchval("SELECT count(*) FROM persons WHERE number LIKE '2026900%'")
        == demo.NEW_STUDENTS
    )
    user_id = await conn.fetchval(
        "SELECT id FROM users WHERE username = $1", demo.NEW_STUDENT_PARENT_PHONE
    )
    parent = await auth.load_actor(conn, user_id)
    student = await conn.fetchrow(
        "SELECT name, number FROM persons WHERE number = $1", demo.new_student_number(1)
    )
    outcome, code = await apps.do_apply(
        conn,
        settings,
        parent,
        apps.ApplicationInput(
            province="32",
            school=demo.SCHOOL_CODE,
            class_name=demo.NEW_STUDENT_CLASS,
            name=student["name"],
            number=student["number"],
        ),
        client_id="demo-apply-0001",
    )
    # the demo school charges its card fee: the application waits for it, then gives the code
    assert outcome.status == 201 and code is None
    assert (outcome.body["status"], outcome.body["fee"], outcome.body["fee_status"]) == (
        "awaiting_payment",
        demo.CARD_FEE,
        "due",
    )
    async with conn.transaction():
        paid = await apps.do_mark_fee_paid(
            conn, settings, outcome.body["id"], fee_ref="demo-fee-1", paid_fen=2000
        )
    assert (paid["status"], paid["fee_status"]) == ("ready", "paid")
    assert await conn.fetchval("SELECT count(*) FROM pickup_codes") == 1
    kiosk_hashes = await conn.fetchval("SELECT count(*) FROM pickup_kiosk_hashes")
    assert kiosk_hashes == await conn.fetchval(
        "SELECT count(*) FROM terminals WHERE kind = 'kiosk'"
    )
