"""The composition root: one FastAPI app serving the API (/api) and the web pages.

The only module that imports both adapters, api/ and web/ (tests/unit/test_layers.py keeps it
so); ``campuscard.app.create_app`` is the stable place to build the app from."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from campuscard import __version__
from campuscard.api import openapi
from campuscard.api.admission import ChannelLimiter
from campuscard.api.booking_lane import BookingLane
from campuscard.api.routes import access as access_routes
from campuscard.api.routes import access_terminal as access_terminal_routes
from campuscard.api.routes import (
    admin,
    approvals,
    auth,
    card_applications,
    cards,
    health,
    kiosk_issuing,
    kiosk_self_service,
    merchants,
    reconciliation,
    reports,
    settlement,
    student_imports,
    terminal,
    users,
)
from campuscard.api.routes import attendance as attendance_routes
from campuscard.api.routes import banklink as banklink_routes
from campuscard.api.routes import bills as bill_routes
from campuscard.api.routes import bills_finance as bill_finance_routes
from campuscard.api.routes import counter as counter_routes
from campuscard.api.routes import credit as credit_routes
from campuscard.api.routes import jobs as job_routes
from campuscard.api.routes import live as live_routes
from campuscard.api.routes import meters as meter_routes
from campuscard.api.routes import metrics as metrics_routes
from campuscard.api.routes import monitoring as monitoring_routes
from campuscard.api.routes import offline as offline_routes
from campuscard.api.routes import orders as order_routes
from campuscard.api.routes import paycode_pay as paycode_pay_routes
from campuscard.api.routes import paycodes as paycode_routes
from campuscard.api.routes import payroll as payroll_routes
from campuscard.api.routes import subsidies as subsidy_routes
from campuscard.api.routes import systems as system_routes
from campuscard.api.routes import topups as topup_routes
from campuscard.config import Settings, get_settings, unsafe_secrets
from campuscard.db.pool import PgPool, create_pool_when_ready
from campuscard.edge import errors
from campuscard.edge.balance import worker_balance
from campuscard.edge.https import HttpsHardening
from campuscard.edge.limits import BodyLimitMiddleware
from campuscard.edge.middleware import RequestContextMiddleware
from campuscard.platform import metrics
from campuscard.platform.logs import setup_logging
from campuscard.platform.worker import run_forever
from campuscard.web import common as web_common
from campuscard.web import install as install_web
from campuscard.web.admin import access as web_access
from campuscard.web.admin import access_forms as web_access_forms
from campuscard.web.admin import approvals as web_admin_approvals
from campuscard.web.admin import attendance as web_attendance
from campuscard.web.admin import bill_books as web_admin_bill_books
from campuscard.web.admin import bills as web_admin_bills
from campuscard.web.admin import campus_systems as web_campus_systems
from campuscard.web.admin import devices as web_admin_devices
from campuscard.web.admin import issuing as web_issuing
from campuscard.web.admin import jobs as web_admin_jobs
from campuscard.web.admin import money as web_admin_money
from campuscard.web.admin import monitoring as web_admin_monitoring
from campuscard.web.admin import monitoring_rules as web_admin_monitoring_rules
from campuscard.web.admin import payroll as web_admin_payroll
from campuscard.web.admin import routes as web_admin
from campuscard.web.admin import settlement as web_settlement
from campuscard.web.errors import error_page
from campuscard.web.merchant import display as web_display
from campuscard.web.merchant import orders as web_merchant_orders
from campuscard.web.merchant import routes as web_merchant
from campuscard.web.student import alerts as web_student_alerts
from campuscard.web.student import analysis as web_student_analysis
from campuscard.web.student import apply as web_apply
from campuscard.web.student import bills as web_student_bills
from campuscard.web.student import leave as web_student_leave
from campuscard.web.student import money as web_student_money
from campuscard.web.student import paycode as web_paycode
from campuscard.web.student import routes as web_student
from campuscard.web.student import utilities as web_student_utilities


def create_app(settings: Settings | None = None, pool: PgPool | None = None) -> FastAPI:
    """Build the app. With ``pool`` given (tests) the caller owns it; otherwise the app opens one
    to ``settings.database_url`` at start-up and closes it at shutdown."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = pool is None
        app.state.pool = pool or await create_pool_when_ready(
            settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
        )
        stop = asyncio.Event()
        worker = (
            asyncio.create_task(run_forever(settings, stop=stop)) if settings.run_worker else None
        )
        sampling = asyncio.create_task(app.state.metrics_sampler.run(stop))
        try:
            yield
        finally:
            stop.set()
            await sampling
            metrics.process_exited(os.getpid())
            if worker is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    worker.cancel()
                    await worker
            hub = getattr(app.state, "event_hub", None)
            if hub is not None:  # the live-events LISTEN connection goes back before the pool
                await hub.close()
            if own:
                await app.state.pool.close()

    app = FastAPI(
        title="CampusCard",
        version=__version__,
        description="Campus one-card platform API. Every error answers "
        '{"error": {"code", "message", "field"}}.',
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        lifespan=lifespan,
        # metrics are Prometheus's and logs structlog's (decision 0160); FastAPI's OpenTelemetry
        # bridge asked for a provider on every request to find none configured (decision 0400)
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    openapi.install(app)  # every operation's answers, the one error format included
    app.state.settings = settings
    if pool is not None:
        app.state.pool = pool
    app.state.channel_limiter = ChannelLimiter.from_config(settings.channel_limits)
    # this process's gauges: sampled every few seconds while serving, and at each scrape
    app.state.metrics_sampler = metrics.Sampler(
        pool=lambda: getattr(app.state, "pool", None),
        admission=app.state.channel_limiter.stats,
        subscribers=lambda: live_routes.subscribers(app),
    )
    errors.install(app, page_renderer=error_page)
    # the two booking routes' parsed requests, without routing and dependency resolution
    # (decision 0400); inside the body limit and the request context, as the routes are
    app.add_middleware(BookingLane)
    # every body is limited before it is parsed; upload routes declare their own limit
    app.add_middleware(BodyLimitMiddleware, default=settings.max_json_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(HttpsHardening)  # HSTS and Secure cookies when served over HTTPS
    # the device routes first: routing tries routers in order, and payments are the busiest
    for router in (
        terminal.router,
        paycode_pay_routes.router,
        meter_routes.router,
        offline_routes.router,
        access_terminal_routes.router,
        order_routes.shop_router,
        order_routes.reader_router,
    ):
        app.include_router(router)
    for router in (health.router, metrics_routes.router, auth.router, admin.router, users.router):
        app.include_router(router)
    # settlement and reconciliation (issue 8)
    for router in (settlement.router, reconciliation.router, reports.router):
        app.include_router(router)
    # four eyes on money: proposals, decisions, the school's money limits
    app.include_router(approvals.router)
    app.include_router(bill_routes.router)  # bills and fees (docs/bills.md)
    app.include_router(bill_finance_routes.router)  # the finance office's bills
    app.include_router(order_routes.router)  # escrowed orders (docs/orders.md)
    app.include_router(order_routes.events_router)
    app.include_router(order_routes.admin_router)
    app.include_router(credit_routes.router)  # credit lines (docs/credit.md)
    app.include_router(monitoring_routes.router)  # monitoring rules (docs/monitoring.md)
    app.include_router(payroll_routes.router)  # payroll (docs/payroll.md)
    # money in and out (counter, top-up, bank link, subsidies)
    for router in (
        counter_routes.router,
        topup_routes.router,
        banklink_routes.router,
        subsidy_routes.router,
    ):
        app.include_router(router)
    # cards, merchants, terminals and POS payments (issue 3)
    for router in (cards.router, merchants.router):
        app.include_router(router)
    # payment codes: phones, codes, live events (issue 4)
    for router in (paycode_routes.router, live_routes.router):
        app.include_router(router)
    # getting a card: imports, applications, production queue (issue 7)
    for router in (
        student_imports.router,
        card_applications.router,
        kiosk_issuing.router,
        kiosk_self_service.router,
    ):
        app.include_router(router)
    # doors, schedules, grants, visitors (access)
    app.include_router(access_routes.router)
    # attendance: periods, daily sheets, leave requests
    app.include_router(attendance_routes.router)
    app.include_router(attendance_routes.persons)
    app.include_router(job_routes.router)  # failed background jobs: list, retry, cancel
    # the library, lab and exam systems: card identity by system token, lab sign-in
    app.include_router(system_routes.admin)
    app.include_router(system_routes.campus)
    # pages (web/): one module per audience; static files and page error handlers
    install_web(app)
    for router in (
        web_common.router,
        web_student.router,
        web_student_analysis.router,
        web_admin.router,
        web_settlement.router,
        web_merchant.router,
        web_merchant_orders.router,
    ):
        app.include_router(router)
    # the payment-code screen (issue 4)
    for router in (web_paycode.router, web_display.router):
        app.include_router(router)
    # getting a card: the parent's application page, console imports/queues (issue 7)
    for router in (web_apply.router, web_issuing.router):
        app.include_router(router)
    # money in and out pages (top-up, bank card, automatic top-up; counter, subsidies)
    for router in (web_student_money.router, web_admin_money.router):
        app.include_router(router)
    app.include_router(web_admin_approvals.router)  # four eyes on money
    app.include_router(web_admin_devices.router)  # metered devices, holds, offline tills
    # watching over students (docs/monitoring.md): supervision, quiet help, alert settings
    for router in (
        web_admin_monitoring.router,
        web_admin_monitoring_rules.router,
        web_student_alerts.router,
    ):
        app.include_router(router)
    app.include_router(web_attendance.router)  # the teacher's attendance pages
    app.include_router(web_student_bills.router)  # bills and fees (docs/bills.md)
    app.include_router(web_student_utilities.router)  # dorm meters
    app.include_router(web_student_leave.router)  # asking for leave on the phone
    app.include_router(web_admin_bills.router)  # the finance console for bills
    app.include_router(web_admin_bill_books.router)  # its reports, ledgers, exports, sheets
    app.include_router(web_admin_payroll.router)  # payroll: upload, approval, report
    app.include_router(web_admin_jobs.router)  # failed background jobs (platform admins)
    app.include_router(web_access.router)  # doors, grants, the school's days, door events
    app.include_router(web_access_forms.router)  # the access and attendance model's forms
    app.include_router(web_campus_systems.router)  # library, lab and exam systems' tokens
    return app


def mount_simulators(app: FastAPI, settings: Settings) -> FastAPI:
    """Put the SMS gateway's simulator at /dev/sms (its inbox shows pickup codes in plain
    text, to anyone), the utility vendor's at /dev/utility and the payment provider's at
    /dev/provider (the demo points ``provider_url`` there, so online top-ups and the card fee
    work without a second process). Only the demo and the tests call this: the production app
    (``create_app``) never has a simulator; the bank simulator runs apart (``sim bank``)."""
    from campuscard.adapters.sms.simulator import create_sms_simulator

    sms_keys = {settings.sms_key_id: settings.sms_api_secret.get_secret_value().encode()}
    app.mount("/dev/sms", create_sms_simulator(sms_keys))
    from campuscard.adapters.utility.simulator import create_utility_simulator

    utility = create_utility_simulator(
        {settings.utility_key_id: settings.utility_secret.get_secret_value().encode()}
    )
    app.state.utility_simulator = utility
    app.mount("/dev/utility", utility.app)
    from campuscard.adapters.provider.simulator import ProviderSimulator

    provider = ProviderSimulator(
        {settings.provider_mch_id: settings.provider_key.get_secret_value()},
        app_id=settings.provider_app_id,
    )
    app.state.provider_simulator = provider
    app.mount("/dev/provider", provider.app)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (each worker builds its own app and pool, and sets up
    its own logs: worker processes do not inherit the parent's handlers): production, refusing
    development or short secrets (``campuscard serve`` checks them first, too)."""
    settings = get_settings()
    setup_logging(settings.log_level, as_json=settings.log_json is not False)
    problems = unsafe_secrets(settings)
    if problems:
        raise SystemExit("refusing to serve: " + "; ".join(problems))
    worker_balance()  # counted among the workers before its first connection
    return create_app(settings)


def demo_app_from_env() -> FastAPI:
    """Factory for ``campuscard demo``: the app with its simulators mounted under /dev/."""
    settings = get_settings()
    setup_logging(settings.log_level, as_json=settings.log_json is not False)
    worker_balance()
    return mount_simulators(create_app(settings), settings)
