"""Hidden hardship, opt-in per school: a month's candidates found by the school's preset, and
a quiet subsidy proposed by one person as a subsidy batch that a second person approves
(moneyflows.subsidies.do_approve_batch refuses its maker). Nothing is ever paid automatically.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.ledger.money import fmt
from campuscard.monitoring import hardship_rules, queries, supervision
from campuscard.monitoring.rules import DEFAULTS
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, Forbidden, NotFound, ValidationFailed

REVIEWERS = ("counsellor", "school_admin", "settlement")
# Who sees the candidates of the whole school: the school's supervision and the settlement
# office that pays quiet help; a counsellor sees (and proposes for) their own classes only.
SCHOOL_WIDE = ("school_admin", "settlement")


async def _scope(conn: Conn, actor: Actor, school_id: int) -> list[int] | None:
    """The classes ``actor`` reviews (None: the whole school)."""
    actor.require(*REVIEWERS, school_id=school_id)
    return await supervision.classes_in_scope(conn, actor, school_id, school_wide=SCHOOL_WIDE)


@dataclass(frozen=True)
class CandidateView:
    id: int
    person_id: int
    method: str
    amount: str
    reasons: list[dict[str, Any]]
    what_would_change: list[dict[str, Any]]
    status: str


def _next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


@owns_transaction
async def do_find_candidates(
    tx: Tx, actor: Actor, school_id: int, month: date
) -> list[CandidateView]:
    """Run the school's preset over ``month`` (a first of the month, already over) and store
    the candidates; running it again keeps what was stored and decided. The month is run for
    the whole school (the stored candidates are the school's); a counsellor is shown those of
    their own classes."""
    classes = await _scope(tx, actor, school_id)
    if month.day != 1:
        raise ValidationFailed("give the first day of a month", field="month")
    end = _next_month(month)
    today = await tx.fetchval("SELECT cc_business_date($1)", school_id)
    if end > today:
        raise ValidationFailed("the month is not over yet", field="month")
    cfg = await queries.config(tx, school_id)
    if not cfg.on("hardship"):
        raise Conflict("the school has not switched hidden-hardship help on", code="RULE_OFF")
    values = DEFAULTS["hardship"] | dict(cfg.values.get("hardship", {}))
    method = str(values["preset"])
    tz = ZoneInfo((await queries.school_clock(tx, school_id)).timezone)
    rows = await tx.fetch(
        """SELECT p.person_id, p.created_at, p.amount, p.channel, p.business_date
             FROM payments p JOIN persons s ON s.school_id = p.school_id AND s.id = p.person_id
            WHERE p.school_id = $1 AND p.business_date >= $2 AND p.business_date < $3
              AND p.status = 'booked' AND s.kind = 'student' AND s.status = 'enrolled'
              AND s.account_status = 'active'""",
        school_id,
        month,
        end,
    )
    canteen: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    last_use: dict[int, date] = {}
    for r in rows:
        pid = r["person_id"]
        last_use[pid] = max(last_use.get(pid, r["business_date"]), r["business_date"])
        if r["channel"] == "canteen":
            canteen[pid].append((r["created_at"].astimezone(tz), r["amount"]))
    excluded: dict[int, list[str]] = defaultdict(list)
    for r in await tx.fetch(
        "SELECT person_id, kind FROM monitoring_exclusions WHERE school_id = $1", school_id
    ):
        excluded[r["person_id"]].append(r["kind"])
    days = (end - month).days
    for pid, meals in canteen.items():
        idle = (end - last_use[pid]).days - 1
        m = hardship_rules.month_of(pid, meals, days, idle)
        score: float | None = None
        if method == "score":
            found = hardship_rules.scored(m, values, excluded.get(pid, []))
            c, score = found if found is not None else (None, None)
        else:
            c = hardship_rules.preset(method, m, values, excluded.get(pid, []))
        if c is None:
            continue
        await tx.execute(
            """INSERT INTO hardship_candidates(school_id, month, person_id, method, score, facts,
                                               reasons, what_would_change, amount)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (school_id, month, person_id) DO NOTHING""",
            school_id,
            month,
            pid,
            method,
            score,
            {"meals": m.meals, "canteen_spend": m.canteen_spend, "days": m.days},
            c.reasons,
            c.what_would_change,
            c.amount,
        )
    await audit.record(
        tx,
        actor,
        "hardship.find",
        school_id=school_id,
        target_type="hardship_month",
        target_id=month.isoformat(),
        after={"method": method},
    )
    return await _candidates(tx, school_id, month, classes)


async def _candidates(
    tx: Tx, school_id: int, month: date, classes: list[int] | None
) -> list[CandidateView]:
    rows = await tx.fetch(
        """SELECT h.* FROM hardship_candidates h
             JOIN persons p ON p.school_id = h.school_id AND p.id = h.person_id
            WHERE h.school_id = $1 AND h.month = $2
              AND ($3::bigint[] IS NULL OR p.class_id = ANY($3))
            ORDER BY h.id""",
        school_id,
        month,
        classes,
    )
    return [_view(r) for r in rows]


def _view(r: Any) -> CandidateView:
    return CandidateView(
        r["id"],
        r["person_id"],
        r["method"],
        fmt(r["amount"]),
        list(r["reasons"]),
        list(r["what_would_change"]),
        r["status"],
    )


@owns_transaction
async def do_exclude(tx: Tx, actor: Actor, school_id: int, person_id: int, kind: str) -> None:
    """Record an exclusion: the student's own declared diet, or living off campus (staff)."""
    if kind not in ("diet", "off_campus"):
        raise ValidationFailed("must be diet or off_campus", field="kind")
    if actor.person_id != person_id:
        if not actor.has(*REVIEWERS, school_id=school_id):
            raise Forbidden("only the student or a reviewer records this", code="ROLE_REQUIRED")
        classes = await _scope(tx, actor, school_id)
        class_id = await tx.fetchval(
            "SELECT class_id FROM persons WHERE school_id = $1 AND id = $2", school_id, person_id
        )
        if classes is not None and class_id not in classes:
            raise NotFound("no student with this number in your classes", field="number")
    await tx.execute(
        """INSERT INTO monitoring_exclusions(school_id, person_id, kind, set_by)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
        school_id,
        person_id,
        kind,
        actor.name,
    )
    await audit.record(
        tx,
        actor,
        "hardship.exclude",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        after={"kind": kind},
    )


@owns_transaction
async def do_propose_quiet_subsidy(
    tx: Tx, actor: Actor, school_id: int, candidate_ids: list[int], *, name: str
) -> int:
    """A reviewer proposes help for open candidates: one subsidy batch, pending a second
    person's approval. ``name`` is what the students see on their statement, so a neutral
    name ("伙食补贴") keeps the help quiet. Returns the batch id."""
    classes = await _scope(tx, actor, school_id)
    if actor.user_id is None:
        raise Forbidden("sign in as a person", field="actor")
    if not candidate_ids:
        raise ValidationFailed("choose at least one candidate", field="candidate_ids")
    if not 1 <= len(name) <= 64:
        raise ValidationFailed("must be 1 to 64 characters", field="name")
    rows = await tx.fetch(
        """SELECT h.id, h.person_id, h.amount, h.status FROM hardship_candidates h
             JOIN persons p ON p.school_id = h.school_id AND p.id = h.person_id
            WHERE h.school_id = $1 AND h.id = ANY($2::bigint[])
              AND ($3::bigint[] IS NULL OR p.class_id = ANY($3))
            ORDER BY h.id FOR UPDATE OF h""",
        school_id,
        candidate_ids,
        classes,
    )
    if len(rows) != len(set(candidate_ids)):
        raise ValidationFailed("unknown candidate", field="candidate_ids")
    if any(r["status"] != "open" for r in rows):
        raise Conflict("a candidate was already decided", code="CANDIDATE_DECIDED")
    if len({r["person_id"] for r in rows}) != len(rows):
        raise ValidationFailed("one candidate per student in a batch", field="candidate_ids")
    total = sum(r["amount"] for r in rows)
    batch_id: int = await tx.fetchval(
        """INSERT INTO subsidy_batches(school_id, name, source, rule, total, lines, created_by)
           VALUES ($1, $2, 'hardship', $3, $4, $5, $6) RETURNING id""",
        school_id,
        name,
        {"candidates": [r["id"] for r in rows]},
        total,
        len(rows),
        actor.user_id,
    )
    await tx.executemany(
        "INSERT INTO subsidy_lines(school_id, batch_id, person_id, amount, memo) "
        "VALUES ($1, $2, $3, $4, '')",
        [(school_id, batch_id, r["person_id"], r["amount"]) for r in rows],
    )
    await tx.execute(
        """UPDATE hardship_candidates SET status = 'proposed', batch_id = $3, decided_by = $4
            WHERE school_id = $1 AND id = ANY($2::bigint[])""",
        school_id,
        [r["id"] for r in rows],
        batch_id,
        actor.name,
    )
    await audit.record(
        tx,
        actor,
        "hardship.propose",
        school_id=school_id,
        target_type="subsidy_batch",
        target_id=batch_id,
        after={"candidates": len(rows), "total": fmt(total)},
    )
    return batch_id


@dataclass(frozen=True)
class CandidateRow:
    """A candidate as the review page lists it."""

    id: int
    person_id: int
    number: str
    name: str
    class_name: str
    method: str
    score: float | None
    amount: int
    reasons: list[dict[str, Any]]
    what_would_change: list[dict[str, Any]]
    status: str
    batch_id: int | None


async def candidates(conn: Conn, actor: Actor, school_id: int, month: date) -> list[CandidateRow]:
    """The month's candidates with who they are, for the reviewers (a counsellor: those of
    their own classes)."""
    classes = await _scope(conn, actor, school_id)
    rows = await conn.fetch(
        """SELECT h.*, p.number, p.name, coalesce(c.name, '') AS class_name
             FROM hardship_candidates h
             JOIN persons p ON p.school_id = h.school_id AND p.id = h.person_id
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
            WHERE h.school_id = $1 AND h.month = $2
              AND ($3::bigint[] IS NULL OR p.class_id = ANY($3))
            ORDER BY h.status, p.number""",
        school_id,
        month,
        classes,
    )
    return [
        CandidateRow(
            r["id"],
            r["person_id"],
            r["number"],
            r["name"],
            r["class_name"],
            r["method"],
            float(r["score"]) if r["score"] is not None else None,
            r["amount"],
            list(r["reasons"]),
            list(r["what_would_change"]),
            r["status"],
            r["batch_id"],
        )
        for r in rows
    ]


@dataclass(frozen=True)
class GroupRow:
    """One class in the month's report: shown only when it has at least ``min_group``
    students, so no count points at a handful of people."""

    class_name: str
    students: int
    candidates: int | None  # None: the group is too small to report
    proposed: int | None


async def report(conn: Conn, actor: Actor, school_id: int, month: date) -> list[GroupRow]:
    """Candidates and proposals by class (a counsellor: their own classes)."""
    classes = await _scope(conn, actor, school_id)
    cfg = await queries.config(conn, school_id)
    min_group = int(cfg.get("hardship", "min_group"))
    rows = await conn.fetch(
        """SELECT coalesce(c.name, '') AS class_name, count(*) AS students,
                  count(h.id) AS candidates,
                  count(h.id) FILTER (WHERE h.status = 'proposed') AS proposed
             FROM persons p
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
             LEFT JOIN hardship_candidates h
                    ON h.school_id = p.school_id AND h.person_id = p.id AND h.month = $2
            WHERE p.school_id = $1 AND p.kind = 'student' AND p.status = 'enrolled'
              AND ($3::bigint[] IS NULL OR p.class_id = ANY($3))
            GROUP BY 1 ORDER BY 1""",
        school_id,
        month,
        classes,
    )
    return [
        GroupRow(
            r["class_name"],
            r["students"],
            r["candidates"] if r["students"] >= min_group else None,
            r["proposed"] if r["students"] >= min_group else None,
        )
        for r in rows
    ]


async def student_by_number(conn: Conn, school_id: int, number: str) -> int:
    person_id = await conn.fetchval(
        "SELECT id FROM persons WHERE school_id = $1 AND number = $2 AND kind = 'student'",
        school_id,
        number.strip(),
    )
    if person_id is None:
        raise NotFound("no student with this number", field="number")
    return int(person_id)


async def method_of(conn: Conn, school_id: int) -> tuple[bool, str, dict[str, Any]]:
    """Whether the school switched hidden-hardship help on, its method and its values."""
    cfg = await queries.config(conn, school_id)
    values = DEFAULTS["hardship"] | dict(cfg.values.get("hardship", {}))
    return cfg.on("hardship"), str(values["preset"]), values


@owns_transaction
async def do_withdraw_diet(tx: Tx, actor: Actor, school_id: int, person_id: int) -> None:
    """The student takes back their own declared diet."""
    if actor.person_id != person_id:
        raise Forbidden("only the student withdraws this", code="ROLE_REQUIRED")
    await tx.execute(
        "DELETE FROM monitoring_exclusions WHERE school_id = $1 AND person_id = $2 "
        "AND kind = 'diet'",
        school_id,
        person_id,
    )
    await audit.record(
        tx,
        actor,
        "hardship.exclude.withdraw",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        after={"kind": "diet"},
    )


async def declared_diet(conn: Conn, school_id: int, person_id: int) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM monitoring_exclusions WHERE school_id = $1 AND person_id = $2 "
            "AND kind = 'diet'",
            school_id,
            person_id,
        )
    )
