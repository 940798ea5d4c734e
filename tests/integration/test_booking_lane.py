"""The booking lane (api/booking_lane.py): a till's payment whose body parses is booked without
FastAPI's routing and dependency resolution, and every request — booked, refused, replayed or
malformed — is answered exactly as the FastAPI routes answer it."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from campuscard.api.booking_lane import ROUTES, BookingLane
from campuscard.api.routes import paycode_pay, terminal
from campuscard.api.terminal_auth import signed_booking_terminal
from campuscard.app import create_app
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from tests.support import make_school
from tests.support_paycodes import Holder, make_holder
from tests.support_payments import (
    Device,
    make_cardholder,
    make_device,
    make_merchant,
    sign_headers,
)

PAY = "/api/v1/terminal/pay"
CODE_PAY = "/api/v1/terminal/paycode/pay"


def _without_lane(app: FastAPI) -> FastAPI:
    app.user_middleware = [m for m in app.user_middleware if m.cls is not BookingLane]
    return app


@pytest.fixture
async def routes_only(settings: Settings, pool: PgPool) -> AsyncIterator[httpx.AsyncClient]:
    """The same app without the lane: FastAPI's routes answer every request."""
    transport = httpx.ASGITransport(app=_without_lane(create_app(settings, pool=pool)))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def _campus(conn: asyncpg.Connection[Any], settings: Settings) -> dict[str, Any]:
    school = await make_school(conn)
    merchant_id, outlet_id = await make_merchant(conn, school.id)
    dev = await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
    _, card = await make_cardholder(conn, school.id, "S1", cash=10_000)
    holder = await make_holder(conn, settings, school.id, cash=10_000)
    return {"dev": dev, "card": card, "holder": holder}


