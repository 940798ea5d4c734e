"""Applying for a card: verification in seed 004's order, automatic approval or the queue,
the fee, and the pickup code (sent sealed by SMS, stored only as a keyed hash)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest

from campuscard.cards import lifecycle
from campuscard.config import Settings
from campuscard.issuing import applications as apps
from campuscard.issuing.pickup_code import code_hash, platform_key
from campuscard.platform.errors import Conflict, ValidationFailed
from campuscard.platform.jobs import message_text
from tests.support import PASSWORD, fund, login
from tests.support_issuing import (
    Campus,
    apply_at_counter,
    card_center,
    make_campus,
    make_counter_campus,
    make_parent,
)

_ids = iter(range(10**6))


def application(campus: Campus, **changes: str) -> apps.ApplicationInput:
    data = {
        "province": "32",
        "school": campus.code,
        "class_name": "一年级2班",  # student 1 is in class index 1 % 2
        "name": "学生1",
        "number": "2026000001",
    } | changes
    return apps.ApplicationInput(**data)  # type: ignore[arg-type]


async def apply(
    conn: Any, settings: Settings, actor: Any, data: apps.ApplicationInput
) -> tuple[dict[str, Any], str | None]:
    outcome, code = await apps.do_apply(
        conn, settings, actor, data, client_id=f"apply-{next(_ids):06d}"
    )
    if outcome.status >= 400:
        raise AssertionError(outcome.body)
    return outcome.body, code


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"province": "33"}, "province"),  # a province that exists, but not the school's
        ({"school": "NOPE"}, "school"),
        ({"class_name": "一年级1班"}, "class"),  # a class of the school, not the student's
        ({"name": "学生9"}, "name"),
        ({"number": "2026000003"}, "number"),  # another student's number
    ],
)
async def test_each_mismatch_names_its_field(
    conn: asyncpg.Connection[Any], settings: Settings, changes: dict[str, str], field: str
) -> None:
    campus = await make_campus(conn)
    await conn.execute(
        "INSERT INTO provinces(code, name, name_en) VALUES ('33', '浙江省', 'Zhejiang') "
        "ON CONFLICT DO NOTHING"
    )
    parent = await make_parent(conn, campus, "parent1", "13900000001", guardian_of="2026000001")
    with pytest.raises(ValidationFailed) as err:
        await apply(conn, settings, parent, application(campus, **changes))
    assert err.value.code == "VERIFICATION_FAILED"
    assert err.value.field == field
    assert await conn.fetchval("SELECT count(*) FROM card_applications") == 0


async def test_earlier_fields_are_named_first(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    parent = await make_parent(conn, campus, "parent1", "13900000001")
    with pytest.raises(ValidationFailed) as err:  # class, name and number all wrong
        await apply(
            conn, settings, parent, application(campus, class_name="九班", name="某", number="1")
        )
    assert err.value.field == "class"


async def test_verified_guardian_is_approved_and_gets_a_pickup_code_by_sms(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a parent whose phone the school has on record
    campus = await make_campus(conn)
    parent = await make_parent(conn, campus, "parent1", "13900000001", guardian_of="2026000001")
    # when
    app, code = await apply(conn, settings, parent, application(campus))
    # then
    assert app["status"] == "ready" and app["fee_status"] == "waived"
    assert code is not None and len(code) == 16
    key = platform_key(settings.master_key.get_secret_value().encode())
    stored = await conn.fetchval(
        "SELECT code_hash FROM pickup_codes WHERE school_id = $1", campus.school_id
    )
    assert stored == code_hash(key, campus.school_id, code)
    # the code is nowhere in the database in clear
    dump = await conn.fetchval(
        "SELECT concat((SELECT string_agg(payload::text, '') FROM outbox),"
        " (SELECT string_agg(body::text, '') FROM notifications),"
        " (SELECT string_agg(response::text, '') FROM idempotency_keys),"
        " (SELECT string_agg(after::text, '') FROM audit_log))"
    )
    assert code not in dump and code[:4] + " " + code[4:8] not in dump
    # the SMS to the parent's phone carries it, once opened by the worker
    sms = await conn.fetchrow(
        "SELECT payload FROM outbox WHERE school_id = $1 AND topic = 'sms'", campus.school_id
    )
    assert sms["payload"]["phone"] == "13900000001"
    assert code[8:12] in message_text(settings, dict(sms["payload"]))
    # and the parent is now linked to the child
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM guardian_links WHERE user_id = $1", parent.user_id
        )
        == 1
    )


async def test_unknown_parent_and_the_student_wait_in_the_queue(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    stranger = await make_parent(conn, campus, "stranger", "13900000009")
    app, code = await apply(conn, settings, stranger, application(campus))
    assert app["status"] == "pending_approval" and code is None
    assert "guardian" in app["review_reason"]
    queue = await apps.list_applications(conn, card_center(campus), campus.school_id)
    assert [a["id"] for a in queue] == [app["id"]]
    # a second application for the same student is refused while this one is open
    outcome, _ = await apps.do_apply(
        conn, settings, stranger, application(campus), client_id="apply-again-1"
    )
    assert outcome.status == 409 and outcome.body["error"]["code"] == "APPLICATION_OPEN"


async def test_approving_from_the_queue_issues_the_code(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    stranger = await make_parent(conn, campus, "stranger", "13900000009")
    app, _ = await apply(conn, settings, stranger, application(campus))
    decided = await apps.do_decide(conn, settings, card_center(campus), app["id"], approve=True)
    assert decided["status"] == "ready"
    assert await conn.fetchval("SELECT count(*) FROM pickup_codes WHERE state = 'ready'") == 1
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE topic = 'sms'") == 1


async def test_rejecting_tells_the_applicant(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    stranger = await make_parent(conn, campus, "stranger", "13900000009")
    app, _ = await apply(conn, settings, stranger, application(campus))
    decided = await apps.do_decide(
        conn, settings, card_center(campus), app["id"], approve=False, note="not a parent"
    )
    assert decided["status"] == "rejected"
    kinds = await conn.fetch(
        "SELECT kind FROM notifications WHERE user_id = $1 ORDER BY id", stranger.user_id
    )
    assert [k["kind"] for k in kinds] == [
        "card_application.pending_approval",
        "card_application.rejected",
    ]


async def test_a_card_fee_waits_for_payment_then_issues_the_code(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    await conn.execute(
        """UPDATE schools SET settings = '{"issuing": {"card_fee": "20.00"}}' WHERE id = $1""",
        campus.school_id,
    )
    parent = await make_parent(conn, campus, "parent1", "13900000001", guardian_of="2026000001")
    app, code = await apply(conn, settings, parent, application(campus))
    assert (app["status"], app["fee"], app["fee_status"], code) == (
        "awaiting_payment",
        "20.00",
        "due",
        None,
    )
    with pytest.raises(Conflict):
        await apps.do_mark_fee_paid(conn, settings, app["id"], fee_ref="order-1", paid_fen=1000)
    async with conn.transaction():
        paid = await apps.do_mark_fee_paid(
            conn, settings, app["id"], fee_ref="order-1", paid_fen=2000
        )
    assert (paid["status"], paid["fee_status"]) == ("ready", "paid")
    codes = "SELECT count(*) FROM pickup_codes WHERE school_id = $1"
    assert await conn.fetchval(codes, campus.school_id) == 1


async def test_a_waived_category_pays_nothing(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    await conn.execute(
        """UPDATE schools SET settings = '{"issuing": {"card_fee": "20.00",
           "fee_waived_categories": ["hardship"]}}' WHERE id = $1""",
        campus.school_id,
    )
    await conn.execute("UPDATE persons SET category = 'hardship' WHERE number = '2026000001'")
    parent = await make_parent(conn, campus, "parent1", "13900000001", guardian_of="2026000001")
    app, code = await apply(conn, settings, parent, application(campus))
    assert (app["status"], app["fee_status"]) == ("ready", "waived") and code


