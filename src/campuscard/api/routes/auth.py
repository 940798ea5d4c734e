from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from campuscard.api.deps import Body, CurrentActor, bearer_token
from campuscard.edge.deps import AppSettings, Pool
from campuscard.platform import auth
from campuscard.platform.actors import Actor

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class LoginIn(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    school: str | None = Field(
        default=None, max_length=32, description="school code; empty for platform users"
    )


@router.post("/login")
async def login(body: LoginIn, pool: Pool, settings: AppSettings) -> dict[str, Any]:
    """Exchange a username and password for an API token."""
    session = await auth.login(
        pool,
        settings,
        username=body.username,
        password=body.password,
        school_code=body.school,
        kind="api",
    )
    return {
        "token": session.token,
        "expires_at": session.expires_at.isoformat(),
        "user": me_view(session.actor),
    }


@router.post("/logout")
async def logout(request: Request, pool: Pool, actor: CurrentActor) -> dict[str, Any]:
    token = bearer_token(request)
    if token:
        await auth.logout(pool, token)
    return {"ok": True}


@router.get("/me")
async def me(actor: CurrentActor) -> dict[str, Any]:
    return me_view(actor)


def me_view(actor: Actor) -> dict[str, Any]:
    return {
        "username": actor.name,
        "user_id": actor.user_id,
        "school_id": actor.school_id,
        "person_id": actor.person_id,
        "roles": [
            {"role": g.role, "school_id": g.school_id, "merchant_id": g.merchant_id}
            for g in sorted(actor.grants, key=lambda g: (g.role, g.school_id or 0))
        ],
    }
