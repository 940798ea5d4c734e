"""The top-up page (/m/topup): online top-up (the holder or a parent for a child), the bound
bank card and transfers from it (圈存), automatic top-up. Each form calls the same service
as the API."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from campuscard.db.pool import PgPool
from campuscard.edge.deps import AppSettings, Pool
from campuscard.ledger.money import Money
from campuscard.moneyflows import autotopup, bank_link, topups
from campuscard.moneyflows import queries as moneyflows_queries
from campuscard.people import queries
from campuscard.platform.errors import DomainError
from campuscard.web import menu
from campuscard.web.core import Page, PostPage, UserPage, redirect, render
from campuscard.web.student.routes import CHOOSE_CHILD, HOLDERS, QUICK_TOPUPS, PersonQ, holder

router = APIRouter(prefix="/m", include_in_schema=False)
menu.add("student", "m.topup", "/m/topup", HOLDERS, 15)


async def _view(
    page: Page,
    pool: PgPool,
    person: int | None,
    *,
    error: DomainError | None = None,
    notice: str = "",
    amount: str = "",
) -> Response:
    page.require("m.topup")
    async with pool.acquire() as conn:
        subject = await holder(page, conn, person)
        if subject is None:
            return redirect(CHOOSE_CHILD)
        person_id, school_id = subject["id"], subject["school_id"]
        balances = await queries.purses(conn, person_id, school_id=school_id)
        held = await queries.held(conn, person_id, school_id=school_id)
        own = page.user is not None and page.user.person_id == person_id
        card = await bank_link.bound_card(conn, person_id) if own else None
        auto = (
            await moneyflows_queries.auto_topup_setting(conn, person_id, school_id=school_id)
            if own
            else None
        )
        orders = await moneyflows_queries.recent_topup_orders(conn, person_id, school_id=school_id)
        transfers = await moneyflows_queries.recent_bank_transfers(
            conn, person_id, school_id=school_id
        )
    return render(
        page,
        "student/topup.html",
        status=error.status if error else 200,
        subject=subject,
        balances=balances,
        held=held,
        own=own,
        card=bank_link.card_view(card) if card else None,
        auto=autotopup.setting_view(auto) if auto else None,
        orders=[dict(o) for o in orders],
        transfers=[dict(t) for t in transfers],
        error=error,
        notice=notice,
        client_id=secrets.token_hex(12),
        amount=amount,
        quick_topups=QUICK_TOPUPS,
    )


@router.get("/topup")
async def topup_page(
    page: UserPage,
    pool: Pool,
    person: PersonQ = None,
    amount: Annotated[str, Query(max_length=9, pattern=r"^([0-9]{1,6}(\.[0-9]{1,2})?)?$")] = "",
) -> Response:
    """``?amount=`` fills the amount in (the home page's quick amounts link here)."""
    return await _view(page, pool, person, amount=amount)


@router.post("/topup/online")
async def topup_online(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    person_id: Annotated[int, Form(ge=1, le=2**62)],
    amount: Annotated[str, Form(max_length=20)],
    client_id: Annotated[str, Form(max_length=64)],
) -> Response:
    """Open the order and send the payer to the provider's cashier page."""
    page.require("m.topup")
    assert page.user is not None
    try:
        status, view, _ = await topups.do_create_topup(
            pool,
            settings,
            page.user,
            person_id=person_id,
            amount=Money.parse(amount, field="amount"),
            client_id=client_id,
        )
        if status >= 400:
            raise DomainError(view["error"]["message"], code=view["error"]["code"], status=status)
    except DomainError as err:
        return await _view(page, pool, person_id, error=err)
    return to_provider(page, view["pay_url"], view["amount"])


def to_provider(page: Page, pay_url: str, amount: str) -> Response:
    """On to the provider's cashier page through a page of this site: the CSP's form-action
    keeps forms (and their redirects) on this site, so a 303 straight to the provider would
    be blocked and the press would do nothing."""
    return render(page, "student/to_provider.html", pay_url=pay_url, amount=amount)


async def _own(page: Page) -> int:
    actor = page.require("m.topup")
    if actor.person_id is None:
        raise DomainError("only the cardholder can do this", code="HOLDER_ONLY", status=403)
    return actor.person_id


@router.post("/topup/bank-card")
async def bind_card(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    pan: Annotated[str, Form(max_length=19)],
    holder_name: Annotated[str, Form(max_length=64)],
    bank_name: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    person = await _own(page)
    assert page.user is not None
    try:
        await bank_link.do_bind_card(
            pool,
            settings,
            page.user,
            person_id=person,
            pan=pan.replace(" ", ""),
            holder_name=holder_name.strip(),
            bank_name=bank_name,
        )
    except DomainError as err:
        return await _view(page, pool, person, error=err)
    return await _view(page, pool, person, notice=page.t("m.bank_bound"))


@router.post("/topup/bank-card/unbind")
async def unbind_card(page: PostPage, pool: Pool) -> Response:
    person = await _own(page)
    assert page.user is not None
    try:
        await bank_link.do_unbind_card(pool, page.user, person_id=person)
    except DomainError as err:
        return await _view(page, pool, person, error=err)
    return redirect("/m/topup")


@router.post("/topup/bank-load")
async def bank_load(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    amount: Annotated[str, Form(max_length=20)],
    client_id: Annotated[str, Form(max_length=64)],
) -> Response:
    person = await _own(page)
    assert page.user is not None
    try:
        status, view, _ = await bank_link.do_load(
            pool,
            settings,
            page.user,
            person_id=person,
            amount=Money.parse(amount, field="amount"),
            client_id=client_id,
        )
        if status >= 400:
            raise DomainError(view["error"]["message"], code=view["error"]["code"], status=status)
    except DomainError as err:
        return await _view(page, pool, person, error=err)
    return await _view(page, pool, person, notice=page.t(f"m.transfer_status.{view['status']}"))


@router.post("/topup/auto")
async def auto_topup(
    page: PostPage,
    pool: Pool,
    threshold: Annotated[str, Form(max_length=20)] = "",
    target: Annotated[str, Form(max_length=20)] = "",
    enabled: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    person = await _own(page)
    assert page.user is not None
    try:
        await autotopup.do_set_auto_topup(
            pool,
            page.user,
            person_id=person,
            threshold=Money.parse(threshold, field="threshold"),
            target=Money.parse(target, field="target"),
            enabled=enabled == "on",
        )
    except DomainError as err:
        return await _view(page, pool, person, error=err)
    return await _view(page, pool, person, notice=page.t("m.auto_saved"))
