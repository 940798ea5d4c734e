"""Reports API: daily summary per channel and merchant, consumption per class or category;
JSON for the console's charts, CSV and XLSX for download, their headers in one language (the
``lang`` asked for, else the reader's own, as the statements; keys ``rep.col.<column>``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from campuscard.api.deps import CurrentActor
from campuscard.documents import exports
from campuscard.edge.deps import Pool, school_id_for
from campuscard.platform import i18n
from campuscard.settlement import reports

router = APIRouter(prefix="/api/v1/admin/schools/{school}/reports", tags=["reports"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Format = Literal["json", "csv", "xlsx"]

Lang = Annotated[
    Literal["zh-CN", "en"] | None,
    Query(description="language of the csv and xlsx headers; default: the reader's own"),
]

# the columns of each download; a header is the catalog text rep.col.<column>
DAILY_COLUMNS = (
    "business_date",
    "channel",
    "merchant",
    "sales_count",
    "gross",
    "refunds",
    "net_sales",
    "commission",
    "payout",
)
CONSUMPTION_COLUMNS = ("group", "channel", "persons", "payments", "spent", "per_person")


class ChannelDayOut(BaseModel):
    business_date: str
    channel: str
    sales_count: int
    gross: str = Field(description="yuan sold")
    net_sales: str = Field(description="yuan sold less refunds and reversals")


class MerchantDayRowOut(ChannelDayOut):
    merchant_id: int
    merchant: str = Field(description="the merchant's name")
    refunds: str = Field(description="yuan refunded or reversed")
    commission: str = Field(description="yuan kept as commission")
    payout: str = Field(description="yuan owed to the merchant")


class DailyReportOut(BaseModel):
    date_from: str
    date_to: str
    channels: list[ChannelDayOut] = Field(description="per closed day and channel")
    merchants: list[MerchantDayRowOut] = Field(description="per closed day and merchant")


class ConsumptionRowOut(BaseModel):
    group: str = Field(description="the class (— for none) or the category")
    channel: str
    persons: int = Field(description="students who paid")
    payments: int
    spent: str = Field(description="yuan")
    per_person: str = Field(description="yuan per student, rounded half-up to the fen")


class ConsumptionReportOut(BaseModel):
    date_from: str
    date_to: str
    group_by: str = Field(description='"class" or "category"')
    rows: list[ConsumptionRowOut]


def _answers(model: type[BaseModel], what: str) -> dict[str, Any]:
    """The route options of a report: JSON by default, CSV or a workbook on request."""
    return {
        "response_model": model,
        "responses": {
            200: {
                "description": f"{what}: JSON, or with format=csv or xlsx a download",
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    XLSX: {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    }


def _worded(locale: str, row: dict[str, Any], coded: dict[str, str]) -> dict[str, Any]:
    """The row with each coded cell named (``coded``: column -> catalog prefix)."""
    named = dict(row)
    for column, prefix in coded.items():
        if named.get(column) is not None:
            named[column] = i18n.translate(locale, f"{prefix}.{named[column]}")
    return named


def _download(
    name: str,
    fmt: Format,
    locale: str,
    title: str,
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
    money: set[str],
    coded: dict[str, str],
) -> Response:
    """A download worded in ``locale``: ``title`` (a catalog key) names the sheet, and the
    cells that hold a code (a channel, a person category) are its name in the catalog."""
    cols = [(c, i18n.translate(locale, f"rep.col.{c}")) for c in columns]
    rows = [_worded(locale, row, coded) for row in rows]
    title = i18n.translate(locale, title)
    if fmt == "csv":
        body, media = exports.to_csv(cols, rows), "text/csv; charset=utf-8"
    else:
        body, media = exports.to_xlsx(title, cols, rows, frozenset(money)), XLSX
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )


@router.get("/daily", **_answers(DailyReportOut, "the daily summary"))
async def daily(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    date_from: Annotated[date, Query()],
    date_to: Annotated[date, Query()],
    format: Annotated[Format, Query()] = "json",
    lang: Lang = None,
) -> DailyReportOut | Response:
    school_id = await school_id_for(pool, actor, school)
    reports.check_may_report(actor, school_id)
    async with pool.acquire() as conn:
        data = await reports.daily_summary(conn, school_id, date_from, date_to)
    if format == "json":
        return DailyReportOut.model_validate(data)
    money = {"gross", "refunds", "net_sales", "commission", "payout"}
    name = f"daily-{school}-{date_from:%Y%m%d}-{date_to:%Y%m%d}"
    locale = lang or actor.locale
    return _download(
        name,
        format,
        locale,
        "rep.title.daily",
        DAILY_COLUMNS,
        data["merchants"],
        money,
        {"channel": "channel"},
    )


@router.get("/consumption", **_answers(ConsumptionReportOut, "consumption per group"))
async def consumption(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    date_from: Annotated[date, Query()],
    date_to: Annotated[date, Query()],
    group_by: Annotated[Literal["class", "category"], Query()] = "class",
    format: Annotated[Format, Query()] = "json",
    lang: Lang = None,
) -> ConsumptionReportOut | Response:
    school_id = await school_id_for(pool, actor, school)
    reports.check_may_report(actor, school_id)
    async with pool.acquire() as conn:
        data = await reports.consumption(conn, school_id, date_from, date_to, group_by=group_by)
    if format == "json":
        return ConsumptionReportOut.model_validate(data)
    name = f"consumption-{group_by}-{school}-{date_from:%Y%m%d}-{date_to:%Y%m%d}"
    return _download(
        name,
        format,
        lang or actor.locale,
        "rep.title.consumption",
        CONSUMPTION_COLUMNS,
        data["rows"],
        {"spent", "per_person"},
        {"channel": "channel"} | ({"group": "person.category"} if group_by == "category" else {}),
    )
