"""Sign-in accounts: operators and merchant staff with roles, cardholder and parent logins.

Who may grant what: a platform admin grants anything; a school admin grants the school roles of
their own school (never platform_admin); nobody else manages users.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, owns_transaction, transaction
from campuscard.platform import audit, auth
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, Forbidden, NotFound, ValidationFailed

STAFF_ROLES = frozenset(
    {
        "school_admin",
        "card_center",
        "settlement",
        "teacher",
        "counsellor",
        "merchant_staff",
        "merchant_manager",
    }
)
MERCHANT_ROLES = frozenset({"merchant_staff", "merchant_manager"})


def _check_may_grant(actor: Actor, school_id: int, roles: list[tuple[str, int | None]]) -> None:
    actor.require("school_admin", school_id=school_id)
    if not roles:
        raise ValidationFailed("give at least one role", field="roles")
    for role, merchant_id in roles:
        if role not in STAFF_ROLES:
            raise ValidationFailed(f"role {role!r} cannot be granted here", field="roles")
        if (role in MERCHANT_ROLES) != (merchant_id is not None):
            raise ValidationFailed(
                f"role {role!r} {'needs' if role in MERCHANT_ROLES else 'takes no'} merchant_id",
                field="roles",
            )


async def _check_merchants(conn: Conn, school_id: int, roles: list[tuple[str, int | None]]) -> None:
    for _, merchant_id in roles:
        if merchant_id is not None and not await conn.fetchval(
            "SELECT 1 FROM merchants WHERE id = $1 AND school_id = $2", merchant_id, school_id
        ):
            raise NotFound(f"merchant {merchant_id} not found in this school", field="roles")


@owns_transaction
async def do_create_staff_user(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    username: str,
    password: str,
    display_name: str,
    roles: list[tuple[str, int | None]],
    phone: str | None = None,
) -> int:
    _check_may_grant(actor, school_id, roles)
    await _check_merchants(tx, school_id, roles)
    try:
        user_id = await auth.create_user(
            tx,
            username=username,
            password=password,
            school_id=school_id,
            roles=[(role, school_id, merchant_id) for role, merchant_id in roles],
            display_name=display_name,
            phone=phone,
        )
        await audit.record(
            tx,
            actor,
            "user.create",
            school_id=school_id,
            target_type="user",
            target_id=user_id,
            after={"username": username, "roles": [list(r) for r in roles]},
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(f"username {username!r} is taken in this school", field="username") from err
    return user_id


@owns_transaction
async def do_create_cardholder_login(tx: Tx, actor: Actor, person_id: int, *, password: str) -> int:
    """A sign-in for a student or staff member; the username is their number."""
    person = await tx.fetchrow(
        "SELECT school_id, number, name FROM persons WHERE id = $1", person_id
    )
    if person is None:
        raise NotFound("person not found", field="person_id")
    actor.require("school_admin", "card_center", school_id=person["school_id"])
    try:
        user_id = await auth.create_user(
            tx,
            username=person["number"],
            password=password,
            school_id=person["school_id"],
            roles=[("cardholder", person["school_id"], None)],
            display_name=person["name"],
            person_id=person_id,
        )
        await audit.record(
            tx,
            actor,
            "user.create_cardholder",
            school_id=person["school_id"],
            target_type="person",
            target_id=person_id,
            after={"username": person["number"]},
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict("this person already has a sign-in", field="person_id") from err
    return user_id


@owns_transaction
async def do_link_guardian_login(
    tx: Tx,
    actor: Actor,
    person_id: int,
    *,
    phone: str,
    password: str | None,
    display_name: str = "",
) -> int:
    """Give a parent a sign-in (username = phone) linked to the child; an existing parent
    login of the same school is linked to one more child."""
    person = await tx.fetchrow("SELECT school_id FROM persons WHERE id = $1", person_id)
    if person is None:
        raise NotFound("person not found", field="person_id")
    school_id = person["school_id"]
    # a parent login reads the child's balance and statement, which a teacher may not: only
    # the card center (or the school admin) links one
    actor.require("card_center", school_id=school_id)
    user_id = await tx.fetchval(
        "SELECT id FROM users WHERE school_id = $1 AND username = $2", school_id, phone
    )
    if user_id is None:
        if password is None:
            raise ValidationFailed("a new parent sign-in needs a password", field="password")
        user_id = await auth.create_user(
            tx,
            username=phone,
            password=password,
            school_id=school_id,
            roles=[("guardian", school_id, None)],
            display_name=display_name,
            phone=phone,
        )
    elif not await tx.fetchval(
        "SELECT 1 FROM user_roles WHERE user_id = $1 AND role = 'guardian'", user_id
    ):
        raise Conflict("that phone signs in as someone who is not a parent", field="phone")
    await tx.execute(
        "INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING",
        user_id,
        person_id,
        school_id,
    )
    await audit.record(
        tx,
        actor,
        "user.link_guardian",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        after={"user_id": user_id, "phone": phone},
    )
    return int(user_id)


async def _managed_user(conn: Conn, actor: Actor, user_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT id, school_id, username, is_active, locked_until FROM users WHERE id = $1",
        user_id,
    )
    if (
        row is None
        or (row["school_id"] is None and not actor.is_platform_admin)
        or (
            row["school_id"] is not None
            and not actor.has("school_admin", school_id=row["school_id"])
        )
    ):
        raise NotFound("user not found", field="user_id")
    return dict(row)


@owns_transaction
async def do_unlock(tx: Tx, actor: Actor, user_id: int) -> None:
    row = await _managed_user(tx, actor, user_id)
    await tx.execute(
        "UPDATE users SET locked_until = NULL, failed_logins = 0 WHERE id = $1", user_id
    )
    await audit.record(
        tx,
        actor,
        "user.unlock",
        school_id=row["school_id"],
        target_type="user",
        target_id=user_id,
        before={"locked_until": row["locked_until"].isoformat() if row["locked_until"] else None},
    )


@owns_transaction
async def do_set_active(tx: Tx, actor: Actor, user_id: int, *, active: bool) -> None:
    row = await _managed_user(tx, actor, user_id)
    if actor.user_id == user_id and not active:
        raise ValidationFailed("you cannot deactivate yourself", field="user_id")
    await tx.execute("UPDATE users SET is_active = $2 WHERE id = $1", user_id, active)
    if not active:  # end every open session at once
        await tx.execute(
            "UPDATE auth_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
            user_id,
        )
    await audit.record(
        tx,
        actor,
        "user.activate" if active else "user.deactivate",
        school_id=row["school_id"],
        target_type="user",
        target_id=user_id,
        before={"is_active": row["is_active"]},
        after={"is_active": active},
    )


@owns_transaction
async def do_reset_password(tx: Tx, actor: Actor, user_id: int, *, password: str) -> None:
    new_hash = await auth.make_password_hash(password)
    row = await _managed_user(tx, actor, user_id)
    await tx.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, new_hash)
    await tx.execute(
        "UPDATE auth_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
    )
    await audit.record(
        tx,
        actor,
        "user.reset_password",
        school_id=row["school_id"],
        target_type="user",
        target_id=user_id,
    )


async def do_change_own_password(
    pool: PgPool, actor: Actor, *, old: str, new: str, session_token: str | None = None
) -> None:
    """Change one's own password; every other session of the user ends (a thief signed in
    elsewhere is signed out), the one making the change (``session_token``) stays."""
    if actor.user_id is None:
        raise Forbidden("only a signed-in user has a password")
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", actor.user_id)
    if stored is None or not await auth.check_password(stored, old):
        raise ValidationFailed("the current password is wrong", field="old_password")
    new_hash = await auth.make_password_hash(new)
    async with transaction(pool) as tx:
        await tx.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", actor.user_id, new_hash
        )
        await auth.revoke_sessions(tx, actor.user_id, keep=session_token)
        await audit.record(
            tx,
            actor,
            "user.change_password",
            school_id=actor.school_id,
            target_type="user",
            target_id=actor.user_id,
        )


async def list_users(conn: Conn, actor: Actor, school_id: int) -> list[dict[str, Any]]:
    actor.require("school_admin", school_id=school_id)
    rows = await conn.fetch(
        """SELECT u.id, u.username, u.display_name, u.person_id, u.is_active,
                  u.locked_until IS NOT NULL AND u.locked_until > now() AS locked,
                  coalesce(json_agg(json_build_object('role', r.role,
                                                      'merchant_id', r.merchant_id))
                           FILTER (WHERE r.role IS NOT NULL), '[]') AS roles
             FROM users u LEFT JOIN user_roles r ON r.user_id = u.id
            WHERE u.school_id = $1 AND u.person_id IS NULL
            GROUP BY u.id ORDER BY u.username""",
        school_id,
    )
    return [dict(r) for r in rows]
