"""Reader lists: refresh (grants and cards -> entries, a new version, a change log) and what a
door controller downloads (a snapshot, or a delta from the version it holds).

A change to anything a list is made of bumps ``access_heads.seq`` in the changing transaction
(triggers in access/db/). A refresh, run by whichever server process notices first (the
worker's tick, or a reader asking for its version), resolves every grant to card entries,
writes what was added and removed as version N+1, and records the seq it saw; readers poll the
cheap version and fetch a delta. Nothing lives in one process's memory, so a change made while
readers or the worker are down is delivered when they come back. docs/access.md,
decision 0180.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from campuscard.access import rules
from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, owns_transaction, transaction
from campuscard.payments.terminals import SignedTerminal
from campuscard.platform import signing
from campuscard.platform.errors import NotFound

LIST_SIGNATURE_HEADER = "X-CC-List-Signature"
# changes are kept this long for deltas; an older base gets a snapshot
CHANGES_KEPT = timedelta(days=14)

# Every live grant resolved to the active cards it reaches, and every dorm assignment to its
# building's doors: the desired entries. Windows in epoch minutes, 0 = unbounded.
DESIRED = """
WITH g AS (
    SELECT * FROM access_grants
     WHERE school_id = $1 AND (valid_until IS NULL OR valid_until > now())
), subjects AS (
    SELECT g.id, p.id AS person_id FROM g JOIN persons p
        ON p.school_id = g.school_id AND p.id = g.person_id AND p.status = 'enrolled'
     WHERE g.subject = 'person'
    UNION ALL
    SELECT g.id, p.id FROM g JOIN persons p
        ON p.school_id = g.school_id AND p.class_id = g.class_id AND p.status = 'enrolled'
     WHERE g.subject = 'class'
    UNION ALL
    SELECT g.id, p.id FROM g JOIN persons p
        ON p.school_id = g.school_id AND p.kind = g.role AND p.status = 'enrolled'
     WHERE g.subject = 'role'
), live AS (
    SELECT c.person_id, c.number, c.kind FROM cards c
     WHERE c.school_id = $1 AND c.state = 'active'
       AND (c.expires_on IS NULL OR c.expires_on >= cc_business_date($1))
)
SELECT DISTINCT g.group_id, live.number AS card_number, g.schedule_id,
       coalesce(floor(extract(epoch FROM g.valid_from) / 60)::bigint, 0) AS from_min,
       coalesce(floor(extract(epoch FROM g.valid_until) / 60)::bigint, 0) AS until_min
  FROM subjects s JOIN g ON g.id = s.id JOIN live ON live.person_id = s.person_id
UNION
SELECT g.group_id, live.number, g.schedule_id,
       coalesce(floor(extract(epoch FROM g.valid_from) / 60)::bigint, 0),
       coalesce(floor(extract(epoch FROM g.valid_until) / 60)::bigint, 0)
  FROM g JOIN live ON live.kind = g.card_kind
 WHERE g.subject = 'card_kind'
UNION
SELECT b.group_id, live.number, b.schedule_id,
       coalesce(floor(extract(epoch FROM a.valid_from) / 60)::bigint, 0),
       coalesce(floor(extract(epoch FROM a.valid_until) / 60)::bigint, 0)
  FROM access_dorm_assignments a
  JOIN access_buildings b ON b.school_id = a.school_id AND b.id = a.building_id
  JOIN persons p ON p.school_id = a.school_id AND p.id = a.person_id AND p.status = 'enrolled'
  JOIN live ON live.person_id = a.person_id
 WHERE a.school_id = $1 AND (a.valid_until IS NULL OR a.valid_until > now())
"""

REFRESH = f"""
WITH desired AS ({DESIRED}),
gone AS (
    DELETE FROM access_entries e
     WHERE e.school_id = $1
       AND NOT EXISTS (SELECT 1 FROM desired d
                        WHERE d.group_id = e.group_id AND d.card_number = e.card_number
                          AND d.schedule_id = e.schedule_id AND d.from_min = e.from_min
                          AND d.until_min = e.until_min)
    RETURNING e.group_id, e.card_number, e.schedule_id, e.from_min, e.until_min
),
added AS (
    INSERT INTO access_entries(school_id, group_id, card_number, schedule_id, from_min,
                               until_min, version)
    SELECT $1, d.group_id, d.card_number, d.schedule_id, d.from_min, d.until_min, $2
      FROM desired d
     WHERE NOT EXISTS (SELECT 1 FROM access_entries e
                        WHERE e.school_id = $1 AND e.group_id = d.group_id
                          AND e.card_number = d.card_number AND e.schedule_id = d.schedule_id
                          AND e.from_min = d.from_min AND e.until_min = d.until_min)
    RETURNING group_id, card_number, schedule_id, from_min, until_min
)
INSERT INTO access_changes(school_id, version, op, group_id, card_number, schedule_id,
                           from_min, until_min)
