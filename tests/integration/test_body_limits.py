"""Request bodies are limited before they are parsed: a small limit for JSON and forms, an
explicit larger one for upload routes; a body over it is answered 413 naming the limit, with or
without a Content-Length."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from campuscard.config import Settings
from campuscard.edge.limits import upload_limit
from campuscard.moneyflows import subsidies
from tests.support import login, make_school, make_user


def refused_for_size(r: httpx.Response, limit: int) -> None:
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "BODY_TOO_LARGE"
    assert error["field"] == "body"
    assert str(limit) in error["message"]


async def test_a_large_json_body_is_refused_before_parsing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    big = b'{"username": "' + b"a" * (settings.max_json_body_bytes + 10) + b'"}'
    r = await client.post(
        "/api/v1/auth/login", content=big, headers={"content-type": "application/json"}
    )
    refused_for_size(r, settings.max_json_body_bytes)


async def test_a_streamed_body_without_content_length_is_counted(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"username": "'
        for _ in range(settings.max_json_body_bytes // 1024 + 8):
            yield b"a" * 1024
        yield b'"}'

    request = client.build_request(
        "POST", "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in request.headers
    r = await client.send(request)
    refused_for_size(r, settings.max_json_body_bytes)


async def test_an_upload_route_has_its_own_larger_limit(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "money", "settlement", school.id)
    headers = await login(client, "money", "TST")
    url = "/api/v1/admin/schools/TST/subsidies/batches/file"
    # a file above the JSON limit reaches the route (which answers about its content)
    sheet = "学号,金额\n" + "".join(f"2026{i:06d},1.00\n" for i in range(8000))
    assert len(sheet.encode()) > settings.max_json_body_bytes
    r = await client.post(
        url, headers=headers, data={"name": "grant"}, files={"file": ("s.csv", sheet.encode())}
    )
    assert r.status_code != 413, r.text
    # one above the route's own limit does not
    limit = upload_limit(subsidies.MAX_FILE_BYTES)
    r = await client.post(
        url,
        headers=headers,
        data={"name": "grant"},
        files={"file": ("s.csv", b"x" * (limit + 1))},
    )
    refused_for_size(r, limit)
