"""The bank simulator's controls (docs/bank-link.md): anyone can see what the bank holds and
rehearse a fault — a debit whose answer never comes, a closed bank — through the same bank
adapter production uses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from campuscard.adapters.bank import iso
from campuscard.adapters.bank.client import BankClient, BankTimeout
from campuscard.adapters.bank.simulator import CHINA, BankSimulator

KEY = "bank-link-test-key"
PAN = "6222021234567890128"


@pytest.fixture
def bank() -> Iterator[tuple[BankSimulator, BankClient]]:
    sim = BankSimulator(KEY)
    sim.open_account(PAN, "学生1", 100_000)
    with sim.running_in_thread() as port:
        yield sim, BankClient("127.0.0.1", port, mac_key=KEY, timeout=1.0)


@pytest.fixture
async def controls(bank: tuple[BankSimulator, BankClient]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=bank[0].control_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://bank-sim") as c:
        yield c


async def test_a_dropped_answer_leaves_the_debit_at_the_bank_until_reversed(
    bank: tuple[BankSimulator, BankClient], controls: httpx.AsyncClient
) -> None:
    _, client = bank
    token = (await client.verify_account(pan=PAN, holder_name="学生1", stan="000001")).token
    # given a fault for the next load
    armed = await controls.post("/faults", json={"mti": "0200", "mode": "drop"})
    assert armed.status_code == 200 and armed.json()["faults"] == {"0200": ["drop"]}
    # when the load is sent, the adapter times out
    with pytest.raises(BankTimeout):
        await client.transfer(
            direction="load", token=token, amount=5_000, rrn="000000000042", stan="000002"
        )
    # then the state shows the bank debited all the same, and the fault is used up
    state = (await controls.get("/state")).json()
    assert state["faults"] == {}
    assert state["accounts"] == [{"pan": iso.mask_pan(PAN), "name": "学生1", "balance_fen": 95_000}]
    assert [
        (t["rrn"], t["kind"], t["amount_fen"], t["reversed_at"]) for t in state["transactions"]
    ] == [("000000000042", "LOAD", 5_000, None)]
    assert state["held_fen"] == 5_000
    # and a reversal puts the money back
    undone = await client.reverse(
        direction="load", amount=5_000, rrn="000000000042", stan="000003", original_stan="000002"
    )
    assert undone.approved
    state = (await controls.get("/state")).json()
    assert state["transactions"][0]["reversed_at"] is not None
    assert state["accounts"][0]["balance_fen"] == 100_000 and state["held_fen"] == 0
    statement = await controls.get(
        "/statement", params={"day": datetime.now(CHINA).strftime("%Y%m%d")}
    )
    lines = statement.text.splitlines()
    assert (
        lines[0].startswith("H|CAMPUSBANK|") and len(lines) == 4
    )  # header, load, reversal, trailer
    assert lines[-1] == "T|5000|5000|0"


async def test_a_closed_bank_refuses_transfers_with_code_91(
    bank: tuple[BankSimulator, BankClient], controls: httpx.AsyncClient
) -> None:
    _, client = bank
    token = (await client.verify_account(pan=PAN, holder_name="学生1", stan="000001")).token
    later = datetime.now(CHINA) + timedelta(hours=2)
    if later.hour >= 22:  # a window that does not contain now, on the same day
        later = later.replace(hour=1)
    opens = later.strftime("%H:00")
    closes = (later + timedelta(hours=1)).strftime("%H:00")
    r = await controls.put("/hours", json={"open": opens, "close": closes})
    assert r.status_code == 200 and r.json()["open_now"] is False
    refused = await client.transfer(
        direction="load", token=token, amount=100, rrn="000000000050", stan="000005"
    )
    assert refused.code == iso.CLOSED
    assert (await controls.put("/hours", json={"always": True})).json()["open_now"] is True
    ok = await client.transfer(
        direction="load", token=token, amount=100, rrn="000000000051", stan="000006"
    )
    assert ok.approved


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/faults", {"mti": "0200", "mode": "explode"}, "mode"),
        ("/faults", {"mti": "0200", "mode": "delay:9999"}, "mode"),
        ("/faults", {"mti": "9999", "mode": "drop"}, "mti"),
        ("/faults", {"mti": "0200", "mode": "drop", "times": 0}, "times"),
        ("/hours", {"open": "25:00", "close": "26:00"}, "open"),
        ("/hours", {"open": "17:00", "close": "08:00"}, "body"),
    ],
)
async def test_bad_controls_are_refused_naming_the_field_and_change_nothing(
    controls: httpx.AsyncClient, path: str, body: dict[str, object], field: str
) -> None:
    before = (await controls.get("/state")).json()
    r = await (controls.post if path == "/faults" else controls.put)(path, json=body)
    assert r.status_code == 422
    assert field in str(r.json()["detail"][0]["loc"])
    after = (await controls.get("/state")).json()
    assert (after["faults"], after["hours"]) == (before["faults"], before["hours"])


def test_the_state_never_shows_a_full_card_number(bank: tuple[BankSimulator, BankClient]) -> None:
    assert PAN not in str(bank[0].state())
