"""Offline POS, store and forward: uploads are stored once by (device, sequence) whatever the
order and however often they are sent, each card's chain is checked and settled in counter
order, an overdraft is owed and repaid by the next top-up, and the blacklist carries the cards a
till must refuse offline (above the overdraft limit, frozen or closed accounts)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.db.tx import transaction
from campuscard.ledger.checks import check_ledger
from campuscard.monitoring import school_rules
from campuscard.offline import ingest, rules
from campuscard.platform import i18n
from campuscard.platform.actors import Actor, Grant
from tests.support import make_school
from tests.support_moneyflows import (
    balances,
    cid,
    counter_setup,
    open_drawer,
    system_balance,
)
from tests.support_offline import UPLOAD, CardArea, record, upload
from tests.support_payments import Device, device_call, make_cardholder, make_device, make_merchant


async def _till(pool: PgPool, settings: Settings, school_id: int, sn: str = "POS-OFF-1") -> Device:
    async with pool.acquire() as conn:
        merchant_id = await conn.fetchval(
            "SELECT id FROM merchants WHERE school_id = $1 ORDER BY id LIMIT 1", school_id
        )
        if merchant_id is None:
            merchant_id, _ = await make_merchant(conn, school_id)
        return await make_device(conn, settings, school_id, merchant_id, sn)


async def _setup(
    pool: PgPool, settings: Settings, *, cash: int = 10_000
) -> tuple[int, Device, int, dict[str, Any]]:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person, card = await make_cardholder(conn, school.id, "S1", cash=cash)
    dev = await _till(pool, settings, school.id)
    return school.id, dev, person, card


async def _blacklist(client: httpx.AsyncClient, dev: Device) -> dict[str, Any]:
    r = await device_call(client, dev, "GET", "/api/v1/terminal/blacklist")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _merchant_total(pool: PgPool, dev: Device) -> int:
    total: int = await pool.fetchval(
        "SELECT coalesce(sum(balance), 0) FROM accounts WHERE merchant_id = $1", dev.merchant_id
    )
    return total


async def test_reordered_partial_and_resent_uploads_book_each_record_once(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given four offline sales on one card, numbered 1-4 by the till
    _, dev, person, card = await _setup(pool, settings)
    area = CardArea()
    recs = [record(dev, card, area, seq, 500 + seq) for seq in range(1, 5)]

    # when the last two arrive first: they wait for the card's counters 1 and 2
    first = await upload(client, dev, [recs[3], recs[2]])
    assert (first["accepted"], first["settled"], first["waiting"]) == (2, 0, 2)
    assert first["missing"] == [[1, 2]]
    assert first["contiguous_seq"] == 0
    assert await balances(pool, person) == {"cash": 10_000, "subsidy": 0}

    # when a partial batch brings 1-3 (3 again): everything settles in counter order
    second = await upload(client, dev, recs[:3])
    assert (second["accepted"], second["duplicates"], second["settled"]) == (2, 1, 4)
    assert (second["missing"], second["contiguous_seq"]) == ([], 4)

    # when the whole queue is resent: nothing happens again
    third = await upload(client, dev, recs)
    assert (third["accepted"], third["duplicates"], third["settled"]) == (0, 4, 0)
    spent = sum(500 + s for s in range(1, 5))
    assert await balances(pool, person) == {"cash": 10_000 - spent, "subsidy": 0}
    assert await _merchant_total(pool, dev) == spent
    assert (await check_ledger(pool)).ok

    # a different record under a stored number is refused; the stored one stands
    other = record(dev, card, CardArea(counter=9, total=0), 2, 999)
    fourth = await upload(client, dev, [other])
    assert fourth["refused"] == [
        {
            "seq": 2,
            "code": "SEQUENCE_REUSED",
            "message": "another record was stored under this number",
        }
    ]
    assert await _merchant_total(pool, dev) == spent


async def test_bad_signatures_and_unknown_cards_are_refused_and_change_nothing(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    _, dev, person, card = await _setup(pool, settings)
    good = record(dev, card, CardArea(), 1, 300)
    forged = dict(record(dev, card, CardArea(counter=1, total=300), 2, 300), amount="0.03")
    stranger = record(dev, {"number": "990000000001", "uid": "0BADCAFE"}, CardArea(), 3, 300)
    answer = await upload(client, dev, [good, forged, stranger])
    assert (answer["accepted"], answer["settled"]) == (1, 1)
    assert [(r["seq"], r["code"]) for r in answer["refused"]] == [
        (2, "RECORD_SIGNATURE_INVALID"),
        (3, "CARD_UNKNOWN"),
    ]
    # the forged record was not stored: the till may send the true one under its number
    assert answer["missing"] == [[2, 2]]
    assert await balances(pool, person) == {"cash": 9_700, "subsidy": 0}

    # bad input names the field and changes nothing
    bad = dict(good, amount="1.005")
    r = await device_call(client, dev, "POST", UPLOAD, {"records": [bad]})
    assert r.status_code == 422
    assert "amount" in json.dumps(r.json()["error"])
    r = await device_call(client, dev, "POST", UPLOAD, {"records": []})
    assert r.status_code == 422
    assert await balances(pool, person) == {"cash": 9_700, "subsidy": 0}


async def test_chain_breaks_are_booked_and_named(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    school_id, dev, person, card = await _setup(pool, settings)
    area = CardArea()
    one = record(dev, card, area, 1, 400)
    # the card's total says 0 again, though the card was not used online in between
    two = record(dev, card, area, 2, 200, total_before=0)
    # a cloned card: counter 2 used again
    three = record(dev, card, area, 3, 100, counter=2)
    answer = await upload(client, dev, [one, two, three])
    assert (answer["settled"], answer["chain_breaks"]) == (3, 2)
    rows = await pool.fetch(
        "SELECT seq, chain_break FROM offline_records WHERE school_id = $1 ORDER BY seq",
        school_id,
    )
    assert rows[0]["chain_break"] is None
    assert rows[1]["chain_break"] == "total before 0, the card's last was 400"
    assert rows[2]["chain_break"].startswith("counter 2 already used")
    # the holder still pays what the till sold (the device signed it)
    assert await balances(pool, person) == {"cash": 10_000 - 700, "subsidy": 0}


async def test_a_missing_counter_from_another_till_settles_the_waiting_record(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    school_id, dev, person, card = await _setup(pool, settings)
    other = await _till(pool, settings, school_id, "POS-OFF-2")
    area = CardArea()
    at_other = record(other, card, area, 1, 250)  # counter 1, at the second till
    here = record(dev, card, area, 1, 350)  # counter 2, at the first
    waiting = await upload(client, dev, [here])
    assert (waiting["settled"], waiting["waiting"]) == (0, 1)
    arrived = await upload(client, other, [at_other])
    assert arrived["settled"] == 2
    assert await balances(pool, person) == {"cash": 10_000 - 600, "subsidy": 0}
    # one journal transaction for the merchant of both tills, booked by the uploading till; each
    # record names it (clearing counts each till's sales from the records)
    booked = await pool.fetch(
        "SELECT id, actor, memo FROM journal_tx WHERE kind = 'offline_payment' ORDER BY id"
    )
    merchant = await pool.fetchval("SELECT name FROM merchants WHERE id = $1", dev.merchant_id)
    assert [(r["actor"], r["memo"]) for r in booked] == [("POS-OFF-2", merchant)]
    named = await pool.fetch(
        "SELECT terminal_id, tx_id FROM offline_records ORDER BY terminal_id, seq"
    )
    assert sorted((r["terminal_id"], r["tx_id"]) for r in named) == sorted(
        [(dev.id, booked[0]["id"]), (other.id, booked[0]["id"])]
    )

    # a counter that never comes: after the school's wait the record settles with the gap
    late = record(dev, card, CardArea(counter=3, total=600), 2, 100)  # counter 4, 3 missing
    assert (await upload(client, dev, [late]))["waiting"] == 1
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE offline_records SET received_at = $1 WHERE state = 'waiting'",
            datetime.now(UTC) - timedelta(days=4),
        )
        assert await ingest.do_settle_overdue_school(conn, school_id) == 1
    gap = await pool.fetchval("SELECT chain_break FROM offline_records WHERE seq = 2")
    assert gap == "counter 3 missing"


async def test_overdraft_is_owed_blacklisted_above_the_limit_and_repaid_by_the_next_top_up(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given a student with 10.00 and a school tolerating 5.00 of offline overdraft
    headers, school_id, person = await counter_setup(pool, client, cash=1_000)
    await pool.execute(
        """UPDATE schools SET settings = settings || '{"offline": {"overdraft_limit": 500}}'
            WHERE id = $1""",
        school_id,
    )
    dev = await _till(pool, settings, school_id)
    card = {"number": "20260001", "uid": "04A10001"}
    area = CardArea()
    listed_before = await _blacklist(client, dev)
    assert listed_before["offline_limits"] == {
        "per_tx_limit": "20.00",
        "max_consecutive": 10,
        "max_total": "100.00",
        "max_stored": 5000,
    }

    # when an offline sale of 12.00 comes in: 10.00 from the purse, 2.00 owed (within the limit)
    first = await upload(client, dev, [record(dev, card, area, 1, 1_200)])
    assert first["overdrafts"] == 1
    assert await balances(pool, person) == {"cash": 0, "subsidy": 0}
    assert await system_balance(pool, school_id, "offline_receivable") == -200
    assert (await _blacklist(client, dev))["cards"] == []

    # when another 8.00 comes: 10.00 owed, above the limit: the card goes on the list
    await upload(client, dev, [record(dev, card, area, 2, 800)])
    listed = await _blacklist(client, dev)
    assert [(c["number"], c["reason"]) for c in listed["cards"]] == [("20260001", "overdrawn")]

    # when the student tops up 15.00 at the counter: the 10.00 owed is repaid first
    assert (await open_drawer(pool, client, headers, school_id, "0.00")).status_code == 201
    r = await client.post(
        "/api/v1/counter/TST/deposits",
        json={"client_id": cid(), "person_number": "S001", "amount": "15.00"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    assert await balances(pool, person) == {"cash": 500, "subsidy": 0}
    assert await system_balance(pool, school_id, "offline_receivable") == 0
    owed = await pool.fetchrow("SELECT owed, repaid_total FROM offline_debts")
    assert (owed["owed"], owed["repaid_total"]) == (0, 1_000)
    after = await _blacklist(client, dev)
    assert after["cards"] == []
    delta = await device_call(
        client, dev, "GET", f"/api/v1/terminal/blacklist?since={listed['version']}"
    )
    assert [c["number"] for c in delta.json()["removed"]] == ["20260001"]
    assert (await check_ledger(pool)).ok


async def test_frozen_and_closed_accounts_are_listed_for_offline_devices(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    school_id, dev, person, card = await _setup(pool, settings)
    async with pool.acquire() as conn:
        other, other_card = await make_cardholder(conn, school_id, "S2")
    await pool.execute("UPDATE persons SET account_status = 'frozen' WHERE id = $1", person)
    await pool.execute("UPDATE persons SET account_status = 'closed' WHERE id = $1", other)
    listed = await _blacklist(client, dev)
    assert sorted((c["number"], c["reason"]) for c in listed["cards"]) == sorted(
        [(card["number"], "account_frozen"), (other_card["number"], "account_closed")]
    )
    await pool.execute("UPDATE persons SET account_status = 'active' WHERE id = $1", person)
    listed = await _blacklist(client, dev)
    assert [c["number"] for c in listed["cards"]] == [other_card["number"]]


async def test_sales_after_a_card_was_reported_lost_are_refused(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    school_id, dev, person, card = await _setup(pool, settings)
    await pool.execute(
        "UPDATE cards SET state = 'lost', state_changed_at = $2 WHERE id = $1",
        card["id"],
        datetime.fromtimestamp(1_795_000_000, UTC) - timedelta(hours=1),
    )
    answer = await upload(client, dev, [record(dev, card, CardArea(), 1, 300)])
    assert [r["code"] for r in answer["refused"]] == ["CARD_BLOCKED_BEFORE_SALE"]
    assert await balances(pool, person) == {"cash": 10_000, "subsidy": 0}
    assert school_id


async def test_the_protocol_documents_the_answers_and_the_signature_example(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    from tests.integration.test_protocol_document import DOC, check

    _, dev, _, card = await _setup(pool, settings)
    area = CardArea()
    records = [
        record(dev, card, area, 1, 300),
        record(dev, {"number": "990000000001", "uid": "0BADCAFE"}, CardArea(), 3, 100),
        record(dev, card, area, 5, 200),
    ]
    check("offline-upload", await device_call(client, dev, "POST", UPLOAD, {"records": records}))
    check("blacklist", await device_call(client, dev, "GET", "/api/v1/terminal/blacklist"))

    # the worked example of §10, with the example key of §2
    key = bytes.fromhex("d4b4b4e2adbefb2101d00021f2706bd2ec357c1c7412fe5c245c6e5804ecbb9d")
    example = rules.Record(41, "880000000001", "04A10001", 1250, 1795000000, 3, 800, 2050, 1, "")
    line = rules.record_message("POS-DEMO-001", example).decode()
    text = DOC.read_text()
    assert f"{line}\nsignature {rules.sign_record(key, 'POS-DEMO-001', example)}" in text


ROUNDS = 3


async def test_two_tills_uploading_the_same_cards_in_opposite_orders_do_not_deadlock(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given six holders, two of them short of money (their sales overdraw), a school watching
    # offline overdrafts, and two tills whose queues touch the same cards in opposite orders
    school_id, dev, _, _ = await _setup(pool, settings)
    admin = Actor(
        "admin", school_id=school_id, grants=frozenset({Grant("school_admin", school_id)})
    )
    async with pool.acquire() as conn:
        await school_rules.do_set_rule(
            conn, admin, school_id, "offline_overdraft", enabled=True, thresholds={}
        )
        await school_rules.do_set_rule(
            conn,
            admin,
            school_id,
            "delivery",
            enabled=True,
            thresholds={"quiet_start": "00:00", "quiet_end": "00:00"},
        )
    other = await _till(pool, settings, school_id, "POS-OFF-2")
    cards: list[dict[str, Any]] = []
    async with pool.acquire() as conn:
        for i in range(6):
            _, card = await make_cardholder(conn, school_id, f"D{i}", cash=300 if i < 2 else 5_000)
            cards.append(card)
    areas = {c["number"]: CardArea() for c in cards}
    seq = {dev.sn: 0, other.sn: 0}

    def batch(till: Device, order: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for card in order:
            seq[till.sn] += 1
            out.append(record(till, card, areas[card["number"]], seq[till.sn], 200))
        return out

    # when three rounds of both uploads run at once (each card's counters alternate between
    # the tills, so either upload may settle records of the other)
    for _ in range(ROUNDS):
        a, b = batch(dev, cards), batch(other, cards[::-1])
        answers = await asyncio.gather(upload(client, dev, a), upload(client, other, b))
        assert [x["accepted"] for x in answers] == [6, 6]
        # every record of the round settled by exactly one of them, and counted by it
        assert sum(x["settled"] for x in answers) == 12
        for x in answers:
            row = await pool.fetchrow(
                "SELECT settled, waiting FROM offline_uploads WHERE id = $1", x["upload_id"]
            )
            assert (row["settled"], row["waiting"]) == (x["settled"], x["waiting"])

    # then every record settled once, the two short holders owe the rest, the ledger holds
    states = await pool.fetch(
        "SELECT state, count(*) AS n FROM offline_records WHERE school_id = $1 GROUP BY state",
        school_id,
    )
    assert [(r["state"], r["n"]) for r in states] == [("settled", 12 * ROUNDS)]
    owed = await pool.fetchval(
        "SELECT sum(owed) FROM offline_debts WHERE school_id = $1", school_id
    )
    assert owed == 2 * (2 * ROUNDS * 200 - 300)  # the others still have money
    assert await system_balance(pool, school_id, "offline_receivable") == -owed
    assert (await check_ledger(pool)).ok
    # and each overdrawing record raised one alert; each holder was told once (the cooldown)
    alerts = await pool.fetch(
        """SELECT person_id, count(*) AS n, count(*) FILTER (WHERE delivery = 'sent') AS sent
             FROM monitoring_alerts WHERE rule = 'offline_overdraft' GROUP BY person_id"""
    )
    short = ROUNDS * 2 - 1  # the first 2.00 sale is covered, the second by half
    assert sorted((r["n"], r["sent"]) for r in alerts) == [(short, 1), (short, 1)]
    reason = await pool.fetchval("SELECT reason FROM monitoring_alerts LIMIT 1")
    assert "离线设备 POS-OFF-" in i18n.word("zh-CN", reason)


async def test_uploads_settling_records_of_two_tills_take_the_shards_in_one_order(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given three tills of a merchant with two account shards: till b's shard lies between
    # a's and c's in id order, so a and c share one shard and b has the other
    async with pool.acquire() as conn:
        school = await make_school(conn)
        merchant_id, _ = await make_merchant(conn, school.id, shards=2)
        a, b, c = [
            await make_device(conn, settings, school.id, merchant_id, f"POS-SH-{n}") for n in "abc"
        ]
        _, x = await make_cardholder(conn, school.id, "X1", cash=10_000)
        _, y = await make_cardholder(conn, school.id, "Y1", cash=10_000)
    area_x, area_y = CardArea(), CardArea()
    for r in range(1, 6):
        # b's records wait for the counters a and c bring: a's upload settles a's and b's,
        # c's upload settles c's and b's, each in one transaction, at the same time
        at_a = record(a, x, area_x, r, 100)
        b_x = record(b, x, area_x, 2 * r - 1, 100)
        at_c = record(c, y, area_y, r, 100)
        b_y = record(b, y, area_y, 2 * r, 100)
        assert (await upload(client, b, [b_x, b_y]))["waiting"] == 2
        answers = await asyncio.gather(upload(client, a, [at_a]), upload(client, c, [at_c]))
        assert [ans["settled"] for ans in answers] == [2, 2]
    assert await balances(pool, x["person_id"]) == {"cash": 9_000, "subsidy": 0}
    assert (await check_ledger(pool)).ok


ACCOUNT_LOCK = "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE"


async def _card_id(pool: PgPool, card: dict[str, Any]) -> int:
    card_id: int = await pool.fetchval("SELECT id FROM cards WHERE number = $1", card["number"])
    return card_id


async def _state_once_stored(pool: PgPool, dev: Device, seq: int) -> str | None:
    """The record's state as soon as its upload's first transaction has committed."""
    for _ in range(200):
        state: str | None = await pool.fetchval(
            "SELECT state FROM offline_records WHERE terminal_id = $1 AND seq = $2", dev.id, seq
        )
        if state is not None:
            return state
        await asyncio.sleep(0.05)
    return None


@contextlib.asynccontextmanager
async def _while_held(pool: PgPool, sql: str, arg: int) -> AsyncIterator[None]:
    """Another transaction holds a row (as a concurrent upload does) for the block."""
    held, go = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with pool.acquire() as conn, transaction(conn) as tx:
            await tx.execute(sql, arg)
            held.set()
            await go.wait()

    holder = asyncio.create_task(hold())
    await held.wait()
    try:
        yield
    finally:
        go.set()
        await holder


async def test_an_upload_stores_without_waiting_for_a_card_another_upload_holds_and_counts_it(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given a card whose second sale (another till's) waits for its first
    school_id, dev, person, card = await _setup(pool, settings)
    other = await _till(pool, settings, school_id, "POS-OFF-2")
    area = CardArea()
    first = record(dev, card, area, 1, 300)
    second = record(other, card, area, 1, 200)
    assert (await upload(client, other, [second]))["waiting"] == 1

    # when another upload holds the card's chain head while the first sale is uploaded
    head = "SELECT 1 FROM offline_card_chains WHERE card_id = $1 FOR UPDATE"
    async with _while_held(pool, head, await _card_id(pool, card)):
        sent = asyncio.create_task(upload(client, dev, [first]))
        # then the record is stored at once (the upload did not wait for the holder) ...
        assert await _state_once_stored(pool, dev, 1) == "waiting"
        assert not sent.done()
    # ... and when the holder is done, the same request settles both sales and counts them
    answer = await sent
    assert (answer["accepted"], answer["settled"], answer["waiting"]) == (1, 2, 0)
    row = await pool.fetchrow(
        "SELECT accepted, settled, waiting FROM offline_uploads WHERE id = $1", answer["upload_id"]
    )
    assert tuple(row) == (1, 2, 0)
    states = await pool.fetch("SELECT state, tx_id FROM offline_records ORDER BY terminal_id")
    assert [r["state"] for r in states] == ["settled", "settled"]
    assert await balances(pool, person) == {"cash": 10_000 - 500, "subsidy": 0}
    assert await _merchant_total(pool, dev) == 500
    assert (await check_ledger(pool)).ok


async def test_an_upload_waits_for_its_merchant_when_every_shard_is_held(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given a merchant with one account shard, and a till's sale on a card
    async with pool.acquire() as conn:
        school = await make_school(conn)
        merchant_id, _ = await make_merchant(conn, school.id, shards=1)
        dev = await make_device(conn, settings, school.id, merchant_id, "POS-ONE-1")
        person, card = await make_cardholder(conn, school.id, "S1", cash=1_000)
    shard: int = await pool.fetchval(
        "SELECT id FROM accounts WHERE merchant_id = $1 AND kind = 'merchant'", merchant_id
    )

    # when another upload holds the only shard while the sale is uploaded
    async with _while_held(pool, ACCOUNT_LOCK, shard):
        sent = asyncio.create_task(upload(client, dev, [record(dev, card, CardArea(), 1, 300)]))
        await asyncio.sleep(0.3)
        # then the upload waits for that shard (it is booked to it, nothing half done meanwhile)
        assert not sent.done()
        assert await pool.fetchval("SELECT count(*) FROM offline_records") == 0
    answer = await sent
    assert (answer["accepted"], answer["settled"], answer["waiting"]) == (1, 1, 0)
    assert await balances(pool, person) == {"cash": 700, "subsidy": 0}
    assert await pool.fetchval("SELECT balance FROM accounts WHERE id = $1", shard) == 300
    assert (await check_ledger(pool)).ok


async def test_an_upload_settles_what_the_purses_cover_while_the_receivable_is_held(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given a holder with money and one with 1.00, and a till's 3.00 sale on each card
    school_id, dev, person, card = await _setup(pool, settings)
    async with pool.acquire() as conn:
        short, short_card = await make_cardholder(conn, school_id, "S2", cash=100)
    sales = [
        record(dev, card, CardArea(), 1, 300),
        record(dev, short_card, CardArea(), 2, 300),
    ]
    receivable: int = await pool.fetchval(
        """SELECT id FROM accounts WHERE school_id = $1 AND kind = 'system'
              AND system_code = 'offline_receivable'""",
        school_id,
    )

    # when another upload holds the offline receivable while the two sales are uploaded
    async with _while_held(pool, ACCOUNT_LOCK, receivable):
        sent = asyncio.create_task(upload(client, dev, sales))
        # then the covered sale is booked at once; the one that overdraws waits for the receivable
        assert await _state_once_stored(pool, dev, 1) == "settled"
        assert await _state_once_stored(pool, dev, 2) == "waiting"
        assert not sent.done()
    answer = await sent
    assert (answer["settled"], answer["waiting"], answer["overdrafts"]) == (2, 0, 1)
    assert await balances(pool, short) == {"cash": 0, "subsidy": 0}
    assert await system_balance(pool, school_id, "offline_receivable") == -200
    assert await balances(pool, person) == {"cash": 9_700, "subsidy": 0}
    assert (await check_ledger(pool)).ok


async def test_a_record_names_an_upload_of_its_own_till(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given an upload of one till
    school_id, dev, _, card = await _setup(pool, settings)
    other = await _till(pool, settings, school_id, "POS-OFF-2")
    await upload(client, dev, [record(dev, card, CardArea(), 1, 100)])
    # when a record of another till names that upload, the database refuses it
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT upload_id, signature FROM offline_records WHERE terminal_id = $1", dev.id
        )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                """INSERT INTO offline_records(school_id, terminal_id, upload_id, seq, signature,
                          card_number, card_uid, amount, made_at, card_counter, total_before,
                          total_after, state, refusal)
                   VALUES ($1, $2, $3, 1, $4, 'X', 'X', 100, now(), 1, 0, 100, 'refused',
                           'CARD_UNKNOWN')""",
                school_id,
                other.id,
                row["upload_id"],
                row["signature"],
            )
