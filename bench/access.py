"""Door lists at campus scale: 50,000 cards, 200 door controllers.

1. A throwaway PostgreSQL, the bench school, 50,000 students with active cards; 20 gates in one
   door group every student may open, 180 dormitory doors in 18 buildings of 10 doors, every
   student living in one building.
2. compile_s: one refresh (every grant and dorm resolved to entries) plus every controller's
   snapshot built as the server builds it; snapshot_bytes: the largest of them.
3. ``campuscard serve`` (with its worker); 200 simulated controllers share one HTTP client of
   at most 20 connections, take their snapshot, then poll their version every 2 s.
   propagation_s: from the commit of one change (a student's card reported lost) until all 200
   hold the version that carries it.

Prints a summary and, last, one JSON line:
{"snapshot_bytes": …, "compile_s": …, "propagation_s": …}. Goals: ≤ 1,000,000 and ≤ 10.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import bench_school, seed_students, throwaway_database
from bench.payments import MASTER_KEY, start_server, stop_server
from campuscard.access import lists, model
from campuscard.clients.door_reader import DoorController
from campuscard.config import Settings
from campuscard.db.embedded import free_port
from campuscard.db.pool import connect, create_pool
from campuscard.payments.terminals import SignedTerminal, TerminalRow
from campuscard.platform import signing
from campuscard.platform.actors import Actor, Grant

ROOT = Actor(name="bench", grants=frozenset({Grant("platform_admin", None)}))
ALWAYS = {str(d): [["05:30", "23:30"]] for d in range(1, 8)}
GATES, BUILDINGS, DOORS_PER_BUILDING = 20, 18, 10


async def build(url: str, students: int) -> tuple[int, list[str]]:
    conn = await connect(url)
    try:
        school_id = await bench_school(conn)
        await seed_students(conn, school_id, students, cards=True)
        sns = [f"GATE-{i:03d}" for i in range(GATES)] + [
            f"DORM-{b:02d}-{d:02d}" for b in range(BUILDINGS) for d in range(DOORS_PER_BUILDING)
        ]
        await conn.executemany(
            "INSERT INTO terminals(school_id, sn, kind) VALUES ($1, $2, 'door')",
            [(school_id, sn) for sn in sns],
        )
        schedule = await model.save_schedule(
            conn, ROOT, school_id, name="日常", week=ALWAYS, holiday=[["07:00", "22:00"]]
        )
        zone = await model.create_zone(
            conn, ROOT, school_id, name="校园", antipassback="soft", reset_hour=4
        )
        doors: dict[str, int] = {}
        for sn in sns:
            doors[sn] = await model.create_door(
                conn,
                ROOT,
                school_id,
                name=sn,
                terminal_sn=sn,
                zone_id=zone if sn.startswith("GATE") else None,
                exit_reader=True,
            )
        gates = await model.create_group(
            conn, ROOT, school_id, name="校门", door_ids=[doors[s] for s in sns[:GATES]]
        )
        await model.create_grant(
            conn,
            ROOT,
            school_id,
            subject="role",
            subject_value="student",
            group_id=gates,
            schedule_id=schedule,
        )
        for b in range(BUILDINGS):
            group = await model.create_group(
                conn,
                ROOT,
                school_id,
                name=f"{b + 1}号楼",
                door_ids=[doors[f"DORM-{b:02d}-{d:02d}"] for d in range(DOORS_PER_BUILDING)],
            )
            building = await model.create_building(
                conn, ROOT, school_id, name=f"{b + 1}号楼", group_id=group, schedule_id=schedule
            )
            await conn.execute(
                """INSERT INTO access_dorm_assignments(school_id, person_id, building_id)
                   SELECT $1, id, $2 FROM persons
                    WHERE school_id = $1 AND kind = 'student' AND id % $3 = $4""",
                school_id,
                building,
                BUILDINGS,
                b,
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return school_id, sns


async def compile_all(url: str, school_id: int, sns: list[str]) -> tuple[float, int]:
    settings = Settings(
        database_url=url,
        master_key=MASTER_KEY,
        _env_file=None,
    )
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        started = time.perf_counter()
        await lists.do_refresh(pool, school_id, force=True)
        largest = 0
        for sn in sns:
            row = await pool.fetchrow(
                "SELECT id, sn, school_id, kind, status, merchant_id, outlet_id, key_version, "
                "prev_key_version FROM terminals WHERE sn = $1",
                sn,
            )
            assert row is not None
            signed = SignedTerminal(TerminalRow(**dict(row)), 1, "bench", 0, b"")
            answer = await lists.download(pool, settings, signed, base=None, base_hash=None)
            largest = max(largest, len(answer.body))
        return time.perf_counter() - started, largest
    finally:
        await pool.close()


async def propagation(url: str, base: str, school_id: int, sns: list[str], every: float) -> float:
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        readers = [
            DoorController(
                base_url=base,
                sn=sn,
                key=signing.derive_terminal_key(MASTER_KEY, sn, 1),
                client=http,
            )
            for sn in sns
        ]
        await asyncio.gather(*(r.sync() for r in readers))
        conn = await connect(url)
        try:
            await conn.execute(
                """UPDATE cards SET state = 'lost'
                    WHERE id = (SELECT min(id) FROM cards WHERE school_id = $1)""",
                school_id,
            )
            changed = time.monotonic()
            target = await conn.fetchval(
                "SELECT seq FROM access_heads WHERE school_id = $1", school_id
            )
        finally:
            await conn.close()
        before = {r.held.version for r in readers}

        async def follow(r: DoorController) -> float:
            while True:
                await r.tick()
                if r.held.version > max(before):
                    return time.monotonic() - changed
                await asyncio.sleep(every)

        took = await asyncio.gather(*(follow(r) for r in readers))
        print(f"change seq {target}; first reader after {min(took):.2f} s, last {max(took):.2f} s")
        return max(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument("--poll", type=float, default=2.0, help="controllers' poll interval, s")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cc-access-bench-"))
    try:
        with throwaway_database("cc-access-pg-") as (url, _):
            school_id, sns = asyncio.run(build(url, args.students))
            compile_s, snapshot_bytes = asyncio.run(compile_all(url, school_id, sns))
            print(
                f"{len(sns)} controllers, {args.students} cards: compiled in {compile_s:.2f} s, "
                f"largest snapshot {snapshot_bytes} bytes"
            )
            port = free_port()
            server = start_server(url, port, 1, work / "server.log")
            try:
                prop = asyncio.run(
                    propagation(url, f"http://127.0.0.1:{port}", school_id, sns, args.poll)
                )
            finally:
                stop_server(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "snapshot_bytes": snapshot_bytes,
                "compile_s": round(compile_s, 2),
                "propagation_s": round(prop, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