async def test_counter_applications_go_to_the_production_queue_and_export(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        campus = await make_counter_campus(conn)
    r = await apply_at_counter(client, campus, "apply-counter-1")
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "in_production" and "pickup_code" not in r.json()
    staff = await login(client, "teacher-iss", campus.code)
    queue = (
        await client.get(f"/api/v1/admin/schools/{campus.code}/card-production", headers=staff)
    ).json()
    assert [q["number"] for q in queue] == ["2026000001"]
    csv = await client.get(
        f"/api/v1/admin/schools/{campus.code}/card-production/export?format=csv", headers=staff
    )
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("申请号 Application,学生姓名 Name,照片 Photo")
    assert lines[1].split(",")[1:] == ["学生1", "2026000001.jpg", "2026000001", "一年级2班"]
    xlsx = await client.get(
        f"/api/v1/admin/schools/{campus.code}/card-production/export?format=xlsx", headers=staff
    )
    assert xlsx.content.startswith(b"PK")
    done = await client.post(
        f"/api/v1/admin/schools/{campus.code}/card-production/produced",
        headers=staff,
        json={"application_ids": [queue[0]["id"]]},
    )
    assert done.json() == {"produced": [queue[0]["id"]]}
    again = await client.post(
        f"/api/v1/admin/schools/{campus.code}/card-production/produced",
        headers=staff,
        json={"application_ids": [queue[0]["id"]]},
    )
    assert again.status_code == 409
    # the student collects it at the counter: the card is bound and the application closed
    handed = await client.post(
        f"/api/v1/admin/card-applications/{queue[0]['id']}/hand-out",
        headers=staff,
        json={"card_number": "55000001", "card_uid": "0A0B0C0D"},
    )
    assert handed.status_code == 200, handed.text
    async with pool.acquire() as conn:
        card = await conn.fetchrow(
            "SELECT number, state FROM cards WHERE school_id = $1", campus.school_id
        )
        app_row = await conn.fetchrow(
            "SELECT status, card_number FROM card_applications WHERE school_id = $1",
            campus.school_id,
        )
    assert (card["number"], card["state"]) == ("55000001", "active")
    assert (app_row["status"], app_row["card_number"]) == ("issued", "55000001")


async def test_api_apply_replays_without_repeating_the_code(
    client: httpx.AsyncClient, pool: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
        await make_parent(conn, campus, "parent1", "13900000001", guardian_of="2026000001")
    parent = await login(client, "parent1", None)
    body = {
        "client_id": "apply-kiosk-1",
        "province": "32",
        "school": campus.code,
        "class_name": "一年级2班",
        "name": "学生1",
        "number": "2026000001",
    }
    first = await client.post("/api/v1/card-applications", headers=parent, json=body)
    again = await client.post("/api/v1/card-applications", headers=parent, json=body)
    assert first.status_code == again.status_code == 201
    assert len(first.json()["pickup_code"]) == 16
    assert "pickup_code" not in again.json()
    assert {
        k: v for k, v in first.json().items() if not k.startswith("pickup_code")
    } == again.json()
    mismatch = await client.post(
        "/api/v1/card-applications",
        headers=parent,
        json=body | {"client_id": "apply-kiosk-2", "name": "学生2"},
    )
    assert mismatch.status_code == 422
    assert mismatch.json()["error"]["field"] == "name"
    # the lists a parent picks from
    provinces = (
        await client.get("/api/v1/card-applications/options/provinces", headers=parent)
    ).json()
    assert [p["code"] for p in provinces] == ["32"]
    schools = (
        await client.get("/api/v1/card-applications/options/schools?province=32", headers=parent)
    ).json()
    assert [s["code"] for s in schools] == [campus.code]
    classes = (
        await client.get(
            f"/api/v1/card-applications/options/classes?school={campus.code}", headers=parent
        )
    ).json()
    assert [c["name"] for c in classes] == ["一年级1班", "一年级2班"]
    # a new code on request; the old one stops working
    app_id = first.json()["id"]
    fresh = await client.post(f"/api/v1/card-applications/{app_id}/pickup-code", headers=parent)
    assert fresh.status_code == 200 and fresh.json()["pickup_code"] != first.json()["pickup_code"]
    async with pool.acquire() as conn:
        states = await conn.fetch("SELECT state FROM pickup_codes ORDER BY id")
    assert [s["state"] for s in states] == ["revoked", "ready"]
    _ = json, PASSWORD


async def test_card_fee_paid_through_the_provider_books_fee_income_and_issues_the_code(
    pool: Any, client: httpx.AsyncClient, settings: Settings
) -> None:
    from campuscard.platform import outbox
    from campuscard.platform.tasks import load_job_modules
    from tests.support_moneyflows import provider_world, system_balance, wait_for

    load_job_modules()
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
        await conn.execute(
            """UPDATE schools SET settings = '{"issuing": {"card_fee": "15.00"}}' WHERE id = $1""",
            campus.school_id,
        )
        await make_parent(conn, campus, "parent1", "13900000001", guardian_of="2026000001")
    with provider_world(settings) as (wired, _sim, app_url):
        async with httpx.AsyncClient(base_url=app_url) as api:
            headers = await login(api, "parent1", None)
            app = await api.post(
                "/api/v1/card-applications",
                headers=headers,
                json={
                    "client_id": "apply-fee-0001",
                    "province": "32",
                    "school": campus.code,
                    "class_name": "一年级2班",
                    "name": "学生1",
                    "number": "2026000001",
                },
            )
            assert app.json()["status"] == "awaiting_payment"
            order = await api.post(
                f"/api/v1/card-applications/{app.json()['id']}/fee-payment",
                headers=headers,
                json={"client_id": "fee-order-0001"},
            )
            assert order.status_code == 201, order.text
            assert order.json()["amount"] == "15.00"
            paid = await api.post(order.json()["pay_url"], data={"action": "pay"})
            assert paid.status_code == 200

            async def is_ready() -> bool:
                status = await pool.fetchval("SELECT status FROM card_applications")
                return bool(status == "ready")

            assert await wait_for(is_ready)

        # the worker issues the code (it holds the master key)
        async def delivered() -> bool:
            await outbox.deliver_batch(pool, wired)
            return bool(await pool.fetchval("SELECT count(*) FROM pickup_codes") == 1)

        assert await wait_for(delivered)
    assert await system_balance(pool, campus.school_id, "fee_income") == 1500
    row = await pool.fetchrow("SELECT fee_status, fee_ref FROM card_applications")
    assert row["fee_status"] == "paid" and row["fee_ref"].startswith("CC")


async def test_typing_the_guardians_phone_does_not_make_a_stranger_trusted(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    campus = await make_campus(conn)
    await make_parent(conn, campus, "realparent", "13900000001", guardian_of="2026000001")
    stranger = await make_parent(conn, campus, "stranger", "13900000009")
    outcome, code = await apps.do_apply(
        conn,
        settings,
        stranger,
        application(campus, phone="13900000001"),
        client_id="apply-stranger-1",
    )
    assert outcome.body["status"] == "pending_approval" and code is None


async def test_a_students_own_application_waits_for_approval(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    from campuscard.platform import auth

    campus = await make_campus(conn)
    person_id = await conn.fetchval("SELECT id FROM persons WHERE number = '2026000001'")
    user_id = await auth.create_user(
        conn,
        username="2026000001",
        password=PASSWORD,
        school_id=campus.school_id,
        roles=[("cardholder", campus.school_id, None)],
        person_id=person_id,
    )
    student = await auth.load_actor(conn, user_id)
    app, code = await apply(conn, settings, student, application(campus))
    assert (app["status"], code) == ("pending_approval", None)
    assert "student" in app["review_reason"]


async def test_repeated_mismatches_are_limited_per_user(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    from campuscard.platform.errors import TooManyRequests

    campus = await make_campus(conn)
    prober = await make_parent(conn, campus, "prober", "13900000008")
    for i in range(apps.VERIFY_FAILURES_PER_HOUR):
        with pytest.raises(ValidationFailed):
            await apply(conn, settings, prober, application(campus, name=f"猜{i}"))
    with pytest.raises(TooManyRequests):
        await apply(conn, settings, prober, application(campus))
    # another user is not affected
    other = await make_parent(conn, campus, "other", "13900000007")
    app, _ = await apply(conn, settings, other, application(campus))
    assert app["status"] == "pending_approval"


async def test_an_online_replacement_for_a_lost_card_is_handed_out_and_keeps_the_money(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    # given a student whose card holds 42.00 and is reported lost
    async with pool.acquire() as conn:
        campus = await make_counter_campus(conn)
        person = await conn.fetchval("SELECT id FROM persons WHERE number = '2026000001'")
        lost = await lifecycle.issue_card(
            conn, card_center(campus), person_id=person, number="550000000001", uid="0A0A0A01"
        )
        await fund(conn, campus.school_id, person, cash=4200)
        await conn.execute("UPDATE cards SET state = 'lost' WHERE id = $1", lost["id"])
    # when the parent applies online (挂失和补卡申请), the card is made and handed out
    r = await apply_at_counter(client, campus, "apply-replace-1")
    assert r.status_code == 201, r.text
    staff = await login(client, "teacher-iss", campus.code)
    base = f"/api/v1/admin/schools/{campus.code}/card-production"
    queue = (await client.get(base, headers=staff)).json()
    await client.post(f"{base}/produced", headers=staff, json={"application_ids": [queue[0]["id"]]})
    handed = await client.post(
        f"/api/v1/admin/card-applications/{queue[0]['id']}/hand-out",
        headers=staff,
        json={"card_number": "550000000002", "card_uid": "0A0A0A02"},
    )
    # then the new card replaces the lost one: no CARD_ALREADY_HELD, the balance stays
    assert handed.status_code == 200, handed.text
    async with pool.acquire() as conn:
        cards = await conn.fetch("SELECT number, state, replaced_by FROM cards ORDER BY id")
        app_row = await conn.fetchrow("SELECT status, card_number FROM card_applications")
        cash = await conn.fetchval(
            "SELECT sum(balance) FROM accounts WHERE person_id = $1 AND purse = 'cash'",
            person,
        )
    assert [(c["number"], c["state"]) for c in cards] == [
        ("550000000001", "replaced"),
        ("550000000002", "active"),
    ]
    assert cards[0]["replaced_by"] is not None
    assert (app_row["status"], app_row["card_number"]) == ("issued", "550000000002")
    assert cash == 4200  # the card fee was settled with the application: nothing charged
