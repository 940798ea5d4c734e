"""Applying for a card (seed 004 steps 2-3, seed 000): the lists a parent picks from, the
verification in seed 004's order, automatic approval or the approval queue, and the card fee.

States (issuing/application_rules.py): pending_approval → awaiting_payment (fee due) →
ready (kiosk pickup code issued) or in_production (card center) → produced → issued.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from campuscard.bills import holds as bill_holds
from campuscard.config import Settings
from campuscard.db import distribution
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction, transaction
from campuscard.issuing import application_rules as rules
from campuscard.issuing import pickup
from campuscard.ledger.money import fmt
from campuscard.platform import audit, i18n, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    ValidationFailed,
)
from campuscard.platform.idempotency import Outcome, run_idempotent

VERIFY_FAILURES_PER_HOUR = 20

APPLICATION_COLUMNS = """a.id, a.school_id, s.code AS school_code, a.person_id, p.number, p.name,
    c.name AS class_name, a.applicant_kind, a.applicant_phone, a.delivery, a.status,
    a.review_reason, a.fee, a.fee_status, a.fee_ref, a.business_date, a.day_seq,
    a.decision_note, a.card_number, a.created_at, a.updated_at, a.produced_at, a.issued_at"""
APPLICATION_FROM = """card_applications a
    JOIN persons p ON p.school_id = a.school_id AND p.id = a.person_id
    JOIN schools s ON s.id = a.school_id
    LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id"""


@dataclass(frozen=True)
class ApplicationInput:
    province: str  # province code, picked from the list
    school: str  # school code, picked from the list
    class_name: str  # picked from the list
    name: str  # typed
    number: str  # typed
    delivery: str = "kiosk"
    phone: str | None = None  # where the pickup code SMS goes; default: the account phone


def _view(row: Any) -> dict[str, Any]:
    """JSON-ready (a replayed answer comes back from jsonb and must read the same)."""
    data = dict(row)
    data["fee"] = fmt(data["fee"])
    for key, value in data.items():
        if isinstance(value, date | datetime):
            data[key] = value.isoformat()
    return data


# ---------------------------------------------------------------- the lists a parent picks from


async def list_provinces(conn: Conn) -> list[dict[str, Any]]:
    """Provinces with at least one school that has student records."""
    rows = await conn.fetch(
        """SELECT pr.code, pr.name, pr.name_en FROM provinces pr
            WHERE EXISTS (SELECT 1 FROM schools s JOIN persons p ON p.school_id = s.id
                           WHERE s.province_id = pr.id AND p.kind = 'student')
            ORDER BY pr.code"""
    )
    return [dict(r) for r in rows]


async def list_schools(conn: Conn, province_code: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT s.code, s.name, s.name_en
             FROM schools s JOIN provinces pr ON pr.id = s.province_id
            WHERE pr.code = $1
              AND EXISTS (SELECT 1 FROM persons p WHERE p.school_id = s.id AND p.kind = 'student')
            ORDER BY s.name""",
        province_code,
    )
    return [dict(r) for r in rows]


