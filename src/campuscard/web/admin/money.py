"""Console pages for money in and out: the counter with the operator's cash drawer, and
subsidy batches (make, approve, follow). Each form calls the same service as the API."""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import Response

from campuscard.db.pool import PgPool
from campuscard.edge.deps import AppSettings, Pool
from campuscard.edge.limits import accepts_upload
from campuscard.ledger.money import Money
from campuscard.moneyflows import counter, leaving, subsidies
from campuscard.people import queries as people_queries
from campuscard.platform.errors import DomainError, ValidationFailed
from campuscard.web import menu
from campuscard.web.admin.routes import BASE, SchoolCode, enter
from campuscard.web.core import Page, PostPage, UserPage, opt_date, redirect, render

router = APIRouter(prefix="/admin", include_in_schema=False)
menu.add("admin", "a.counter", BASE + "/counter", {"school_admin", "settlement"}, 60)
menu.add("admin", "a.subsidies", BASE + "/subsidies", {"school_admin", "settlement"}, 65)


async def _counter_view(
    page: Page,
    pool: PgPool,
    school_id: int,
    *,
    error: DomainError | None = None,
    result: dict[str, object] | None = None,
) -> Response:
    assert page.user is not None
    mine = await counter.get_drawer_summary(pool, page.user, school_id)
    everyone = await counter.list_drawers(pool, page.user, school_id)
    return render(
        page,
        "admin/counter.html",
        status=error.status if error else 200,
        drawer=mine,
        drawers=everyone,
        error=error,
        result=result,
        client_id=secrets.token_hex(12),
    )


@router.get("/s/{code}/counter")
async def counter_page(page: UserPage, pool: Pool, code: SchoolCode) -> Response:
    school_id = await enter(page, pool, code, "a.counter")
    return await _counter_view(page, pool, school_id)


