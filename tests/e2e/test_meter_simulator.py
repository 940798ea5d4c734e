"""The shower simulator speaks the metered-device protocol over real HTTP against a served
CampusCard: tariff, start (a hold), end (a capture), a resent report, a device that never
comes back — and `campuscard sim shower` does the same."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from typer.testing import CliRunner

from campuscard import cli
from campuscard.app import create_app
from campuscard.clients.meter_device import MeterDevice
from campuscard.clients.pos_terminal import PosTerminal
from campuscard.config import Settings
from campuscard.db.pool import connect
from campuscard.metering import sessions
from tests.servers import serve_in_thread
from tests.support import make_school
from tests.support_payments import make_cardholder, make_device, make_merchant

SHOWER: dict[str, Any] = {
    "kind": "shower",
    "ladders": {"student": [{"upto": 600, "rate": 500}, {"upto": None, "rate": 1000}]},
    "session_cap": 800,
    "daily_amount_cap": 3000,
    "daily_count_cap": 5,
    "min_gap_seconds": 0,
    "max_session_units": 1500,
}


async def _setup(db_url: str, settings: Settings) -> tuple[str, bytes, dict[str, Any], int]:
    conn = await connect(db_url)
    try:
        school = await make_school(conn)
        merchant_id, outlet_id = await make_merchant(conn, school.id)
        dev = await make_device(
            conn, settings, school.id, merchant_id, "SHOWER-0001", outlet_id=outlet_id
        )
        await sessions.do_configure_meter(conn, school.id, dev.id, SHOWER)
        person, card = await make_cardholder(conn, school.id, "S1", cash=5_000)
        return dev.sn, dev.key, card, person
    finally:
        await conn.close()


async def _purse(db_url: str, person: int) -> tuple[int, int]:
    conn = await connect(db_url)
    try:
        row = await conn.fetchrow(
            "SELECT balance, held FROM accounts WHERE person_id = $1 AND purse = 'cash'", person
        )
        assert row is not None
        return row["balance"], row["held"]
    finally:
        await conn.close()


def test_shower_simulator_over_http(db_url: str, settings: Settings) -> None:
    sn, key, card, person = asyncio.run(_setup(db_url, settings))
    with serve_in_thread(create_app(settings)) as base:
        shower = MeterDevice(PosTerminal(base_url=base, sn=sn, key=key))

        async def scenario() -> None:
            tariff = await shower.tariff()
            assert tariff.ok and tariff.body["unit"] == "second"
            # 10 minutes under water: 600 s at 0.5 fen = 3.00
            started, ended = await shower.session(
                card["number"], card["uid"], 600, session_id="s-000001"
            )
            assert started.ok and started.body["authorised"] == "8.00", started.body
            assert ended is not None and ended.ok and ended.body["charged"] == "3.00"
            assert await _purse(db_url, person) == (4_700, 0)
            resent = await shower.end("s-000001", 600)
            assert resent.replayed and resent.body == ended.body
            # the next shower starts up the ladder and stops at what 8.00 buys
            started, ended = await shower.session(card["number"], card["uid"], 5000)
            assert started.body["max_units"] == 800
            assert ended is not None and ended.body["charged"] == "8.00"
            # a shower that loses power: the money stays held until the hold expires
            started, ended = await shower.session(card["number"], card["uid"], 60, report=False)
            assert started.ok and ended is None
            assert await _purse(db_url, person) == (3_900, 800)
            bad = await shower.end("s-unknown1", 5)
            assert bad.status == 404 and bad.error_code == "SESSION_UNKNOWN"

        asyncio.run(scenario())

        # the command line speaks the same protocol (the hold above still runs: refused)
        args = ["sim", "shower", "--sn", sn, "--key", key.hex(), "--url", base]
        card_args = ["--card", card["number"], "--uid", card["uid"], "--units", "120"]
        result = CliRunner().invoke(cli.app, [*args, *card_args])
        assert result.exit_code == 1 and "SESSION_RUNNING" in result.output


def test_sim_shower_command_runs_a_session(db_url: str, settings: Settings) -> None:
    sn, key, card, person = asyncio.run(_setup(db_url, settings))
    with serve_in_thread(create_app(settings)) as base:
        result = CliRunner().invoke(
            cli.app,
            [
                "sim",
                "shower",
                "--sn",
                sn,
                "--key",
                key.hex(),
                "--url",
                base,
                "--card",
                card["number"],
                "--uid",
                card["uid"],
                "--units",
                "120",
            ],
        )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["start"]["authorised"] == "8.00" and out["end"]["charged"] == "0.60"
    assert asyncio.run(_purse(db_url, person)) == (4_940, 0)
