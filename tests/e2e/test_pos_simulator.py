"""The POS simulator signs like a real device, over real HTTP, against a served CampusCard:
pay, check, retry, reverse, refund, blacklist, heartbeat, key rotation — and the
`campuscard sim pos` command does the same."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from campuscard import cli
from campuscard.app import create_app
from campuscard.cards import lifecycle
from campuscard.clients.pos_terminal import PosTerminal
from campuscard.config import Settings
from campuscard.db.pool import connect
from tests.servers import serve_in_thread
from tests.support import ROOT, make_school, make_user
from tests.support_payments import make_cardholder, make_device, make_merchant


async def _setup(db_url: str, settings: Settings) -> tuple[str, bytes, dict, dict]:
    conn = await connect(db_url)
    try:
        school = await make_school(conn)
        merchant_id, outlet_id = await make_merchant(conn, school.id)
        dev = await make_device(
            conn, settings, school.id, merchant_id, "POS-SIM-001", outlet_id=outlet_id
        )
        await make_user(conn, "cashier", "merchant_manager", school.id, merchant_id=merchant_id)
        _, card = await make_cardholder(conn, school.id, "S1", cash=10_000)
        _, other = await make_cardholder(conn, school.id, "S2", cash=10_000)
        return dev.sn, dev.key, card, other
    finally:
        await conn.close()


def test_simulator_end_to_end_over_http(db_url: str, settings: Settings) -> None:
    sn, key, card, other = asyncio.run(_setup(db_url, settings))
    app = create_app(settings)
    with serve_in_thread(app) as base:
        pos = PosTerminal(base_url=base, sn=sn, key=key)

        async def scenario() -> None:
            check = await pos.check(card["number"], card["uid"], "12.50")
            assert check.ok and check.body["balance_after"] == "87.50"
            client_id, paid = await pos.pay(card["number"], card["uid"], "12.50")
            assert paid.ok, paid.body
            _, retry = await pos.pay(card["number"], card["uid"], "12.50", client_id=client_id)
            assert retry.replayed and retry.body == paid.body
            rev = await pos.reverse(client_id)
            assert rev.ok and rev.body["returned_to"]["cash"] == "12.50"
            _, paid2 = await pos.pay(card["number"], card["uid"], "8.00")
            token = await pos.sign_in("cashier", "correct-horse-battery", "TST")
            refund = await pos.refund(paid2.body["payment_id"], "3.00", bearer=token)
            assert refund.ok and refund.body["balance"] == "95.00"
            conn = await connect(db_url)
            try:
                await lifecycle.report_loss(conn, ROOT, other["id"])
            finally:
                await conn.close()
            bl = await pos.blacklist(0)
            assert [c["number"] for c in bl.body["added"]] == [other["number"]]
            hb = await pos.heartbeat(blacklist_version=bl.body["version"])
            assert hb.ok and hb.body["blacklist_version"] == bl.body["version"]
            rot = await pos.rotate_key()
            assert rot.ok and pos.key_version == 2
            _, after = await pos.pay(card["number"], card["uid"], "1.00")
            assert after.ok
            _, lost = await pos.pay(other["number"], other["uid"], "1.00")
            assert lost.error_code == "CARD_LOST"

        asyncio.run(scenario())

        # the command line speaks the same protocol
        runner = CliRunner()
        result = runner.invoke(
            cli.app,
            [
                "sim",
                "pos",
                "--sn",
                sn,
                "--key",
                key.hex(),
                "--key-version",
                "1",
                "--url",
                base,
                "pay",
                "--card",
                card["number"],
                "--uid",
                card["uid"],
                "--amount",
                "2.00",
            ],
        )
        assert result.exit_code == 1  # key version 1 was retired by the rotation above
        assert "KEY_VERSION_INVALID" in result.output
        rotated = asyncio.run(PosTerminal(base_url=base, sn=sn, key=key).rotate_key())
        assert rotated.error_code == "KEY_VERSION_INVALID"


def test_sim_command_pays_with_key_derived_from_master_key(
    db_url: str, settings: Settings, monkeypatch: object
) -> None:
    import pytest

    mp: pytest.MonkeyPatch = monkeypatch  # type: ignore[assignment]
    sn, _, card, _ = asyncio.run(_setup(db_url, settings))
    mp.setenv("CAMPUSCARD_MASTER_KEY", settings.master_key.get_secret_value())
    cli.get_settings.cache_clear()
    try:
        with serve_in_thread(create_app(settings)) as base:
            result = CliRunner().invoke(
                cli.app,
                [
                    "sim",
                    "pos",
                    "--sn",
                    sn,
                    "--url",
                    base,
                    "pay",
                    "--card",
                    card["number"],
                    "--uid",
                    card["uid"],
                    "--amount",
                    "2.00",
                ],
            )
    finally:
        cli.get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["balance"] == "98.00"
