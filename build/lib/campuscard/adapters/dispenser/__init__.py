"""The card dispenser inside a self-service kiosk (seed 004 claim 4: the main board drives the
IC card dispenser over RS232; the dispenser's read/write head reads the card number and
writes the student's data).

``CardDispenser`` is the driver interface the kiosk software uses; ``serial.SerialDispenser``
speaks the framed serial protocol below (over a serial-to-TCP bridge, as kiosks are wired),
and ``simulator.DispenserSimulator`` is a device speaking it.

Frame: STX 0x02 | LEN (2 bytes, big-endian, length of CMD+DATA) | CMD (1 ASCII byte) | DATA |
ETX 0x03 | BCC (XOR of every byte from LEN to ETX). The receiver answers a frame with a bad
BCC or shape with a single NAK 0x15, and the sender repeats it (at most 3 times).

Commands: ``S`` status → ``S`` "<state>|<stock>" (state OK, EMPTY, JAM);
``D`` dispense, DATA = UTF-8 JSON of what to write on the card → ``D`` "OK|<number>|<uid>"
when the card is at the mouth, or "ER|<reason>" (EMPTY, JAM, WRITE_FAILED) — on ER no card
left the device (a failed card is captured into the reject bin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

STX, ETX, NAK = 0x02, 0x03, 0x15


class DispenseError(Exception):
    """The dispenser did not hand out a card; ``reason`` is its code (EMPTY, JAM, ...)."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


@dataclass(frozen=True)
class DispensedCard:
    number: str
    uid: str


@dataclass(frozen=True)
class DispenserStatus:
    state: str  # OK, EMPTY, JAM
    stock: int


class CardDispenser(Protocol):
    async def status(self) -> DispenserStatus: ...

    async def dispense(self, card_data: dict[str, str]) -> DispensedCard:
        """Write ``card_data`` on the next card, read its number and present it."""
        ...


def bcc(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


def encode_frame(command: str, data: bytes = b"") -> bytes:
    body = len(command.encode() + data).to_bytes(2, "big") + command.encode() + data
    tail = body + bytes([ETX])
    return bytes([STX]) + tail + bytes([bcc(tail)])


def decode_frame(frame: bytes) -> tuple[str, bytes] | None:
    """(command, data), or None when the frame is damaged."""
    if len(frame) < 6 or frame[0] != STX or frame[-2] != ETX:
        return None
    length = int.from_bytes(frame[1:3], "big")
    if length != len(frame) - 5 or bcc(frame[1:-1]) != frame[-1]:
        return None
    return chr(frame[3]), frame[4:-2]
