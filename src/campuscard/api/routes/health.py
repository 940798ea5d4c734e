from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from campuscard import __version__
from campuscard.edge.deps import AppSettings, Pool
from campuscard.platform import readiness

router = APIRouter(tags=["health"])


class Alive(BaseModel):
    status: str
    version: str


class Ready(BaseModel):
    status: str  # "ready" | "not ready"
    database: str
    migrations: str
    worker: str
    reasons: list[str]


@router.get("/api/health")
async def health() -> Alive:
    """Liveness for a load balancer: the process answers. It does not touch the database, so a
    database outage does not get healthy web processes restarted (that is /api/ready's job)."""
    return Alive(status="ok", version=__version__)


@router.get(
    "/api/ready",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "not ready; `reasons` says why"}},
)
async def ready(pool: Pool, settings: AppSettings) -> JSONResponse:
    """Readiness for a load balancer: the database answers, its migrations and code are current,
    and a job worker was seen recently. 503 with the reasons otherwise."""
    state = await readiness.check_ready(pool, worker_within_seconds=settings.ready_worker_seconds)
    body = {
        "status": "ready" if state.ready else "not ready",
        "database": state.database,
        "migrations": state.schema,
        "worker": state.worker,
        "reasons": state.reasons,
    }
    return JSONResponse(body, status_code=200 if state.ready else 503)