async def list_classes(conn: Conn, school_code: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT c.name, c.grade FROM classes c JOIN schools s ON s.id = c.school_id
            WHERE s.code = $1 AND c.kind = 'class'
              AND EXISTS (SELECT 1 FROM persons p WHERE p.class_id = c.id AND p.kind = 'student')
            ORDER BY c.name""",
        school_code,
    )
    return [dict(r) for r in rows]


# ---------------------------------------------------------------- verification


async def check_application(conn: Conn, data: ApplicationInput) -> tuple[int, int]:
    """(school_id, person_id) of the student the application names. Fields are checked in seed
    004's order — province, school, class, name, number — against the record that agrees with
    the application most, and the first that does not match is named."""
    province_id = await conn.fetchval("SELECT id FROM provinces WHERE code = $1", data.province)
    school = await conn.fetchrow("SELECT id, province_id FROM schools WHERE code = $1", data.school)
    if province_id is None or (school is not None and school["province_id"] != province_id):
        raise rules.verification_failed("province")
    if school is None:
        raise rules.verification_failed("school")
    best = await conn.fetchrow(
        """SELECT p.id, coalesce(c.name = $2, false) AS class_ok, p.name = $3 AS name_ok,
                  p.number = $4 AS number_ok
             FROM persons p LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
            WHERE p.school_id = $1 AND p.kind = 'student' AND p.status = 'enrolled'
              AND (c.name = $2 OR p.name = $3 OR p.number = $4)
            ORDER BY (coalesce(c.name = $2, false))::int + (p.name = $3)::int
                     + (p.number = $4)::int DESC,
                     coalesce(c.name = $2, false) DESC, p.name = $3 DESC, p.number = $4 DESC,
                     p.id
            LIMIT 1""",
        school["id"],
        data.class_name,
        data.name.strip(),
        data.number.strip(),
    )
    mismatch = rules.first_mismatch(
        None if best is None else (best["class_ok"], best["name_ok"], best["number_ok"])
    )
    if mismatch is not None:
        raise rules.verification_failed(mismatch)
    assert best is not None
    return int(school["id"]), int(best["id"])


async def _limit_failures(conn: Conn, actor: Actor) -> None:
    """Refuse a user who keeps failing verification (it would let them probe class lists)."""
    failures = await conn.fetchval(
        """SELECT count(*) FROM audit_log
            WHERE actor_user_id = $1 AND action = 'card_application.verify_failed'
              AND created_at > now() - interval '1 hour'""",
        actor.user_id,
    )
    if failures >= VERIFY_FAILURES_PER_HOUR:
        raise TooManyRequests(
            "too many applications that did not match; try again in an hour",
            code="VERIFY_LIMIT",
        )


async def _applicant_trusted(conn: Conn, actor: Actor, person_id: int, phone: str | None) -> bool:
    """A parent is trusted when linked to the student, or their account's phone (set when the
    school made the sign-in, never typed in the application) is a guardian phone on record."""
    if actor.user_id is not None and await conn.fetchval(
        "SELECT 1 FROM guardian_links WHERE user_id = $1 AND person_id = $2",
        actor.user_id,
        person_id,
    ):
        return True
    if phone is None:
        return False
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM guardians WHERE person_id = $1 AND phone = $2", person_id, phone
        )
    )


# ---------------------------------------------------------------- applying


async def _file_application(
    tx: Tx,
    *,
    settings: Settings,
    actor: Actor,
    data: ApplicationInput,
    school_id: int,
    person_id: int,
    user_phone: str | None,
    made: dict[str, str],
) -> dict[str, Any]:
    code = await _file(tx, settings, actor, school_id, person_id, data, user_phone)
    if code:
        made["code"] = code
    return await _get(tx, await _open_id(tx, person_id))


def check_may_apply(actor: Actor) -> None:
    """A merchant's applicant is no parent: until an operator approves the merchant it reads no
    class list and files no card application (it would block the real one)."""
    if actor.is_merchant_applicant:
        raise Forbidden(
            "a merchant application sees only itself until it is approved",
            code="MERCHANT_NOT_APPROVED",
        )


async def do_apply(
    conn: Conn,
    settings: Settings,
    actor: Actor,
    data: ApplicationInput,
    *,
    client_id: str,
) -> tuple[Outcome, str | None]:
    """Verify and file an application. Returns (outcome, pickup code if this call made one).
    The code is never stored in clear, so a replayed answer does not repeat it."""
    if actor.user_id is None:
        raise NotFound("sign in to apply", field="user")
    check_may_apply(actor)
    made: dict[str, str] = {}
    await _limit_failures(conn, actor)
    try:
        school_id, person_id = await check_application(conn, data)
    except ValidationFailed as err:
        async with transaction(conn) as tx:
            await audit.record(
                tx,
                actor,
                "card_application.verify_failed",
                school_id=None,
                target_type="card_application",
                after={"field": err.field, "school": data.school},
            )
        raise
    user_phone = await conn.fetchval("SELECT phone FROM users WHERE id = $1", actor.user_id)

    payload = {
        "province": data.province,
        "school": data.school,
        "class": data.class_name,
        "name": data.name,
        "number": data.number,
        "delivery": data.delivery,
        "phone": data.phone,
    }
    outcome = await run_idempotent(
        conn,
        school_id=school_id,
        scope=f"card-application:{actor.user_id}",
        key=client_id,
        payload=payload,
        work=lambda tx: _file_application(
            tx,
            settings=settings,
            actor=actor,
            data=data,
            school_id=school_id,
            person_id=person_id,
            user_phone=user_phone,
            made=made,
        ),
        success_status=201,
    )
    return outcome, made.get("code")


async def _open_id(conn: Conn, person_id: int) -> int:
    app_id: int = await conn.fetchval(
        "SELECT id FROM card_applications WHERE person_id = $1 ORDER BY id DESC LIMIT 1",
        person_id,
    )
    return app_id


async def _file(
    tx: Tx,
    settings: Settings,
    actor: Actor,
    school_id: int,
    person_id: int,
    data: ApplicationInput,
    user_phone: str | None,
) -> str | None:
    await tx.execute(
        "SELECT 1 FROM persons WHERE school_id = $1 AND id = $2 FOR UPDATE", school_id, person_id
    )
    open_app = await tx.fetchval(
        "SELECT id FROM card_applications WHERE school_id = $3 AND person_id = $1 "
        "AND status = ANY($2::text[])",
        person_id,
        list(rules.OPEN_STATES),
        school_id,
    )
    if open_app is not None:
        raise Conflict(
            f"this student already has an open application (#{open_app})",
            code="APPLICATION_OPEN",
            field="number",
            details={"application_id": open_app},
        )
    if await tx.fetchval(
        "SELECT 1 FROM cards WHERE person_id = $1 AND state IN ('issued', 'active', 'frozen')",
        person_id,
    ):
        raise Conflict(
            "this student already has a card; report it lost to get a replacement",
            code="CARD_ALREADY_ISSUED",
            field="number",
        )
    if await tx.fetchval("SELECT 1 FROM cards WHERE person_id = $1 AND state = 'lost'", person_id):
        # a replacement of a lost card waits while the school holds it for unpaid fees
        await bill_holds.check_none(tx, school_id, person_id, "card_replacement")
    school = await tx.fetchrow(
        "SELECT settings, cc_business_date(id) AS today FROM schools WHERE id = $1", school_id
    )
    assert school is not None  # the verified student's school exists
    category = await tx.fetchval("SELECT category FROM persons WHERE id = $1", person_id)
    fee, waived = rules.card_fee(dict(school["settings"] or {}), category)
    if actor.person_id == person_id:
        kind = "student"
    elif actor.has("card_center", "teacher", school_id=school_id):
        kind = "operator"
    else:
        kind = "guardian"
    phone = data.phone or user_phone
    # why it waits, as a code a page words (a.review_reason.<code>); empty: it does not wait
    if kind == "student":
        status, reason = "pending_approval", "student_own_application"
    elif kind == "operator" or await _applicant_trusted(tx, actor, person_id, user_phone):
        status, reason = rules.after_approval(data.delivery, not waived), ""
    else:
        status = "pending_approval"
        reason = "applicant_not_guardian"
    seq: int = await tx.fetchval(
        """INSERT INTO application_day_counters(school_id, business_date, last_seq)
           VALUES ($1, $2, 1) ON CONFLICT (school_id, business_date)
           DO UPDATE SET last_seq = application_day_counters.last_seq + 1 RETURNING last_seq""",
        school_id,
        school["today"],
    )
    app_id: int = await tx.fetchval(
        """INSERT INTO card_applications(school_id, person_id, applicant_user_id, applicant_kind,
               applicant_phone, delivery, status, review_reason, fee, fee_status,
               business_date, day_seq)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id""",
        school_id,
        person_id,
        actor.user_id,
        kind,
        phone,
        data.delivery,
        status,
        reason,
        0 if waived else fee,
        "waived" if waived else "due",
        school["today"],
        seq,
    )
    if kind == "guardian" and status != "pending_approval":
        await _link_guardian(tx, actor, school_id, person_id)
    await audit.record(
        tx,
        actor,
        "card_application.create",
        school_id=school_id,
        target_type="card_application",
        target_id=app_id,
        after={
            "person_id": person_id,
            "status": status,
            "delivery": data.delivery,
            "fee": fee,
            "fee_waived": waived,
            "applicant": kind,
        },
    )
    await tell_applicant(tx, app_id, status)
    if status == "ready":
        return await pickup.issue_code(tx, settings, app_id)
    return None


async def _link_guardian(conn: Conn, actor: Actor, school_id: int, person_id: int) -> None:
    """A verified parent sees the child afterwards (balance, spending, notices)."""
    assert actor.user_id is not None
    await conn.execute(
        """INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING""",
        actor.user_id,
        person_id,
        school_id,
    )
    await conn.execute(
        """INSERT INTO user_roles(user_id, role, school_id) VALUES ($1, 'guardian', $2)
           ON CONFLICT DO NOTHING""",
        actor.user_id,
        school_id,
    )


async def tell_applicant(conn: Conn, app_id: int, status: str) -> None:
    app = await conn.fetchrow(
        "SELECT school_id, applicant_user_id, person_id, fee FROM card_applications WHERE id = $1",
        app_id,
    )
    if app is None or app["applicant_user_id"] is None:
        return
    told = ("pending_approval", "awaiting_payment", "ready", "in_production", "produced")
    if status not in (*told, "rejected", "cancelled"):
        return
    # notice.card_application.pending_approval, .awaiting_payment, .ready, .in_production,
    # .produced, .rejected, .cancelled
    body = i18n.message(f"notice.card_application.{status}", fee=i18n.money(app["fee"] or 0))
    await notifications.notify(
        conn,
        school_id=app["school_id"],
        kind="card_application." + status,
        title=i18n.message("notice.card_application.title"),
        body=body,
        user_id=app["applicant_user_id"],
        data={"application_id": app_id, "person_id": app["person_id"]},
        dedupe_key=f"card_application:{app_id}:{status}",
    )


# ---------------------------------------------------------------- reading


async def _get(conn: Conn, app_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"SELECT {APPLICATION_COLUMNS} FROM {APPLICATION_FROM} WHERE a.id = $1", app_id
    )
    if row is None:
        raise NotFound("application not found", field="application_id")
    return _view(row)


async def get_application(conn: Conn, actor: Actor, app_id: int) -> dict[str, Any]:
    app = await _get(conn, app_id)
    own = await conn.fetchval(
        "SELECT applicant_user_id FROM card_applications WHERE id = $1", app_id
    )
    if not (
        (actor.user_id is not None and own == actor.user_id)
        or actor.person_id == app["person_id"]
        or actor.has("card_center", "teacher", school_id=app["school_id"])
    ):
        raise NotFound("application not found", field="application_id")
    return app


async def my_applications(conn: Conn, actor: Actor) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {APPLICATION_COLUMNS} FROM {APPLICATION_FROM}
             WHERE a.applicant_user_id = $1 OR a.person_id = $2 ORDER BY a.id DESC LIMIT 50""",
        actor.user_id,
        actor.person_id,
    )
    return [_view(r) for r in rows]


