"""Who sees which students in monitoring: every supervision and quiet-help operation as every
role that could reach it, against a student of the counsellor's own class and one of another.

A counsellor sees, opens, exports and proposes only for the classes they look after; the school
admin sees the whole school's supervision; the whole school's hardship candidates are for the
school admin and the settlement office that pays quiet help; a teacher sees none of it.
Cells: ``deny`` (refused for the role), ``hide`` (the student or candidate is not shown, as if
it did not exist), otherwise what the actor was shown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

from campuscard.db.pool import PgPool
from campuscard.db.tx import transaction
from campuscard.monitoring import hardship, school_rules, signals, supervision
from campuscard.monitoring.exports import do_export_hardship_report, do_export_supervision
from campuscard.platform.actors import Actor, Grant
from campuscard.platform.errors import Forbidden, NotFound, ValidationFailed
from tests.support import make_school, make_student, make_user

ACTORS = ("school_admin", "settlement", "counsellor_a", "counsellor_none", "teacher")


async def _outcome(call: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await call()
    except Forbidden:
        return "deny"
    except NotFound:
        return "hide"
    except ValidationFailed as err:
        if err.field == "candidate_ids":  # a candidate outside the actor's classes: unknown
            return "hide"
        raise


async def test_each_role_sees_only_the_students_it_may(pool: PgPool) -> None:
    # given: classes A and B with a student each, both with an alert and a candidate
    async with pool.acquire() as conn:
        school = await make_school(conn)
        sid = school.id
        class_a, class_b = [
            await conn.fetchval(
                "INSERT INTO classes(school_id, name) VALUES ($1, $2) RETURNING id", sid, name
            )
            for name in ("A班", "B班")
        ]
        a = await make_student(conn, sid, "A1", name="甲")
        b = await make_student(conn, sid, "B1", name="乙")
        await conn.execute("UPDATE persons SET class_id = $2 WHERE id = $1", a, class_a)
        await conn.execute("UPDATE persons SET class_id = $2 WHERE id = $1", b, class_b)
        users = {
            "school_admin": await make_user(conn, "sa", "school_admin", sid),
            "settlement": await make_user(conn, "st", "settlement", sid),
            "counsellor_a": await make_user(conn, "fdy_a", "counsellor", sid),
            "counsellor_none": await make_user(conn, "fdy_0", "counsellor", sid),
            "teacher": await make_user(conn, "tc", "teacher", sid),
        }
        await conn.execute(
            "INSERT INTO monitoring_counsellor_classes(school_id, user_id, class_id) "
            "VALUES ($1, $2, $3)",
            sid,
            users["counsellor_a"],
            class_a,
        )
        month = (date.today().replace(day=1) - timedelta(days=1)).replace(day=1)
        candidate = {}
        for person in (a, b):
            candidate[person] = await conn.fetchval(
                """INSERT INTO hardship_candidates(school_id, month, person_id, method, facts,
                                                   reasons, what_would_change, amount)
                   VALUES ($1, $2, $3, 'njust', '{}', '[]', '[]', 20000) RETURNING id""",
                sid,
                month,
                person,
            )
    role = {
        "school_admin": "school_admin",
        "settlement": "settlement",
        "counsellor_a": "counsellor",
        "counsellor_none": "counsellor",
        "teacher": "teacher",
    }
    actors = {
        k: Actor(k, user_id=users[k], school_id=sid, grants=frozenset({Grant(role[k], sid)}))
        for k in ACTORS
    }
    admin = actors["school_admin"]
    for rule in ("arrears", "hardship"):
        await school_rules.do_set_rule(pool, admin, sid, rule, enabled=True, thresholds={})
    async with transaction(pool) as tx:
        for person in (a, b):
            await signals.arrears(tx, sid, person, 300000, date.today() - timedelta(days=9), "学费")
    today = await pool.fetchval("SELECT cc_business_date($1)", sid)

    # when: every operation is called as every role
    seen: dict[str, dict[str, Any]] = {}
    for key, actor in actors.items():

        async def tiers(actor: Actor = actor) -> Any:
            return sorted(t.number for t in await supervision.risk_tiers(pool, actor, sid))

        async def counts(actor: Actor = actor) -> Any:
            rows = await supervision.dashboard(pool, actor, sid, since=today, until=today)
            return sorted(c.class_name for c in rows)

        async def drill(person: int, actor: Actor = actor) -> Any:
            rows = await supervision.do_drill_down(pool, actor, sid, person, reason="谈心前了解")
            return len(rows)

        async def export(actor: Actor = actor) -> Any:
            sheet = await do_export_supervision(
                pool, actor, sid, since=today, until=today, kind="xlsx"
            )
            return sorted(t.number for t in sheet.tiers), sorted(c.class_name for c in sheet.counts)

        async def candidates(actor: Actor = actor) -> Any:
            return sorted(c.number for c in await hardship.candidates(pool, actor, sid, month))

        async def report(actor: Actor = actor) -> Any:
            return sorted(g.class_name for g in await hardship.report(pool, actor, sid, month))

        async def report_export(actor: Actor = actor) -> Any:
            rows = await do_export_hardship_report(pool, actor, sid, month=month, kind="csv")
            return sorted(g.class_name for g in rows)

        async def exclude_b(actor: Actor = actor) -> Any:
            await hardship.do_exclude(pool, actor, sid, b, "off_campus")
            return "done"

        async def propose_b(actor: Actor = actor) -> Any:
            try:
                await hardship.do_propose_quiet_subsidy(
                    pool, actor, sid, [candidate[b]], name="伙食补贴"
                )
            except Exception as err:  # a second proposer meets the first one's decision
                if getattr(err, "code", "") == "CANDIDATE_DECIDED":
                    return "done"
                raise
            return "done"

        seen[key] = {
            "tiers": await _outcome(tiers),
            "counts": await _outcome(counts),
            "drill_a": await _outcome(lambda: drill(a)),
            "drill_b": await _outcome(lambda: drill(b)),
            "export": await _outcome(export),
            "candidates": await _outcome(candidates),
            "report": await _outcome(report),
            "report_export": await _outcome(report_export),
            "exclude_b": await _outcome(exclude_b),
            "propose_b": await _outcome(propose_b),
        }

    # then: each role's view, cell by cell
    whole = (["A1", "B1"], ["A班", "B班"])
    expected = {
        "school_admin": {
            "tiers": ["A1", "B1"],
            "counts": ["A班", "B班"],
            "drill_a": 1,
            "drill_b": 1,
            "export": whole,
            "candidates": ["A1", "B1"],
            "report": ["A班", "B班"],
            "report_export": ["A班", "B班"],
            "exclude_b": "done",
            "propose_b": "done",
        },
        "settlement": {
            "tiers": "deny",
            "counts": "deny",
            "drill_a": "deny",
            "drill_b": "deny",
            "export": "deny",
            "candidates": ["A1", "B1"],
            "report": ["A班", "B班"],
            "report_export": ["A班", "B班"],
            "exclude_b": "done",
            "propose_b": "done",
        },
        "counsellor_a": {
            "tiers": ["A1"],
            "counts": ["A班"],
            "drill_a": 1,
            "drill_b": "hide",
            "export": (["A1"], ["A班"]),
            "candidates": ["A1"],
            "report": ["A班"],
            "report_export": ["A班"],
            "exclude_b": "hide",
            "propose_b": "hide",
        },
        "counsellor_none": {
            "tiers": [],
            "counts": [],
            "drill_a": "hide",
            "drill_b": "hide",
            "export": ([], []),
            "candidates": [],
            "report": [],
            "report_export": [],
            "exclude_b": "hide",
            "propose_b": "hide",
        },
        "teacher": dict.fromkeys(seen["teacher"], "deny"),
    }
    problems = [
        f"{who} {op}: expected {expected[who][op]!r}, got {got!r}"
        for who, ops in seen.items()
        for op, got in ops.items()
        if expected[who][op] != got
    ]
    assert not problems, "\n".join(problems)
    # and the exports were audited, once per export that was given
    logged = await pool.fetch(
        "SELECT actor FROM audit_log WHERE action = 'monitoring.export' ORDER BY id"
    )
    assert [r["actor"] for r in logged] == ["school_admin", "counsellor_a", "counsellor_none"]
    reports = await pool.fetch(
        "SELECT actor FROM audit_log WHERE action = 'hardship.export' ORDER BY id"
    )
    assert [r["actor"] for r in reports] == [
        "school_admin",
        "settlement",
        "counsellor_a",
        "counsellor_none",
    ]