@router.post("/s/{code}/counter/open")
async def counter_open(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    opening_float: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.counter")
    assert page.user is not None
    try:
        opened = await counter.do_open_drawer(
            pool,
            page.user,
            school_id,
            opening_float=Money.parse(opening_float, field="opening_float", allow_zero=True)
            if opening_float.strip()
            else None,
        )
    except DomainError as err:
        return await _counter_view(page, pool, school_id, error=err)
    if opened["float_approval"] is not None:
        proposal = {"status": "pending_approval", "approval": opened["float_approval"]}
        return await _counter_view(page, pool, school_id, result=proposal)
    return redirect(f"/admin/s/{code}/counter")


def _identity(method: str, card_number: str, holder_name: str, present: str) -> counter.Identity:
    if method not in ("campus_card", "student_id"):
        raise ValidationFailed("choose how the holder was identified", field="identity.method")
    return counter.Identity(
        method="campus_card" if method == "campus_card" else "student_id",
        holder_present=present == "on",
        card_number=card_number.strip() or None,
        holder_name=holder_name.strip() or None,
    )


@router.post("/s/{code}/counter/op")
async def counter_op(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    kind: Annotated[
        Literal["deposit", "withdrawal", "subsidy_grant", "subsidy_deduct", "zeroing"], Form()
    ],
    person_number: Annotated[str, Form(max_length=32)],
    client_id: Annotated[str, Form(max_length=64)],
    amount: Annotated[str, Form(max_length=20)] = "",
    purse: Annotated[Literal["cash", "subsidy"], Form()] = "cash",
    memo: Annotated[str, Form(max_length=200)] = "",
    id_method: Annotated[str, Form(max_length=20)] = "",
    card_number: Annotated[str, Form(max_length=20)] = "",
    holder_name: Annotated[str, Form(max_length=64)] = "",
    holder_present: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.counter")
    assert page.user is not None
    try:
        identity = (
            _identity(id_method, card_number, holder_name, holder_present) if id_method else None
        )
        outcome = await counter.do_counter_op(
            pool,
            page.user,
            school_id,
            kind=kind,
            client_id=client_id,
            person_number=person_number.strip(),
            amount=Money.parse(amount, field="amount") if kind != "zeroing" else None,
            purse=purse,
            identity=identity,
            memo=memo,
        )
        if outcome.status >= 400:
            e = outcome.body["error"]
            raise DomainError(e["message"], code=e["code"], field=e["field"], status=outcome.status)
    except DomainError as err:
        return await _counter_view(page, pool, school_id, error=err)
    return await _counter_view(page, pool, school_id, result=outcome.body)


@router.post("/s/{code}/counter/leave")
async def counter_leave(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    code: SchoolCode,
    person_number: Annotated[str, Form(max_length=32)],
    method: Annotated[Literal["bank", "counter"], Form()],
    client_id: Annotated[str, Form(max_length=64)],
    id_method: Annotated[str, Form(max_length=20)] = "",
    card_number: Annotated[str, Form(max_length=20)] = "",
    holder_name: Annotated[str, Form(max_length=64)] = "",
    holder_present: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.counter")
    assert page.user is not None
    try:
        identity = (
            _identity(id_method, card_number, holder_name, holder_present) if id_method else None
        )
        status, body, _ = await leaving.do_leave(
            pool,
            settings,
            page.user,
            school_id,
            person_number=person_number.strip(),
            method=method,
            client_id=client_id,
            identity=identity,
        )
        if status >= 400:
            e = body["error"]
            raise DomainError(e["message"], code=e["code"], field=e["field"], status=status)
    except DomainError as err:
        return await _counter_view(page, pool, school_id, error=err)
    return await _counter_view(page, pool, school_id, result=body)


@router.post("/s/{code}/counter/close")
async def counter_close(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    counted_cash: Annotated[str, Form(max_length=20)],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.counter")
    assert page.user is not None
    try:
        await counter.do_close_drawer(
            pool,
            page.user,
            school_id,
            counted_cash=Money.parse(counted_cash, field="counted_cash", allow_zero=True),
            note=note,
        )
    except DomainError as err:
        return await _counter_view(page, pool, school_id, error=err)
    return redirect(f"/admin/s/{code}/counter")


# ---- subsidies -------------------------------------------------------------------------
async def _subsidy_view(
    page: Page, pool: PgPool, school_id: int, *, error: DomainError | None = None
) -> Response:
    assert page.user is not None
    batches = await subsidies.list_batches(pool, page.user, school_id)
    classes = await people_queries.school_classes(pool, school_id)
    order = await subsidies.get_purse_order(pool, school_id)
    return render(
        page,
        "admin/subsidies.html",
        status=error.status if error else 200,
        batches=batches,
        classes=[dict(c) for c in classes],
        purse_order=order,
        error=error,
        me=page.user.user_id,
    )


@router.get("/s/{code}/subsidies")
async def subsidies_page(page: UserPage, pool: Pool, code: SchoolCode) -> Response:
    school_id = await enter(page, pool, code, "a.subsidies")
    return await _subsidy_view(page, pool, school_id)


@router.post("/s/{code}/subsidies/rule")
async def subsidies_rule(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    name: Annotated[str, Form(max_length=64)],
    amount: Annotated[str, Form(max_length=20)],
    expires_on: Annotated[str, Form(max_length=10)] = "",
    class_id: Annotated[str, Form(max_length=20)] = "",
    grade: Annotated[str, Form(max_length=16)] = "",
    category: Annotated[str, Form(max_length=32)] = "",
    kind: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.subsidies")
    assert page.user is not None
    try:
        await subsidies.do_create_batch_from_rule(
            pool,
            page.user,
            school_id,
            name=name.strip(),
            amount=Money.parse(amount, field="amount"),
            expires_on=opt_date(expires_on, "expires_on"),
            class_ids=[int(class_id)] if class_id.isdigit() else [],
            grades=[grade.strip()] if grade.strip() else [],
            categories=[category.strip()] if category.strip() else [],
            kinds=[kind] if kind in ("student", "staff", "visitor") else [],
        )
    except DomainError as err:
        return await _subsidy_view(page, pool, school_id, error=err)
    return redirect(f"/admin/s/{code}/subsidies")


@router.post("/s/{code}/subsidies/file")
@accepts_upload(subsidies.MAX_FILE_BYTES)
async def subsidies_file(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    name: Annotated[str, Form(max_length=64)],
    file: Annotated[UploadFile, File()],
    expires_on: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.subsidies")
    assert page.user is not None
    try:
        await subsidies.do_create_batch_from_file(
            pool,
            page.user,
            school_id,
            name=name.strip(),
            expires_on=opt_date(expires_on, "expires_on"),
            filename=file.filename or "",
            content=await file.read(subsidies.MAX_FILE_BYTES + 1),
        )
    except DomainError as err:
        return await _subsidy_view(page, pool, school_id, error=err)
    return redirect(f"/admin/s/{code}/subsidies")


@router.post("/s/{code}/subsidies/{batch_id}/decide")
async def subsidies_decide(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    batch_id: Annotated[int, Path(ge=1, le=2**62)],
    decision: Annotated[Literal["approve", "reject"], Form()],
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.subsidies")
    assert page.user is not None
    try:
        if decision == "approve":
            await subsidies.do_approve_batch(pool, page.user, school_id, batch_id)
        else:
            await subsidies.do_reject_batch(
                pool, page.user, school_id, batch_id, reason=reason.strip() or "-"
            )
    except DomainError as err:
        return await _subsidy_view(page, pool, school_id, error=err)
    return redirect(f"/admin/s/{code}/subsidies")