async def list_applications(
    conn: Conn, actor: Actor, school_id: int, *, status: str = "pending_approval", limit: int = 100
) -> list[dict[str, Any]]:
    """The approval queue (default) or any other state, oldest first."""
    actor.require("card_center", "teacher", school_id=school_id)
    rows = await conn.fetch(
        f"""SELECT {APPLICATION_COLUMNS} FROM {APPLICATION_FROM}
             WHERE a.school_id = $1 AND a.status = $2 ORDER BY a.id LIMIT $3""",
        school_id,
        status,
        limit,
    )
    return [_view(r) for r in rows]


# ---------------------------------------------------------------- deciding, paying, cancelling


async def _lock(conn: Conn, app_id: int) -> Any:
    row = await conn.fetchrow(
        "SELECT * FROM card_applications WHERE school_id = $1 AND id = $2 FOR UPDATE",
        await distribution.school_of(conn, "card_applications", app_id),
        app_id,
    )
    if row is None:
        raise NotFound("application not found", field="application_id")
    return row


async def _move(conn: Conn, app: Any, target: str, **extra: Any) -> None:
    rules.check_transition(app["status"], target)
    sets = ", ".join(f"{k} = ${i + 3}" for i, k in enumerate(extra))
    await conn.execute(
        f"UPDATE card_applications SET status = $2, updated_at = now()"
        f"{', ' + sets if sets else ''} WHERE id = $1",
        app["id"],
        target,
        *extra.values(),
    )


