"""On the cluster a payment is one call delegated to the worker that holds its school: the
booking functions (cc_pay, cc_pay_batch) are pushed down by Citus, book there, and a report
across schools on the coordinator sees the payments of schools on both workers. The demo's
clock (``campuscard.book_at``) reaches the worker with a delegated call."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from campuscard import demo_history
from campuscard.config import Settings
from campuscard.db.pool import connect
from campuscard.db.tx import Tx
from campuscard.payments import batching
from campuscard.platform import idempotency
from tests.support import make_school
from tests.support_payments import Device, make_cardholder, make_device, make_merchant, pay

pytestmark = pytest.mark.citus

PUSHED_DOWN = "pushing down the function call"


async def _worker_of(conn: asyncpg.Connection[Any], school_id: int) -> int:
    port: int = await conn.fetchval(
        """SELECT nodeport FROM pg_dist_shard_placement
            WHERE shardid = get_shard_id_for_distribution_column('payments', $1::int)""",
        school_id,
    )
    return port


async def _school_on_each_worker(
    conn: asyncpg.Connection[Any], settings: Settings
) -> list[tuple[int, Device, dict[str, Any]]]:
    """Schools made until one is on each worker (school ids hash over the shards)."""
    found: dict[int, tuple[int, Device, dict[str, Any]]] = {}
    for n in range(12):
        school = await make_school(conn, f"DLG{n}")
        port = await _worker_of(conn, school.id)
        if port in found:
            continue
        merchant_id, outlet_id = await make_merchant(conn, school.id)
        dev = await make_device(
            conn, settings, school.id, merchant_id, f"POS-DLG{n}", outlet_id=outlet_id
        )
        _, card = await make_cardholder(conn, school.id, "S1", cash=10_000)
        found[port] = (school.id, dev, card)
        if len(found) == 2:
            break
    assert len(found) == 2, "no school hashed to the second worker"
    return list(found.values())


def _book_args(dev: Device, card: dict[str, Any], client_id: str, fen: int) -> batching.BookArgs:
    payer = {"card_number": card["number"], "card_uid": card["uid"]}
    digest = idempotency.request_hash({"op": "pay", "amount": fen, **payer})
    return (dev.id, dev.key_version, secrets.token_hex(12), client_id, digest,
            card["number"], card["uid"], None, None, fen, None)  # fmt: skip


async def test_payments_are_delegated_to_the_worker_of_their_school_and_reported_across(
    campuscard_citus: str, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given a school on each worker, each with a till and a cardholder, and a signed payment
    # over HTTP in each
    conn = await connect(campuscard_citus, statement_cache_size=0)
    try:
        schools = await _school_on_each_worker(conn, settings)
        for _, dev, card in schools:
            r = await pay(client, dev, card, "3.00")
            assert r.status_code == 200, r.text

        # when the booking function is called (a single payment, then a batch of two), with
        # Citus telling where it runs; every statement is planned again (no statement cache)
        notices: list[str] = []
        conn.add_log_listener(lambda _, message: notices.append(str(message)))
        await conn.execute("SET client_min_messages TO debug1")
        school_id, dev, card = schools[1]
        one = await batching.book_one(
            conn, school_id, batching.Member(_book_args(dev, card, "dlgpay-000001", 150))
        )
        single_pushed = any(PUSHED_DOWN in n for n in notices)
        notices.clear()
        members = [
            batching.Member(_book_args(dev, card, cid, 50)).as_json()
            for cid in ("dlgpay-000002", "dlgpay-000003")
        ]
        batch = await conn.fetch(batching.BATCH_SQL, school_id, members)
        batch_pushed = any(PUSHED_DOWN in n for n in notices)
        await conn.execute("RESET client_min_messages")

        # and a report across schools runs on the coordinator
        report = await conn.fetch(
            """SELECT s.id, count(p.id) AS n, sum(p.amount) AS fen
                 FROM schools s JOIN payments p ON p.school_id = s.id
                WHERE s.id = ANY($1::int[]) GROUP BY s.id ORDER BY s.id""",
            [s for s, _, _ in schools],
        )
        workers = {await _worker_of(conn, s) for s, _, _ in schools}

        # and, in one transaction, a payment booked with the demo's clock (a transaction-local
        # setting the coordinator propagates), then one with the clock back at now
        at: datetime = await conn.fetchval("SELECT date_trunc('second', now())")
        at -= timedelta(days=3, hours=2)
        async with conn.transaction():
            await demo_history.set_clock(Tx(conn), at)
            await conn.execute("SET LOCAL client_min_messages TO debug1")
            notices.clear()
            dated = await batching.book_one(
                conn, school_id, batching.Member(_book_args(dev, card, "dlgpay-000004", 40))
            )
            dated_pushed = any(PUSHED_DOWN in n for n in notices)
            await demo_history.set_clock(Tx(conn), None)
            undated = await batching.book_one(
                conn, school_id, batching.Member(_book_args(dev, card, "dlgpay-000005", 30))
            )
        instants = await conn.fetch(
            """SELECT p.client_id, p.created_at, j.created_at AS booked_at, j.business_date,
                      cc_business_date($1) AS today
                 FROM payments p
                 JOIN journal_tx j ON j.school_id = p.school_id AND j.id = p.tx_id
                WHERE p.school_id = $1 AND p.client_id IN ('dlgpay-000004', 'dlgpay-000005')
                ORDER BY p.client_id""",
            school_id,
        )
    finally:
        await conn.close()

    # then both calls were pushed down to the worker and booked there
    assert (one.status, single_pushed) == (200, True), one.body
    assert [r["status"] for r in batch] == [200, 200]
    assert batch_pushed
    # and the report sees both schools, one on each worker
    assert len(workers) == 2
    assert {r["id"]: (r["n"], r["fen"]) for r in report} == {
        schools[0][0]: (1, 300),
        school_id: (4, 300 + 150 + 50 + 50),
    }
    # and the worker booked the first payment at the demo's instant (the payment, its journal
    # entry and its business day), the second at now
    assert (dated.status, undated.status, dated_pushed) == (200, 200, True), dated.body
    first, second = instants
    assert first["created_at"] == first["booked_at"] == at
    assert first["business_date"] < first["today"]
    assert second["created_at"] > at + timedelta(days=3)
    assert second["business_date"] == second["today"]
