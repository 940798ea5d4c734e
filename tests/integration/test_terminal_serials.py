"""A device serial is one device on the whole platform: its key is derived from the serial and a
signed request names the serial alone, so a second school cannot register a serial another
school uses (it would share that device's key), and a serial found in two schools (registered
before the check) is trusted by neither until one is registered anew."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from campuscard.config import Settings
from campuscard.payments import terminals
from campuscard.platform.errors import Conflict
from tests.support import ROOT, make_school
from tests.support_payments import device_call, make_device, make_merchant


async def test_a_serial_is_registered_in_one_school_only(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        first = await make_school(conn, "TST")
        other = await make_school(conn, "OTH")
        merchant, _ = await make_merchant(conn, first.id)
        other_merchant, _ = await make_merchant(conn, other.id)
        dev = await make_device(conn, settings, first.id, merchant, "POS-SHARED-1")
        # another school registering the same serial is refused on the serial, nothing made
        with pytest.raises(Conflict) as refused:
            await terminals.register_terminal(
                conn,
                ROOT,
                settings,
                other.id,
                sn="POS-SHARED-1",
                kind="pos",
                merchant_id=other_merchant,
            )
        assert refused.value.field == "sn"
        assert await conn.fetchval("SELECT count(*) FROM terminals WHERE sn = 'POS-SHARED-1'") == 1

    # the device signs as before
    ok = await device_call(client, dev, "POST", "/api/v1/terminal/heartbeat", {})
    assert ok.status_code == 200, ok.text

    # a serial found in two schools (written before the check existed): the device is not
    # trusted, whichever school's row a lookup would have found
    async with pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO terminals(school_id, sn, kind, merchant_id, location)
               VALUES ($1, 'POS-SHARED-1', 'pos', $2, 'copy')""",
            other.id,
            other_merchant,
        )
    terminals.forget_terminal("POS-SHARED-1")
    refused_call = await device_call(client, dev, "POST", "/api/v1/terminal/heartbeat", {})
    assert refused_call.status_code == 401, refused_call.text