SELECT $1, $2, 'remove', * FROM gone
UNION ALL
SELECT $1, $2, 'add', * FROM added
RETURNING op, group_id, card_number, schedule_id, from_min, until_min
"""


@dataclass(frozen=True)
class Refreshed:
    version: int
    changed_entries: int
    refreshed: bool


async def school_today(conn: Conn, school_id: int) -> tuple[date, str]:
    row = await conn.fetchrow(
        "SELECT cc_business_date($1) AS today, timezone FROM schools WHERE id = $1", school_id
    )
    if row is None:
        raise NotFound("no such school", field="school")
    return row["today"], row["timezone"]


async def _refresh(tx: Tx, school_id: int, *, force: bool, wait: bool) -> Refreshed:
    seq = await tx.fetchval("SELECT seq FROM access_heads WHERE school_id = $1", school_id) or 0
    await tx.execute(
        "INSERT INTO access_versions(school_id) VALUES ($1) ON CONFLICT DO NOTHING", school_id
    )
    lock = "FOR UPDATE" if wait else "FOR UPDATE SKIP LOCKED"
    head = await tx.fetchrow(
        f"SELECT version, refreshed_seq, horizon_start FROM access_versions "
        f"WHERE school_id = $1 {lock}",
        school_id,
    )
    if head is None:  # another process is refreshing this school right now
        current = await tx.fetchval(
            "SELECT version FROM access_versions WHERE school_id = $1", school_id
        )
        return Refreshed(int(current), 0, False)
    today, _tz = await school_today(tx, school_id)
    if not force and head["refreshed_seq"] >= seq and head["horizon_start"] == today:
        return Refreshed(head["version"], 0, False)
    version = head["version"] + 1
    # a set operation over every card: hash joins are always right, and a planner reading
    # stale statistics (a fresh import of 50,000 cards) would pick nested loops that take
    # minutes instead of a second
    await tx.execute("SET LOCAL enable_nestloop = off")
    changes = await tx.fetch(REFRESH, school_id, version)
    deltas: dict[int, list[int]] = {}
    for c in changes:
        h = rules.entry_hash(
            c["group_id"], c["card_number"], c["schedule_id"], c["from_min"], c["until_min"]
        )
        sign = 1 if c["op"] == "add" else -1
        d = deltas.setdefault(c["group_id"], [0, 0])
        d[0] += sign
        d[1] = (d[1] + sign * h) % rules.HASH_MOD
    if deltas:
        await tx.executemany(
            """INSERT INTO access_group_heads(school_id, group_id, entries, set_hash)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (school_id, group_id) DO UPDATE
                  SET entries = access_group_heads.entries + EXCLUDED.entries,
                      set_hash = mod(access_group_heads.set_hash + EXCLUDED.set_hash,
                                     18446744073709551616)""",
            [(school_id, g, n, h) for g, (n, h) in deltas.items()],
        )
    await tx.execute(
        """UPDATE access_versions SET version = $2, refreshed_seq = $3, horizon_start = $4,
                  refreshed_at = now() WHERE school_id = $1""",
        school_id,
        version,
        seq,
        today,
    )
    return Refreshed(version, len(changes), True)


@owns_transaction
async def do_refresh(tx: Tx, school_id: int, *, force: bool = False) -> Refreshed:
    """Bring the school's entries up to date; waits for a refresh already running."""
    return await _refresh(tx, school_id, force=force, wait=True)


@owns_transaction
async def refresh_if_stale(tx: Tx, school_id: int) -> Refreshed:
    """The readers' path: refresh when something changed, unless another process is already
    at it (then answer the version that is committed; the reader asks again shortly)."""
    return await _refresh(tx, school_id, force=False, wait=False)


async def refresh_all(pool: PgPool) -> int:
    """The worker's tick: every school with changes (or a new day) gets a new version."""
    schools = await pool.fetch(
        """SELECT s.id FROM schools s
             LEFT JOIN access_heads h ON h.school_id = s.id
             LEFT JOIN access_versions v ON v.school_id = s.id
            WHERE h.seq IS NOT NULL
              AND (v.school_id IS NULL OR v.refreshed_seq < h.seq
                   OR v.horizon_start IS DISTINCT FROM cc_business_date(s.id))"""
    )
    done = 0
    for s in schools:
        if (await do_refresh(pool, s["id"])).refreshed:
            done += 1
    return done


