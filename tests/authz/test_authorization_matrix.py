"""Every API operation x every role -> the answer documented in docs/authorization.md.

Operations are enumerated from the app's OpenAPI document, so an endpoint added tomorrow fails
this test until its row is documented. Each (operation, actor) pair sends one request that is
valid for the schema (the simplest body Schemathesis can build, or an example from BODIES) to a
served app, with the path pointing at real records of the actor's school, and classifies it:

* ``allow``  - past the gates (2xx, or a business answer such as 409/422 about the data)
* ``deny``   - 401 (not signed in) or 403 (signed in, wrong role)
* ``hide``   - 404: the record (or school) is not shown to this actor, or does not exist

Regenerate the observed table after a deliberate change with
``CAMPUSCARD_AUTHZ_WRITE=1 pytest tests/authz`` and review the diff line by line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis

from campuscard.access import model as access_model
from campuscard.app import create_app
from campuscard.config import Settings
from campuscard.db.pool import create_pool
from campuscard.platform import auth
from tests.servers import serve_in_thread
from tests.support import PASSWORD, ROOT, make_school, make_student, make_user
from tests.support_payments import make_device

DOC = Path(__file__).resolve().parents[2] / "docs" / "authorization.md"
BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"
ACTORS = (
    "platform_admin",
    "school_admin",
    "card_center",
    "settlement",
    "teacher",
    "merchant_staff",
    "merchant_manager",
    "cardholder",
    "guardian",
    "anonymous",
    "other_school",
)

# Bodies for operations whose simplest schema-valid body is refused by finer validation
# before the role check could run; keyed by "METHOD /path".
BODIES: dict[str, dict[str, Any]] = {
    "POST /api/v1/auth/login": {"username": "teacher", "password": PASSWORD, "school": "TST"},
    "POST /api/v1/terminal/offline/upload": {
        "records": [
            {
                "seq": 1,
                "card_number": "880000000001",
                "card_uid": "04A10001",
                "amount": "1.00",
                "made_at": 1_795_000_000,
                "card_counter": 1,
                "total_before": "0",
                "total_after": "1.00",
                "key_version": 1,
                "signature": "0" * 64,
            }
        ]
    },
    "POST /api/v1/admin/schools": {"province": "32", "code": "NEW", "name": "新学校"},
    # a term is a pattern no plain candidate meets; the item exists before the bills are issued
    "POST /api/v1/schools/{school}/fee-items": {
        "term": "2026-2027-1",
        "kind": "tuition",
        "name": "学费",
        "amount": "1.00",
        "due_date": "2026-09-01",
    },
    "POST /api/v1/schools/{school}/bill-issues": {"term": "2026-2027-1"},
    # validated before the holder check: a body that passes, so the gate itself is probed
    "PUT /api/v1/persons/{person_id}/auto-topup": {
        "threshold": "10.00",
        "target": "50.00",
        "enabled": False,
    },
}


@dataclass
class World:
    base_url: str
    runner: asyncio.Runner
    pool: Any
    users: dict[str, int]
    path_values: dict[str, str]

    def token(self, actor: str) -> str | None:
        if actor == "anonymous":
            return None
        token = secrets.token_urlsafe(24)

        async def mint() -> None:
            async with self.pool.acquire() as conn:
                # undo what earlier requests may have done to the signed-in users
                await conn.execute(
                    "UPDATE users SET is_active = true, locked_until = NULL, failed_logins = 0"
                )
                await conn.execute(
                    """INSERT INTO auth_sessions(token_hash, user_id, kind, csrf_token, expires_at)
                       VALUES ($1, $2, 'api', 'x', now() + interval '1 hour')""",
                    auth.token_digest(token),
                    self.users[actor],
                )

        self.runner.run(mint())
        return token


async def _access_in_use(
    conn: Any, settings: Settings, school_id: int, student: int
) -> dict[str, str]:
    """A zone, door, group, schedule and building, each still in use (a door in the zone, a
    grant of the group on the schedule, a resident, a recorded passage), so that a probe of
    their DELETE is answered (409 IN_USE) without removing what later probes use."""
    await make_device(conn, settings, school_id, None, "AUTHZ-DOOR", kind="door")
    zone = await access_model.create_zone(
        conn, ROOT, school_id, name="校园", antipassback="off", reset_hour=4
    )
    door = await access_model.create_door(
        conn, ROOT, school_id, name="东门", terminal_sn="AUTHZ-DOOR", zone_id=zone
    )
    group = await access_model.create_group(conn, ROOT, school_id, name="校门", door_ids=[door])
    always = {str(d): [["00:00", "24:00"]] for d in range(1, 8)}
    schedule = await access_model.save_schedule(
        conn, ROOT, school_id, name="全天", week=always, holiday=[]
    )
    building = await access_model.create_building(
        conn, ROOT, school_id, name="7号楼", group_id=group, schedule_id=schedule
    )
    await access_model.assign_dorm(conn, ROOT, school_id, person_id=student, building_id=building)
    await conn.execute(
        """INSERT INTO access_events(school_id, terminal_id, seq, door_id, kind, occurred_at)
           SELECT school_id, terminal_id, 1, id, 'granted', now() FROM access_doors
            WHERE school_id = $1 AND id = $2""",
        school_id,
        door,
    )
    return {
        # the door's controller is not a till: terminal routes keep probing no terminal
        "terminal_id": "999999",
        "zone_id": str(zone),
        "door_id": str(door),
        "group_id": str(group),
        "schedule_id": str(schedule),
        "building_id": str(building),
    }


@pytest.fixture
def world(settings: Settings, db_url: str) -> Iterator[World]:
    runner = asyncio.Runner()
    pool = runner.run(create_pool(db_url, min_size=1, max_size=2))

    async def seed() -> tuple[dict[str, int], dict[str, str]]:
        async with pool.acquire() as conn:
            school = await make_school(conn, "TST")
            other = await make_school(conn, "OTH")
            student = await make_student(conn, school.id, "S1", cash=10_000)
            merchant = await conn.fetchval(
                """INSERT INTO merchants(school_id, name, channel, status)
                   VALUES ($1, '一食堂', 'canteen', 'approved') RETURNING id""",
                school.id,
            )
            users = {"platform_admin": await make_user(conn, "root", "platform_admin", None)}
            for role in ("school_admin", "card_center", "settlement", "teacher"):
                users[role] = await make_user(conn, role, role, school.id)
            for role in ("merchant_staff", "merchant_manager"):
                users[role] = await make_user(conn, role, role, school.id, merchant_id=merchant)
            users["cardholder"] = await make_user(
                conn, "S1", "cardholder", school.id, person_id=student
            )
            users["guardian"] = await make_user(conn, "parent", "guardian", school.id)
            await conn.execute(
                "INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3)",
                users["guardian"],
                student,
                school.id,
            )
            users["other_school"] = await make_user(conn, "other", "school_admin", other.id)
            target = await make_user(conn, "target", "teacher", school.id)
            today = await conn.fetchval("SELECT cc_business_date($1)", school.id)
            access_ids = await _access_in_use(conn, settings, school.id, student)
        values = {
            "school": "TST",
            "person_id": str(student),
            "user_id": str(target),
            "merchant_id": str(merchant),
            "business_date": today.isoformat() if isinstance(today, dt.date) else str(today),
            **access_ids,
        }
        return users, values

    users, values = runner.run(seed())
    try:
        with serve_in_thread(create_app(settings)) as base_url:
            yield World(base_url, runner, pool, users, values)
    finally:
        runner.run(pool.close())
        runner.close()


def openapi() -> dict[str, Any]:
    app = create_app(Settings(database_url="postgresql://unused/none", _env_file=None))  # type: ignore[call-arg]
    return app.openapi()


def operations(doc: dict[str, Any]) -> list[Any]:
    schema = schemathesis.openapi.from_dict(doc)
    return [result.ok() for result in schema.get_all_operations()]


def label_of(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


BINARY = "<file>"
CANDIDATES = ("1.00", "1", "a", "A1", "authz-probe-0001", "2026-01-01", "0")


def minimal(schema: dict[str, Any], doc: dict[str, Any], name: str = "") -> Any:
    """The simplest value valid for ``schema`` (required fields only), built without search:
    a few plain candidates for strings, the lower bound for numbers."""
    if "$ref" in schema:
        target: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return minimal(target, doc, name)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"]
            return minimal(options[0], doc, name)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: minimal(props[k], doc, k) for k in schema.get("required", [])}
    if kind == "array":
        return [
            minimal(schema.get("items", {}), doc, name) for _ in range(schema.get("minItems", 0))
        ]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
        return max(int(low), 1) if kind == "integer" else float(max(low, 1))
    if kind == "boolean":
        return True
    if kind == "string":
        if schema.get("format") == "binary" or schema.get("contentMediaType"):
            return BINARY
        if schema.get("format") == "date":
            return dt.date.today().isoformat()
        if name == "client_id":
            return "authz-probe-0001"
        low, high = schema.get("minLength", 0), schema.get("maxLength", 10**6)
        pattern = schema.get("pattern")
        repeated = (ch * n for n in range(max(low, 1), 41) for ch in "1aA")
        for candidate in (*CANDIDATES, *repeated):
            if low <= len(candidate) <= high and (pattern is None or re.search(pattern, candidate)):
                return candidate
        raise AssertionError(f"no simple value for {name}: {schema}; add it to BODIES")
    return None


@dataclass
class Probe:
    method: str
    path: str
    query: dict[str, Any]
    body: Any
    form: dict[str, Any] | None


def probe_for(operation: Any, doc: dict[str, Any]) -> Probe:
    raw = operation.definition.raw
    query = {
        p["name"]: minimal(p.get("schema", {}), doc, p["name"])
        for p in raw.get("parameters", [])
        if p["in"] == "query" and p.get("required")
    }
    body: Any = None
    content = raw.get("requestBody", {}).get("content", {})
    label = label_of(operation)
    if label in BODIES:
        body = BODIES[label]
    elif "application/json" in content:
        body = minimal(content["application/json"]["schema"], doc)
    form = None
    if "multipart/form-data" in content:
        form = minimal(content["multipart/form-data"]["schema"], doc)
    return Probe(operation.method.upper(), operation.path, query, body, form)


def classify(response: requests.Response) -> str:
    if response.status_code in (401, 403):
        return "deny"
    if response.status_code == 404:
        return "hide"
    return "allow"


def is_schema_refusal(response: requests.Response) -> bool:
    """A 422 from request parsing (before any role check ran): the probe was not valid."""
    if response.status_code != 422:
        return False
    try:
        return "errors" in (response.json()["error"].get("details") or {})
    except (ValueError, KeyError, TypeError):
        return False


def probe(world: World, spec: Probe, actor: str) -> tuple[str, requests.Response]:
    path = re.sub(r"{(\w+)}", lambda m: world.path_values.get(m.group(1), "1"), spec.path)
    token = world.token(actor)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers["Accept"] = "application/json, text/event-stream"  # event streams answer 406 else
    extra: dict[str, Any] = {}
    if spec.form is not None:
        files = dict.fromkeys(spec.form, ("probe.csv", b"reference,amount\n", "text/csv"))
        extra["files"] = {k: v for k, v in files.items() if spec.form[k] == BINARY}
        extra["data"] = {k: v for k, v in spec.form.items() if v != BINARY}
    elif spec.body is not None:
        extra["json"] = spec.body
    # stream: event streams never end, and the status line is all we need from them
    with requests.request(
        spec.method,
        world.base_url + path,
        params=spec.query,
        headers=headers,
        timeout=15,
        stream=True,
        **extra,
    ) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.content  # noqa: B018 - read the (finite) body for the error details
    return classify(response), response


def documented() -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = {}
    text = DOC.read_text(encoding="utf-8")
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(ACTORS) + 1 or not re.match(r"`[A-Z]+ /", cells[0]):
            continue
        table[cells[0].strip("`")] = dict(zip(ACTORS, cells[1:], strict=True))
    return table


def render(observed: dict[str, dict[str, str]]) -> str:
    header = "| endpoint | " + " | ".join(ACTORS) + " |"
    rule = "|---|" + "---|" * len(ACTORS)
    rows = [
        f"| `{op}` | " + " | ".join(cells[a] for a in ACTORS) + " |"
        for op, cells in observed.items()
    ]
    return "\n".join([header, rule, *rows])


def test_every_endpoint_answers_every_role_as_documented(world: World) -> None:
    expected = documented()
    observed: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    doc = openapi()
    for operation in operations(doc):
        label = label_of(operation)
        observed[label] = {}
        started = time.monotonic()
        spec = probe_for(operation, doc)
        for actor in ACTORS:
            got, response = probe(world, spec, actor)
            if is_schema_refusal(response):
                problems.append(
                    f"{label} as {actor}: the probe body was refused by parsing; add a valid "
                    f"example to BODIES ({response.text[:200]})"
                )
            observed[label][actor] = got
        print(f"{label}: {time.monotonic() - started:.1f}s", flush=True)
        if label not in expected:
            problems.append(f"{label} is not documented in docs/authorization.md")
            continue
        for actor in ACTORS:
            if expected[label][actor] != observed[label][actor]:
                problems.append(
                    f"{label} as {actor}: documented {expected[label][actor]}, "
                    f"answered {observed[label][actor]}"
                )
    for label in expected.keys() - observed.keys():
        problems.append(f"{label} is documented but no longer exists")
    if os.environ.get("CAMPUSCARD_AUTHZ_WRITE"):
        text = DOC.read_text(encoding="utf-8")
        head, rest = text.split(BEGIN, 1)
        DOC.write_text(
            f"{head}{BEGIN}\n{render(observed)}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8"
        )
    assert not problems, "\n".join(problems)


def test_documented_table_parses_and_uses_only_known_classes() -> None:
    table = documented()
    assert len(table) > 10
    for op, cells in table.items():
        assert set(cells.values()) <= {"allow", "deny", "hide"}, op
        # nobody anonymous gets past a gate that a signed-in cardholder is refused by
        if cells["cardholder"] == "deny":
            assert cells["anonymous"] == "deny", op
