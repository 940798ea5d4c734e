from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from campuscard import __version__
from campuscard.api.deps import Pool

router = APIRouter(tags=["health"])


@router.get("/api/health")
async def health(pool: Pool) -> dict[str, Any]:
    """Liveness and database reachability."""
    await pool.fetchval("SELECT 1")
    return {"status": "ok", "database": "ok", "version": __version__}