async def prune_changes(pool: PgPool) -> int:
    """Forget changes older than CHANGES_KEPT; a reader behind them gets a snapshot."""
    async with transaction(pool) as tx:
        rows = await tx.fetch(
            """WITH old AS (
                   DELETE FROM access_changes WHERE created_at < now() - $1::interval
                   RETURNING school_id, version)
               SELECT school_id, max(version) AS upto FROM old GROUP BY school_id""",
            CHANGES_KEPT,
        )
        for r in rows:
            await tx.execute(
                """INSERT INTO access_delta_floor(school_id, version) VALUES ($1, $2)
                   ON CONFLICT (school_id) DO UPDATE
                      SET version = greatest(access_delta_floor.version, EXCLUDED.version)""",
                r["school_id"],
                r["upto"],
            )
        await tx.execute(
            "DELETE FROM access_served WHERE served_at < now() - $1::interval", CHANGES_KEPT
        )
    return len(rows)


# What a controller downloads ---------------------------------------------------------------


@dataclass(frozen=True)
class Door:
    id: int
    name: str
    exit_reader: bool
    apb_seconds: int
    held_open_seconds: int
    zone: dict[str, Any] | None
    groups: list[int]


async def door_of_terminal(conn: Conn, school_id: int, terminal_id: int) -> Door:
    row = await conn.fetchrow(
        """SELECT d.id, d.name, d.exit_reader, d.apb_seconds, d.held_open_seconds,
                  z.id AS zone_id, z.name AS zone_name, z.antipassback, z.reset_hour,
                  ARRAY(SELECT gd.group_id FROM access_group_doors gd
                         WHERE gd.school_id = $1 AND gd.door_id = d.id
                         ORDER BY gd.group_id) AS groups
             FROM access_doors d
             LEFT JOIN access_zones z ON z.school_id = d.school_id AND z.id = d.zone_id
            WHERE d.school_id = $1 AND d.terminal_id = $2""",
        school_id,
        terminal_id,
    )
    if row is None:
        raise NotFound(
            "this terminal is not the controller of any door", field=signing.HEADER_TERMINAL
        )
    zone = (
        {
            "id": row["zone_id"],
            "name": row["zone_name"],
            "antipassback": row["antipassback"],
            "reset_hour": row["reset_hour"],
        }
        if row["zone_id"] is not None
        else None
    )
    return Door(
        row["id"],
        row["name"],
        row["exit_reader"],
        row["apb_seconds"],
        row["held_open_seconds"],
        zone,
        list(row["groups"]),
    )


async def school_days(conn: Conn, school_id: int, start: date, days: int) -> dict[date, int]:
    rows = await conn.fetch(
        """SELECT day, kind, as_weekday FROM access_calendar_days
            WHERE school_id = $1 AND day >= $2 AND day < $3""",
        school_id,
        start,
        start + timedelta(days=days),
    )
    return {
        r["day"]: rules.HOLIDAY if r["kind"] == "holiday" else int(r["as_weekday"]) for r in rows
    }


async def reader_config(conn: Conn, school_id: int, door: Door) -> dict[str, Any]:
    """Everything but the entries: the door, its zone, the schedules and the calendar."""
    row = await conn.fetchrow(
        """SELECT s.timezone, v.horizon_start FROM schools s
             LEFT JOIN access_versions v ON v.school_id = s.id WHERE s.id = $1""",
        school_id,
    )
    assert row is not None
    start: date = row["horizon_start"] or (await school_today(conn, school_id))[0]
    start -= timedelta(days=1)  # a night that began yesterday still counts
    own = await school_days(conn, school_id, start, rules.HORIZON_DAYS + 1)
    schedules = await conn.fetch(
        "SELECT id, week, holiday FROM access_schedules WHERE school_id = $1 ORDER BY id",
        school_id,
    )
    return {
        "door": {
            "id": door.id,
            "name": door.name,
            "exit_reader": door.exit_reader,
            "apb_seconds": door.apb_seconds,
            "held_open_seconds": door.held_open_seconds,
            "zone": door.zone,
        },
        "groups": door.groups,
        "timezone": row["timezone"],
        "horizon": [start.isoformat(), (start + timedelta(days=rules.HORIZON_DAYS)).isoformat()],
        "days": rules.day_kinds(start, rules.HORIZON_DAYS + 1, own),
        "schedules": {
            str(s["id"]): rules.schedule_wire(
                rules.parse_schedule(_json(s["week"]), _json(s["holiday"]))
            )
            for s in schedules
        },
    }


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def entries_hash(conn: Conn, school_id: int, groups: list[int]) -> int:
    total = await conn.fetchval(
        """SELECT coalesce(sum(set_hash), 0) FROM access_group_heads
            WHERE school_id = $1 AND group_id = ANY($2::bigint[])""",
        school_id,
        groups,
    )
    return int(total) % rules.HASH_MOD


