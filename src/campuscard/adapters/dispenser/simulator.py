"""A card dispenser on a TCP port, speaking the framed serial protocol: a stack of blank cards
with numbers and chip UIDs, the data written on each card, and faults to inject (jam on the
next dispense, a damaged frame on the line)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from campuscard.adapters.dispenser import NAK, decode_frame, encode_frame
from campuscard.adapters.dispenser.serial import _read_frame


@dataclass
class IssuedCard:
    number: str
    uid: str
    written: dict[str, str]


@dataclass
class DispenserSimulator:
    stock: int = 20
    first_number: int = 310000000001  # 12 digits, like every other card number
    jam_next: int = 0  # the next N dispenses jam (the card is captured)
    garble_next: int = 0  # the next N answers are damaged on the line
    issued: list[IssuedCard] = field(default_factory=list)
    rejected: int = 0
    _next: int = 0
    _server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _state(self) -> str:
        return "JAM" if self.jam_next else ("EMPTY" if self.stock <= 0 else "OK")

    def _dispense(self, data: bytes) -> bytes:
        if self.stock <= 0:
            return b"ER|EMPTY"
        try:
            written = json.loads(data.decode())
        except ValueError:
            return b"ER|WRITE_FAILED"
        number = str(self.first_number + self._next)
        uid = f"{0xA5000000 + (self.first_number + self._next) % 0x1000000:08X}"
        self._next += 1
        self.stock -= 1
        if self.jam_next:
            self.jam_next -= 1
            self.rejected += 1  # the jammed card goes to the reject bin
            return b"ER|JAM"
        self.issued.append(IssuedCard(number, uid, written))
        return f"OK|{number}|{uid}".encode()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                frame = await _read_frame(reader)
                decoded = decode_frame(frame)
                if decoded is None:
                    writer.write(bytes([NAK]))
                    await writer.drain()
                    continue
                command, data = decoded
                if command == "S":
                    answer = encode_frame("S", f"{self._state()}|{self.stock}".encode())
                elif command == "D":
                    answer = encode_frame("D", self._dispense(data))
                else:
                    answer = encode_frame(command, b"ER|UNKNOWN_COMMAND")
                if self.garble_next:
                    self.garble_next -= 1
                    writer.write(answer[:-1] + bytes([answer[-1] ^ 0xFF]))
                    await writer.drain()
                    # the kiosk NAKs; the device repeats its last answer
                    if (await reader.readexactly(1))[0] == NAK:
                        writer.write(answer)
                else:
                    writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
