"""API-only request dependencies: strict bodies, the signed-in actor (a bearer token, or the
session cookie with the page's CSRF token for writes), the live-event batcher."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict
from starlette.applications import Starlette

from campuscard.edge.deps import AppSettings, Pool
from campuscard.edge.session import (
    CSRF_HEADER,
    SAFE_METHODS,
    check_csrf,
    resolve_cookie_session,
    session_token,
)
from campuscard.payments.batching import PaymentBatcher
from campuscard.platform import auth
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Unauthorized
from campuscard.platform.event_batch import EventBatcher


class Body(BaseModel):
    """Request bodies: unknown fields and loose types (a float for an int) are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


def live_events(app: Starlette) -> EventBatcher:
    """The app's batcher of live payment events (one per app, sending through its pool)."""
    batcher: EventBatcher | None = getattr(app.state, "payment_events", None)
    if batcher is None:
        batcher = EventBatcher(lambda: app.state.pool)
        app.state.payment_events = batcher
    return batcher


def payment_batcher(app: Starlette) -> PaymentBatcher:
    """The app's group commit of payments, by card and by code (one per app, booking through
    its pool)."""
    batcher: PaymentBatcher | None = getattr(app.state, "payment_batcher", None)
    if batcher is None:
        settings = app.state.settings
        batcher = PaymentBatcher(
            lambda: app.state.pool,
            max_batch=settings.payment_batch_max,
            lanes=settings.payment_batch_lanes,
        )
        app.state.payment_batcher = batcher
    return batcher


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return None


async def current_actor(request: Request, pool: Pool, settings: AppSettings) -> Actor:
    token = bearer_token(request)
    if token is not None:
        actor, _ = await auth.resolve_session(pool, settings, token, "api")
        return actor
    cookie = session_token(request)
    if cookie:
        actor, csrf = await resolve_cookie_session(pool, settings, cookie)
        # the browser sends the cookie by itself: a write must also prove it comes from our
        # page, with the session's CSRF token in a header (the pages' scripts send it)
        if request.method not in SAFE_METHODS:
            check_csrf(
                request.headers.get(CSRF_HEADER),
                csrf,
                message="a request signed in by the session cookie must carry the page's "
                "X-CSRF-Token header",
                field="X-CSRF-Token",
            )
        return actor
    raise Unauthorized("sign in first: send 'Authorization: Bearer <token>'", code="AUTH_REQUIRED")


CurrentActor = Annotated[Actor, Depends(current_actor)]
