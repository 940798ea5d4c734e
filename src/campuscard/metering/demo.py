"""The demo campus's metered devices: the logistics centre's shower, laundry machine and campus
bus, with a few sessions of history and one shower running (money on hold)."""

from __future__ import annotations

from typing import Any

from campuscard.db.tx import Tx
from campuscard.metering import sessions

TARIFFS: dict[str, dict[str, Any]] = {
    # 0.5 fen a second for the first 10 minutes of a day, 1 fen after 20 minutes 2 fen
    "SHOWER-DEMO-001": {
        "kind": "shower",
        "ladders": {
            "student": [
                {"upto": 600, "rate": 500},
                {"upto": 1200, "rate": 1000},
                {"upto": None, "rate": 2000},
            ],
            "staff": [{"upto": None, "rate": 1000}],
        },
        "session_cap": 1000,
        "daily_amount_cap": 3000,
        "daily_count_cap": 3,
        "min_gap_seconds": 300,
        "max_session_units": 1800,
    },
    "LAUNDRY-DEMO-001": {
        "kind": "laundry",
        "ladders": {"student": [{"upto": None, "rate": 400_000}]},  # 4.00 a cycle
        "session_cap": 800,
        "daily_amount_cap": 2400,
        "daily_count_cap": 3,
        "min_gap_seconds": 0,
        "max_session_units": 2,
    },
    "BUS-DEMO-001": {
        "kind": "bus",
        "ladders": {
            "student": [{"upto": 2, "rate": 100_000}, {"upto": None, "rate": 50_000}],
            "staff": [{"upto": None, "rate": 200_000}],
        },
        "session_cap": 200,
        "daily_amount_cap": 1000,
        "daily_count_cap": 10,
        "min_gap_seconds": 0,
        "max_session_units": 1,
    },
}
LOCATIONS = {
    "SHOWER-DEMO-001": "西区浴室 3号 West bathhouse no. 3",
    "LAUNDRY-DEMO-001": "7号楼洗衣房 Building 7 laundry",
    "BUS-DEMO-001": "校内大巴 1路 Campus bus line 1",
}
# (device, student number suffix, session id, units; None: still running)
HISTORY = [
    ("SHOWER-DEMO-001", 1, "demo-sh-0001", 540),
    ("LAUNDRY-DEMO-001", 1, "demo-ln-0001", 1),
    ("BUS-DEMO-001", 1, "demo-bus-0001", 1),
    ("BUS-DEMO-001", 2, "demo-bus-0002", 1),
    ("SHOWER-DEMO-001", 2, "demo-sh-0002", None),
]


async def ensure_demo_devices(tx: Tx, school_id: int) -> None:
    """Create the devices once; a demo database made before them gets them too."""
    if await tx.fetchval("SELECT 1 FROM terminals WHERE sn = 'SHOWER-DEMO-001'"):
        return
    merchant = await tx.fetchval(
        """INSERT INTO merchants(school_id, name, name_en, channel, status, approved_at)
           VALUES ($1, '后勤服务中心', 'Logistics Services', 'other', 'approved', now())
           RETURNING id""",
        school_id,
    )
    terminal: dict[str, int] = {}
    for sn, tariff in TARIFFS.items():
        terminal[sn] = await tx.fetchval(
            """INSERT INTO terminals(school_id, sn, kind, merchant_id, location)
               VALUES ($1, $2, 'pos', $3, $4) RETURNING id""",
            school_id,
            sn,
            merchant,
            LOCATIONS[sn],
        )
        await sessions.do_configure_meter.in_tx(tx, school_id, terminal[sn], tariff)
    for sn, student, session_key, units in HISTORY:
        card = await tx.fetchrow(
            "SELECT number, uid FROM cards WHERE school_id = $1 AND number = $2",
            school_id,
            f"8800{student:08d}",
        )
        if card is None:
            continue
        await sessions.do_start_session.in_tx(
            tx,
            school_id,
            terminal[sn],
            session_key=session_key,
            card_number=card["number"],
            card_uid=card["uid"],
        )
        if units is not None:
            await sessions.do_end_session.in_tx(
                tx, school_id, terminal[sn], session_key=session_key, units=units
            )
