"""A class's attendance as the teacher reads it: the daily sheet (each student's status in
each period), the month's summary and its export, and the teacher's corrections.

Sheets are worked out when read, from the door events (first granted swipe at one of the
point's doors in the period's window), approved leaves and the teacher's marks, so an event a
reader uploads late (it was offline) still counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from openpyxl import Workbook
from openpyxl.styles import Font

from campuscard.access import rules as access_rules
from campuscard.access.lists import school_days
from campuscard.attendance import rules
from campuscard.attendance.model import check_class
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.documents import exports
from campuscard.platform import audit, i18n
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound, ValidationFailed

MAX_DAYS = 62


@dataclass(frozen=True)
class Cell:
    rule_id: int
    status: str  # present, late, absent, leave, or pending before the period closes
    signed_at: datetime | None = None
    marked: bool = False  # the teacher's own mark
    note: str = ""


@dataclass
class Row:
    person_id: int
    number: str
    name: str
    cells: list[Cell] = field(default_factory=list)


@dataclass(frozen=True)
class PeriodOut:
    id: int
    name: str
    point: str
    opens_at: str
    on_time_until: str
    closes_at: str


@dataclass
class Sheet:
    class_id: int
    class_name: str
    day: date
    day_kind: int  # 0 holiday, else the weekday it runs as
    periods: list[PeriodOut]
    rows: list[Row]
    counts: dict[str, int]


@dataclass
class SummaryRow:
    person_id: int
    number: str
    name: str
    present: int = 0
    late: int = 0
    absent: int = 0
    leave: int = 0

    @property
    def periods(self) -> int:
        return self.present + self.late + self.absent + self.leave


@dataclass
class Summary:
    class_id: int
    class_name: str
    month: str
    rows: list[SummaryRow]
    totals: dict[str, int]
    days: list[date]  # the days in the month so far with at least one period


@dataclass
class _Data:
    tz: ZoneInfo
    periods: list[tuple[asyncpg.Record, rules.Period]]
    students: list[Row]
    kinds: dict[str, int]
    first: dict[tuple[int, date, int], datetime]
    leaves: dict[int, list[tuple[datetime, datetime]]]
    marks: dict[tuple[int, date, int], tuple[str, str]]


async def _load(conn: Conn, school_id: int, class_id: int, since: date, until: date) -> _Data:
    """Everything a range of days of one class's sheets is made of, in five reads."""
    tz = ZoneInfo(await conn.fetchval("SELECT timezone FROM schools WHERE id = $1", school_id))
    rule_rows = await conn.fetch(
        """SELECT r.id, r.name, r.point_id, r.weekdays, r.opens_at, r.on_time_until,
                  r.closes_at, r.direction, r.on_holidays, r.notify_guardians, r.created_at,
                  p.name AS point
             FROM attendance_rules r
             JOIN attendance_points p ON p.school_id = r.school_id AND p.id = r.point_id
            WHERE r.school_id = $1 AND r.class_id = $2
              AND (r.active OR EXISTS (SELECT 1 FROM attendance_marks m
                                        WHERE m.school_id = r.school_id AND m.rule_id = r.id
                                          AND m.day BETWEEN $3 AND $4))
            ORDER BY r.opens_at, r.id""",
        school_id,
        class_id,
        since,
        until,
    )
    periods = [
        (
            r,
            rules.Period(
                id=r["id"],
                name=r["name"],
                point_id=r["point_id"],
                weekdays=frozenset(r["weekdays"]),
                opens_at=r["opens_at"],
                on_time_until=r["on_time_until"],
                closes_at=r["closes_at"],
                direction=r["direction"],
                on_holidays=r["on_holidays"],
                notify_guardians=r["notify_guardians"],
            ),
        )
        for r in rule_rows
    ]
    students = [
        Row(r["id"], r["number"], r["name"])
        for r in await conn.fetch(
            """SELECT id, number, name FROM persons
                WHERE school_id = $1 AND class_id = $2 AND kind = 'student'
                  AND status = 'enrolled' ORDER BY number""",
            school_id,
            class_id,
        )
    ]
    ndays = (until - since).days + 1
    kinds = access_rules.day_kinds(since, ndays, await school_days(conn, school_id, since, ndays))
    start = datetime.combine(since, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    person_ids = [s.person_id for s in students]
    first: dict[tuple[int, date, int], datetime] = {}
    if periods and person_ids:
        events = await conn.fetch(
            """SELECT e.person_id, e.occurred_at, e.direction, pd.point_id
                 FROM access_events e
                 JOIN attendance_point_doors pd ON pd.school_id = e.school_id
                                               AND pd.door_id = e.door_id
                WHERE e.school_id = $1 AND e.kind = 'granted'
                  AND e.occurred_at >= $2 AND e.occurred_at < $3
                  AND e.person_id = ANY($4::bigint[])
                  AND pd.point_id = ANY($5::bigint[])
                ORDER BY e.occurred_at""",
            school_id,
            start,
            end,
            person_ids,
            sorted({p.point_id for _, p in periods}),
        )
        for e in events:
            at = e["occurred_at"]
            day = at.astimezone(tz).date()
            for _, p in periods:
                if p.point_id != e["point_id"]:
                    continue
                if p.direction is not None and e["direction"] not in (None, p.direction):
                    continue
                win = rules.window(p, day, tz)
                if win.opens <= at < win.closes:
                    first.setdefault((p.id, day, e["person_id"]), at)
    leaves: dict[int, list[tuple[datetime, datetime]]] = {}
    for r in await conn.fetch(
        """SELECT person_id, starts_at, ends_at FROM attendance_leaves
            WHERE school_id = $1 AND state = 'approved' AND person_id = ANY($2::bigint[])
              AND starts_at < $4 AND ends_at > $3""",
        school_id,
        person_ids,
        start,
        end,
    ):
        leaves.setdefault(r["person_id"], []).append((r["starts_at"], r["ends_at"]))
    marks = {
        (r["rule_id"], r["day"], r["person_id"]): (r["status"], r["note"])
        for r in await conn.fetch(
            """SELECT m.rule_id, m.day, m.person_id, m.status, m.note
                 FROM attendance_marks m
                 JOIN attendance_rules r ON r.school_id = m.school_id AND r.id = m.rule_id
                WHERE m.school_id = $1 AND r.class_id = $2 AND m.day BETWEEN $3 AND $4""",
            school_id,
            class_id,
            since,
            until,
        )
    }
    return _Data(tz, periods, students, kinds, first, leaves, marks)


def _cells(
    data: _Data, day: date, now: datetime
) -> tuple[list[tuple[asyncpg.Record, rules.Period]], dict[int, list[Cell]]]:
    kind = access_rules.kind_of(day, data.kinds)
    # a period counts from its first occurrence after the rule was made
    todays = [
        (r, p)
        for r, p in data.periods
        if rules.applies(p, kind) and rules.window(p, day, data.tz).opens >= r["created_at"]
    ]
    out: dict[int, list[Cell]] = {}
    for s in data.students:
        cells = []
        for _, p in todays:
            win = rules.window(p, day, data.tz)
            signed = data.first.get((p.id, day, s.person_id))
            on_leave = any(
                a < win.closes and b > win.opens for a, b in data.leaves.get(s.person_id, [])
            )
            mark, note = data.marks.get((p.id, day, s.person_id), (None, ""))
            cells.append(
                Cell(
                    p.id,
                    rules.status(win, signed, on_leave=on_leave, mark=mark, now=now),
                    signed,
                    mark is not None,
                    note,
                )
            )
        out[s.person_id] = cells
    return todays, out


async def daily_sheet(conn: Conn, actor: Actor, school_id: int, class_id: int, day: date) -> Sheet:
    """One class, one day: each student's status in each period that runs that day."""
    klass = await check_class(conn, actor, school_id, class_id)
    data = await _load(conn, school_id, class_id, day, day)
    todays, cells = _cells(data, day, datetime.now(UTC))
    rows = []
    counts = dict.fromkeys((*rules.STATUSES, rules.PENDING), 0)
    for s in data.students:
        s.cells = cells[s.person_id]
        for c in s.cells:
            counts[c.status] += 1
        rows.append(s)
    periods = [
        PeriodOut(
            p.id,
            p.name,
            r["point"],
            p.opens_at.isoformat("minutes"),
            p.on_time_until.isoformat("minutes"),
            p.closes_at.isoformat("minutes"),
        )
        for r, p in todays
    ]
    return Sheet(
        class_id,
        klass["name"],
        day,
        access_rules.kind_of(day, data.kinds),
        periods,
        rows,
        counts,
    )


Days = list[tuple[date, list[tuple[asyncpg.Record, rules.Period]], dict[int, list[Cell]]]]


async def _month(conn: Conn, school_id: int, class_id: int, month: str) -> tuple[_Data, Days]:
    first, after = rules.month_range(month)
    now = datetime.now(UTC)
    data = await _load(conn, school_id, class_id, first, after - timedelta(days=1))
    today = now.astimezone(data.tz).date()
    days: Days = []
    day = first
    while day < after and day <= today:
        todays, cells = _cells(data, day, now)
        if todays:
            days.append((day, todays, cells))
        day += timedelta(days=1)
    return data, days


async def month_summary(
    conn: Conn, actor: Actor, school_id: int, class_id: int, month: str
) -> Summary:
    """Each student's periods of the month so far by status (pending ones not counted)."""
    klass = await check_class(conn, actor, school_id, class_id)
    data, days = await _month(conn, school_id, class_id, month)
    rows = {s.person_id: SummaryRow(s.person_id, s.number, s.name) for s in data.students}
    for _, _, cells in days:
        for person_id, row_cells in cells.items():
            for c in row_cells:
                if c.status in rules.STATUSES:
                    setattr(rows[person_id], c.status, getattr(rows[person_id], c.status) + 1)
    totals = {k: sum(getattr(r, k) for r in rows.values()) for k in rules.STATUSES}
    return Summary(
        class_id, klass["name"], month, list(rows.values()), totals, [d for d, _, _ in days]
    )


async def month_workbook(
    conn: Conn, actor: Actor, school_id: int, class_id: int, month: str, locale: str
) -> bytes:
    """The month as a workbook: the summary, and every student's every period day by day;
    sheet names, headers and statuses in ``locale`` (the catalogs' ``att.*`` texts)."""

    def t(key: str) -> str:
        return i18n.translate(locale, key)

    summary = await month_summary(conn, actor, school_id, class_id, month)
    data, days = await _month(conn, school_id, class_id, month)
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = t("att.sheet.summary")
    ws.append(
        [
            t("att.col.number"),
            t("att.col.name"),
            *(t(f"att.status.{k}") for k in ("present", "late", "absent", "leave")),
        ]
    )
    for r in summary.rows:
        ws.append([r.number, r.name, r.present, r.late, r.absent, r.leave])
    detail = book.create_sheet(t("att.sheet.detail"))
    detail.append(
        [
            t("att.col.date"),
            t("att.col.period"),
            t("att.col.number"),
            t("att.col.name"),
            t("att.col.status"),
            t("att.col.signed_in"),
        ]
    )
    for day, todays, cells in days:
        names = {p.id: p.name for _, p in todays}
        for s in data.students:
            for c in cells[s.person_id]:
                signed = c.signed_at.astimezone(data.tz).strftime("%H:%M") if c.signed_at else ""
                detail.append(
                    [
                        day.isoformat(),
                        names[c.rule_id],
                        s.number,
                        s.name,
                        t(f"att.status.{c.status}"),
                        signed,
                    ]
                )
    for sheet in book.worksheets:
        for cell in sheet[1]:
            cell.font = Font(bold=True)
    return exports.workbook_bytes(book)


@owns_transaction
async def set_mark(
    tx: Tx,
    actor: Actor,
    school_id: int,
    class_id: int,
    *,
    rule_id: int,
    day: date,
    person_id: int,
    status: str | None,
    note: str = "",
) -> None:
    """The teacher's correction of one student's period; ``status`` None removes it (the
    readers' word stands again)."""
    await check_class(tx, actor, school_id, class_id)
    if status is not None and status not in rules.STATUSES:
        raise ValidationFailed(f"status is one of {', '.join(rules.STATUSES)}", field="status")
    ok = await tx.fetchval(
        "SELECT 1 FROM attendance_rules WHERE school_id = $1 AND id = $2 AND class_id = $3",
        school_id,
        rule_id,
        class_id,
    )
    if not ok:
        raise NotFound("no such period for this class", field="rule_id")
    student = await tx.fetchval(
        """SELECT 1 FROM persons WHERE school_id = $1 AND id = $2 AND class_id = $3
              AND kind = 'student'""",
        school_id,
        person_id,
        class_id,
    )
    if not student:
        raise NotFound("no such student in this class", field="person_id")
    today = await tx.fetchval(
        "SELECT (now() AT TIME ZONE timezone)::date FROM schools WHERE id = $1", school_id
    )
    if day > today:
        raise ValidationFailed("a mark is for today or a day before", field="day")
    if (today - day).days > MAX_DAYS:
        raise ValidationFailed(f"a mark reaches back at most {MAX_DAYS} days", field="day")
    before = await tx.fetchrow(
        """SELECT status, note FROM attendance_marks
            WHERE school_id = $1 AND rule_id = $2 AND day = $3 AND person_id = $4""",
        school_id,
        rule_id,
        day,
        person_id,
    )
    if status is None:
        await tx.execute(
            """DELETE FROM attendance_marks
                WHERE school_id = $1 AND rule_id = $2 AND day = $3 AND person_id = $4""",
            school_id,
            rule_id,
            day,
            person_id,
        )
    else:
        await tx.execute(
            """INSERT INTO attendance_marks(school_id, rule_id, day, person_id, status, note,
                                            set_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (school_id, rule_id, day, person_id) DO UPDATE
                  SET status = EXCLUDED.status, note = EXCLUDED.note,
                      set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at""",
            school_id,
            rule_id,
            day,
            person_id,
            status,
            note,
            actor.name,
        )
    await audit.record(
        tx,
        actor,
        "attendance.mark",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        before=dict(before) if before else None,
        after={"rule_id": rule_id, "day": day.isoformat(), "status": status, "note": note},
    )


async def period_statuses(
    conn: Conn, school_id: int, class_id: int, rule_id: int, day: date, now: datetime
) -> list[tuple[Row, Cell]]:
    """Each student's status in one period of one day (for the closing job; no actor)."""
    data = await _load(conn, school_id, class_id, day, day)
    _, cells = _cells(data, day, now)
    return [(s, c) for s in data.students for c in cells[s.person_id] if c.rule_id == rule_id]
