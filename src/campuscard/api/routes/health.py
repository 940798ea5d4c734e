from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from campuscard import __version__
from campuscard.edge.deps import Pool
from campuscard.platform import queries as platform_queries

router = APIRouter(tags=["health"])


@router.get("/api/health")
async def health(pool: Pool) -> dict[str, Any]:
    """Liveness and database reachability."""
    await platform_queries.database_answers(pool)
    return {"status": "ok", "database": "ok", "version": __version__}
