"""Request dependencies both adapters use: the pool, the settings, the school in the path."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.people import queries as people_queries
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound


# The dependencies are coroutines on purpose: FastAPI runs a plain ``def`` dependency in a
# worker thread, a thread hand-off per request that cost the payment path a tenth of its CPU.
async def get_pool(request: Request) -> PgPool:
    pool: PgPool = request.app.state.pool
    return pool


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Pool = Annotated[PgPool, Depends(get_pool)]
AppSettings = Annotated[Settings, Depends(get_settings)]


async def school_id_for(pool: PgPool, actor: Actor, code: str) -> int:
    """The id of the school in the path, if the actor belongs to it (else: not found)."""
    school_id = await people_queries.school_id_by_code(pool, code)
    if school_id is None or not (actor.is_platform_admin or school_id in actor.schools()):
        # another school's data is not even acknowledged to exist
        raise NotFound(f"unknown school {code!r}", field="school")
    return school_id
