"""Quiet help for hidden hardship: the school's preset finds last month's candidates (a declared
diet excluded), a reviewer proposes a quiet subsidy, the proposer cannot approve it, a second
person does, and only then does money reach the student."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.moneyflows import subsidies
from campuscard.monitoring import hardship, school_rules
from campuscard.platform import i18n
from campuscard.platform.actors import Actor, Grant
from campuscard.platform.errors import Conflict, Forbidden
from tests.support import make_school, make_user
from tests.support_payments import make_cardholder, make_device, make_merchant, pay, set_pin

PIN = "135790"


def staff(name: str, user_id: int, school_id: int, role: str) -> Actor:
    return Actor(
        name, user_id=user_id, school_id=school_id, grants=frozenset({Grant(role, school_id)})
    )


async def test_quiet_subsidy_needs_a_proposer_and_a_second_person(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        canteen, window = await make_merchant(conn, school.id)
        till = await make_device(conn, settings, school.id, canteen, "POS-H1", outlet_id=window)
        poor, poor_card = await make_cardholder(conn, school.id, "H1", cash=50_000)
        dieting, diet_card = await make_cardholder(conn, school.id, "D1", cash=50_000)
        for person in (poor, dieting):
            await set_pin(conn, settings, person, PIN)
        maker = staff(
            "maker",
            await make_user(conn, "maker", "settlement", school.id),
            school.id,
            "settlement",
        )
        checker = staff(
            "checker",
            await make_user(conn, "checker", "settlement", school.id),
            school.id,
            "settlement",
        )
        admin = staff(
            "admin",
            await make_user(conn, "admin", "school_admin", school.id),
            school.id,
            "school_admin",
        )
    await school_rules.do_set_rule(
        pool, admin, school.id, "hardship", enabled=True, thresholds={"preset": "njust"}
    )
    today = await pool.fetchval("SELECT cc_business_date($1)", school.id)
    month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    # 60 cheap canteen meals last month (lunch and dinner on 30 days), for both students
    for card in (poor_card, diet_card):
        for i in range(60):
            r = await pay(client, till, card, "3.50", pin=PIN)
            assert r.status_code == 200, r.text
            day = month + timedelta(days=i // 2)
            hour = 4 if i % 2 == 0 else 10  # 12:00 and 18:00 in Shanghai
            await pool.execute(
                "UPDATE payments SET business_date = $1, "
                "created_at = $1::date + make_interval(hours => $2) "
                "WHERE id = (SELECT max(id) FROM payments)",
                day,
                hour,
            )
    # the dieting student declared it
    await hardship.do_exclude(
        pool, Actor("D1", person_id=dieting, school_id=school.id), school.id, dieting, "diet"
    )

    found = await hardship.do_find_candidates(pool, maker, school.id, month)
    assert [c.person_id for c in found] == [poor]
    (c,) = found
    assert c.amount == "200.00" and "60" in i18n.word("zh-CN", c.reasons[0])
    assert "CN¥210.00" in i18n.word("en", c.reasons[1])
    assert "more spent in canteens" in i18n.word("en", c.what_would_change[0])

    batch_id = await hardship.do_propose_quiet_subsidy(
        pool, maker, school.id, [c.id], name="伙食补贴"
    )
    # nothing moved yet; the proposer cannot approve
    assert (
        await pool.fetchval("SELECT status FROM subsidy_batches WHERE id = $1", batch_id)
        == "pending_approval"
    )
    with pytest.raises(Forbidden) as err:
        await subsidies.do_approve_batch(pool, maker, school.id, batch_id)
    assert err.value.code == "SECOND_PERSON_REQUIRED"
    with pytest.raises(Conflict):
        await hardship.do_propose_quiet_subsidy(pool, checker, school.id, [c.id], name="again")
    # a second person approves: the subsidy purse receives it, under the neutral name
    await subsidies.do_approve_batch(pool, checker, school.id, batch_id)
    subsidy = await pool.fetchval(
        "SELECT balance FROM accounts WHERE person_id = $1 AND purse = 'subsidy'", poor
    )
    assert subsidy == 20000
    body = i18n.word(
        "zh-CN",
        await pool.fetchval(
            "SELECT body FROM notifications WHERE person_id = $1 AND kind = 'subsidy_issued'",
            poor,
        ),
    )
    assert "伙食补贴" in body and "困难" not in body
