"""The card-dispenser driver against its simulator over the framed serial protocol."""

from __future__ import annotations

import pytest

from campuscard.adapters.dispenser import DispenseError, decode_frame, encode_frame
from campuscard.adapters.dispenser.serial import SerialDispenser
from campuscard.adapters.dispenser.simulator import DispenserSimulator

CARD = {"name": "张三", "number": "2026000001", "class": "一年级1班", "school": "测试学校"}


def test_frames_round_trip_and_damage_is_detected() -> None:
    frame = encode_frame("D", b"OK|31000001|A5000001")
    assert decode_frame(frame) == ("D", b"OK|31000001|A5000001")
    assert decode_frame(frame[:-1] + bytes([frame[-1] ^ 1])) is None
    assert decode_frame(frame[:5]) is None


async def test_dispense_writes_the_student_and_reads_the_card_number() -> None:
    sim = DispenserSimulator(stock=2)
    port = await sim.start()
    try:
        driver = SerialDispenser("127.0.0.1", port)
        assert (await driver.status()).stock == 2
        card = await driver.dispense(CARD)
        assert card.number == "310000000001" and len(card.uid) == 8
        assert sim.issued[0].written == CARD
        await driver.dispense(CARD)
        with pytest.raises(DispenseError) as err:
            await driver.dispense(CARD)
        assert err.value.reason == "EMPTY"
        assert (await driver.status()).state == "EMPTY"
    finally:
        await sim.stop()


async def test_a_jam_is_reported_and_a_damaged_answer_is_asked_again_not_redispensed() -> None:
    sim = DispenserSimulator(stock=5, jam_next=1, garble_next=1)
    port = await sim.start()
    try:
        driver = SerialDispenser("127.0.0.1", port)
        with pytest.raises(DispenseError) as err:
            await driver.dispense(CARD)  # its answer is garbled once, then the jam is read
        assert err.value.reason == "JAM"
        card = await driver.dispense(CARD)
        assert len(sim.issued) == 1 and sim.issued[0].number == card.number
        assert sim.rejected == 1
    finally:
        await sim.stop()


async def test_an_unreachable_dispenser_is_offline() -> None:
    from campuscard.db.embedded import free_port

    with pytest.raises(DispenseError) as err:
        await SerialDispenser("127.0.0.1", free_port(), timeout=1).dispense(CARD)
    assert err.value.reason == "OFFLINE"
