"""Card applications: the lists a parent picks from, applying, following one's applications;
the approval queue; the card center's production queue."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.api.routes.topups import ProviderOrderOut
from campuscard.edge.deps import AppSettings, Pool, school_id_for
from campuscard.issuing import applications, card_fee
from campuscard.issuing import production as card_production
from campuscard.issuing.pickup_code import display
from campuscard.platform.idempotency import check_client_id

router = APIRouter(prefix="/api/v1", tags=["card applications"])

PHONE = r"^\+?[0-9]{5,20}$"


class ApplicationIn(Body):
    client_id: str = Field(description="client-generated id; a retry with it replays the answer")
    province: str = Field(min_length=1, max_length=16, description="province code from the list")
    school: str = Field(min_length=1, max_length=32, description="school code from the list")
    class_name: str = Field(min_length=1, max_length=64, description="class from the list")
    name: str = Field(min_length=1, max_length=64, description="the student's name, typed")
    number: str = Field(min_length=1, max_length=32, description="student number, typed")
    delivery: Literal["kiosk", "counter"] = "kiosk"
    phone: str | None = Field(default=None, pattern=PHONE, description="where the code goes")


class FeePaymentIn(Body):
    client_id: str = Field(description="client-generated id; a retry returns the same order")


class DecisionIn(Body):
    approve: bool
    note: str = Field(default="", max_length=200)


class ProducedIn(Body):
    application_ids: list[int] = Field(min_length=1, max_length=1000)


class HandOutIn(Body):
    card_number: str = Field(min_length=6, max_length=20)
    card_uid: str = Field(min_length=8, max_length=20)


# --- answers ------------------------------------------------------------------------------


class ProvinceOption(BaseModel):
    code: str
    name: str
    name_en: str


class SchoolOption(BaseModel):
    code: str
    name: str
    name_en: str


class ClassOption(BaseModel):
    name: str
    grade: str


class ApplicationOut(BaseModel):
    id: int
    school_id: int
    school_code: str
    person_id: int
    number: str = Field(description="the student's number")
    name: str = Field(description="the student's name")
    class_name: str | None
    applicant_kind: str = Field(description='who applied: "guardian", "student" or "operator"')
    applicant_phone: str | None
    delivery: str = Field(description='"kiosk" or "counter"')
    status: str = Field(
        description='"pending_approval", "rejected", "awaiting_payment", "ready", '
        '"in_production", "produced", "issued" or "cancelled"'
    )
    review_reason: str = Field(
        description="why it waits for a person's approval, if it does: student_own_application "
        "(the student applied), applicant_not_guardian (the applicant is not a guardian on "
        "record); empty when it does not wait"
    )
    fee: str = Field(description="yuan the card costs (0.00 when waived)")
    fee_status: str = Field(description='"due", "paid" or "waived"')
    fee_ref: str | None
    business_date: str
    day_seq: int = Field(description="its number among the day's applications")
    decision_note: str
    card_number: str | None = Field(description="the card it became, once issued")
    created_at: str
    updated_at: str
    produced_at: str | None
    issued_at: str | None


class ApplicationWithCodeOut(ApplicationOut):
    pickup_code: str = Field(description="the pickup code, shown this once")
    pickup_code_display: str = Field(description="the same, grouped for reading")


class ApplyOut(ApplicationOut):
    pickup_code: str | None = Field(
        default=None, description="the pickup code, in the first answer only (never replayed)"
    )
    pickup_code_display: str | None = Field(default=None, description="the same, grouped")


class ProductionRowOut(BaseModel):
    id: int = Field(description="the application")
    person_id: int
    name: str
    number: str
    class_name: str | None
    status: str = Field(description='"in_production" or "produced"')
    created_at: dt.datetime
    produced_at: dt.datetime | None


class ProducedOut(BaseModel):
    produced: list[int] = Field(description="the applications marked produced")


class HandedOutOut(BaseModel):
    application_id: int
    status: str = Field(description='"issued"')
    card_id: int
    card_number: str


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _with_code(body: dict[str, Any], code: str | None) -> dict[str, Any]:
    if code is None:
        return body
    return body | {"pickup_code": code, "pickup_code_display": display(code)}


@router.get("/card-applications/options/provinces")
async def provinces(pool: Pool, actor: CurrentActor) -> list[ProvinceOption]:
    applications.check_may_apply(actor)
    async with pool.acquire() as conn:
        rows = await applications.list_provinces(conn)
    return [ProvinceOption.model_validate(r) for r in rows]


@router.get("/card-applications/options/schools")
async def schools(
    pool: Pool, actor: CurrentActor, province: Annotated[str, Query(max_length=16)]
) -> list[SchoolOption]:
    applications.check_may_apply(actor)
    async with pool.acquire() as conn:
        rows = await applications.list_schools(conn, province)
    return [SchoolOption.model_validate(r) for r in rows]


@router.get("/card-applications/options/classes")
async def classes(
    pool: Pool, actor: CurrentActor, school: Annotated[str, Query(max_length=32)]
) -> list[ClassOption]:
    applications.check_may_apply(actor)
    async with pool.acquire() as conn:
        rows = await applications.list_classes(conn, school)
    return [ClassOption.model_validate(r) for r in rows]


@router.post("/card-applications", status_code=201, response_model=ApplyOut)
async def apply(
    body: ApplicationIn, pool: Pool, settings: AppSettings, actor: CurrentActor
) -> JSONResponse:
    check_client_id(body.client_id)
    async with pool.acquire() as conn:
        outcome, code = await applications.do_apply(
            conn,
            settings,
            actor,
            applications.ApplicationInput(
                province=body.province,
                school=body.school,
                class_name=body.class_name,
                name=body.name,
                number=body.number,
                delivery=body.delivery,
                phone=body.phone,
            ),
            client_id=body.client_id,
        )
    return JSONResponse(_with_code(outcome.body, code), status_code=outcome.status)


@router.get("/card-applications")
async def mine(pool: Pool, actor: CurrentActor) -> list[ApplicationOut]:
    async with pool.acquire() as conn:
        rows = await applications.my_applications(conn, actor)
    return [ApplicationOut.model_validate(r) for r in rows]


@router.get("/card-applications/{application_id}")
async def get_application(application_id: int, pool: Pool, actor: CurrentActor) -> ApplicationOut:
    async with pool.acquire() as conn:
        return ApplicationOut.model_validate(
            await applications.get_application(conn, actor, application_id)
        )


@router.post("/card-applications/{application_id}/cancel")
async def cancel(application_id: int, pool: Pool, actor: CurrentActor) -> ApplicationOut:
    async with pool.acquire() as conn:
        return ApplicationOut.model_validate(
            await applications.do_cancel(conn, actor, application_id)
        )


@router.post("/card-applications/{application_id}/pickup-code")
async def new_pickup_code(
    application_id: int, pool: Pool, settings: AppSettings, actor: CurrentActor
) -> ApplicationWithCodeOut:
    async with pool.acquire() as conn:
        app, code = await applications.do_reissue_code(conn, settings, actor, application_id)
    return ApplicationWithCodeOut.model_validate(_with_code(app, code))


@router.post(
    "/card-applications/{application_id}/fee-payment",
    status_code=201,
    response_model=ProviderOrderOut,
)
async def pay_fee(
    application_id: int,
    body: FeePaymentIn,
    pool: Pool,
    settings: AppSettings,
    actor: CurrentActor,
) -> JSONResponse:
    """Open the provider order for the card fee; the answer carries the cashier's pay_url."""
    status, view = await card_fee.do_start_fee_payment(
        pool, settings, actor, application_id, client_id=check_client_id(body.client_id)
    )
    return JSONResponse(view, status_code=status)


