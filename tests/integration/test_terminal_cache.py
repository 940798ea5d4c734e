"""A till's row is read once per process for its payments (the booking call checks status and
key version again), yet a till disabled, enabled or re-keyed in another process — which cannot
tell this one — is answered accordingly from its next payment on (payments/terminals.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.payments import terminals
from campuscard.platform import signing
from tests.support import make_school
from tests.support_payments import Device, make_cardholder, make_device, make_merchant, pay


async def _till(pool: PgPool, settings: Settings) -> tuple[Device, dict[str, Any]]:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        merchant_id, outlet_id = await make_merchant(conn, school.id)
        dev = await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
        _, card = await make_cardholder(conn, school.id, "S1", cash=10_000)
    return dev, card


def _count_terminal_reads(pool: PgPool, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    fetch = pool.fetch

    async def counting(query: str, *args: Any, **kwargs: Any) -> Any:
        if "FROM terminals WHERE sn" in query:
            reads.append(args[0])
        return await fetch(query, *args, **kwargs)

    monkeypatch.setattr(pool, "fetch", counting)
    return reads


async def test_a_tills_payments_read_its_row_once_however_long_it_pays(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a till that paid once in this process
    dev, card = await _till(pool, settings)
    reads = _count_terminal_reads(pool, monkeypatch)
    first = await pay(client, dev, card, "1.00")

    # when it pays again an hour later (by the process's clock)
    clock = terminals.time.monotonic
    monkeypatch.setattr(terminals.time, "monotonic", lambda: clock() + 3600)
    later = await pay(client, dev, card, "1.00")

    # then its row was read for the first payment only
    assert first.status_code == 200 and later.status_code == 200
    assert reads == [dev.sn]


async def test_a_till_changed_elsewhere_is_answered_as_it_is_now(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    # given a till whose row this process has cached
    dev, card = await _till(pool, settings)
    assert (await pay(client, dev, card, "1.00")).status_code == 200

    async def change(sql: str) -> None:
        # as another worker process would: this process's cache is not told
        async with pool.acquire() as conn:
            await conn.execute(sql, dev.id)

    # when another process disables it, enables it again, then rotates its key
    await change("UPDATE terminals SET status = 'disabled' WHERE id = $1")
    disabled = await pay(client, dev, card, "1.00")
    await change("UPDATE terminals SET status = 'active' WHERE id = $1")
    enabled = await pay(client, dev, card, "1.00")
    await change("UPDATE terminals SET key_version = 2, prev_key_version = NULL WHERE id = $1")
    old_key = await pay(client, dev, card, "1.00")
    new = dataclasses.replace(
        dev,
        key=signing.derive_terminal_key(settings.master_key.get_secret_value(), dev.sn, 2),
        key_version=2,
    )
    new_key = await pay(client, new, card, "1.00")

    # then each payment is answered as the till is at that moment
    assert disabled.status_code == 403
    assert disabled.json()["error"]["code"] == "TERMINAL_DISABLED"
    assert enabled.status_code == 200
    assert old_key.status_code == 401
    assert old_key.json()["error"]["code"] == "KEY_VERSION_INVALID"
    assert new_key.status_code == 200, new_key.text
