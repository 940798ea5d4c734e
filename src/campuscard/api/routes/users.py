"""Managing sign-ins: staff users with roles, cardholder and parent logins, lock/unlock."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from campuscard.api.deps import Body, CurrentActor, bearer_token
from campuscard.edge.deps import Pool, school_id_for
from campuscard.edge.session import session_token
from campuscard.platform import users

router = APIRouter(prefix="/api/v1", tags=["users"])

PHONE = r"^\+?[0-9]{5,20}$"
StaffRole = Literal[
    "school_admin", "card_center", "settlement", "teacher", "merchant_staff", "merchant_manager"
]


class RoleIn(Body):
    role: StaffRole
    merchant_id: int | None = Field(default=None, gt=0)


class StaffUserIn(Body):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@+-]{2,64}$")
    password: str = Field(min_length=8, max_length=256)
    display_name: str = Field(default="", max_length=64)
    phone: str | None = Field(default=None, pattern=PHONE)
    roles: list[RoleIn] = Field(min_length=1, max_length=10)


class PasswordIn(Body):
    password: str = Field(min_length=8, max_length=256)


class GuardianLoginIn(Body):
    phone: str = Field(pattern=PHONE)
    password: str | None = Field(default=None, min_length=8, max_length=256)
    display_name: str = Field(default="", max_length=64)


class ChangePasswordIn(Body):
    old_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=8, max_length=256)


class UserRoleOut(BaseModel):
    role: str
    merchant_id: int | None


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str | None
    person_id: int | None
    is_active: bool
    locked: bool = Field(description="locked after failed sign-ins, until an admin unlocks it")
    roles: list[UserRoleOut]


class UserCreated(BaseModel):
    id: int
    username: str


class LoginCreated(BaseModel):
    id: int = Field(description="the new login's user id")


class Done(BaseModel):
    ok: bool


@router.get("/admin/schools/{school}/users")
async def list_users(school: str, pool: Pool, actor: CurrentActor) -> list[UserOut]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        rows = await users.list_users(conn, actor, school_id)
    return [UserOut.model_validate(r) for r in rows]


@router.post("/admin/schools/{school}/users", status_code=201)
async def create_staff_user(
    school: str, body: StaffUserIn, pool: Pool, actor: CurrentActor
) -> UserCreated:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        user_id = await users.do_create_staff_user(
            conn,
            actor,
            school_id,
            username=body.username,
            password=body.password,
            display_name=body.display_name,
            phone=body.phone,
            roles=[(r.role, r.merchant_id) for r in body.roles],
        )
    return UserCreated(id=user_id, username=body.username)


@router.post("/admin/persons/{person_id}/login", status_code=201)
async def create_cardholder_login(
    person_id: int, body: PasswordIn, pool: Pool, actor: CurrentActor
) -> LoginCreated:
    async with pool.acquire() as conn:
        user_id = await users.do_create_cardholder_login(
            conn, actor, person_id, password=body.password
        )
    return LoginCreated(id=user_id)


@router.post("/admin/persons/{person_id}/guardian-login", status_code=201)
async def link_guardian_login(
    person_id: int, body: GuardianLoginIn, pool: Pool, actor: CurrentActor
) -> LoginCreated:
    async with pool.acquire() as conn:
        user_id = await users.do_link_guardian_login(
            conn,
            actor,
            person_id,
            phone=body.phone,
            password=body.password,
            display_name=body.display_name,
        )
    return LoginCreated(id=user_id)


@router.post("/admin/users/{user_id}/unlock")
async def unlock_user(user_id: int, pool: Pool, actor: CurrentActor) -> Done:
    async with pool.acquire() as conn:
        await users.do_unlock(conn, actor, user_id)
    return Done(ok=True)


@router.post("/admin/users/{user_id}/deactivate")
async def deactivate_user(user_id: int, pool: Pool, actor: CurrentActor) -> Done:
    async with pool.acquire() as conn:
        await users.do_set_active(conn, actor, user_id, active=False)
    return Done(ok=True)


@router.post("/admin/users/{user_id}/activate")
async def activate_user(user_id: int, pool: Pool, actor: CurrentActor) -> Done:
    async with pool.acquire() as conn:
        await users.do_set_active(conn, actor, user_id, active=True)
    return Done(ok=True)


@router.post("/admin/users/{user_id}/password")
async def reset_password(user_id: int, body: PasswordIn, pool: Pool, actor: CurrentActor) -> Done:
    async with pool.acquire() as conn:
        await users.do_reset_password(conn, actor, user_id, password=body.password)
    return Done(ok=True)


@router.post("/auth/password")
async def change_own_password(
    body: ChangePasswordIn, request: Request, pool: Pool, actor: CurrentActor
) -> Done:
    """Change one's own password; one's other sessions are signed out."""
    await users.do_change_own_password(
        pool,
        actor,
        old=body.old_password,
        new=body.new_password,
        session_token=bearer_token(request) or session_token(request),
    )
    return Done(ok=True)