@router.get("/admin/schools/{school}/card-applications")
async def queue(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    status: Annotated[
        Literal[
            "pending_approval",
            "rejected",
            "awaiting_payment",
            "ready",
            "in_production",
            "produced",
            "issued",
            "cancelled",
        ],
        Query(),
    ] = "pending_approval",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ApplicationOut]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        rows = await applications.list_applications(
            conn, actor, school_id, status=status, limit=limit
        )
    return [ApplicationOut.model_validate(r) for r in rows]


@router.post("/admin/card-applications/{application_id}/decision")
async def decide(
    application_id: int,
    body: DecisionIn,
    pool: Pool,
    settings: AppSettings,
    actor: CurrentActor,
) -> ApplicationOut:
    async with pool.acquire() as conn:
        return ApplicationOut.model_validate(
            await applications.do_decide(
                conn, settings, actor, application_id, approve=body.approve, note=body.note
            )
        )


@router.get("/admin/schools/{school}/card-production")
async def production(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    status: Annotated[Literal["in_production", "produced"], Query()] = "in_production",
) -> list[ProductionRowOut]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        rows = await card_production.production_queue(conn, actor, school_id, status=status)
    return [ProductionRowOut.model_validate(r) for r in rows]


@router.get(
    "/admin/schools/{school}/card-production/export",
    response_class=Response,
    responses={
        200: {
            "description": "the print data: a workbook, or CSV (UTF-8 with BOM)",
            "content": {
                XLSX: {"schema": {"type": "string", "format": "binary"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def export(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    format: Annotated[Literal["csv", "xlsx"], Query()] = "xlsx",
) -> Response:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        content, media, name = await card_production.export_print_data(
            conn, actor, school_id, fmt=format
        )
    return Response(
        content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.post("/admin/schools/{school}/card-production/produced")
async def produced(school: str, body: ProducedIn, pool: Pool, actor: CurrentActor) -> ProducedOut:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        ids = await card_production.do_mark_produced(conn, actor, school_id, body.application_ids)
    return ProducedOut(produced=ids)


@router.post("/admin/card-applications/{application_id}/hand-out")
async def hand_out(
    application_id: int, body: HandOutIn, pool: Pool, actor: CurrentActor
) -> HandedOutOut:
    async with pool.acquire() as conn:
        return HandedOutOut.model_validate(
            await card_production.do_hand_out(
                conn, actor, application_id, card_number=body.card_number, card_uid=body.card_uid
            )
        )
