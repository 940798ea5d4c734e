from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

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


class RoleOut(BaseModel):
    role: str
    school_id: int | None
    merchant_id: int | None


class MeOut(BaseModel):
    username: str
    user_id: int | None
    school_id: int | None
    person_id: int | None = Field(description="the cardholder this login is, if any")
    roles: list[RoleOut]


class LoginOut(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>`")
    expires_at: str = Field(description="ISO 8601, UTC")
    user: MeOut


class LoggedOut(BaseModel):
    ok: bool


@router.post("/login")
async def login(body: LoginIn, pool: Pool, settings: AppSettings) -> LoginOut:
    """Exchange a username and password for an API token."""
    session = await auth.login(
        pool,
        settings,
        username=body.username,
        password=body.password,
        school_code=body.school,
        kind="api",
    )
    return LoginOut(
        token=session.token,
        expires_at=session.expires_at.isoformat(),
        user=me_view(session.actor),
    )


@router.post("/logout")
async def logout(request: Request, pool: Pool, actor: CurrentActor) -> LoggedOut:
    token = bearer_token(request)
    if token:
        await auth.logout(pool, token)
    return LoggedOut(ok=True)


@router.get("/me")
async def me(actor: CurrentActor) -> MeOut:
    return me_view(actor)


def me_view(actor: Actor) -> MeOut:
    return MeOut(
        username=actor.name,
        user_id=actor.user_id,
        school_id=actor.school_id,
        person_id=actor.person_id,
        roles=[
            RoleOut(role=g.role, school_id=g.school_id, merchant_id=g.merchant_id)
            for g in sorted(actor.grants, key=lambda g: (g.role, g.school_id or 0))
        ],
    )
