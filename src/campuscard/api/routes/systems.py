"""Campus systems over HTTP: the administrators register the library, lab and exam systems
and their tokens; those systems look a card up and, for a lab, sign students in and out of a
station (docs/access.md "Campus systems")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field, model_validator

from campuscard.access import systems
from campuscard.api.deps import Body, CurrentActor, bearer_token
from campuscard.edge.deps import Pool, school_id_for
from campuscard.people import queries as people_queries
from campuscard.platform.errors import Unauthorized

admin = APIRouter(prefix="/api/v1/admin/schools/{school}/access/systems", tags=["access"])
campus = APIRouter(prefix="/api/v1/campus/{school}", tags=["campus systems"])

CARD = r"^[0-9]{6,20}$"
UID = r"^[0-9A-Fa-f]{8,20}$"
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no system token, or an unknown or revoked one"},
    404: {"description": "no such card (or session) in this school"},
    409: {"description": "the card may not be used now (lab sign-in)"},
    429: {"description": "past the system's rate per minute; Retry-After says when"},
}


class SystemIn(Body):
    name: str = Field(min_length=1, max_length=64)
    kind: Literal["library", "lab", "exam", "other"]
    per_minute: int = Field(default=120, ge=1, le=6000)


class NewSystemOut(BaseModel):
    id: int
    name: str
    kind: str
    per_minute: int
    token: str = Field(description="shown once: give it to the system; only its hash is kept")


class SystemOut(BaseModel):
    id: int
    name: str
    kind: str
    token_hint: str
    per_minute: int
    active: bool
    lookups: int
    last_used_at: datetime | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class Done(BaseModel):
    ok: bool = True


class IdentityOut(BaseModel):
    card_number: str
    card_kind: Literal["student", "staff", "temporary"]
    card_state: str
    valid: bool = Field(description="the card may be used now")
    reason: str = Field(description="why not: card_lost, card_frozen…, person_left, visit_ended")
    person_number: str
    name: str
    role: Literal["student", "staff", "visitor"]
    class_name: str | None
    valid_until: datetime | None = Field(description="a visitor's card: the end of the visit")


class SignInIn(Body):
    station: str = Field(min_length=1, max_length=64, description="e.g. 机房A-12")
    card_number: str | None = Field(default=None, pattern=CARD)
    uid: str | None = Field(default=None, pattern=UID, description="the chip's UID, if read")

    @model_validator(mode="after")
    def _one_card(self) -> SignInIn:
        if (self.card_number is None) == (self.uid is None):
            raise ValueError("give card_number or uid, one of them")
        return self


class LabSessionOut(BaseModel):
    id: int
    station: str
    card_number: str
    person_number: str
    name: str
    class_name: str | None
    started_at: datetime
    ended_at: datetime | None
    ended_by: str | None


@admin.get("", response_model=list[SystemOut])
async def list_systems(school: str, pool: Pool, actor: CurrentActor) -> list[SystemOut]:
    """The registered systems (tokens show their last four characters only)."""
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return [SystemOut(**r) for r in await systems.list_systems(conn, actor, school_id)]


@admin.post("", status_code=201, response_model=NewSystemOut)
async def register_system(
    school: str, body: SystemIn, pool: Pool, actor: CurrentActor
) -> NewSystemOut:
    school_id = await school_id_for(pool, actor, school)
    new = await systems.register_system(
        pool, actor, school_id, name=body.name, kind=body.kind, per_minute=body.per_minute
    )
    return NewSystemOut(**new.__dict__)


@admin.post("/{system_id}/revoke", response_model=Done)
async def revoke_system(school: str, system_id: int, pool: Pool, actor: CurrentActor) -> Done:
    school_id = await school_id_for(pool, actor, school)
    await systems.revoke_system(pool, actor, school_id, system_id)
    return Done()


async def calling_system(school: str, request: Request, pool: Pool) -> systems.System:
    """The system whose token is in ``Authorization: Bearer``, within its rate."""
    school_id = await people_queries.school_id_by_code(pool, school)
    if school_id is None:
        raise Unauthorized("this API token is unknown or revoked")
    return await systems.authenticate(pool, school_id, bearer_token(request))


CallingSystem = Annotated[systems.System, Depends(calling_system)]


@campus.get("/cards/{card_number}", response_model=IdentityOut, responses=ERRORS)
async def card_identity(
    card_number: Annotated[str, Path(pattern=CARD)], system: CallingSystem, pool: Pool
) -> IdentityOut:
    """Who holds the card with this printed number, and may it be used now."""
    return IdentityOut(**(await systems.identify(pool, system, number=card_number)).__dict__)


@campus.get("/uids/{uid}", response_model=IdentityOut, responses=ERRORS)
async def uid_identity(
    uid: Annotated[str, Path(pattern=UID)], system: CallingSystem, pool: Pool
) -> IdentityOut:
    """The same, by the chip's UID as a reader reads it."""
    return IdentityOut(**(await systems.identify(pool, system, uid=uid)).__dict__)


@campus.post("/lab/sessions", status_code=201, response_model=LabSessionOut, responses=ERRORS)
async def lab_sign_in(body: SignInIn, system: CallingSystem, pool: Pool) -> LabSessionOut:
    """A card at a lab station: signs the student in (ending the station's previous session
    and the student's session elsewhere)."""
    session = await systems.lab_sign_in(
        pool, system, station=body.station, number=body.card_number, uid=body.uid
    )
    return LabSessionOut(**session.__dict__)


@campus.post("/lab/sessions/{session_id}/end", response_model=LabSessionOut, responses=ERRORS)
async def lab_sign_out(session_id: int, system: CallingSystem, pool: Pool) -> LabSessionOut:
    return LabSessionOut(**(await systems.lab_sign_out(pool, system, session_id)).__dict__)


@campus.get("/lab/sessions", response_model=list[LabSessionOut], responses=ERRORS)
async def open_sessions(system: CallingSystem, pool: Pool) -> list[LabSessionOut]:
    """Who sits at which station now."""
    return [LabSessionOut(**s.__dict__) for s in await systems.open_lab_sessions(pool, system)]
