"""A school's instant, business date and rules are read once per group commit (cc_pay_context,
decision 0411): every member of a batch books under its school's rules as they are now, and the
context reaches no statement after the batch nor a payment of another school."""

from __future__ import annotations

import json
import secrets
from typing import Any

import asyncpg

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from tests.support import make_school
from tests.support_payments import Device, make_cardholder, make_device, make_merchant


def _member(dev: Device, card: dict[str, Any], amount: int) -> dict[str, Any]:
    return {
        "terminal": dev.id,
        "key_version": dev.key_version,
        "nonce": secrets.token_hex(8),
        "client_id": f"pos-{secrets.token_hex(6)}",
        "request_hash": "h",
        "card_number": card["number"],
        "card_uid": card["uid"],
        "amount": amount,
    }


async def _pay(
    conn: asyncpg.Connection[Any], dev: Device, card: dict[str, Any], amount: int
) -> dict[str, Any]:
    answer = await conn.fetchval(
        "SELECT cc_pay($1, 'book', $2, $3, $4, $5, 'h', $6, $7, NULL, NULL, $8, NULL)::text",
        dev.school_id,
        dev.id,
        dev.key_version,
        secrets.token_hex(8),
        f"pos-{secrets.token_hex(6)}",
        card["number"],
        card["uid"],
        amount,
    )
    return dict(json.loads(answer))


async def _till_and_card(
    conn: asyncpg.Connection[Any], settings: Settings, code: str
) -> tuple[Device, dict[str, Any]]:
    school = await make_school(conn, code)
    merchant_id, outlet_id = await make_merchant(conn, school.id)
    dev = await make_device(
        conn, settings, school.id, merchant_id, sn=f"POS-{code}", outlet_id=outlet_id
    )
    _, card = await make_cardholder(conn, school.id, f"{code}1", cash=10_000)
    return dev, card


async def test_a_batch_books_every_member_under_its_schools_rules_and_leaves_no_context(
    pool: PgPool, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        dev, card = await _till_and_card(conn, settings, "CTXA")
        # given: the school allows 10.00 a payment
        await conn.execute(
            """UPDATE schools SET settings = '{"payments": {"per_tx_limit": 1000}}'
                WHERE id = $1""",
            dev.school_id,
        )
        members = [_member(dev, card, 500), _member(dev, card, 1_500), _member(dev, card, 700)]
        async with conn.transaction():
            # when: three payments book in one call
            rows = await conn.fetch(
                "SELECT status, body FROM cc_pay_batch($1, $2::jsonb)",
                dev.school_id,
                members,
            )
            # then: the school's limit held for each member, and the business date is the
            # school's today
            today = await conn.fetchval("SELECT cc_business_date($1)", dev.school_id)
            assert [r["status"] for r in rows] == [200, 403, 200]
            assert json.loads(rows[1]["body"])["error"]["code"] == "OVER_TRANSACTION_LIMIT"
            assert json.loads(rows[0]["body"])["business_date"] == today.isoformat()
            # and nothing of the batch's context is left for the rest of the transaction
            assert await conn.fetchval("SELECT current_setting('cc.pay_context', true)") == ""
            # a payment after it in the same transaction reads the rules as they are now
            await conn.execute(
                """UPDATE schools SET settings = '{"payments": {"per_tx_limit": 2000}}'
                    WHERE id = $1""",
                dev.school_id,
            )
            assert (await _pay(conn, dev, card, 1_500))["status"] == 200


async def test_a_context_of_another_school_is_not_used(pool: PgPool, settings: Settings) -> None:
    async with pool.acquire() as conn:
        dev, card = await _till_and_card(conn, settings, "CTXB")
        other = await make_school(conn, "CTXC")
        await conn.execute(
            """UPDATE schools SET settings = '{"payments": {"per_tx_limit": 100}}'
                WHERE id = $1""",
            other.id,
        )
        async with conn.transaction():
            # given: the other school's context in the setting (its limit is 1.00)
            await conn.execute(
                "SELECT set_config('cc.pay_context', cc_pay_context($1)::text, true)", other.id
            )
            # when / then: this school's payment of 15.00 books under its own rules
            answer = await _pay(conn, dev, card, 1_500)
            assert answer["status"] == 200, answer
