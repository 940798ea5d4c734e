"""Supervision: alerts by rule, class and day; a counsellor sees risk tiers of their own classes
only, never amounts; a drill-down needs a reason and is audited."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from campuscard.db.pool import PgPool
from campuscard.db.tx import transaction
from campuscard.monitoring import school_rules, signals, supervision
from campuscard.platform import i18n
from campuscard.platform.actors import Actor, Grant
from campuscard.platform.errors import Forbidden, NotFound, ValidationFailed
from tests.support import make_school, make_student, make_user


async def test_counsellor_sees_tiers_of_own_classes_and_drill_down_is_audited(pool: PgPool) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        sid = school.id
        class_a = await conn.fetchval(
            "INSERT INTO classes(school_id, name) VALUES ($1, '计算机2601') RETURNING id", sid
        )
        class_b = await conn.fetchval(
            "INSERT INTO classes(school_id, name) VALUES ($1, '数学2601') RETURNING id", sid
        )
        a = await make_student(conn, sid, "A1", name="甲")
        b = await make_student(conn, sid, "B1", name="乙")
        await conn.execute("UPDATE persons SET class_id = $2 WHERE id = $1", a, class_a)
        await conn.execute("UPDATE persons SET class_id = $2 WHERE id = $1", b, class_b)
        uid = await make_user(conn, "counsellor1", "counsellor", sid)
        await conn.execute(
            "INSERT INTO monitoring_counsellor_classes(school_id, user_id, class_id) "
            "VALUES ($1, $2, $3)",
            sid,
            uid,
            class_a,
        )
    admin = Actor("admin", school_id=sid, grants=frozenset({Grant("school_admin", sid)}))
    counsellor = Actor(
        "counsellor1", user_id=uid, school_id=sid, grants=frozenset({Grant("counsellor", sid)})
    )
    teacher = Actor("t", school_id=sid, grants=frozenset({Grant("teacher", sid)}))
    await school_rules.do_set_rule(pool, admin, sid, "arrears", enabled=True, thresholds={})
    async with transaction(pool) as tx:
        for person in (a, b):
            await signals.arrears(tx, sid, person, 300000, date.today() - timedelta(days=9), "学费")

    tiers = await supervision.risk_tiers(pool, counsellor, sid)
    assert [(t.number, t.class_name, t.tier) for t in tiers] == [("A1", "计算机2601", "low")]
    assert not any("3000" in str(t) for t in tiers)  # a tier, not the amounts
    assert len(await supervision.risk_tiers(pool, admin, sid)) == 2
    today = await pool.fetchval("SELECT cc_business_date($1)", sid)
    counts = await supervision.dashboard(pool, counsellor, sid, since=today, until=today)
    assert [(c.rule, c.class_name, c.alerts) for c in counts] == [("arrears", "计算机2601", 1)]

    with pytest.raises(ValidationFailed):
        await supervision.do_drill_down(pool, counsellor, sid, a, reason="")
    shown = await supervision.do_drill_down(pool, counsellor, sid, a, reason="期中谈心前了解情况")
    assert shown[0]["rule"] == "arrears" and "¥3,000.00" in i18n.word("zh-CN", shown[0]["reason"])
    logged = await pool.fetchrow(
        "SELECT actor, after FROM audit_log WHERE action = 'monitoring.drill_down'"
    )
    assert logged["actor"] == "counsellor1" and logged["after"]["reason"] == "期中谈心前了解情况"
    with pytest.raises(NotFound):
        await supervision.do_drill_down(pool, counsellor, sid, b, reason="not my class")
    with pytest.raises(Forbidden):
        await supervision.risk_tiers(pool, teacher, sid)
