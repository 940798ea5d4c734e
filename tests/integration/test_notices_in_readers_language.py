"""A notice is stored as a catalog key with parameters and worded in its reader's language:
the SMS in the language the recipient chose with the switch, the inbox in the page's."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx

from campuscard.monitoring import school_rules, signals
from campuscard.platform import i18n, notifications
from campuscard.platform.actors import Actor, Grant
from tests.support import make_school, make_student, make_user
from tests.support_web import web_login


async def _card_lost(
    conn: asyncpg.Connection[Any], school_id: int, person: int, phone: str
) -> None:
    what = i18n.message("notice.card.report_loss")
    async with conn.transaction():
        await notifications.notify(
            conn,
            school_id=school_id,
            person_id=person,
            kind="card.report_loss",
            title=what,
            body=i18n.message("notice.card.body", tail="0042", what=what),
            sms_phone=phone,
        )


async def test_a_zh_reader_and_an_en_reader_each_get_their_language(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    # given a reader who kept Chinese and one who switched the pages to English
    school = await make_school(conn)
    zh_person = await make_student(conn, school.id, "S001", name="李雷")
    en_person = await make_student(conn, school.id, "S002", name="韩梅梅")
    await make_user(conn, "S001", "cardholder", school.id, person_id=zh_person)
    await make_user(conn, "S002", "cardholder", school.id, person_id=en_person)
    await web_login(client, "S002", school.code)
    assert (await client.get("/lang/en?next=/m/")).status_code == 303
    # and one notice stored before messages were keys (a text per language)
    await conn.execute(
        """INSERT INTO notifications(school_id, person_id, kind, title, body)
           VALUES ($1, $2, 'old', $3, $4)""",
        school.id,
        zh_person,
        {"zh-CN": "旧的通知", "en": "An old notice"},
        {"zh-CN": "早先存下的中文", "en": "Stored earlier"},
    )

    # when the same notice is made for each
    await _card_lost(conn, school.id, zh_person, "13900000001")
    await _card_lost(conn, school.id, en_person, "13900000002")

    # then it is stored as key + parameters, in no language
    stored = await conn.fetch("SELECT body FROM notifications WHERE kind = 'card.report_loss'")
    assert all(r["body"]["key"] == "notice.card.body" for r in stored)
    # the SMS is worded in each recipient's language
    sms = {
        r["p"]["phone"]: r["p"]["text"]
        for r in await conn.fetch("SELECT payload AS p FROM outbox WHERE topic = 'sms'")
    }
    assert sms["13900000001"] == "尾号0042的校园卡：校园卡已挂失。如非本人操作请立即联系卡务中心。"
    assert sms["13900000002"] == (
        "Card ending 0042: Card reported lost. If this was not you, call the card center now."
    )
    # and the inbox in the page's language
    en_inbox = (await client.get("/m/notifications")).text
    assert "Card ending 0042: Card reported lost." in en_inbox and "挂失" not in en_inbox
    await web_login(client, "S001", school.code)
    client.cookies.set("cc_lang", "zh-CN")
    zh_inbox = (await client.get("/m/notifications")).text
    assert "尾号0042的校园卡：校园卡已挂失。" in zh_inbox and "Card ending" not in zh_inbox
    assert "旧的通知" in zh_inbox and "早先存下的中文" in zh_inbox  # the old row still reads


async def test_a_monitoring_alert_reaches_each_student_in_their_language(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    # given a school watching arrears, quiet hours off, a student who kept Chinese and one who
    # switched the pages to English, both with a phone
    school = await make_school(conn)
    admin = Actor(
        "admin", school_id=school.id, grants=frozenset({Grant("school_admin", school.id)})
    )
    await school_rules.do_set_rule(conn, admin, school.id, "arrears", enabled=True, thresholds={})
    await school_rules.do_set_rule(
        conn,
        admin,
        school.id,
        "delivery",
        enabled=True,
        thresholds={"quiet_start": "00:00", "quiet_end": "00:00"},
    )
    zh_person = await make_student(conn, school.id, "S001", name="李雷")
    en_person = await make_student(conn, school.id, "S002", name="韩梅梅")
    for person, phone, number in (
        (zh_person, "13800000001", "S001"),
        (en_person, "13800000002", "S002"),
    ):
        await conn.execute("UPDATE persons SET phone = $2 WHERE id = $1", person, phone)
        await make_user(conn, number, "cardholder", school.id, person_id=person)
    await web_login(client, "S002", school.code)
    assert (await client.get("/lang/en?next=/m/")).status_code == 303

    # when the bills office reports 52.00 of tuition overdue for each
    due = date.today() - timedelta(days=20)
    for person in (zh_person, en_person):
        async with conn.transaction():
            await signals.arrears(conn, school.id, person, 5200, due, "学费")

    # then each SMS is in its student's language, signed in it
    sms = {
        r["p"]["phone"]: r["p"]["text"]
        for r in await conn.fetch("SELECT payload AS p FROM outbox WHERE topic = 'sms'")
    }
    assert sms["13800000001"].startswith("【校园卡】学费欠费 ¥52.00，最早一笔已逾期 ")
    assert sms["13800000002"].startswith("[Campus card] CN¥52.00 overdue (学费); the oldest")
    # and the phone's inbox words the title and the reason in the page's language
    en_inbox = (await client.get("/m/notifications")).text
    assert "Campus card alert: Arrears" in en_inbox and "CN¥52.00 overdue" in en_inbox
    assert "欠费" not in en_inbox
    await web_login(client, "S001", school.code)
    client.cookies.set("cc_lang", "zh-CN")
    zh_inbox = (await client.get("/m/notifications")).text
    assert "校园卡提醒：欠费未缴" in zh_inbox and "学费欠费 ¥52.00" in zh_inbox
    assert "overdue" not in zh_inbox
