"""Settlement center API: close a business day, read its figures, merchant statements
(JSON, printable HTML, XLSX), the bank payout file (CSV), merchant payout accounts."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.api.routes.approvals import ApprovalOut
from campuscard.documents import statements
from campuscard.edge.deps import Pool, school_id_for
from campuscard.settlement import clearing

router = APIRouter(prefix="/api/v1/admin/schools/{school}/settlement", tags=["settlement"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class CloseIn(Body):
    early: bool = Field(
        default=False,
        description="close today's business day before its cut-off; later bookings of the "
        "day then fall into the next day",
    )


class PayoutAccountIn(Body):
    bank_code: str = Field(pattern=r"^[0-9A-Z]{3,12}$", description="bank code, e.g. ICBC")
    account_no: str = Field(pattern=r"^[0-9]{8,32}$")
    account_name: str = Field(min_length=1, max_length=64)


class DaySummaryOut(BaseModel):
    business_date: str
    closed_at: str
    closed_by: str
    item_count: int = Field(description="ledger postings cleared into the day")
    carried_count: int
    gross: str = Field(description="yuan")
    commission: str
    payout: str


class MerchantDayOut(BaseModel):
    settlement_id: int
    merchant_id: int
    merchant: str
    channel: str
    commission_bp: int = Field(description="commission in basis points (1/100 of a percent)")
    sales_count: int
    gross: str = Field(description="yuan, as every amount here")
    reversal_count: int
    reversals: str
    refund_count: int
    refunds: str
    other: str
    net_sales: str
    commission: str
    payout: str
    carried_count: int
    carried_amount: str
    tx_id: int | None
    payout_status: str | None


class DayOut(BaseModel):
    business_date: str
    closed_at: str
    closed_by: str
    item_count: int
    carried_count: int
    carried_amount: str
    gross: str
    commission: str
    payout: str
    merchants: list[MerchantDayOut]


class ClosedDayOut(DayOut):
    replayed: bool = Field(description="the day was closed before: these are its stored figures")


class FiguresOut(BaseModel):
    sales_count: int
    gross: str = Field(description="yuan, as every amount here")
    reversal_count: int
    reversals: str
    refund_count: int
    refunds: str
    other: str
    net_sales: str
    commission: str
    payout: str
    carried_count: int


class StatementTotalsOut(FiguresOut):
    carried_amount: str


class StatementLineOut(FiguresOut):
    terminal_id: int | None
    terminal: str = Field(description='the terminal\'s serial number, or "back office"')
    location: str | None
    channel: str


class BankAccountOut(BaseModel):
    bank_code: str
    account_no: str
    account_name: str


class StatementOut(BaseModel):
    """A merchant's statement for a closed day; without sales that day only ``settled`` false,
    the merchant, the day and no lines."""

    settled: bool
    merchant_id: int
    merchant: str = Field(description="the merchant's name")
    business_date: str
    lines: list[StatementLineOut] = Field(description="one per terminal and channel")
    settlement_id: int | None = None
    school: str | None = Field(default=None, description="the school's name")
    school_code: str | None = None
    merchant_en: str | None = None
    channel: str | None = None
    commission_bp: int | None = Field(default=None, description="in basis points")
    commission_rate: str | None = Field(default=None, description='e.g. "0.60%"')
    totals: StatementTotalsOut | None = None
    payout_status: str | None = None
    payout_account: BankAccountOut | None = Field(
        default=None, description="where the payout goes (none while not registered)"
    )
    tx_id: int | None = Field(default=None, description="the ledger transaction that settled it")


class PayoutAccountOut(BaseModel):
    merchant_id: int
    status: str = Field(description='"set", "unchanged", or "pending_approval" (a second person)')
    bank_code: str
    account_no: str
    account_name: str
    approval: ApprovalOut | None = Field(default=None, description="the proposal waiting")


@router.post("/days/{business_date}/close")
async def close_day(
    school: str, business_date: date, body: CloseIn, pool: Pool, actor: CurrentActor
) -> ClosedDayOut:
    school_id = await school_id_for(pool, actor, school)
    day = await clearing.do_close_day(pool, actor, school_id, business_date, early=body.early)
    return ClosedDayOut.model_validate(day)


@router.get("/days")
async def list_days(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=366)] = 60,
) -> list[DaySummaryOut]:
    school_id = await school_id_for(pool, actor, school)
    clearing.check_may_read(actor, school_id)
    async with pool.acquire() as conn:
        days = await clearing.list_days(conn, school_id, limit=limit)
    return [DaySummaryOut.model_validate(d) for d in days]


@router.get("/days/{business_date}")
async def get_day(school: str, business_date: date, pool: Pool, actor: CurrentActor) -> DayOut:
    school_id = await school_id_for(pool, actor, school)
    clearing.check_may_read(actor, school_id)
    async with pool.acquire() as conn:
        return DayOut.model_validate(await clearing.day_view(conn, school_id, business_date))


@router.get(
    "/days/{business_date}/merchants/{merchant_id}/statement",
    response_model=StatementOut,
    response_model_exclude_unset=True,
    responses={
        200: {
            "description": "the statement: JSON, or with format=html a page, xlsx a workbook",
            "content": {
                "text/html": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def get_statement(
    school: str,
    business_date: date,
    merchant_id: int,
    pool: Pool,
    actor: CurrentActor,
    format: Annotated[Literal["json", "html", "xlsx"], Query()] = "json",
    lang: Annotated[
        Literal["zh-CN", "en"] | None,
        Query(description="language of the html and xlsx files; default: the reader's own"),
    ] = None,
) -> StatementOut | Response:
    school_id = await school_id_for(pool, actor, school)
    locale = lang or actor.locale
    clearing.check_may_read(actor, school_id, merchant_id)
    async with pool.acquire() as conn:
        st = await clearing.statement(conn, school_id, business_date, merchant_id)
    if format == "html":
        return HTMLResponse(statements.statement_html(st, locale))
    if format == "xlsx":
        name = f"statement-{merchant_id}-{business_date.isoformat()}.xlsx"
        return Response(
            statements.statement_xlsx(st, locale),
            media_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return StatementOut.model_validate(st)


@router.get(
    "/days/{business_date}/payout.csv",
    response_class=Response,
    responses={
        200: {
            "description": "the bank's payout file for the day (CSV, UTF-8)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def get_payout_file(
    school: str, business_date: date, pool: Pool, actor: CurrentActor
) -> Response:
    school_id = await school_id_for(pool, actor, school)
    actor.require("settlement", school_id=school_id)
    async with pool.acquire() as conn:
        rows = await clearing.payout_rows(conn, school_id, business_date)
    text = statements.payout_csv(school, business_date.isoformat(), rows)
    name = f"payout-{school}-{business_date:%Y%m%d}.csv"
    return Response(
        text.encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.put("/merchants/{merchant_id}/payout-account")
async def set_payout_account(
    school: str, merchant_id: int, body: PayoutAccountIn, pool: Pool, actor: CurrentActor
) -> PayoutAccountOut:
    school_id = await school_id_for(pool, actor, school)
    answer = await clearing.do_set_payout_account(
        pool, actor, school_id, merchant_id, **body.model_dump()
    )
    return PayoutAccountOut.model_validate(answer)
