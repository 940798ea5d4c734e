"""Over HTTPS every answer carries HSTS and every cookie is Secure; a payment one may not see
answers exactly as one that does not exist."""

from __future__ import annotations

from typing import Any

import httpx

from campuscard.app import create_app
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from tests.support import login, make_school, make_user
from tests.support_payments import make_cardholder, make_device, make_merchant, pay
from tests.support_web import web_login


async def test_https_answers_carry_hsts_and_secure_cookies(
    pool: PgPool, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "boss", "school_admin", school.id)
    app = create_app(settings, pool=pool)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://campus.example") as c:
        # when: signing in over HTTPS (the form's pre-session cookie, then the session)
        form = await c.get("/login")
        signed_in = await web_login(c, "boss", "TST")
    # then
    assert form.headers["strict-transport-security"] == "max-age=31536000"
    assert signed_in.headers["strict-transport-security"] == "max-age=31536000"
    cookies = signed_in.headers.get_list("set-cookie")
    assert any(c.startswith("cc_session=") for c in cookies)
    assert all("; secure" in c.lower() for c in cookies), cookies
    assert all("; secure" in c.lower() for c in form.headers.get_list("set-cookie"))

    # over plain HTTP (the demo on 127.0.0.1) neither: a browser would drop Secure cookies
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        plain = await c.get("/login")
    assert "strict-transport-security" not in plain.headers
    assert all("secure" not in c.lower() for c in plain.headers.get_list("set-cookie"))


async def test_someone_elses_payment_answers_as_a_missing_one(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    # given: a payment at one merchant, and a cashier of another merchant of the same school
    async with pool.acquire() as conn:
        school = await make_school(conn)
        merchant, _ = await make_merchant(conn, school.id)
        other, _ = await make_merchant(conn, school.id, "校园超市", channel="supermarket")
        dev = await make_device(conn, settings, school.id, merchant)
        _, card = await make_cardholder(conn, school.id, "S1", cash=5_000)
        await make_user(conn, "rival", "merchant_manager", school.id, merchant_id=other)
    paid = await pay(client, dev, card, "3.00")
    assert paid.status_code == 200, paid.text
    payment_id = paid.json()["payment_id"]
    rival = await login(client, "rival", "TST")

    async def refund(pid: int) -> httpx.Response:
        return await client.post(
            f"/api/v1/payments/{pid}/refunds",
            json={"client_id": f"rf-{pid}-0001", "amount": "1.00"},
            headers=rival,
        )

    # when
    theirs, missing = await refund(payment_id), await refund(payment_id + 1000)
    seen, absent = (
        await client.get(f"/api/v1/payments/{payment_id}", headers=rival),
        await client.get(f"/api/v1/payments/{payment_id + 1000}", headers=rival),
    )
    # then: the same status and the same error, whether it exists or not
    assert theirs.status_code == missing.status_code == 404
    assert _error(theirs) == _error(missing)
    assert seen.status_code == absent.status_code == 404
    assert _error(seen) == _error(absent)


def _error(r: httpx.Response) -> Any:
    return r.json()["error"]