@owns_transaction
async def do_decide(
    tx: Tx,
    settings: Settings,
    actor: Actor,
    app_id: int,
    *,
    approve: bool,
    note: str = "",
) -> dict[str, Any]:
    """Approve or reject an application from the queue (card center or teacher)."""
    app = await _lock(tx, app_id)
    actor.require("card_center", "teacher", school_id=app["school_id"])
    if approve:
        target = rules.after_approval(app["delivery"], app["fee_status"] == "due")
    else:
        target = "rejected"
    await _move(tx, app, target, decided_by=actor.user_id, decided_at=_now(), decision_note=note)
    if approve and app["applicant_kind"] == "guardian" and app["applicant_user_id"]:
        applicant = Actor(name="applicant", user_id=app["applicant_user_id"])
        await _link_guardian(tx, applicant, app["school_id"], app["person_id"])
    await audit.record(
        tx,
        actor,
        "card_application.approve" if approve else "card_application.reject",
        school_id=app["school_id"],
        target_type="card_application",
        target_id=app_id,
        before={"status": app["status"]},
        after={"status": target, "note": note},
    )
    await tell_applicant(tx, app_id, target)
    if target == "ready":
        await pickup.issue_code(tx, settings, app_id)
    return await _get(tx, app_id)


async def do_mark_fee_paid(
    tx: Tx, settings: Settings | None, app_id: int, *, fee_ref: str, paid_fen: int
) -> dict[str, Any]:
    """The card-fee hook: the provider order for this application was paid (the caller has
    booked the money). Moves the application on and issues the pickup code — at once with
    ``settings``, else through the outbox (``pickup.issue_code``, issuing/jobs.py). Caller's
    tx."""
    app = await _lock(tx, app_id)
    if app["fee_status"] == "paid" and app["fee_ref"] == fee_ref:
        return await _get(tx, app_id)  # the same payment reported twice
    if app["status"] != "awaiting_payment" or app["fee_status"] != "due":
        raise Conflict("this application does not wait for a fee", code="FEE_NOT_DUE")
    if paid_fen != app["fee"]:
        raise Conflict(
            f"paid {fmt(paid_fen)} but the fee is {fmt(app['fee'])}",
            code="FEE_AMOUNT_MISMATCH",
            field="amount",
        )
    target = rules.after_approval(app["delivery"], fee_due=False)
    await _move(tx, app, target, fee_status="paid", fee_ref=fee_ref)
    await audit.record(
        tx,
        Actor(name="system"),
        "card_application.fee_paid",
        school_id=app["school_id"],
        target_type="card_application",
        target_id=app_id,
        after={"fee_ref": fee_ref, "fee": paid_fen, "status": target},
    )
    await tell_applicant(tx, app_id, target)
    if target == "ready":
        if settings is not None:
            await pickup.issue_code(tx, settings, app_id)
        else:
            await notifications.enqueue(
                tx,
                "pickup.issue_code",
                {"application_id": app_id},
                school_id=app["school_id"],
                dedupe_key=f"pickup.issue_code:{app_id}:{fee_ref}",
            )
    return await _get(tx, app_id)


