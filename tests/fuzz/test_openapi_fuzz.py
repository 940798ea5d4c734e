"""Schemathesis against the app's own OpenAPI document, over real HTTP.

Every operation is fed schema-conforming (positive) and schema-violating (negative) requests,
signed in as a platform administrator so they get past authentication. Whatever arrives, the
API must never answer 5xx, and every error must be in the one documented format
``{"error": {"code", "message", "field"}}``. Every answer of an operation that says what it
answers (tests/openapi_types.py) must conform to the document: a documented status, the
documented content type, and a body that validates against the response schema. Operations are
enumerated from the document, so a new endpoint is fuzzed the day it lands.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from campuscard.app import create_app
from campuscard.config import Settings
from campuscard.db.pool import create_pool
from campuscard.platform import auth, heartbeats
from tests.openapi_types import untyped
from tests.servers import serve_in_thread
from tests.support import PASSWORD, make_school, make_student, make_user

# A budget of requests for the whole API, so the run stays about a minute as endpoints are
# added; each operation gets between 3 and 25 examples per mode (with 260 operations the floor
# decides: about 1,600 requests, every operation fuzzed both ways each run, new examples each
# run). Raise it locally to dig: CAMPUSCARD_FUZZ_BUDGET=20000 gives every operation 25.
BUDGET = int(os.environ.get("CAMPUSCARD_FUZZ_BUDGET", "1000"))

# Operations excluded from the no-5xx assertion, each with the reason and who owns the fix.
# Keep this empty whenever possible: an entry here is a known bug, listed in docs/testing.md.
KNOWN_FAILURES: dict[str, str] = {}


def check_response(response: requests.Response) -> str | None:
    """None if the answer is acceptable, else what is wrong with it."""
    if response.status_code >= 500:
        return f"answered {response.status_code}: {response.text[:300]}"
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"error {response.status_code} is not JSON: {response.text[:200]!r}"
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or set(body) != {"error"}:
        return f"error {response.status_code} not in the documented format: {body!r}"[:400]
    if not (isinstance(err.get("code"), str) and err["code"]):
        return f"error without a code: {body!r}"[:400]
    if not (isinstance(err.get("message"), str) and err["message"]):
        return f"error without a message: {body!r}"[:400]
    if "field" not in err or not (err["field"] is None or isinstance(err["field"], str)):
        return f"error without a field (str or null): {body!r}"[:400]
    return None


@dataclass
class Sandbox:
    """A served app, a signed-in administrator, and a way to undo what fuzzing does to them."""

    base_url: str
    runner: asyncio.Runner
    pool: Any
    admin_id: int
    admin_hash: str
    token: str
    session: requests.Session = field(default_factory=requests.Session)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def restore(self) -> None:
        # a fuzzed request may deactivate, lock, re-password or sign out the admin itself
        async def undo() -> None:
            async with self.pool.acquire() as conn:
                await conn.execute(
                    """UPDATE users SET is_active = true, password_hash = $2, failed_logins = 0,
                              locked_until = NULL WHERE id = $1""",
                    self.admin_id,
                    self.admin_hash,
                )
                await conn.execute(
                    "UPDATE auth_sessions SET revoked_at = NULL WHERE token_hash = $1",
                    auth.token_digest(self.token),
                )

        self.runner.run(undo())

    def worker_alive(self) -> None:
        # a deployment runs a job worker; without one /api/ready answers 503 by design (that
        # answer is tested in tests/integration/test_health_ready.py)
        self.runner.run(heartbeats.record_heartbeat(self.pool, "fuzz-worker", datetime.now(UTC)))


@pytest.fixture
def sandbox(settings: Settings, db_url: str) -> Iterator[Sandbox]:
    runner = asyncio.Runner()
    pool = runner.run(create_pool(db_url, min_size=1, max_size=2))

    async def seed() -> tuple[int, str]:
        async with pool.acquire() as conn:
            school = await make_school(conn, "TST")
            await make_student(conn, school.id, "S1", cash=10_000)
            admin = await make_user(conn, "fuzz-admin", "platform_admin", None)
            await make_user(conn, "ops", "school_admin", school.id)
            return admin, await conn.fetchval(
                "SELECT password_hash FROM users WHERE id = $1", admin
            )

    admin_id, admin_hash = runner.run(seed())
    app = create_app(settings)  # the app opens its own pool, as in production
    try:
        with serve_in_thread(app) as base_url:
            r = requests.post(
                f"{base_url}/api/v1/auth/login",
                json={"username": "fuzz-admin", "password": PASSWORD},
                timeout=10,
            )
            assert r.status_code == 200, r.text
            yield Sandbox(base_url, runner, pool, admin_id, admin_hash, r.json()["token"])
    finally:
        runner.run(pool.close())
        runner.close()


CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]


def document() -> dict[str, Any]:
    app = create_app(Settings(database_url="postgresql://unused/none", _env_file=None))  # type: ignore[call-arg]
    return app.openapi()


def operations() -> list[Any]:
    schema = schemathesis.openapi.from_dict(document())
    return [result.ok() for result in schema.get_all_operations()]


def event_streams(doc: dict[str, Any]) -> set[str]:
    """Operations that answer an endless event stream: fuzzed as a plain call (Accept JSON,
    answered 406); the streams themselves are tested in tests/integration/test_live_events.py."""
    return {
        f"{method.upper()} {path}"
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        if "text/event-stream" in operation["responses"].get("200", {}).get("content", {})
    }


def nonconformance(case: Any, response: requests.Response) -> str | None:
    """None if the answer is what the document says the operation answers."""
    try:
        case.validate_response(response, checks=CONFORMANCE)
    except Exception as err:  # schemathesis raises its failure (or a group of them)
        return f"answer does not conform to the document: {str(err)[:600]}"
    return None


def fuzz_operation(
    box: Sandbox,
    operation: Any,
    mode: GenerationMode,
    examples: int,
    *,
    conform: bool,
    stream: bool = False,
) -> list[str]:
    problems: list[str] = []
    accept = {"Accept": "application/json"} if stream else {}
    touches_users = "/users" in operation.path or "/auth/" in operation.path

    # password endpoints hash with argon2 (about half a second each here): fewer examples
    slow = operation.path.endswith(("/password", "/login"))

    @settings(
        max_examples=max(3, examples // 4) if slow else examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # report the first bad answer, unshrunk
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), own_school=st.booleans())
    def run(case: Any, own_school: bool) -> None:
        if own_school and "school" in (case.path_parameters or {}):
            case.path_parameters["school"] = "TST"  # reach past the school lookup too
        if operation.path == "/api/ready":
            box.worker_alive()
        try:
            response = case.call(
                base_url=box.base_url,
                session=box.session,
                headers=box.headers() | accept,
                timeout=15,
            )
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, ValueError):
            return  # a request the HTTP client itself cannot send; not the server's concern
        finally:
            if touches_users:
                box.restore()
        problem = check_response(response)  # type: ignore[arg-type]
        if problem is None and conform:
            problem = nonconformance(case, response)
        if problem and len(problems) < 3:
            sent = {
                "path": case.formatted_path,
                "query": case.query,
                "body": case.body if not callable(case.body) else None,
            }
            problems.append(f"{problem}\n    request: {json.dumps(sent, default=str)[:400]}")

    try:
        run()
    except Unsatisfiable:
        # nothing to violate (e.g. an operation without parameters has no negative cases)
        assert mode == GenerationMode.NEGATIVE, operation.label
    return problems


# The operations are fuzzed in SHARDS tests (every SHARDS-th operation each), so the test
# processes share the longest test of the suite instead of one of them running it alone.
SHARDS = 4


@pytest.mark.parametrize("shard", range(SHARDS))
def test_no_5xx_and_every_error_is_documented_format(sandbox: Sandbox, shard: int) -> None:
    failures: dict[str, list[str]] = {}
    timings: dict[str, float] = {}
    ops = operations()
    doc = document()
    not_typed = untyped(doc)
    streams = event_streams(doc)
    examples = max(3, min(25, BUDGET // (2 * len(ops))))
    for operation in ops[shard::SHARDS]:
        label = f"{operation.method.upper()} {operation.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            started = time.monotonic()
            problems = fuzz_operation(
                sandbox,
                operation,
                mode,
                examples,
                conform=label not in not_typed,
                stream=label in streams,
            )
            if problems and label not in KNOWN_FAILURES:
                failures.setdefault(label, []).extend(problems)
            timings[f"{label} {mode.value}"] = time.monotonic() - started
    slowest = sorted(timings.items(), key=lambda kv: -kv[1])[:5]
    print("slowest:", ", ".join(f"{k} {v:.1f}s" for k, v in slowest))
    report = "\n".join(f"{op}:\n  " + "\n  ".join(p) for op, p in failures.items())
    assert not failures, f"fuzzing found bad answers:\n{report}"


def test_check_response_rejects_what_it_should() -> None:
    # the checker itself must catch a 500, a bare error, and a missing field
    def fake(status: int, body: Any) -> requests.Response:
        r = requests.Response()
        r.status_code = status
        r._content = json.dumps(body).encode()
        return r

    assert check_response(fake(500, {"error": {"code": "X", "message": "m", "field": None}}))
    assert check_response(fake(422, {"detail": "bad"}))
    assert check_response(fake(404, {"error": {"code": "NOT_FOUND", "message": "m"}}))
    assert check_response(fake(400, {"error": {"code": "", "message": "m", "field": None}}))
    assert (
        check_response(fake(409, {"error": {"code": "C", "message": "m", "field": None}})) is None
    )
    assert check_response(fake(200, {"anything": 1})) is None
