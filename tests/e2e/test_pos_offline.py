"""The POS simulator's offline mode over real HTTP (docs/terminal-protocol.md §10, its worked
example): a till that cannot reach the server sells within the limits of its last list, stores
signed, numbered records, uploads them when the server answers, and a resent upload books
nothing twice; `campuscard sim pos … offline` does the same from the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from campuscard import cli
from campuscard.app import create_app
from campuscard.clients.pos_terminal import OfflineTill, PosTerminal
from campuscard.config import Settings
from campuscard.db.embedded import free_port
from campuscard.db.pool import connect
from tests.servers import serve_in_thread
from tests.support import make_school
from tests.support_payments import make_cardholder, make_device, make_merchant


async def _setup(db_url: str, settings: Settings) -> tuple[str, bytes, dict, int, dict]:
    conn = await connect(db_url)
    try:
        school = await make_school(conn)
        merchant_id, outlet_id = await make_merchant(conn, school.id)
        dev = await make_device(
            conn, settings, school.id, merchant_id, "POS-OFF-SIM", outlet_id=outlet_id
        )
        person, card = await make_cardholder(conn, school.id, "S1", cash=1_000)
        _, other = await make_cardholder(conn, school.id, "S2", cash=5_000)
        return dev.sn, dev.key, card, person, other
    finally:
        await conn.close()


async def _cash_and_owed(db_url: str, person: int) -> tuple[int, int]:
    conn = await connect(db_url)
    try:
        cash = await conn.fetchval(
            "SELECT balance FROM accounts WHERE person_id = $1 AND purse = 'cash'", person
        )
        owed = await conn.fetchval("SELECT owed FROM offline_debts WHERE person_id = $1", person)
        return int(cash), int(owed or 0)
    finally:
        await conn.close()


def test_offline_till_sells_stores_and_uploads(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    sn, key, card, person, other = asyncio.run(_setup(db_url, settings))
    app = create_app(settings)
    with serve_in_thread(app) as base:
        state = tmp_path / "till.json"

        async def scenario() -> None:
            till = OfflineTill.load(PosTerminal(base_url=base, sn=sn, key=key), state)
            assert (await till.refresh_list()).ok
            # the network goes down: the payment cannot reach the server, the till sells offline
            till.terminal.base_url = f"http://127.0.0.1:{free_port()}"
            till.terminal.timeout = 2.0
            mode, sale = await till.pay(card["number"], card["uid"], "12.00")
            assert mode == "offline"
            assert sale.approved  # type: ignore[union-attr]
            second = till.sell_offline(card["number"], card["uid"], "8.00")
            assert second.approved
            assert second.record is not None
            assert (second.record["card_counter"], second.record["total_after"]) == (2, "20.00")
            # beyond the limits of the last list
            assert till.sell_offline(card["number"], card["uid"], "25.00").code == (
                "OFFLINE_AMOUNT_LIMIT"
            )
            kept = list(till.state.queue)

            # a restarted till has its queue, sequence and the card areas it wrote
            again = OfflineTill.load(PosTerminal(base_url=base, sn=sn, key=key), state)
            assert (again.state.next_seq, len(again.state.queue)) == (3, 2)
            answers = await again.upload()
            assert [a.ok for a in answers] == [True]
            body = answers[0].body
            assert (body["accepted"], body["settled"], body["overdrafts"]) == (2, 2, 2)
            assert (body["contiguous_seq"], body["missing"]) == (2, [])
            assert again.state.queue == []
            assert await _cash_and_owed(db_url, person) == (0, 1_000)

            # the answer was lost, the till sends the same records again: nothing twice
            resent = await again.terminal.request(
                "POST", "/api/v1/terminal/offline/upload", {"records": kept}
            )
            assert (resent.body["duplicates"], resent.body["settled"]) == (2, 0)
            assert await _cash_and_owed(db_url, person) == (0, 1_000)

            # the holder is now listed (owes more than the default limit of 0.00)
            await again.refresh_list()
            assert again.state.listed == {card["number"]: "overdrawn"}
            assert again.sell_offline(card["number"], card["uid"], "1.00").code == "CARD_LISTED"

        asyncio.run(scenario())

        # the command line: the same till's store file, sell offline, look at it, upload it
        common = ["sim", "pos", "--sn", sn, "--key", key.hex(), "--url", base, "offline"]
        store = ["--state", str(state)]
        runner = CliRunner()
        refreshed = runner.invoke(cli.app, [*common, *store, "refresh"])
        assert refreshed.exit_code == 0, refreshed.output
        refused = runner.invoke(
            cli.app,
            [
                *common,
                *store,
                "sell",
                "--card",
                card["number"],
                "--uid",
                card["uid"],
                "--amount",
                "3.00",
            ],
        )
        assert refused.exit_code == 1
        assert json.loads(refused.output)["code"] == "CARD_LISTED"
        sold = runner.invoke(
            cli.app,
            [
                *common,
                *store,
                "sell",
                "--card",
                other["number"],
                "--uid",
                other["uid"],
                "--amount",
                "3.00",
            ],
        )
        assert sold.exit_code == 0, sold.output
        assert json.loads(sold.output)["record"]["seq"] == 3
        status = runner.invoke(cli.app, [*common, *store, "status"])
        assert (
            json.loads(status.output)["stored"],
            json.loads(status.output)["stored_amount"],
        ) == (
            1,
            "3.00",
        )
        uploaded = runner.invoke(cli.app, [*common, *store, "upload"])
        assert uploaded.exit_code == 0, uploaded.output
        answer = json.loads(uploaded.output)[0]
        assert (answer["accepted"], answer["settled"], answer["contiguous_seq"]) == (1, 1, 3)
