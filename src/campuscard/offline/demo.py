"""The demo campus's offline-capable till: the first canteen's till that lost the network over
yesterday's lunch and uploaded its records this morning — a resend of two records after a lost
answer, a card from another school it should not have taken, a card whose offline total did not
follow (a chain break, booked and shown for review), and one record never sent, so the sale
after it on the same card still waits and the till has a gap. The console's devices page and
the POS page show all of it."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from campuscard.db.tx import Tx
from campuscard.offline import ingest, rules
from campuscard.platform import signing

SN = "POS-OFFLINE-DEMO"
LOCATION = "第一食堂 离线收银 Canteen 1 offline till"
STRANGER = ("990000000123", "0BADC0DE")  # a card of another school
# (seq, student, card counter, offline total before, amount in fen, minutes after 11:40)
SALES = [
    (1, 101, 1, 0, 1_250, 0),
    (2, 102, 1, 0, 980, 2),
    (3, 103, 1, 0, 1_500, 3),
    (4, 101, 2, 1_250, 600, 5),
    (5, 104, 1, 0, 1_120, 7),
    (6, 105, 1, 0, 850, 9),
    (7, 0, 1, 0, 700, 11),  # the stranger's card
    (8, 101, 3, 0, 450, 14),  # the card says 0 again: a chain break
    (9, 106, 1, 0, 900, 16),  # never uploaded (the till's store lost it)
    (10, 106, 2, 900, 1_300, 30),  # waits for 9
]
UPLOADS = [(1, 2, 3, 4, 5, 6), (5, 6, 7, 8, 10)]  # the second resends 5 and 6


async def ensure_demo_offline_till(tx: Tx, school_id: int, master_key: str) -> None:
    """Create the till and its uploaded history once; the records are signed with the till's
    real key (derived from ``master_key``), as the till would have signed them."""
    if await tx.fetchval("SELECT 1 FROM terminals WHERE sn = $1", SN):
        return
    merchant_id = await tx.fetchval(
        """SELECT id FROM merchants WHERE school_id = $1 AND channel = 'canteen'
            ORDER BY id LIMIT 1""",
        school_id,
    )
    terminal_id = await tx.fetchval(
        """INSERT INTO terminals(school_id, sn, kind, merchant_id, location)
           VALUES ($1, $2, 'pos', $3, $4) RETURNING id""",
        school_id,
        SN,
        merchant_id,
        LOCATION,
    )
    key = signing.derive_terminal_key(master_key, SN, 1)
    zone = await tx.fetchval("SELECT timezone FROM schools WHERE id = $1", school_id)
    today = await tx.fetchval("SELECT cc_business_date($1)", school_id)
    lunch = datetime.combine(today - timedelta(days=1), time(11, 40), ZoneInfo(zone))
    cards = {
        r["number"]: r["uid"]
        for r in await tx.fetch(
            "SELECT number, uid FROM cards WHERE school_id = $1 AND number = ANY($2::text[])",
            school_id,
            [f"8800{s:08d}" for _, s, *_ in SALES if s],
        )
    }
    made: dict[int, rules.Record] = {}
    for seq, student, counter, before, amount, minutes in SALES:
        number = f"8800{student:08d}" if student else STRANGER[0]
        uid = cards.get(number, STRANGER[1])
        r = rules.Record(
            seq=seq,
            card_number=number,
            card_uid=uid,
            amount=amount,
            made_at=int((lunch + timedelta(minutes=minutes)).timestamp()),
            card_counter=counter,
            total_before=before,
            total_after=before + amount,
            key_version=1,
            signature="",
        )
        made[seq] = rules.Record(**{**r.__dict__, "signature": rules.sign_record(key, SN, r)})
    for batch in UPLOADS:
        records = [made[s] for s in batch]
        await ingest.ingest_verified(tx, school_id, terminal_id, records, [], len(records))
