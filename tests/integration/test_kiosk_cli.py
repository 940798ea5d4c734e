"""`campuscard kiosk pickup` and `kiosk serve` run the kiosk's agent as the kiosk does: over HTTP
to the platform, with its terminal key, and a dispenser simulator when no serial bridge is
named. The agent they build picks up a card against a served platform."""

from __future__ import annotations

import asyncio
from typing import Any

from typer.testing import CliRunner, Result

from campuscard import cli
from campuscard.app import create_app
from campuscard.config import Settings
from campuscard.platform.signing import derive_terminal_key
from tests.integration.test_kiosk_pickup import parent_applies
from tests.servers import serve_in_thread
from tests.support_issuing import make_campus, make_kiosk


async def test_the_kiosk_commands_agent_picks_up_a_card_over_http(
    pool: Any, settings: Settings
) -> None:
    # given a kiosk of a school and a parent's pickup code
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
        await make_kiosk(conn, campus, "KIOSK-CLI1")
    code = await parent_applies(pool, settings, campus)
    key = derive_terminal_key(settings.master_key.get_secret_value(), "KIOSK-CLI1", 1)
    with serve_in_thread(create_app(settings)) as base:

        def pickup(hex_key: str) -> Result:
            args = ["kiosk", "pickup", code, "--sn", "KIOSK-CLI1", "--url", base, "--key", hex_key]
            return CliRunner().invoke(cli.app, args)

        # a wrong key: the command says the platform refused the kiosk, and nothing is issued
        refused = await asyncio.to_thread(pickup, "00" * 32)
        assert refused.exit_code == 1
        assert "refused this kiosk: HTTP 401 (check --sn and --key)" in refused.output
        # the kiosk's own key: the code is live, and a card comes out of the simulator
        done = await asyncio.to_thread(pickup, key.hex())
        assert done.exit_code == 0, done.output
        assert "KIOSK-CLI1: 1 pickup code(s) waiting at this school" in done.output
        # the same code again: already used, said so, exit status 1
        again = await asyncio.to_thread(pickup, key.hex())
        assert again.exit_code == 1, again.output
    async with pool.acquire() as conn:
        issued = await conn.fetchval(
            "SELECT count(*) FROM cards WHERE school_id = $1", campus.school_id
        )
    assert issued == 1
