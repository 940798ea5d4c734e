"""Applying for a card from the phone (seed 004 steps 2-3, seed 000): the parent picks
province → school → class from the lists the platform serves, types the student's name and
number, and sees the result — the first field that does not match, the approval queue, the fee
to pay, or the pickup code (shown once; it also comes by SMS)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from campuscard.edge.deps import AppSettings, Pool
from campuscard.issuing import applications, card_fee
from campuscard.issuing.pickup_code import display
from campuscard.platform.errors import DomainError
from campuscard.web import menu
from campuscard.web.core import Page, PostPage, UserPage, render
from campuscard.web.student.money import to_provider

router = APIRouter(prefix="/m", include_in_schema=False)

menu.add("student", "m.card_apply", "/m/apply", {"cardholder", "guardian"}, 60)


async def _form(
    page: Page,
    pool: Pool,
    *,
    values: dict[str, str],
    error: DomainError | None = None,
    status: int = 200,
) -> Response:
    actor = page.require("m.card_apply")
    values = dict.fromkeys(("province", "school", "class_name", "name", "number"), "") | values
    async with pool.acquire() as conn:
        provinces = await applications.list_provinces(conn)
        schools = (
            await applications.list_schools(conn, values["province"])
            if values.get("province")
            else []
        )
        classes = (
            await applications.list_classes(conn, values["school"]) if values.get("school") else []
        )
        mine = await applications.my_applications(conn, actor)
    return render(
        page,
        "student/apply.html",
        status=status,
        provinces=provinces,
        schools=schools,
        classes=classes,
        values=values,
        error=error,
        mine=mine,
        client_id=secrets.token_hex(12),
    )


@router.get("/apply")
async def apply_page(page: UserPage, pool: Pool) -> Response:
    return await _form(page, pool, values={})


@router.get("/apply/schools")
async def school_options(
    page: UserPage, pool: Pool, province: Annotated[str, Query(max_length=16)] = ""
) -> Response:
    page.require("m.card_apply")
    async with pool.acquire() as conn:
        rows = await applications.list_schools(conn, province) if province else []
    options = [{"value": r["code"], "label": r["name"]} for r in rows]
    return render(page, "student/_options.html", options=options, prompt="m.apply_pick_school")


@router.get("/apply/classes")
async def class_options(
    page: UserPage, pool: Pool, school: Annotated[str, Query(max_length=32)] = ""
) -> Response:
    page.require("m.card_apply")
    async with pool.acquire() as conn:
        rows = await applications.list_classes(conn, school) if school else []
    options = [{"value": r["name"], "label": r["name"]} for r in rows]
    return render(page, "student/_options.html", options=options, prompt="m.apply_pick_class")


@router.post("/apply")
async def apply(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    client_id: Annotated[str, Form(pattern=r"^[A-Za-z0-9_.:-]{8,64}$")],
    province: Annotated[str, Form(max_length=16)] = "",
    school: Annotated[str, Form(max_length=32)] = "",
    class_name: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str, Form(max_length=64)] = "",
    number: Annotated[str, Form(max_length=32)] = "",
    delivery: Annotated[str, Form(pattern="^(kiosk|counter)$")] = "kiosk",
) -> Response:
    actor = page.require("m.card_apply")
    values = {
        "province": province,
        "school": school,
        "class_name": class_name,
        "name": name,
        "number": number,
    }
    try:
        async with pool.acquire() as conn:
            outcome, code = await applications.do_apply(
                conn,
                settings,
                actor,
                applications.ApplicationInput(
                    province=province,
                    school=school,
                    class_name=class_name,
                    name=name,
                    number=number,
                    delivery=delivery,
                ),
                client_id=client_id,
            )
    except DomainError as err:  # the verification names the field: show it on the form
        return await _form(page, pool, values=values, error=err, status=err.status)
    if outcome.status >= 400:
        error = outcome.body["error"]
        return await _form(
            page,
            pool,
            values=values,
            status=outcome.status,
            error=DomainError(error["message"], code=error["code"], field=error.get("field")),
        )
    return render(
        page,
        "student/applied.html",
        app=outcome.body,
        code=display(code) if code else None,
    )


@router.post("/apply/{application_id}/pay")
async def pay_fee(
    page: PostPage, pool: Pool, settings: AppSettings, application_id: int
) -> Response:
    actor = page.require("m.card_apply")
    status, order = await card_fee.do_start_fee_payment(
        pool, settings, actor, application_id, client_id=f"fee-{application_id}-{actor.user_id}"
    )
    if status >= 400:
        error: dict[str, Any] = order.get("error", {})
        raise DomainError(error.get("message", "refused"), code=error.get("code"), status=status)
    return to_provider(page, order["pay_url"], order["amount"])
