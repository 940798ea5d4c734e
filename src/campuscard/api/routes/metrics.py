"""/metrics for Prometheus: only with the operator's token (``CAMPUSCARD_METRICS_TOKEN``);
without a configured token the route does not exist (404). Not part of the API document."""

from __future__ import annotations

import hmac

import asyncpg
from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from campuscard.api.deps import bearer_token
from campuscard.edge.deps import AppSettings
from campuscard.platform import metrics
from campuscard.platform.logs import get_logger

router = APIRouter(tags=["operations"])
log = get_logger("campuscard.metrics")


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request, settings: AppSettings) -> Response:
    # plain-text refusals: a scraper is neither a browser (no sign-in page) nor an API client
    expected = settings.metrics_token.get_secret_value()
    if not expected:
        return PlainTextResponse("metrics are off: set CAMPUSCARD_METRICS_TOKEN\n", 404)
    token = bearer_token(request) or ""
    if not hmac.compare_digest(token.encode(), expected.encode()):
        return PlainTextResponse(
            "send the operator's metrics token: 'Authorization: Bearer <token>'\n",
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    sampler: metrics.Sampler | None = getattr(request.app.state, "metrics_sampler", None)
    if sampler is not None:
        sampler.sample()  # this process's gauges as of now
    pool = getattr(request.app.state, "pool", None)
    if pool is not None:
        try:
            await metrics.sample_jobs(pool)  # the job queue, one for every process
        except (OSError, TimeoutError, asyncpg.PostgresError) as err:
            # the database away: the rest still scrapes; /api/ready says why
            log.warning("metrics: the job queue could not be read", error=str(err))
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
