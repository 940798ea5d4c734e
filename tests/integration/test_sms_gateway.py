"""The SMS adapter, its simulator and the outbox handler: signed sends, an inbox that can be
read, deduplication by outbox row, retries when the gateway is busy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from campuscard.adapters.sms import SmsError
from campuscard.adapters.sms.http import HttpSmsGateway
from campuscard.adapters.sms.simulator import create_sms_simulator
from campuscard.app import create_app, mount_simulators
from campuscard.config import Settings
from campuscard.platform import notifications, outbox
from campuscard.platform.jobs import reseal_sms_outbox
from campuscard.platform.sealing import seal, unseal
from campuscard.platform.tasks import load_job_modules
from tests.servers import serve_in_thread
from tests.support import make_school, make_student

SECRET = b"sms-test-secret"


@pytest.fixture
def sms_sim() -> Any:
    app = create_sms_simulator({"campuscard": SECRET})
    with serve_in_thread(app) as url:
        yield url, app.state.sim


@pytest.fixture
def sms_settings(settings: Settings, sms_sim: Any) -> Settings:
    url, _ = sms_sim
    return settings.model_copy(
        update={"sms_gateway_url": url, "sms_api_secret": SecretStr(SECRET.decode())}
    )


async def test_signed_send_lands_in_the_inbox_once_per_client_ref(sms_sim: Any) -> None:
    url, sim = sms_sim
    gateway = HttpSmsGateway(url, key_id="campuscard", secret=SECRET)
    first = await gateway.send(phone="13900000001", text="你好", client_ref="outbox-1")
    again = await gateway.send(phone="13900000001", text="你好", client_ref="outbox-1")
    assert not first.duplicate and again.duplicate
    assert again.message_id == first.message_id
    assert [m.text for m in sim.inbox("13900000001")] == ["你好"]
    async with httpx.AsyncClient(base_url=url) as http:
        listed = (await http.get("/v1/sms/inbox", params={"phone": "13900000001"})).json()
        page = await http.get("/inbox")
    assert listed["messages"][0]["text"] == "你好"
    assert "13900000001" in page.text


async def test_a_wrong_key_or_signature_is_refused(sms_sim: Any) -> None:
    url, sim = sms_sim
    with pytest.raises(SmsError, match="401"):
        await HttpSmsGateway(url, key_id="campuscard", secret=b"wrong").send(
            phone="13900000001", text="x", client_ref="r1"
        )
    with pytest.raises(SmsError, match="UNKNOWN_KEY"):
        await HttpSmsGateway(url, key_id="nobody", secret=SECRET).send(
            phone="13900000001", text="x", client_ref="r2"
        )
    assert sim.inbox() == []


async def test_outbox_sms_is_delivered_to_the_simulator_and_retried_when_busy(
    pool: Any, sms_settings: Settings, sms_sim: Any
) -> None:
    # given a notification with an SMS, and a gateway that is busy once
    _, sim = sms_sim
    load_job_modules()
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person = await make_student(conn, school.id, "S0001")
        async with conn.transaction():
            await notifications.notify(
                conn,
                school_id=school.id,
                kind="test",
                title={"zh-CN": "标题", "en": "title"},
                body={"zh-CN": "余额不足提醒", "en": "low balance"},
                person_id=person,
                sms_phone="13911112222",
            )
    sim.fail_next(1)
    # when the worker runs: the first try fails and is rescheduled
    assert await outbox.deliver_batch(pool, sms_settings) == 0
    async with pool.acquire() as conn:
        await conn.execute("UPDATE procrastinate_jobs SET scheduled_at = now()")
    assert await outbox.deliver_batch(pool, sms_settings) == 1
    # then exactly one message arrived
    assert [m.text for m in sim.inbox("13911112222")] == ["余额不足提醒"]
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT attempts, delivered_at FROM outbox")
    assert row["attempts"] == 2 and row["delivered_at"] is not None


async def test_sealed_sms_is_opened_only_at_delivery(
    pool: Any, sms_settings: Settings, sms_sim: Any
) -> None:
    _, sim = sms_sim
    load_job_modules()
    master = sms_settings.master_key.get_secret_value().encode()
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await notifications.enqueue(
            conn,
            "sms",
            {"phone": "13933334444", "sealed_text": seal(master, "sms", "注册码 1234")},
            school_id=school.id,
        )
        assert "1234" not in await conn.fetchval("SELECT payload::text FROM outbox")
    assert await outbox.deliver_batch(pool, sms_settings) == 1
    assert [m.text for m in sim.inbox("13933334444")] == ["注册码 1234"]


async def test_only_the_demo_app_mounts_the_simulator(
    client: httpx.AsyncClient, settings: Settings, pool: Any
) -> None:
    # the production app: the inbox that shows pickup codes does not exist
    assert (await client.get("/dev/sms/inbox")).status_code == 404
    # the demo's and the tests' app mounts it on purpose
    demo = mount_simulators(create_app(settings, pool=pool), settings)
    transport = httpx.ASGITransport(app=demo)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.get("/dev/sms/inbox")
    assert r.status_code == 200
    assert "SMS simulator inbox" in r.text


async def test_sms_sealed_by_the_former_scheme_are_sealed_again_with_aes_gcm(
    pool: Any, sms_settings: Settings, sms_sim: Any
) -> None:
    # given: an SMS sealed before the move to AES-GCM, waiting in the outbox
    _, sim = sms_sim
    load_job_modules()
    master = sms_settings.master_key.get_secret_value().encode()
    old = _legacy_seal(master, "sms", "取卡注册码 0320 1234")
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await notifications.enqueue(
            conn, "sms", {"phone": "13955556666", "sealed_text": old}, school_id=school.id
        )
    # when: the worker starts (twice: a second run finds nothing to do)
    assert await reseal_sms_outbox(pool, sms_settings) == 1
    assert await reseal_sms_outbox(pool, sms_settings) == 0
    # then: the row holds AES-GCM text, and the SMS is delivered as it was written
    sealed = await pool.fetchval("SELECT payload->>'sealed_text' FROM outbox")
    assert sealed.startswith("v2.")
    assert unseal(master, "sms", sealed) == "取卡注册码 0320 1234"
    assert await outbox.deliver_batch(pool, sms_settings) == 1
    assert [m.text for m in sim.inbox("13955556666")] == ["取卡注册码 0320 1234"]


def _legacy_seal(master: bytes, purpose: str, text: str) -> str:
    import base64
    import hashlib
    import hmac

    nonce = b"legacy-nonce-16b"
    enc = hmac.new(master, f"campuscard/seal/{purpose}/enc".encode(), hashlib.sha256).digest()
    mac = hmac.new(master, f"campuscard/seal/{purpose}/mac".encode(), hashlib.sha256).digest()
    stream = b"".join(
        hmac.new(enc, nonce + i.to_bytes(8, "big"), hashlib.sha256).digest() for i in range(4)
    )
    cipher = bytes(a ^ b for a, b in zip(text.encode(), stream, strict=False))
    tag = hmac.new(mac, nonce + cipher, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(nonce + tag + cipher).decode()
