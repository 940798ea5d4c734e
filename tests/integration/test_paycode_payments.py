"""Paying with a payment code at a till, through the one payment path: same limits, the PIN
rule (PIN at the till, or confirmed with the PIN on the phone), a code pays once, a retry
replays, a refusal before booking does not spend the code, and the ledger stays balanced."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx

from campuscard.config import Settings
from campuscard.ledger import postings
from campuscard.ledger.checks import check_ledger
from campuscard.ledger.money import Money
from campuscard.payments import batching, code_payments, code_rules, codes
from campuscard.payments.booking import PaymentAnswer
from tests.support import ROOT, login, make_school
from tests.support_paycodes import Holder, make_holder
from tests.support_payments import (
    device_call,
    make_device,
    make_merchant,
    set_pin,
    signed_terminal,
)

PIN = "135790"


async def setup(
    conn: asyncpg.Connection[Any], settings: Settings, *, cash: int = 10_000
) -> tuple[Any, Holder, Any]:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id, cash=cash)
    merchant_id, outlet_id = await make_merchant(conn, school.id, "Canteen 2")
    await conn.execute("UPDATE outlets SET name = 'Window 3' WHERE id = $1", outlet_id)
    device = await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
    return school, holder, device


async def pay_code(
    client: httpx.AsyncClient,
    device: Any,
    code: str,
    amount: str,
    client_id: str | None = None,
    pin: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {
        "client_id": client_id or f"qr-{secrets.token_hex(6)}",
        "code": code,
        "amount": amount,
    }
    if pin is not None:
        body["pin"] = pin
    return await device_call(client, device, "POST", "/api/v1/terminal/paycode/pay", body)


async def balance(conn: asyncpg.Connection[Any], person_id: int) -> int:
    return sum((await postings.purse_balances(conn, person_id)).values())


async def test_a_code_pays_once_and_a_retry_replays(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given
    _, holder, device = await setup(conn, settings)
    code = holder.code(time.time())
    # when
    r = await pay_code(client, device, code, "12.50", client_id="qr-retry-0001")
    # then
    assert r.status_code == 200, r.text
    assert r.json()["balance"] == "87.50"
    assert await balance(conn, holder.person_id) == 8750
    # the till did not hear the answer and sends the same request again: same receipt
    again = await pay_code(client, device, code, "12.50", client_id="qr-retry-0001")
    assert again.status_code == 200 and again.json() == r.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    # the same code under a new transaction id is a replay of the code: refused
    replay = await pay_code(client, device, code, "12.50")
    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "PAYCODE_USED"
    assert await balance(conn, holder.person_id) == 8750
    payment = await conn.fetchrow("SELECT credential, person_id, amount FROM payments")
    assert payment is not None and payment["amount"] == 1250
    assert payment["credential"].startswith(f"paycode:d:{holder.device.id}:")
    assert (await check_ledger(conn)).ok


async def test_a_retry_sent_while_the_first_try_is_booking_gets_the_same_answer(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    """Found by tests/reliability/test_bank.py: a till that resent a code payment while its
    first try was still booking was told PAYCODE_USED (spent by that first try), so the
    cashier saw a refusal for a payment that went through."""
    _, holder, device = await setup(conn, settings)
    for i in range(6):
        # given: a code, and the same request sent twice at once (a till's eager retry)
        code = holder.code(time.time(), counter=i)
        # when
        first, again = await asyncio.gather(
            pay_code(client, device, code, "1.00", client_id=f"qr-eager-{i:04d}"),
            pay_code(client, device, code, "1.00", client_id=f"qr-eager-{i:04d}"),
        )
        # then: both answer the one payment's receipt
        assert (first.status_code, again.status_code) == (200, 200), (first.text, again.text)
        assert first.json() == again.json()
    assert await conn.fetchval("SELECT count(*) FROM payments") == 6
    assert await balance(conn, holder.person_id) == 10_000 - 600
    assert (await check_ledger(conn)).ok


async def test_refusals_before_booking_do_not_spend_the_code(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    _, holder, device = await setup(conn, settings, cash=1_000)
    code = holder.code(time.time())
    r = await pay_code(client, device, code, "20.00")
    assert r.status_code == 409 and r.json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    assert await conn.fetchval("SELECT count(*) FROM paycode_uses") == 0
    # the student tops up... (here: the cashier asks a smaller amount) and the same code pays
    ok = await pay_code(client, device, code, "8.00")
    assert ok.status_code == 200, ok.text
    assert ok.json()["balance"] == "2.00"


async def test_the_card_limits_apply_to_codes(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school, holder, device = await setup(conn, settings, cash=500_000)
    await conn.execute(
        "INSERT INTO pay_settings(person_id, school_id, per_tx_limit) VALUES ($1, $2, 3000) "
        "ON CONFLICT (school_id, person_id) DO UPDATE SET per_tx_limit = 3000",
        holder.person_id,
        school.id,
    )
    r = await pay_code(client, device, holder.code(time.time()), "30.01")
    assert r.status_code in (403, 409, 422), r.text
    assert "LIMIT" in r.json()["error"]["code"]
    assert await balance(conn, holder.person_id) == 500_000


async def test_above_the_pin_threshold_the_pin_is_asked_at_the_till(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    _, holder, device = await setup(conn, settings, cash=50_000)
    await set_pin(conn, settings, holder.person_id, PIN)
    code = holder.code(time.time())
    # without a PIN the till is told to wait for the phone or ask the PIN; nothing is spent
    r = await pay_code(client, device, code, "80.00")
    assert r.status_code == 202, r.text
    assert r.json()["result"] == "confirm_on_phone"
    assert await conn.fetchval("SELECT count(*) FROM paycode_uses") == 0
    # the cashier asks the PIN and sends it with a new transaction id
    ok = await pay_code(client, device, code, "80.00", pin=PIN)
    assert ok.status_code == 200, ok.text
    assert await balance(conn, holder.person_id) == 42_000


async def test_above_the_pin_threshold_the_student_confirms_on_the_phone(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school, holder, device = await setup(conn, settings, cash=50_000)
    await set_pin(conn, settings, holder.person_id, PIN)
    code = holder.code(time.time())
    waiting = await pay_code(client, device, code, "80.00", client_id="qr-confirm-01")
    assert waiting.status_code == 202
    confirmation_id = waiting.json()["confirmation_id"]
    # the student's page lists it and the student confirms with the PIN typed on the phone
    me = await login(client, f"u{'S1001'}", school.code)
    pending = (await client.get("/api/v1/me/paycode/confirmations", headers=me)).json()
    assert [(p["id"], p["amount"], p["merchant"], p["outlet"]) for p in pending] == [
        (confirmation_id, "80.00", "Canteen 2", "Window 3")
    ]
    wrong_person = await client.post(
        f"/api/v1/me/paycode/confirmations/{confirmation_id}",
        json={"accept": True, "pin": PIN},
    )
    assert wrong_person.status_code == 401
    r = await client.post(
        f"/api/v1/me/paycode/confirmations/{confirmation_id}",
        json={"accept": True, "pin": PIN},
        headers=me,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "paid"
    # the till repeats its request and now gets the receipt
    done = await pay_code(client, device, code, "80.00", client_id="qr-confirm-01")
    assert done.status_code == 200, done.text
    assert done.json()["balance"] == "420.00"
    assert await balance(conn, holder.person_id) == 42_000
    # confirming twice books once
    twice = await client.post(
        f"/api/v1/me/paycode/confirmations/{confirmation_id}",
        json={"accept": True, "pin": PIN},
        headers=me,
    )
    assert twice.status_code == 409
    assert await conn.fetchval("SELECT count(*) FROM payments WHERE school_id = $1", school.id) == 1
    assert (await check_ledger(conn)).ok


async def test_the_student_declines_on_the_phone(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school, holder, device = await setup(conn, settings, cash=50_000)
    await set_pin(conn, settings, holder.person_id, PIN)
    code = holder.code(time.time())
    waiting = await pay_code(client, device, code, "80.00", client_id="qr-decline-1")
    me = await login(client, "uS1001", school.code)
    r = await client.post(
        f"/api/v1/me/paycode/confirmations/{waiting.json()['confirmation_id']}",
        json={"accept": False},
        headers=me,
    )
    assert r.json() == {"status": "declined"}
    done = await pay_code(client, device, code, "80.00", client_id="qr-decline-1")
    assert done.status_code == 409 and done.json()["error"]["code"] == "PAYCODE_DECLINED"
    assert await balance(conn, holder.person_id) == 50_000


async def test_frozen_lost_revoked_and_foreign_codes_are_refused_at_the_till(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    _, holder, device = await setup(conn, settings)
    other_school = await make_school(conn, "OTH")
    stranger = await make_holder(conn, settings, other_school.id, "X1")
    r = await pay_code(client, device, stranger.code(time.time()), "1.00")
    assert r.status_code == 404 and r.json()["error"]["code"] == "PAYCODE_UNKNOWN"
    await codes.do_unbind_device(conn, holder.actor, holder.device.id)
    r = await pay_code(client, device, holder.code(time.time()), "1.00")
    assert r.status_code == 403 and r.json()["error"]["code"] == "PAYCODE_DEVICE_REVOKED"
    assert await balance(conn, holder.person_id) == 10_000
    r = await pay_code(client, device, "1" * 20, "1.00")
    assert r.status_code == 422 and r.json()["error"]["field"] == "code"


async def test_the_till_shows_the_amount_on_its_display_and_paying_clears_it(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school, holder, device = await setup(conn, settings)
    body = {"amount": "12.50"}
    r = await device_call(client, device, "POST", "/api/v1/terminal/display/pending", body)
    assert r.status_code == 200, r.text
    assert (r.json()["amount"], r.json()["merchant"], r.json()["outlet"]) == (
        "12.50",
        "Canteen 2",
        "Window 3",
    )
    assert (
        await conn.fetchval(
            "SELECT amount FROM pos_pending_amounts WHERE school_id = $1 AND terminal_id = $2",
            school.id,
            device.id,
        )
        == 1250
    )
    # a replayed signed request is refused (its nonce was used)
    again = await device_call(
        client, device, "POST", "/api/v1/terminal/display/pending", body, nonce_value="n" * 24
    )
    assert again.status_code == 200
    replay = await device_call(
        client, device, "POST", "/api/v1/terminal/display/pending", body, nonce_value="n" * 24
    )
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "NONCE_REUSED"
    bad = await device_call(
        client, device, "POST", "/api/v1/terminal/display/pending", {"amount": 12.5}
    )
    assert bad.status_code == 422
    paid = await pay_code(client, device, holder.code(time.time()), "12.50")
    assert paid.status_code == 200
    pending = "SELECT count(*) FROM pos_pending_amounts WHERE school_id = $1"
    assert await conn.fetchval(pending, school.id) == 0


async def test_a_resend_after_the_code_expired_still_gets_the_first_answer(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given: a code paid at a till
    _, holder, dev = await setup(conn, settings)
    paid_at = time.time()
    code = holder.code(paid_at)

    async def pay(at: float, amount: int = 300) -> PaymentAnswer:
        return await code_payments.do_pay_with_code(
            pool,
            settings,
            signed_terminal(dev),
            client_id="qr-late-0001",
            code=code,
            amount=Money(amount),
            now=at,
        )

    paid = await pay(paid_at)
    assert paid.ok and not paid.replayed
    # when: the till resends it ten minutes later, long after the code's window
    again = await pay(paid_at + 600)
    # then: the first answer, not the code's refusal; another amount is another request
    assert again.replayed and again.body == paid.body
    other = await pay(paid_at + 600, 400)
    assert other.status == 409 and other.error_code == "IDEMPOTENCY_KEY_REUSED"
    assert await balance(conn, holder.person_id) == 10_000 - 300


async def test_a_wrong_pin_spends_the_code_and_its_answer_is_kept(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    _, holder, device = await setup(conn, settings, cash=50_000)
    await set_pin(conn, settings, holder.person_id, PIN)
    code = holder.code(time.time())
    wrong = await pay_code(client, device, code, "80.00", client_id="qr-pin-0001", pin="000000")
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "PIN_WRONG"
    again = await pay_code(client, device, code, "80.00", client_id="qr-pin-0001", pin=PIN)
    assert again.json() == wrong.json() and again.headers["Idempotent-Replayed"] == "true"
    used = await pay_code(client, device, code, "80.00", pin=PIN)
    assert used.status_code == 409 and used.json()["error"]["code"] == "PAYCODE_USED"
    assert await balance(conn, holder.person_id) == 50_000
    assert await conn.fetchval("SELECT count(*) FROM paycode_uses") == 1


class _CountingConn:
    """A pooled connection that counts the statements sent through it."""

    def __init__(self, conn: asyncpg.Connection[Any], sent: list[str]) -> None:
        self._conn, self._sent = conn, sent

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name not in ("fetch", "fetchrow", "fetchval", "execute"):
            return attr

        async def counted(sql: str, *args: Any) -> Any:
            self._sent.append(sql)
            return await attr(sql, *args)

        return counted


class _CountingPool:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool
        self.sent: list[str] = []

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[_CountingConn]:
        async with self._pool.acquire() as conn:
            yield _CountingConn(conn, self.sent)


async def _pay_counted(
    counting: _CountingPool,
    settings: Settings,
    dev: Any,
    holder: Holder,
    counter: int,
    sent: list[dict[str, Any]],
) -> PaymentAnswer:
    """``holder``'s code ``counter`` of this step paid at ``dev`` for 1.50, its statements
    counted; the live events go to ``sent`` (as the app's batcher sends them, after commit)."""
    return await code_payments.do_pay_with_code(
        counting,  # type: ignore[arg-type]
        settings,
        signed_terminal(dev),
        client_id=f"qr-{holder.device.id}-{counter:04d}",
        code=holder.code(time.time(), counter),
        amount=Money(150),
        events=SimpleNamespace(publish=sent.append),  # type: ignore[arg-type]
    )


async def test_a_phones_code_payment_is_one_database_call(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    _, holder, dev = await setup(conn, settings)
    counting = _CountingPool(pool)
    sent: list[dict[str, Any]] = []

    async def pay(counter: int) -> PaymentAnswer:
        return await _pay_counted(counting, settings, dev, holder, counter, sent)

    # a phone bound now: its first payment in this process is one call already (the code is
    # checked with the secret its token gives; the binding is found in the booking call)
    assert (await pay(0)).ok
    assert len(counting.sent) == 1 and "cc_pay_code" in counting.sent[0]
    counting.sent.clear()
    # and so is each payment after it
    answer = await pay(1)
    assert answer.ok and answer.body["balance"] == "97.00"
    assert len(counting.sent) == 1 and "cc_pay_code" in counting.sent[0]
    assert [e["type"] for e in sent[-3:]] == ["paycode.scanned", "payment", "paycode.result"]
    assert await conn.fetchval("SELECT count(*) FROM paycode_uses") == 2


async def test_a_phone_bound_before_keyed_secrets_reads_its_binding_once_and_pays(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a phone bound with a salted secret (before decision 0401): its codes are scheme 7
    school, _, dev = await setup(conn, settings)
    old = await make_holder(conn, settings, school.id, "S3001", salted=True)
    counting = _CountingPool(pool)

    async def pay(counter: int) -> PaymentAnswer:
        return await _pay_counted(counting, settings, dev, old, counter, [])

    # when it pays twice: the first payment of the phone in this process reads its binding
    assert old.code(time.time()).startswith("7")
    assert (await pay(0)).ok
    assert [("paycode_devices" in sql, "cc_pay_code" in sql) for sql in counting.sent] == [
        (True, False),
        (False, True),
    ]
    counting.sent.clear()
    # then the next is one call
    answer = await pay(1)
    assert answer.ok and answer.body["balance"] == "97.00"
    assert len(counting.sent) == 1 and "cc_pay_code" in counting.sent[0]


async def test_a_keyed_code_checks_out_only_for_its_own_binding(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool[Any],
    conn: asyncpg.Connection[Any],
    settings: Settings,
) -> None:
    school, holder, device = await setup(conn, settings)
    old = await make_holder(conn, settings, school.id, "S3002", salted=True)
    now = time.time()
    # a scheme-6 code with the first digit of scheme 7 (and a fixed check digit) is a forgery
    code = holder.code(now)
    body = "7" + code[1:-1]
    r = await pay_code(client, device, body + code_rules.luhn_digit(body), "1.00")
    assert r.status_code == 422 and r.json()["error"]["code"] == "PAYCODE_INVALID"
    # the database does not take Python's word that a salted binding's code was checked with
    # a keyed secret (no device named): it is refused as a wrong code, and counted
    step = code_rules.time_step(now, old.device.step_seconds)
    claimed = codes.ScannedCode(old.code(now), "device", old.device.token, step=step, counter=0)
    member = batching.Member(
        code_payments._code_args(
            settings,
            signed_terminal(device),
            claimed,
            client_id="qr-claimed-0001",
            amount=Money(100),
            pin=None,
            now=now,
        ),
        "code",
    )
    booked = await batching.book_one(conn, school.id, member)
    assert (booked.status, (booked.event or {}).get("refused")) == (422, "PAYCODE_INVALID")
    assert (
        await conn.fetchval(
            "SELECT attempts FROM paycode_throttle WHERE token = $1", old.device.token
        )
        == 1
    )
    # a phone bound under another step length than the platform's now still pays: its code
    # does not check out with the platform's, so its binding is read for its own
    moved = settings.model_copy(update={"paycode_step_seconds": 30})
    answer = await code_payments.do_pay_with_code(
        pool,
        moved,
        signed_terminal(device),
        client_id="qr-moved-0001",
        code=holder.code(now),
        amount=Money(100),
        now=now,
    )
    assert answer.ok and answer.body["balance"] == "99.00"
    assert await balance(conn, old.person_id) == 10_000


async def test_a_codes_use_is_written_once_and_the_phone_shows_its_last_use(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a phone that never paid
    _, holder, device = await setup(conn, settings)
    never = await codes.list_devices(conn, ROOT, holder.person_id)

    # when it pays twice at the till
    for counter in (0, 1):
        r = await pay_code(client, device, holder.code(time.time(), counter), "1.00")
        assert r.status_code == 200, r.text

    # then each use is one row of paycode_uses, and nothing else is written for it
    uses = await conn.fetch("SELECT used_at FROM paycode_uses ORDER BY step, counter")
    assert len(uses) == 2
    assert await conn.fetchval("SELECT count(*) FROM payer_credentials_used") == 0
    assert await conn.fetchval("SELECT last_used_at FROM paycode_devices") is None
    # the phone's last use is read from its uses
    shown = await codes.list_devices(conn, ROOT, holder.person_id)
    assert never[0]["last_used_at"] is None
    assert shown[0]["last_used_at"] == uses[-1]["used_at"]


async def test_phones_first_payments_at_once_read_their_bindings_in_one_query(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given three phones bound before decision 0401 (salted: their codes need their bindings)
    # this process has not seen, scanned at three tills at once
    school, _, _ = await setup(conn, settings)
    holders = [
        await make_holder(conn, settings, school.id, f"S200{i}", salted=True) for i in (0, 1, 2)
    ]
    counting = _CountingPool(pool)
    now = time.time()

    # when the codes are read
    scanned = await asyncio.gather(
        *(
            codes.read_scanned(
                counting,  # type: ignore[arg-type]
                settings,
                school_id=school.id,
                code=h.code(now),
                now=now,
            )
            for h in holders
        )
    )

    # then the first lookup went alone and the two that found it under way went together,
    # and each code was read as its own phone's
    reads = [sql for sql in counting.sent if "FROM paycode_devices" in sql]
    assert len(reads) == 2
    assert [(s.error, s.person_id, s.device_id) for s in scanned] == [
        (None, h.person_id, h.device.id) for h in holders
    ]
