"""Notifications land with the change that caused them; SMS leaves through the outbox."""

from typing import Any

import pytest

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.platform import notifications, outbox
from campuscard.platform.tasks import OUTBOX_HANDLERS
from tests.support import make_school, make_student


@pytest.fixture
def sms_sent() -> Any:
    sent: list[dict[str, Any]] = []

    async def handler(pool: PgPool, settings: Settings, payload: dict[str, Any]) -> None:
        if payload.get("text") == "fail once" and not any(p["text"] == "fail once" for p in sent):
            sent.append(payload)
            raise ConnectionError("gateway down")
        sent.append(payload)

    saved = OUTBOX_HANDLERS.get("sms")
    OUTBOX_HANDLERS["sms"] = handler
    yield sent
    if saved is None:
        OUTBOX_HANDLERS.pop("sms", None)
    else:
        OUTBOX_HANDLERS["sms"] = saved


async def test_notification_is_stored_and_sms_delivered_once(
    pool: PgPool, settings: Settings, sms_sent: list[dict[str, Any]]
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person = await make_student(conn, school.id, "S1")
        for _ in range(2):  # the same dedupe key twice: one notification
            async with conn.transaction():
                await notifications.notify(
                    conn,
                    school_id=school.id,
                    person_id=person,
                    kind="low_balance",
                    title={"zh-CN": "余额不足", "en": "Low balance"},
                    body={"zh-CN": "您的余额低于10元", "en": "Your balance is below 10.00"},
                    sms_phone="13800000000",
                    dedupe_key="low:1",
                )
        inbox = await notifications.list_for_person(conn, person)
    assert [n["kind"] for n in inbox] == ["low_balance"]
    assert await outbox.deliver_batch(pool, settings) == 1
    assert await outbox.deliver_batch(pool, settings) == 0
    assert sms_sent == [{"phone": "13800000000", "text": "您的余额低于10元", "outbox_id": 1}]


async def test_rolled_back_change_sends_nothing(
    pool: PgPool, settings: Settings, sms_sent: list[dict[str, Any]]
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person = await make_student(conn, school.id, "S1")
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await notifications.notify(
                    conn,
                    school_id=school.id,
                    person_id=person,
                    kind="x",
                    title={"en": "t"},
                    body={"en": "b"},
                    sms_phone="13800000000",
                )
                raise RuntimeError("the change failed")
        assert await notifications.list_for_person(conn, person) == []
    assert await outbox.deliver_batch(pool, settings) == 0
    assert sms_sent == []


async def test_failed_delivery_is_retried_later(
    pool: PgPool, settings: Settings, sms_sent: list[dict[str, Any]]
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person = await make_student(conn, school.id, "S1")
        await notifications.notify(
            conn,
            school_id=school.id,
            person_id=person,
            kind="x",
            title={"en": "t"},
            body={"zh-CN": "fail once"},
            sms_phone="13800000000",
        )
    assert await outbox.deliver_batch(pool, settings) == 0
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT attempts, last_error FROM outbox")
        assert row["attempts"] == 1 and "gateway down" in row["last_error"]
        await conn.execute(
            "UPDATE procrastinate_jobs SET scheduled_at = now()"
        )  # skip the back-off
    assert await outbox.deliver_batch(pool, settings) == 1
    assert len(sms_sent) == 2
