"""Door events from controllers: stored exactly once by (controller, sequence), in any order
and any number of times; zone anti-passback across doors is checked here, on the server's
view of every door of the zone (each controller decides alone from its own passages)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from campuscard.access import rules
from campuscard.db.tx import Tx, owns_transaction
from campuscard.payments.terminals import SignedTerminal, record_nonce
from campuscard.platform.errors import NotFound

KINDS = ("granted", "denied", "forced", "held_open")
MAX_BATCH = 500


@dataclass(frozen=True)
class DoorEvent:
    seq: int
    at: datetime
    kind: str
    direction: str | None = None
    card_number: str | None = None
    reason: str = ""
    flag: str = ""
    list_version: int | None = None


@dataclass(frozen=True)
class UploadResult:
    received: int
    stored: int
    duplicates: int


@owns_transaction
async def do_upload(tx: Tx, signed: SignedTerminal, events: list[DoorEvent]) -> UploadResult:
    """Store the new events of this controller; ones it sent before are acknowledged again."""
    await record_nonce(tx, signed)
    school_id = signed.school_id
    door = await tx.fetchrow(
        """SELECT d.id, d.zone_id, d.apb_seconds, z.antipassback, z.reset_hour, s.timezone
             FROM access_doors d
             JOIN schools s ON s.id = d.school_id
             LEFT JOIN access_zones z ON z.school_id = d.school_id AND z.id = d.zone_id
            WHERE d.school_id = $1 AND d.terminal_id = $2""",
        school_id,
        signed.id,
    )
    if door is None:
        raise NotFound("this terminal is not the controller of any door", field="X-CC-Terminal")
    stored = 0
    for e in sorted(events, key=lambda e: (e.at, e.seq)):
        flag = e.flag
        if (
            e.kind == "granted"
            and door["zone_id"] is not None
            and door["antipassback"] != "off"
            and e.card_number
            and e.direction
            and not flag
        ):
            flag = await _zone_flag(tx, school_id, dict(door), e)
        inserted = await tx.fetchval(
            """INSERT INTO access_events(school_id, terminal_id, seq, door_id, kind, direction,
                                         card_number, person_id, reason, flag, list_version,
                                         occurred_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7,
                       (SELECT person_id FROM cards WHERE school_id = $1 AND number = $7),
                       $8, $9, $10, $11)
               ON CONFLICT (school_id, terminal_id, seq) DO NOTHING RETURNING seq""",
            school_id,
            signed.id,
            e.seq,
            door["id"],
            e.kind,
            e.direction,
            e.card_number,
            e.reason,
            flag,
            e.list_version,
            e.at,
        )
        if inserted is None:
            continue
        stored += 1
        if e.kind == "granted" and door["zone_id"] is not None and e.card_number and e.direction:
            await tx.execute(
                """INSERT INTO access_presence(school_id, zone_id, card_number, direction,
                                               door_id, at)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (school_id, zone_id, card_number) DO UPDATE
                      SET direction = EXCLUDED.direction, door_id = EXCLUDED.door_id,
                          at = EXCLUDED.at
                    WHERE access_presence.at < EXCLUDED.at""",
                school_id,
                door["zone_id"],
                e.card_number,
                e.direction,
                door["id"],
                e.at,
            )
    return UploadResult(len(events), stored, len(events) - stored)


async def _zone_flag(tx: Tx, school_id: int, door: dict[str, Any], e: DoorEvent) -> str:
    """The same direction twice in a zone, through another door since the reset: flagged."""
    last = await tx.fetchrow(
        """SELECT direction, door_id, at FROM access_presence
            WHERE school_id = $1 AND zone_id = $2 AND card_number = $3""",
        school_id,
        door["zone_id"],
        e.card_number,
    )
    if last is None or last["at"] >= e.at or last["direction"] != e.direction:
        return ""
    reset = rules.last_reset(e.at, ZoneInfo(door["timezone"]), door["reset_hour"])
    if last["at"] < reset:
        return ""
    window = door["apb_seconds"]
    if window and (e.at - last["at"]).total_seconds() >= window:
        return ""
    return "antipassback_zone"
