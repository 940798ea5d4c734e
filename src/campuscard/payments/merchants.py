"""Merchants: a merchant applies (registers), an administrator approves or rejects it; outlets
(windows), staff accounts and their refund permission. Seed 000 (商家注册) and seed 001
(channels: tuition, canteen, supermarket, other)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from campuscard.db import distribution
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.platform import audit, auth, i18n, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, NotFound, ValidationFailed

CHANNELS = ("tuition", "canteen", "supermarket", "other")


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise ValidationFailed(f"channel must be one of {', '.join(CHANNELS)}", field="channel")


@owns_transaction
async def apply_merchant(
    tx: Tx,
    school_id: int,
    *,
    name: str,
    name_en: str,
    channel: str,
    contact_name: str,
    contact_phone: str,
    username: str,
    password: str,
) -> dict[str, Any]:
    """A merchant registers itself: a pending merchant and its manager's sign-in. It can sign in
    and see its status, but its terminals take no payment until an administrator approves."""
    _check_channel(channel)
    try:
        merchant_id: int = await tx.fetchval(
            """INSERT INTO merchants(school_id, name, name_en, channel, contact_name,
                                     contact_phone, status)
               VALUES ($1, $2, $3, $4, $5, $6, 'pending') RETURNING id""",
            school_id,
            name,
            name_en,
            channel,
            contact_name,
            contact_phone,
        )
        user_id = await auth.create_user(
            tx,
            username=username,
            password=password,
            school_id=school_id,
            roles=[("merchant_manager", school_id, merchant_id)],
            display_name=contact_name or name,
        )
        await tx.execute("UPDATE merchants SET applied_by = $2 WHERE id = $1", merchant_id, user_id)
        applicant = Actor(name=username, user_id=user_id, school_id=school_id)
        await audit.record(
            tx,
            applicant,
            "merchant.apply",
            school_id=school_id,
            target_type="merchant",
            target_id=merchant_id,
            after={"name": name, "channel": channel, "contact_name": contact_name},
        )
    except asyncpg.UniqueViolationError as err:
        if "users" in str(err) or "username" in str(err):
            raise Conflict("this username is taken", field="username") from err
        raise Conflict(f"a merchant named {name!r} already exists", field="name") from err
    return {"id": merchant_id, "status": "pending", "manager_user_id": user_id}


@owns_transaction
async def create_merchant(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    name: str,
    name_en: str,
    channel: str,
    commission_bp: int,
    shards: int,
) -> dict[str, Any]:
    """An administrator registers a merchant directly (still pending until approved)."""
    actor.require("school_admin", "settlement", school_id=school_id)
    _check_channel(channel)
    try:
        merchant_id: int = await tx.fetchval(
            """INSERT INTO merchants(school_id, name, name_en, channel, commission_bp, shards)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
            school_id,
            name,
            name_en,
            channel,
            commission_bp,
            shards,
        )
        await audit.record(
            tx,
            actor,
            "merchant.create",
            school_id=school_id,
            target_type="merchant",
            target_id=merchant_id,
            after={
                "name": name,
                "channel": channel,
                "commission_bp": commission_bp,
                "shards": shards,
            },
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(f"a merchant named {name!r} already exists", field="name") from err
    except asyncpg.CheckViolationError as err:
        raise ValidationFailed(
            str(distribution.constraint_name(err) or "invalid merchant"), field="shards"
        ) from err
    return await get_merchant(tx, actor, merchant_id)


@owns_transaction
async def decide_merchant(
    tx: Tx,
    actor: Actor,
    merchant_id: int,
    *,
    decision: str,
    note: str = "",
    commission_bp: int | None = None,
) -> dict[str, Any]:
    """Approve, reject, suspend or re-approve a merchant."""
    targets = {
        "approve": ({"pending", "suspended"}, "approved"),
        "reject": ({"pending"}, "rejected"),
        "suspend": ({"approved"}, "suspended"),
        "close": ({"approved", "suspended", "pending"}, "closed"),
    }
    if decision not in targets:
        raise ValidationFailed(f"decision must be one of {', '.join(targets)}", field="decision")
    m = await distribution.lock_row(tx, "merchants", merchant_id)
    if m is None or not actor.has("school_admin", "settlement", school_id=m["school_id"]):
        raise NotFound("no such merchant", field="merchant_id")
    sources, target = targets[decision]
    if m["status"] not in sources:
        raise Conflict(
            f"cannot {decision} a merchant that is {m['status']}",
            code="MERCHANT_TRANSITION_REFUSED",
            field="decision",
        )
    await tx.execute(
        """UPDATE merchants SET status = $2, decided_by = $3, decision_note = $4,
                  commission_bp = coalesce($5, commission_bp),
                  approved_at = CASE WHEN $2 = 'approved' THEN $7 ELSE approved_at END
            WHERE school_id = $6 AND id = $1""",
        merchant_id,
        target,
        actor.user_id,
        note,
        commission_bp,
        m["school_id"],
        datetime.now(UTC),  # a parameter: Citus refuses now() inside CASE
    )
    await audit.record(
        tx,
        actor,
        f"merchant.{decision}",
        school_id=m["school_id"],
        target_type="merchant",
        target_id=merchant_id,
        before={"status": m["status"], "commission_bp": m["commission_bp"]},
        after={
            "status": target,
            "note": note,
            "commission_bp": commission_bp if commission_bp is not None else m["commission_bp"],
        },
    )
    if m["applied_by"] is not None:
        await notifications.notify(
            tx,
            school_id=m["school_id"],
            kind=f"merchant.{decision}",
            # notice.merchant.approve, .reject, .suspend, .close
            title=i18n.message(f"notice.merchant.{decision}"),
            body=i18n.message(
                "notice.merchant.body",
                merchant=m["name"],
                what=i18n.message(f"notice.merchant.{decision}"),
                note=note,
            ),
            user_id=m["applied_by"],
        )
    return await get_merchant(tx, actor, merchant_id)


async def get_merchant(conn: Conn, actor: Actor, merchant_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        """SELECT id, school_id, name, name_en, channel, status, commission_bp, shards,
                  contact_name, contact_phone, created_at, approved_at, decision_note
             FROM merchants WHERE id = $1""",
        merchant_id,
    )
    if row is None or not (
        actor.has("school_admin", "settlement", school_id=row["school_id"])
        or merchant_id in actor.merchant_ids()
    ):
        raise NotFound("no such merchant", field="merchant_id")
    outlets = await conn.fetch(
        "SELECT id, name, name_en FROM outlets WHERE merchant_id = $1 ORDER BY id", merchant_id
    )
    return dict(row) | {"outlets": [dict(o) for o in outlets]}


async def list_merchants(
    conn: Conn, actor: Actor, school_id: int, *, status: str | None = None
) -> list[dict[str, Any]]:
    actor.require("school_admin", "settlement", school_id=school_id)
    rows = await conn.fetch(
        """SELECT id, name, name_en, channel, status, commission_bp, shards, contact_name,
                  created_at, approved_at
             FROM merchants WHERE school_id = $1 AND ($2::text IS NULL OR status = $2)
            ORDER BY id""",
        school_id,
        status,
    )
    return [dict(r) for r in rows]


@owns_transaction
async def add_outlet(
    tx: Tx, actor: Actor, merchant_id: int, *, name: str, name_en: str = ""
) -> dict[str, Any]:
    m = await tx.fetchrow("SELECT school_id FROM merchants WHERE id = $1", merchant_id)
    if m is None:
        raise NotFound("no such merchant", field="merchant_id")
    school_id = m["school_id"]
    is_manager = any(
        g.role == "merchant_manager" and g.merchant_id == merchant_id for g in actor.grants
    )
    if not (is_manager or actor.has("school_admin", "settlement", school_id=school_id)):
        raise NotFound("no such merchant", field="merchant_id")
    try:
        outlet_id: int = await tx.fetchval(
            "INSERT INTO outlets(school_id, merchant_id, name, name_en) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            school_id,
            merchant_id,
            name,
            name_en,
        )
        await audit.record(
            tx,
            actor,
            "merchant.add_outlet",
            school_id=school_id,
            target_type="outlet",
            target_id=outlet_id,
            after={"merchant_id": merchant_id, "name": name},
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(f"outlet {name!r} already exists", field="name") from err
    return {"id": outlet_id, "merchant_id": merchant_id, "name": name, "name_en": name_en}


@owns_transaction
async def add_staff(
    tx: Tx,
    actor: Actor,
    merchant_id: int,
    *,
    username: str,
    password: str,
    display_name: str,
    manager: bool = False,
    can_refund: bool = False,
) -> dict[str, Any]:
    """A merchant manager (or an administrator) adds a cashier or manager account."""
    m = await tx.fetchrow("SELECT school_id FROM merchants WHERE id = $1", merchant_id)
    if m is None:
        raise NotFound("no such merchant", field="merchant_id")
    school_id = m["school_id"]
    is_manager = any(
        g.role == "merchant_manager" and g.merchant_id == merchant_id for g in actor.grants
    )
    if not (is_manager or actor.has("school_admin", "settlement", school_id=school_id)):
        raise NotFound("no such merchant", field="merchant_id")
    role = "merchant_manager" if manager else "merchant_staff"
    try:
        user_id = await auth.create_user(
            tx,
            username=username,
            password=password,
            school_id=school_id,
            roles=[(role, school_id, merchant_id)],
            display_name=display_name,
        )
        if can_refund and not manager:
            await tx.execute(
                "INSERT INTO merchant_permissions(school_id, user_id, merchant_id, permission) "
                "VALUES ($1, $2, $3, 'refund')",
                school_id,
                user_id,
                merchant_id,
            )
        await audit.record(
            tx,
            actor,
            "merchant.add_staff",
            school_id=school_id,
            target_type="user",
            target_id=user_id,
            after={
                "merchant_id": merchant_id,
                "username": username,
                "role": role,
                "can_refund": can_refund or manager,
            },
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict("this username is taken", field="username") from err
    return {
        "user_id": user_id,
        "username": username,
        "role": role,
        "can_refund": can_refund or manager,
    }


@owns_transaction
async def set_refund_permission(
    tx: Tx, actor: Actor, merchant_id: int, user_id: int, *, allowed: bool
) -> dict[str, Any]:
    m = await tx.fetchrow("SELECT school_id FROM merchants WHERE id = $1", merchant_id)
    if m is None:
        raise NotFound("no such merchant", field="merchant_id")
    is_manager = any(
        g.role == "merchant_manager" and g.merchant_id == merchant_id for g in actor.grants
    )
    if not (is_manager or actor.has("school_admin", "settlement", school_id=m["school_id"])):
        raise NotFound("no such merchant", field="merchant_id")
    staff = await tx.fetchval(
        "SELECT 1 FROM user_roles WHERE user_id = $1 AND merchant_id = $2", user_id, merchant_id
    )
    if not staff:
        raise NotFound("this user is not staff of the merchant", field="user_id")
    if allowed:
        await tx.execute(
            "INSERT INTO merchant_permissions(school_id, user_id, merchant_id, permission) "
            "VALUES ($1, $2, $3, 'refund') ON CONFLICT DO NOTHING",
            m["school_id"],
            user_id,
            merchant_id,
        )
    else:
        await tx.execute(
            "DELETE FROM merchant_permissions WHERE user_id = $1 AND merchant_id = $2 "
            "AND permission = 'refund'",
            user_id,
            merchant_id,
        )
    await audit.record(
        tx,
        actor,
        "merchant.refund_permission",
        school_id=m["school_id"],
        target_type="user",
        target_id=user_id,
        after={"merchant_id": merchant_id, "refund": allowed},
    )
    return {"user_id": user_id, "merchant_id": merchant_id, "can_refund": allowed}