@dataclass(frozen=True)
class ListAnswer:
    body: bytes
    signature: str
    mode: str
    version: int


def sign_list(settings: Settings, signed: SignedTerminal, body: bytes) -> str:
    key = signing.derive_terminal_key(
        settings.master_key.get_secret_value(), signed.terminal.sn, signed.key_version
    )
    return hmac.new(key, body, hashlib.sha256).hexdigest()


async def current_version(pool: PgPool, school_id: int) -> int:
    """The version a reader should hold; refreshes first when something changed."""
    return (await refresh_if_stale(pool, school_id)).version


async def download(
    pool: PgPool,
    settings: Settings,
    signed: SignedTerminal,
    *,
    base: int | None,
    base_hash: str | None,
) -> ListAnswer:
    """The controller's list at the current version: ``current`` when it already holds it, a
    delta from ``base`` when it was given ``base`` with the same door groups, else a snapshot."""
    school_id = signed.school_id
    await refresh_if_stale(pool, school_id)
    async with transaction(pool, isolation="repeatable_read", readonly=True) as tx:
        version = await tx.fetchval(
            "SELECT version FROM access_versions WHERE school_id = $1", school_id
        )
        version = int(version or 0)
        door = await door_of_terminal(tx, school_id, signed.id)
        config = await reader_config(tx, school_id, door)
        chash = rules.content_hash(await entries_hash(tx, school_id, door.groups), config)
        served = None
        if base is not None:
            served = await tx.fetchrow(
                """SELECT groups, content_hash FROM access_served
                    WHERE school_id = $1 AND terminal_id = $2 AND version = $3""",
                school_id,
                signed.id,
                base,
            )
        floor = await tx.fetchval(
            "SELECT version FROM access_delta_floor WHERE school_id = $1", school_id
        )
        usable = (
            served is not None
            and list(served["groups"]) == door.groups
            and (base_hash is None or base_hash == served["content_hash"])
            and base is not None
            and base <= version
            and (floor is None or base >= floor)
        )
        payload: dict[str, Any] = {
            "version": version,
            "content_hash": chash,
            "config": config,
        }
        if usable and base == version and base_hash == chash:
            payload = {"mode": "current", "version": version, "content_hash": chash}
        elif usable:
            assert base is not None
            rows = await tx.fetch(
                """SELECT group_id, schedule_id, from_min, until_min, card_number,
                          sum(CASE op WHEN 'add' THEN 1 ELSE -1 END) AS net
                     FROM access_changes
                    WHERE school_id = $1 AND version > $2 AND version <= $3
                      AND group_id = ANY($4::bigint[])
                    GROUP BY 1, 2, 3, 4, 5 HAVING sum(CASE op WHEN 'add' THEN 1 ELSE -1 END) <> 0
                    ORDER BY 1, 2, 3, 4, 5""",
                school_id,
                base,
                version,
                door.groups,
            )
            payload |= {
                "mode": "delta",
                "base": base,
                "add": rules.grouped(tuple(r.values())[:5] for r in rows if r["net"] > 0),
                "remove": rules.grouped(tuple(r.values())[:5] for r in rows if r["net"] < 0),
            }
        else:
            rows = await tx.fetch(
                """SELECT group_id, schedule_id, from_min, until_min, card_number
                     FROM access_entries
                    WHERE school_id = $1 AND group_id = ANY($2::bigint[])
                    ORDER BY 1, 2, 3, 4, 5""",
                school_id,
                door.groups,
            )
            payload |= {"mode": "snapshot", "entries": rules.grouped(tuple(r) for r in rows)}
    await _record_served(pool, school_id, signed.id, version, door.groups, chash)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return ListAnswer(body, sign_list(settings, signed, body), payload["mode"], version)


@owns_transaction
async def _record_served(
    tx: Tx, school_id: int, terminal_id: int, version: int, groups: list[int], chash: str
) -> None:
    await tx.execute(
        """INSERT INTO access_served(school_id, terminal_id, version, groups, content_hash)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (school_id, terminal_id, version) DO UPDATE
              SET groups = EXCLUDED.groups, content_hash = EXCLUDED.content_hash,
                  served_at = EXCLUDED.served_at""",
        school_id,
        terminal_id,
        version,
        groups,
        chash,
    )


def local_now(tz: str) -> datetime:
    return datetime.now(ZoneInfo(tz))
