"""The signed-device dependency: every terminal route takes ``SignedDevice``.

It checks the HMAC signature over method, path (with query), timestamp, nonce and body hash,
the timestamp window and the key version; the nonce is recorded by the work's own transaction
(inside ``cc_pay`` for payments, ``terminals.record_nonce`` elsewhere) so a refused request does
not burn it and a payment stays one round trip. See docs/terminal-protocol.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.edge.deps import AppSettings, Pool
from campuscard.payments import terminals
from campuscard.payments.terminals import SignedTerminal
from campuscard.platform.logs import bind_terminal


def signed_path(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def _verified(
    request: Request, pool: PgPool, settings: Settings, *, rechecked: bool
) -> SignedTerminal:
    body = await request.body()
    signed = await terminals.verify_request(
        pool,
        settings,
        method=request.method,
        path=signed_path(request),
        headers=dict(request.headers.items()),
        body=body,
        rechecked=rechecked,
    )
    bind_terminal(signed.id, signed.school_id)  # every later log line of the request names it
    return signed


async def signed_terminal(request: Request, pool: Pool, settings: AppSettings) -> SignedTerminal:
    return await _verified(request, pool, settings, rechecked=False)


async def signed_booking_terminal(
    request: Request, pool: Pool, settings: AppSettings
) -> SignedTerminal:
    """For a route whose one database call books through ``cc_pay_terminal``, which checks the
    till's status and key version again: the till's row is not read again on a timer."""
    return await _verified(request, pool, settings, rechecked=True)


SignedDevice = Annotated[SignedTerminal, Depends(signed_terminal)]
BookingDevice = Annotated[SignedTerminal, Depends(signed_booking_terminal)]
