"""SMS gateway simulator: the signed send API of a real provider, plus an inbox you can read.

``POST /v1/sms/send`` checks the key, the signature, the timestamp window and the nonce like a
provider would, deduplicates by ``client_ref`` (the platform passes the outbox row id), and
files the message in the inbox. ``GET /v1/sms/inbox?phone=`` lists it as JSON and ``GET /inbox``
as a page (the dev console's view). ``fail_next(n)`` makes the next sends answer 503.
"""

from __future__ import annotations

import html
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from campuscard.adapters.sms import SIGNATURE_WINDOW_SECONDS
from campuscard.platform.signing import signature_matches

PHONE = re.compile(r"^\+?[0-9]{5,20}$")
MAX_TEXT = 500


@dataclass
class SmsMessage:
    message_id: str
    phone: str
    text: str
    client_ref: str
    received_at: str


@dataclass
class SmsSimulatorState:
    keys: dict[str, bytes]
    messages: list[SmsMessage] = field(default_factory=list)
    by_ref: dict[str, SmsMessage] = field(default_factory=dict)
    nonces: dict[str, float] = field(default_factory=dict)
    failures_to_inject: int = 0
    sends_attempted: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, n: int) -> None:
        self.failures_to_inject = n

    def inbox(self, phone: str | None = None) -> list[SmsMessage]:
        return [m for m in self.messages if phone is None or m.phone == phone]


def _refuse(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _relative_path(request: Request) -> str:
    path = request.url.path
    root = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def create_sms_simulator(keys: dict[str, bytes]) -> FastAPI:
    state = SmsSimulatorState(keys=dict(keys))
    app = FastAPI(title="SMS gateway simulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = state

    @app.post("/v1/sms/send")
    async def send(request: Request) -> JSONResponse:
        state.sends_attempted += 1
        body = await request.body()
        key_id = request.headers.get("x-sms-key", "")
        timestamp = request.headers.get("x-sms-timestamp", "")
        nonce = request.headers.get("x-sms-nonce", "")
        signature = request.headers.get("x-sms-signature", "")
        secret = state.keys.get(key_id)
        if secret is None:
            return _refuse(401, "UNKNOWN_KEY", "unknown API key")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
            return _refuse(401, "STALE_TIMESTAMP", "timestamp outside the allowed window")
        path = _relative_path(request)
        if not signature_matches(secret, "POST", path, timestamp, nonce, body, signature):
            return _refuse(401, "BAD_SIGNATURE", "signature does not match")
        now = time.time()
        for old in [n for n, t in state.nonces.items() if now - t > SIGNATURE_WINDOW_SECONDS]:
            del state.nonces[old]
        if not 16 <= len(nonce) <= 64 or nonce in state.nonces:
            return _refuse(401, "NONCE_REUSED", "nonce missing or already used")
        state.nonces[nonce] = now
        if state.failures_to_inject > 0:
            state.failures_to_inject -= 1
            return _refuse(503, "BUSY", "gateway busy, try again")
        try:
            data: Any = json.loads(body)
        except ValueError:
            return _refuse(400, "BAD_JSON", "body is not JSON")
        if not isinstance(data, dict):
            return _refuse(400, "BAD_JSON", "body must be an object")
        phone, text, ref = data.get("to"), data.get("text"), data.get("client_ref")
        if not isinstance(phone, str) or not PHONE.fullmatch(phone):
            return _refuse(400, "BAD_PHONE", "to must be a phone number")
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
            return _refuse(400, "BAD_TEXT", f"text must be 1-{MAX_TEXT} characters")
        if not isinstance(ref, str) or not 1 <= len(ref) <= 64:
            return _refuse(400, "BAD_REF", "client_ref must be 1-64 characters")
        seen = state.by_ref.get(f"{key_id}:{ref}")
        if seen is not None:
            return JSONResponse({"message_id": seen.message_id, "duplicate": True})
        message = SmsMessage(
            message_id=f"SM{next(state._ids):010d}",
            phone=phone,
            text=text,
            client_ref=ref,
            received_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        state.messages.append(message)
        state.by_ref[f"{key_id}:{ref}"] = message
        return JSONResponse({"message_id": message.message_id, "duplicate": False})

    @app.get("/v1/sms/inbox")
    async def inbox(phone: str | None = None) -> JSONResponse:
        return JSONResponse(
            {
                "messages": [
                    {
                        "message_id": m.message_id,
                        "phone": m.phone,
                        "text": m.text,
                        "client_ref": m.client_ref,
                        "received_at": m.received_at,
                    }
                    for m in reversed(state.inbox(phone))
                ]
            }
        )

    @app.get("/inbox", response_class=HTMLResponse)
    async def inbox_page(phone: str | None = None) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(m.received_at)}</td><td>{html.escape(m.phone)}</td>"
            f"<td>{html.escape(m.text)}</td><td>{html.escape(m.message_id)}</td></tr>"
            for m in reversed(state.inbox(phone))
        )
        return (
            '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            "<title>短信模拟器收件箱 SMS simulator inbox</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{border-bottom:1px solid #ddd;"
            "padding:.3em .6em;text-align:left}</style></head><body>"
            "<h1>短信模拟器收件箱 · SMS simulator inbox</h1>"
            '<form><input name="phone" placeholder="手机号 phone" '
            f'value="{html.escape(phone or "")}"><button>筛选 Filter</button></form>'
            "<table><thead><tr><th>时间 Time</th><th>手机号 Phone</th><th>内容 Text</th>"
            f"<th>ID</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<p>{len(state.messages)} messages</p></body></html>"
        )

    return app
