"""The school's monitoring rules over HTTP: listed with explanation, units and bounds; set by the
school admin in yuan; a bad value named and nothing changed; a counsellor reads but cannot set;
every change audited with who and before → after."""

from __future__ import annotations

import httpx

from campuscard.db.pool import PgPool
from tests.support import login, make_school, make_user
from tests.support_web import csrf_from, web_login


async def test_the_school_admin_sets_a_rule_in_yuan_and_a_bad_value_changes_nothing(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    # given a school admin and a counsellor
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "admin1", "school_admin", school.id)
        await make_user(conn, "fdy1", "counsellor", school.id)
    admin = await login(client, "admin1", school.code)
    counsellor = await login(client, "fdy1", school.code)
    base = f"/api/v1/schools/{school.code}/monitoring"

    # the list: every rule off, with its explanation, thresholds, units and bounds
    r = await client.get(f"{base}/rules", headers=counsellor)
    assert r.status_code == 200, r.text
    rules = {x["rule"]: x for x in r.json()}
    assert list(rules)[:2] == ["big_spend", "night_spend"] and "hardship" in rules
    low = rules["low_balance"]
    assert low["enabled"] is False and low["explanation"]["zh-CN"] and low["name"]["en"]
    below = next(t for t in low["thresholds"] if t["name"] == "below")
    assert (below["value"], below["default"], below["unit"]) == ("15.00", "15.00", "yuan")
    assert (below["min"], below["max"], below["kind"]) == ("0.01", "10000.00", "money")

    # when the admin switches low balance on at 20.50 yuan
    body = {"enabled": True, "thresholds": {"below": "20.50", "pace_days": 7}}
    r = await client.put(f"{base}/rules/low_balance", json=body, headers=admin)
    assert r.status_code == 200, r.text
    below = next(t for t in r.json()["thresholds"] if t["name"] == "below")
    assert r.json()["enabled"] is True and below["value"] == "20.50"
    stored = await pool.fetchrow(
        "SELECT enabled, thresholds FROM monitoring_rules WHERE rule = 'low_balance'"
    )
    assert stored is not None and stored["thresholds"] == {"below": 2050, "pace_days": 7}

    # a value out of bounds, an amount in fen, a counsellor: refused, named, nothing changed
    for bad, field in (
        ({"below": "0.00"}, "thresholds.below"),
        ({"below": 2050}, "thresholds.below"),
        ({"pace_days": 500}, "thresholds.pace_days"),
        ({"colour": "red"}, "thresholds.colour"),
    ):
        r = await client.put(
            f"{base}/rules/low_balance", json={"enabled": False, "thresholds": bad}, headers=admin
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field
    r = await client.put(f"{base}/rules/no_such_rule", json={"enabled": True}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "rule"
    r = await client.put(f"{base}/rules/low_balance", json={"enabled": False}, headers=counsellor)
    assert r.status_code == 403
    again = await pool.fetchrow("SELECT enabled, thresholds FROM monitoring_rules")
    assert again == stored

    # the change history: who, and each value before → after, in yuan
    r = await client.get(f"{base}/rule-changes", headers=counsellor)
    assert r.status_code == 200, r.text
    (change,) = r.json()
    assert change["actor"] == "admin1" and change["rule"] == "low_balance"
    lines = {f["name"]: (f["before"], f["after"]) for f in change["fields"]}
    assert lines == {"enabled": (False, True), "below": ("15.00", "20.50"), "pace_days": (14, 7)}


async def test_the_rules_page_lets_a_counsellor_read_but_not_change(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    # given a counsellor signed in on the console
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "fdy2", "counsellor", school.id)
    await web_login(client, "fdy2", school.code)
    url = f"/admin/s/{school.code}/monitoring/rules"
    # the page: read-only, no save button
    r = await client.get(url)
    assert r.status_code == 200 and "只有学校管理员可以修改这些设置" in r.text
    assert 'data-testid="save-big_spend"' not in r.text
    # a forged save is refused with the page's own message, and nothing is stored
    r = await client.post(
        f"{url}/big_spend",
        data={"csrf_token": csrf_from(r.text), "enabled": "on", "t.absolute": "1.00"},
    )
    assert r.status_code == 403 and 'data-testid="rule-error"' in r.text
    assert await pool.fetchval("SELECT count(*) FROM monitoring_rules") == 0
