"""`campuscard sim pos paycode` pays a phone's code over real HTTP like a till with a scanner,
and a code from an account whose card was reported lost (through the card service) is refused."""

from __future__ import annotations

import asyncio
import json
import time

from typer.testing import CliRunner

from campuscard import cli
from campuscard.app import create_app
from campuscard.cards import lifecycle
from campuscard.config import Settings
from campuscard.db.pool import connect
from campuscard.payments import codes
from campuscard.platform import auth
from tests.servers import serve_in_thread
from tests.support import ROOT, make_school, make_user
from tests.support_paycodes import Holder
from tests.support_payments import make_cardholder, make_device, make_merchant


async def _setup(db_url: str, settings: Settings) -> tuple[str, bytes, Holder, int]:
    conn = await connect(db_url)
    try:
        school = await make_school(conn)
        merchant_id, outlet_id = await make_merchant(conn, school.id)
        dev = await make_device(
            conn, settings, school.id, merchant_id, "POS-SIM-QR1", outlet_id=outlet_id
        )
        person_id, card = await make_cardholder(conn, school.id, "S1", cash=10_000)
        user_id = await make_user(conn, "uS1", "cardholder", school.id, person_id=person_id)
        actor = await auth.load_actor(conn, user_id)
        device = await codes.do_bind_device(conn, settings, actor, label="phone")
        return dev.sn, dev.key, Holder(school.id, person_id, user_id, actor, device), card["id"]
    finally:
        await conn.close()


def test_sim_pos_pays_a_code_and_a_lost_card_blocks_codes(db_url: str, settings: Settings) -> None:
    sn, key, holder, card_id = asyncio.run(_setup(db_url, settings))
    runner = CliRunner()
    with serve_in_thread(create_app(settings)) as base:
        pos = ["sim", "pos", "--sn", sn, "--key", key.hex(), "--url", base]
        shown = runner.invoke(cli.app, [*pos, "show-amount", "--amount", "12.50"])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.output)["amount"] == "12.50"
        code = holder.code(time.time())
        paid = runner.invoke(cli.app, [*pos, "paycode", "--code", code, "--amount", "12.50"])
        assert paid.exit_code == 0, paid.output
        receipt = json.loads(paid.output)
        assert (receipt["balance"], receipt["method"]) == ("87.50", "code")
        again = runner.invoke(cli.app, [*pos, "paycode", "--code", code, "--amount", "12.50"])
        assert again.exit_code == 1 and "PAYCODE_USED" in again.output

        async def lose_card() -> None:
            conn = await connect(db_url)
            try:
                await lifecycle.report_loss(conn, ROOT, card_id)
            finally:
                await conn.close()

        asyncio.run(lose_card())
        fresh = holder.code(time.time(), counter=1)
        lost = runner.invoke(cli.app, [*pos, "paycode", "--code", fresh, "--amount", "1.00"])
        assert lost.exit_code == 1 and "CARD_LOST" in lost.output
