"""A metered device simulator (shower, water, laundry, computer lab, bus): the reference for a
device maker, signing like the POS (``PosTerminal``). A session: ask to start with the card,
run until the user stops or the authorised units are used, report the units."""

from __future__ import annotations

from dataclasses import dataclass

from campuscard.clients.pos_terminal import DeviceAnswer, PosTerminal


@dataclass
class MeterDevice:
    terminal: PosTerminal

    async def tariff(self) -> DeviceAnswer:
        return await self.terminal.request("GET", "/api/v1/terminal/meter/tariff")

    async def start(self, card_number: str, uid: str, session_id: str) -> DeviceAnswer:
        return await self.terminal.request(
            "POST",
            "/api/v1/terminal/meter/start",
            {"session_id": session_id, "card_number": card_number, "card_uid": uid},
        )

    async def end(self, session_id: str, units: int) -> DeviceAnswer:
        return await self.terminal.request(
            "POST", "/api/v1/terminal/meter/end", {"session_id": session_id, "units": units}
        )

    async def session(
        self,
        card_number: str,
        uid: str,
        units: int,
        *,
        session_id: str | None = None,
        report: bool = True,
    ) -> tuple[DeviceAnswer, DeviceAnswer | None]:
        """One use: start, run ``units`` (the device stops at the authorised units), report.
        ``report=False`` is a device that loses power and never comes back."""
        sid = session_id or self.terminal.next_client_id()[-40:]
        started = await self.start(card_number, uid, sid)
        if not started.ok or not report:
            return started, None
        used = min(units, int(started.body["max_units"]))
        return started, await self.end(sid, used)
