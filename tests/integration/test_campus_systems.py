"""The library, lab and exam systems: a card's identity and validity by the system's own
token, the rate per minute shared by every process (429 with Retry-After), revoked tokens and
user tokens refused, and lab stations signed in and out by card."""

from __future__ import annotations

import httpx

from campuscard.cards import lifecycle
from campuscard.db.pool import Conn
from tests.support import ROOT, make_school, make_user
from tests.support_access import bearer
from tests.support_payments import make_cardholder

ADMIN = "/api/v1/admin/schools/TST/access/systems"
CAMPUS = "/api/v1/campus/TST"


async def test_library_and_lab_systems(conn: Conn, client: httpx.AsyncClient) -> None:
    # given a student and a staff member with cards, and a library and a lab registered
    school = await make_school(conn)
    _, card = await make_cardholder(conn, school.id, "S1")
    _, other = await make_cardholder(conn, school.id, "S2")
    admin = await bearer(conn, await make_user(conn, "admin", "school_admin", school.id))
    r = await client.post(
        ADMIN, json={"name": "图书馆", "kind": "library", "per_minute": 5}, headers=admin
    )
    assert r.status_code == 201, r.text
    library = {"Authorization": f"Bearer {r.json()['token']}"}
    library_id = r.json()["id"]
    r = await client.post(ADMIN, json={"name": "机房", "kind": "lab"}, headers=admin)
    lab = {"Authorization": f"Bearer {r.json()['token']}"}

    # when the library looks the card up by number and by the chip's UID
    r = await client.get(f"{CAMPUS}/cards/{card['number']}", headers=library)
    assert r.status_code == 200, r.text
    who = r.json()
    assert (who["valid"], who["role"], who["person_number"]) == (True, "student", "S1")
    assert set(who) == {
        "card_number",
        "card_kind",
        "card_state",
        "valid",
        "reason",
        "person_number",
        "name",
        "role",
        "class_name",
        "valid_until",
    }  # nothing about money or phones
    r = await client.get(f"{CAMPUS}/uids/{card['uid'].lower()}", headers=library)
    assert r.json()["card_number"] == card["number"]
    r = await client.post(
        f"{CAMPUS}/lab/sessions",
        json={"station": "A-1", "card_number": card["number"]},
        headers=library,
    )
    assert r.status_code == 403  # a library signs nobody in
    # then a card reported lost is answered not valid, with the reason
    await lifecycle.report_loss(conn, ROOT, card["id"], reason="丢了")
    r = await client.get(f"{CAMPUS}/cards/{card['number']}", headers=library)
    assert (r.json()["valid"], r.json()["reason"]) == (False, "card_lost")
    r = await client.get(f"{CAMPUS}/cards/8899999999", headers=library)
    assert r.status_code == 404

    # and past its rate the library is told when to come back
    for _ in range(2):  # a minute may turn between setting the window and asking
        await conn.execute(
            """UPDATE campus_system_windows SET used = 5, window_start = date_trunc('minute', now())
                WHERE system_id = $1""",
            library_id,
        )
        r = await client.get(f"{CAMPUS}/cards/{other['number']}", headers=library)
        if r.status_code == 429:
            break
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60

    # and a user's token, another school's path and a revoked token are refused
    r = await client.get(f"{CAMPUS}/cards/{other['number']}", headers=admin)
    assert r.status_code == 401
    r = await client.get(f"/api/v1/campus/NOPE/cards/{other['number']}", headers=lab)
    assert r.status_code == 401

    # when students sit down at lab stations
    r = await client.post(
        f"{CAMPUS}/lab/sessions",
        json={"station": "A-12", "card_number": other["number"]},
        headers=lab,
    )
    assert r.status_code == 201, r.text
    first = r.json()["id"]
    r = await client.post(
        f"{CAMPUS}/lab/sessions",
        json={"station": "A-12", "card_number": card["number"]},
        headers=lab,
    )
    assert r.status_code == 409  # the lost card
    assert r.json()["error"]["field"] == "card"
    r = await client.post(
        f"{CAMPUS}/lab/sessions", json={"station": "A-13", "uid": other["uid"]}, headers=lab
    )
    assert r.status_code == 201
    second = r.json()["id"]
    # then moving to another station ends the first session; the lab sees who sits where
    r = await client.get(f"{CAMPUS}/lab/sessions", headers=lab)
    assert [(s["station"], s["person_number"]) for s in r.json()] == [("A-13", "S2")]
    r = await client.post(f"{CAMPUS}/lab/sessions/{second}/end", headers=lab)
    assert r.json()["ended_by"] == "card"
    ended = await conn.fetchval("SELECT ended_by FROM lab_sessions WHERE id = $1", first)
    assert ended == "moved"
    # a revoked token is refused at once, and bad input names the field
    r = await client.post(f"{ADMIN}/{library_id}/revoke", headers=admin)
    assert r.status_code == 200
    r = await client.get(f"{CAMPUS}/cards/{other['number']}", headers=library)
    assert r.status_code == 401
    r = await client.post(f"{CAMPUS}/lab/sessions", json={"station": "A-1"}, headers=lab)
    assert r.status_code == 422
    r = await client.get(ADMIN, headers=admin)
    listed = {s["name"]: s for s in r.json()}
    assert listed["图书馆"]["active"] is False and "token" not in listed["图书馆"]
