"""Back-office API: schools, classes, people, guardians, audit log, ledger adjustments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from campuscard.api.answers import PendingApprovalOut, PersonBalancesOut
from campuscard.api.deps import Body, CurrentActor
from campuscard.edge.deps import Pool, school_id_for
from campuscard.ledger import adjustments, postings
from campuscard.ledger import queries as ledger_queries
from campuscard.ledger.money import Money
from campuscard.people import directory
from campuscard.people import queries as people_queries
from campuscard.platform import queries as platform_queries
from campuscard.platform.idempotency import check_client_id

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

NUMBER = r"^[A-Za-z0-9_-]{1,32}$"
PHONE = r"^\+?[0-9]{5,20}$"


class SchoolIn(Body):
    province: str = Field(min_length=1, max_length=16, description="province code")
    code: str = Field(pattern=r"^[A-Za-z0-9_-]{2,32}$")
    name: str = Field(min_length=1, max_length=64)
    name_en: str = Field(default="", max_length=128)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)


class ClassIn(Body):
    name: str = Field(min_length=1, max_length=64)
    kind: Literal["class", "department"] = "class"
    grade: str = Field(default="", max_length=16)


class PersonIn(Body):
    kind: Literal["student", "staff", "visitor"]
    number: str = Field(pattern=NUMBER)
    name: str = Field(min_length=1, max_length=64)
    class_id: int | None = None
    phone: str | None = Field(default=None, pattern=PHONE)
    category: str = Field(default="regular", min_length=1, max_length=32)


class PersonPatch(Body):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    class_id: int | None = None
    phone: str | None = Field(default=None, pattern=PHONE)
    category: str | None = Field(default=None, min_length=1, max_length=32)
    kind: Literal["student", "staff", "visitor"] | None = None


class GuardianIn(Body):
    name: str = Field(min_length=1, max_length=64)
    phone: str = Field(pattern=PHONE)
    relation: str = Field(default="parent", min_length=1, max_length=16)


class AdjustmentIn(Body):
    client_id: str = Field(description="client-generated id; a retry with it replays the answer")
    from_account: int = Field(gt=0)
    to_account: int = Field(gt=0)
    amount: Money = Field(description='yuan as a string, e.g. "12.30"')
    memo: str = Field(min_length=1, max_length=200)


class SchoolCreated(BaseModel):
    id: int
    code: str


class Created(BaseModel):
    id: int = Field(description="the new record's id")


class ClassOut(BaseModel):
    id: int
    name: str
    kind: str = Field(description='"class" or "department"')
    grade: str


class AuditEntryOut(BaseModel):
    id: int
    actor: str = Field(description="username, terminal SN or 'system'")
    action: str = Field(description='e.g. "card.report_lost", "job.retry"')
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None = Field(description="the request that did it (also in the logs)")
    created_at: datetime


class AccountOut(BaseModel):
    id: int
    kind: str = Field(description='"purse", "merchant" or "system"')
    purse: str | None = Field(description='a person\'s purse: "cash" or "subsidy"')
    person_id: int | None
    merchant_id: int | None
    shard: int = Field(description="a merchant account's shard (0 otherwise)")
    system_code: str | None
    balance: str = Field(description="yuan")
    version: int


class PersonRowOut(BaseModel):
    id: int
    school_id: int
    kind: str = Field(description='"student", "staff" or "visitor"')
    number: str = Field(description="the school's number for the person")
    name: str
    class_id: int | None
    class_name: str | None
    phone: str | None
    category: str = Field(description='e.g. "regular"; subsidy rules and fees go by it')
    account_status: str = Field(description='the card account: "active", "closed", …')
    status: str = Field(description="the person's own status at the school")


class GuardianOut(BaseModel):
    id: int
    name: str
    phone: str
    relation: str = Field(description='e.g. "parent"')


class PersonOut(PersonRowOut):
    guardians: list[GuardianOut]


class PersonDetailOut(PersonOut):
    balances: PersonBalancesOut


@router.post("/schools", status_code=201)
async def create_school(body: SchoolIn, pool: Pool, actor: CurrentActor) -> SchoolCreated:
    async with pool.acquire() as conn:
        school_id = await directory.create_school(
            conn,
            actor,
            province_code=body.province,
            code=body.code,
            name=body.name,
            name_en=body.name_en,
            timezone=body.timezone,
        )
    return SchoolCreated(id=school_id, code=body.code)


@router.get("/schools/{school}/classes")
async def list_classes(school: str, pool: Pool, actor: CurrentActor) -> list[ClassOut]:
    school_id = await school_id_for(pool, actor, school)
    actor.require("school_admin", "card_center", "settlement", "teacher", school_id=school_id)
    return [
        ClassOut.model_validate(c) for c in await people_queries.school_classes(pool, school_id)
    ]


@router.post("/schools/{school}/classes", status_code=201)
async def create_class(school: str, body: ClassIn, pool: Pool, actor: CurrentActor) -> Created:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        class_id = await directory.create_class(
            conn, actor, school_id, name=body.name, kind=body.kind, grade=body.grade
        )
    return Created(id=class_id)


@router.get("/schools/{school}/persons")
async def search_persons(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    q: Annotated[str, Query(max_length=64)] = "",
    class_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[PersonRowOut]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        rows = await directory.search_persons(
            conn, actor, school_id, query=q, class_id=class_id, limit=limit, offset=offset
        )
    return [PersonRowOut.model_validate(r) for r in rows]


@router.post("/schools/{school}/persons", status_code=201)
async def create_person(school: str, body: PersonIn, pool: Pool, actor: CurrentActor) -> PersonOut:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        person_id = await directory.create_person(
            conn, actor, school_id, directory.PersonData(**body.model_dump())
        )
        return PersonOut.model_validate(await directory.get_person(conn, actor, person_id))


@router.get("/persons/{person_id}", response_model_exclude_unset=True)
async def get_person(person_id: int, pool: Pool, actor: CurrentActor) -> PersonDetailOut:
    """The person, guardians and balances (a purse not yet opened is left out)."""
    async with pool.acquire() as conn:
        person = await directory.get_person(conn, actor, person_id)
        person["balances"] = postings.balances_view(
            await postings.purse_balances(conn, person_id),
            await postings.purse_held(conn, person_id),
        )
        return PersonDetailOut.model_validate(person)


@router.patch("/persons/{person_id}")
async def update_person(
    person_id: int, body: PersonPatch, pool: Pool, actor: CurrentActor
) -> PersonOut:
    async with pool.acquire() as conn:
        return PersonOut.model_validate(
            await directory.update_person(
                conn, actor, person_id, body.model_dump(exclude_unset=True)
            )
        )


@router.post("/persons/{person_id}/guardians", status_code=201)
async def add_guardian(
    person_id: int, body: GuardianIn, pool: Pool, actor: CurrentActor
) -> Created:
    async with pool.acquire() as conn:
        guardian_id = await directory.add_guardian(
            conn, actor, person_id, name=body.name, phone=body.phone, relation=body.relation
        )
    return Created(id=guardian_id)


@router.get("/schools/{school}/audit")
async def audit_log(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    action: Annotated[str, Query(max_length=64)] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: int | None = None,
) -> list[AuditEntryOut]:
    school_id = await school_id_for(pool, actor, school)
    actor.require("school_admin", school_id=school_id)
    entries = await platform_queries.audit_entries(
        pool, school_id, action_prefix=action, before_id=before_id, limit=limit
    )
    return [AuditEntryOut.model_validate(e) for e in entries]


@router.post(
    "/schools/{school}/ledger/adjustments", status_code=202, response_model=PendingApprovalOut
)
async def create_adjustment(
    school: str, body: AdjustmentIn, pool: Pool, actor: CurrentActor
) -> JSONResponse:
    """Move money between two accounts of the school (a correction), once per client_id."""
    school_id = await school_id_for(pool, actor, school)
    outcome = await adjustments.do_adjustment(
        pool,
        actor,
        school_id,
        client_id=check_client_id(body.client_id),
        from_account=body.from_account,
        to_account=body.to_account,
        amount=body.amount,
        memo=body.memo,
    )
    return JSONResponse(
        outcome.body,
        status_code=outcome.status,
        headers={"Idempotent-Replayed": "true" if outcome.replayed else "false"},
    )


@router.get("/schools/{school}/accounts")
async def list_accounts(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    kind: Literal["purse", "merchant", "system"] | None = None,
    person_id: int | None = None,
) -> list[AccountOut]:
    school_id = await school_id_for(pool, actor, school)
    actor.require("settlement", school_id=school_id)
    rows = await ledger_queries.school_accounts(pool, school_id, kind=kind, person_id=person_id)
    return [AccountOut.model_validate(r | {"balance": str(Money(r["balance"]))}) for r in rows]
