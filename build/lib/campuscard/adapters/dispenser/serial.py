"""Driver for the framed serial dispenser protocol (see adapters/dispenser/__init__.py), over
a serial-to-TCP bridge."""

from __future__ import annotations

import asyncio
import json

from campuscard.adapters.dispenser import (
    NAK,
    STX,
    DispensedCard,
    DispenseError,
    DispenserStatus,
    decode_frame,
    encode_frame,
)

MAX_SENDS = 3


class SerialDispenser:
    def __init__(self, host: str, port: int, *, timeout: float = 15.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout

    async def _exchange(self, command: str, data: bytes = b"") -> tuple[str, bytes]:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout
            )
        except (OSError, TimeoutError) as err:
            raise DispenseError("OFFLINE", f"dispenser not reachable: {err!r}") from err
        frame = encode_frame(command, data)
        try:
            writer.write(frame)
            await writer.drain()
            for _ in range(MAX_SENDS):
                answer = await asyncio.wait_for(_read_frame(reader), self.timeout)
                if answer == bytes([NAK]):
                    writer.write(frame)  # the device could not read our frame: send it again
                    await writer.drain()
                    continue
                decoded = decode_frame(answer)
                if decoded is None:
                    # a damaged answer: NAK it and the device repeats it (never re-send a
                    # dispense command, which would hand out a second card)
                    writer.write(bytes([NAK]))
                    await writer.drain()
                    continue
                return decoded
            raise DispenseError("LINE_ERROR", "the serial line kept damaging frames")
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as err:
            raise DispenseError("OFFLINE", f"dispenser stopped answering: {err!r}") from err
        finally:
            writer.close()

    async def status(self) -> DispenserStatus:
        _, data = await self._exchange("S")
        state, _, stock = data.decode().partition("|")
        return DispenserStatus(state=state, stock=int(stock or 0))

    async def dispense(self, card_data: dict[str, str]) -> DispensedCard:
        _, data = await self._exchange("D", json.dumps(card_data, ensure_ascii=False).encode())
        parts = data.decode().split("|")
        if parts[0] == "OK" and len(parts) == 3:
            return DispensedCard(number=parts[1], uid=parts[2])
        raise DispenseError(parts[1] if len(parts) > 1 else "UNKNOWN", data.decode())


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    first = await reader.readexactly(1)
    if first[0] != STX:
        return first  # NAK (or line noise, which the caller treats as a damaged frame)
    length = await reader.readexactly(2)
    rest = await reader.readexactly(int.from_bytes(length, "big") + 2)
    return first + length + rest