def _request(
    dev: Device,
    path: str,
    payload: dict[str, Any] | bytes,
    *,
    content_type: str = "application/json",
    **sign: Any,
) -> tuple[str, bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = sign_headers(dev, "POST", path, body, **sign)
    headers["Content-Type"] = content_type
    return path, body, headers


def _unsigned_query(
    request: tuple[str, bytes, dict[str, str]],
) -> tuple[str, bytes, dict[str, str]]:
    url, body, headers = request
    return url + "?x=1", body, headers


async def _send(client: httpx.AsyncClient, request: tuple[str, bytes, dict[str, str]]) -> Any:
    url, body, headers = request
    r = await client.post(url, content=body, headers=headers)
    kept = ("content-type", "content-length", "idempotent-replayed", "retry-after")
    return r.status_code, {k: r.headers.get(k) for k in kept}, r.content


def _card(card: dict[str, Any], **change: Any) -> dict[str, Any]:
    return {
        "client_id": f"tx-{secrets.token_hex(6)}",
        "card_number": card["number"],
        "card_uid": card["uid"],
        "amount": "1.00",
    } | change


# each case: a request the lane's app and the routes' app are both sent (with its own nonce)
CASES: dict[str, Callable[[dict[str, Any]], tuple[str, bytes, dict[str, str]]]] = {
    "too little money": lambda c: _request(c["dev"], PAY, _card(c["card"], amount="999.00")),
    "wrong card uid": lambda c: _request(c["dev"], PAY, _card(c["card"], card_uid="FFFFFFFF")),
    "bad signature": lambda c: _request(c["dev"], PAY, _card(c["card"]), key=b"k" * 32),
    "stale timestamp": lambda c: _request(c["dev"], PAY, _card(c["card"]), timestamp=1_000),
    "unknown key version": lambda c: _request(c["dev"], PAY, _card(c["card"]), key_version=9),
    "not JSON": lambda c: _request(c["dev"], PAY, b"{not json"),
    "a list": lambda c: _request(c["dev"], PAY, b"[]"),
    "empty body": lambda c: _request(c["dev"], PAY, b""),
    "over the body limit": lambda c: _request(
        c["dev"], PAY, _card(c["card"], client_id="x" * (64 * 1024))
    ),
    "unknown field": lambda c: _request(c["dev"], PAY, _card(c["card"], tip="1.00")),
    "float amount": lambda c: _request(c["dev"], PAY, _card(c["card"], amount=1.5)),
    "three decimals": lambda c: _request(c["dev"], PAY, _card(c["card"], amount="1.005")),
    "missing card": lambda c: _request(c["dev"], PAY, {"client_id": "tx-12345678"}),
    "sent as text": lambda c: _request(c["dev"], PAY, _card(c["card"]), content_type="text/plain"),
    "a query it did not sign": lambda c: _unsigned_query(_request(c["dev"], PAY, _card(c["card"]))),
    "bad signature and bad body": lambda c: _request(
        c["dev"], PAY, _card(c["card"], tip="1"), key=b"k" * 32
    ),
    "wrong code": lambda c: _request(
        c["dev"],
        CODE_PAY,
        {"client_id": f"qr-{secrets.token_hex(6)}", "code": "7" + "0" * 19, "amount": "1.00"},
    ),
    "code too long": lambda c: _request(
        c["dev"],
        CODE_PAY,
        {"client_id": f"qr-{secrets.token_hex(6)}", "code": "7" * 41, "amount": "1.00"},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_lane_answers_what_the_routes_answer(
    case: str,
    client: httpx.AsyncClient,
    routes_only: httpx.AsyncClient,
    conn: asyncpg.Connection[Any],
    settings: Settings,
) -> None:
    # given a till, a card and a phone
    campus = await _campus(conn, settings)
    # when the same request is sent to the app with the lane and to the routes alone
    with_lane = await _send(client, CASES[case](campus))
    routes = await _send(routes_only, CASES[case](campus))
    # then the answers are the same, byte for byte
    assert with_lane == routes
    assert with_lane[0] != 200


async def test_a_resend_gets_the_first_answer_from_both(
    client: httpx.AsyncClient,
    routes_only: httpx.AsyncClient,
    conn: asyncpg.Connection[Any],
    settings: Settings,
) -> None:
    # given a card payment and a code payment booked through the lane
    campus = await _campus(conn, settings)
    holder: Holder = campus["holder"]
    card = _card(campus["card"])
    code = {"client_id": "qr-lane-0001", "code": holder.code(time.time()), "amount": "2.00"}
    first = [
        await _send(client, _request(campus["dev"], PAY, card)),
        await _send(client, _request(campus["dev"], CODE_PAY, code)),
    ]
    assert [status for status, _, _ in first] == [200, 200]
    assert [headers["idempotent-replayed"] for _, headers, _ in first] == ["false", "false"]
    # when each is sent again (a new nonce) through the lane and through the routes
    again = [
        await _send(c, _request(campus["dev"], path, payload))
        for c in (client, routes_only)
        for path, payload in ((PAY, card), (CODE_PAY, code))
    ]
    # then all four are the first answers, replayed
    for (status, headers, body), (_, _, first_body) in zip(again, first * 2, strict=True):
        assert status == 200 and headers["idempotent-replayed"] == "true"
        assert body == first_body


async def test_a_payment_that_parses_is_booked_without_dependency_resolution(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection[Any],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a till, and FastAPI's dependency resolution counted
    campus = await _campus(conn, settings)
    solved: list[str] = []
    solve = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        solved.append(kwargs["request"].url.path)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    holder: Holder = campus["holder"]
    code = {"client_id": "qr-lane-0002", "code": holder.code(time.time()), "amount": "2.00"}
    # when a card and a code pay, and then a body the model refuses is sent
    paid = [
        await _send(client, _request(campus["dev"], PAY, _card(campus["card"]))),
        await _send(client, _request(campus["dev"], CODE_PAY, code)),
    ]
    refused = await _send(client, _request(campus["dev"], PAY, _card(campus["card"], tip="1")))
    # then the payments were booked by the lane, and the refused body went to the route
    assert [status for status, _, _ in paid] == [200, 200]
    assert refused[0] == 422
    assert solved == [PAY]


def test_the_lane_knows_everything_the_two_routes_depend_on() -> None:
    # given the two routes as FastAPI declares them
    routes = [
        route
        for router in (terminal.router, paycode_pay.router)
        for route in router.routes
        if isinstance(route, APIRoute) and route.path in ROUTES
    ]
    # then each depends on the signed device and its body alone, the two things the lane
    # resolves itself (a dependency added to a route must be added to the lane too)
    assert sorted(route.path for route in routes) == sorted(ROUTES)
    for route in routes:
        dependant = route.dependant
        assert [d.call for d in dependant.dependencies] == [signed_booking_terminal]
        assert [(p.name, p.field_info.annotation) for p in dependant.body_params] == [
            ("body", ROUTES[route.path].model)
        ]
        assert not (dependant.header_params or dependant.query_params or dependant.cookie_params)