@owns_transaction
async def do_issue_pending_code(tx: Tx, settings: Settings, app_id: int) -> bool:
    """Issue the code of a ready application that has none live (after a paid fee)."""
    app = await _lock(tx, app_id)
    if app["status"] != "ready" or await tx.fetchval(
        "SELECT 1 FROM pickup_codes WHERE application_id = $1 "
        "AND state IN ('ready', 'authorized', 'issued')",
        app_id,
    ):
        return False
    await pickup.issue_code(tx, settings, app_id)
    return True


@owns_transaction
async def do_cancel(tx: Tx, actor: Actor, app_id: int) -> dict[str, Any]:
    """The applicant (or the card center) withdraws an application not yet issued."""
    app = await _lock(tx, app_id)
    own = actor.user_id is not None and actor.user_id == app["applicant_user_id"]
    if not own:
        actor.require("card_center", school_id=app["school_id"])
    if app["fee_status"] == "paid":
        raise Conflict(
            "the fee is paid; ask the card center to refund and cancel",
            code="FEE_PAID",
            field="application_id",
        )
    if await tx.fetchval(
        "SELECT 1 FROM pickup_codes WHERE application_id = $1 AND state = 'authorized'",
        app_id,
    ):
        raise Conflict("a kiosk is issuing this card right now", code="PICKUP_IN_PROGRESS")
    await _move(tx, app, "cancelled")
    await pickup.revoke_codes(tx, app_id)
    await audit.record(
        tx,
        actor,
        "card_application.cancel",
        school_id=app["school_id"],
        target_type="card_application",
        target_id=app_id,
        before={"status": app["status"]},
        after={"status": "cancelled"},
    )
    await tell_applicant(tx, app_id, "cancelled")
    return await _get(tx, app_id)


@owns_transaction
async def do_reissue_code(
    tx: Tx, settings: Settings, actor: Actor, app_id: int
) -> tuple[dict[str, Any], str]:
    """A new pickup code for a ready application (lost SMS, expired code, new kiosk); the old
    one stops working."""
    app = await _lock(tx, app_id)
    own = actor.user_id is not None and actor.user_id == app["applicant_user_id"]
    if not own:
        actor.require("card_center", school_id=app["school_id"])
    if app["status"] != "ready":
        raise Conflict(
            "only an application waiting for pickup has a code", code="APPLICATION_STATE"
        )
    if await tx.fetchval(
        "SELECT 1 FROM pickup_codes WHERE application_id = $1 AND state = 'authorized'",
        app_id,
    ):
        raise Conflict("a kiosk is issuing this card right now", code="PICKUP_IN_PROGRESS")
    await pickup.revoke_codes(tx, app_id)
    code = await pickup.issue_code(tx, settings, app_id)
    await audit.record(
        tx,
        actor,
        "card_application.reissue_code",
        school_id=app["school_id"],
        target_type="card_application",
        target_id=app_id,
    )
    return await _get(tx, app_id), code


def _now() -> datetime:
    return datetime.now(UTC)
