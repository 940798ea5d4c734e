"""The one command: ``campuscard serve | demo | db ... | ledger check``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import typer

from campuscard.config import (
    DEMO_SECRETS_FILE,
    Settings,
    env_name,
    get_settings,
    unsafe_secrets,
    with_demo_secrets,
)
from campuscard.db import runtime
from campuscard.db.embedded import EmbeddedPostgres
from campuscard.db.pool import connect
from campuscard.edge import balance
from campuscard.platform.errors import DomainError
from campuscard.platform.logs import setup_logging

app = typer.Typer(help="CampusCard: campus one-card platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database: the embedded server and migrations.", no_args_is_help=True)
ledger_app = typer.Typer(help="Ledger checks.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")
settlement_app = typer.Typer(
    help="Settlement: close a business day, payout file.", no_args_is_help=True
)
app.add_typer(settlement_app, name="settlement")
import_app = typer.Typer(help="Import records into a running CampusCard.", no_args_is_help=True)
app.add_typer(import_app, name="import")
sim_app = typer.Typer(
    help="Simulators: devices that sign like real ones; the payment provider and the bank.",
    no_args_is_help=True,
)
app.add_typer(sim_app, name="sim")
pos_app = typer.Typer(
    help="A POS terminal (docs/terminal-protocol.md): pay, check, reverse, refund, blacklist, "
    "heartbeat, rotate-key.",
    no_args_is_help=True,
)
sim_app.add_typer(pos_app, name="pos")
kiosk_app = typer.Typer(help="Self-service kiosk software (pickup).", no_args_is_help=True)
app.add_typer(kiosk_app, name="kiosk")


def _settings() -> Settings:
    return get_settings()


def _tool_settings() -> Settings:
    """Settings of the simulators and device tools: beside a demo they use its secrets."""
    return with_demo_secrets(get_settings(), create=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (starting the embedded server for the duration if needed)."""
    settings = _settings()
    with runtime.database(settings, migrate_schema=False) as url:
        applied = asyncio.run(runtime.upgrade(url))
    typer.echo("\n".join(f"applied {name}" for name in applied) or "database is up to date")


@db_app.command("citus")
def db_citus(
    shard_count: Annotated[
        int | None,
        typer.Option(min=1, max=4096, help="shards per table (default: Citus' own setting)"),
    ] = None,
) -> None:
    """Turn a Citus coordinator's database (CAMPUSCARD_DATABASE_URL, with the citus extension
    and its workers added) into a CampusCard database: every migration, then every table
    distributed by school or copied to every worker, and the booking functions delegated to the
    worker holding their school. Running it again places only what is new."""
    from campuscard.db import citus

    settings = _settings()
    if not settings.database_url:
        typer.echo(
            "set CAMPUSCARD_DATABASE_URL to the database on the Citus coordinator "
            "(docs/scale-out.md)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        applied, placed = asyncio.run(
            runtime.set_up_citus(settings.database_url, shard_count=shard_count)
        )
    except citus.NotCitus as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from err
    for name in applied:
        typer.echo(f"applied {name}")
    for line in placed.lines():
        typer.echo(line)
    typer.echo("the database is a CampusCard database on Citus")


@db_app.command("status")
def db_status() -> None:
    """List applied and pending migrations and the database code files that changed; exit 1
    when an upgrade has anything to do (for an operator or a readiness probe)."""
    settings = _settings()
    with runtime.database(settings, migrate_schema=False) as url:
        state = asyncio.run(runtime.status(url))
    for m in state.applied:
        typer.echo(f"applied  {m.version:04d}_{m.name}  {m.applied_at.isoformat(' ', 'seconds')}")
    for mig in state.pending:
        typer.echo(f"pending  {mig.label}")
    for mig in state.changed:
        typer.echo(f"edited   {mig.label}  (changed after it was applied: refused)")
    for f in state.code_changed:
        typer.echo(f"changed  {f.path}")
    for f in state.code_new:
        typer.echo(f"new      {f.path}")
    for path in state.code_removed:
        typer.echo(f"removed  {path}")
    if state.up_to_date:
        typer.echo("database is up to date")
        return
    todo = len(state.pending) + len(state.code_changed) + len(state.code_new)
    typer.echo(f"{todo} to apply: run `campuscard db upgrade`", err=True)
    raise typer.Exit(1)


@app.command("backup")
def backup(
    file: Annotated[Path, typer.Argument(help="the archive to write (pg_dump custom format)")],
) -> None:
    """Back the database up into FILE with pg_dump (the embedded server's, or against
    CAMPUSCARD_DATABASE_URL)."""
    from campuscard.db import backup as backups

    if file.is_dir() or not file.parent.is_dir():
        raise typer.BadParameter("give a file name in an existing directory", param_hint="FILE")
    settings = _settings()
    with runtime.database(settings, migrate_schema=False) as url:
        try:
            backups.dump(url, file)
        except backups.BackupError as err:
            typer.echo(str(err), err=True)
            raise typer.Exit(1) from err
    typer.echo(f"backed up to {file} ({file.stat().st_size:,} bytes)")


@app.command("restore")
def restore(
    file: Annotated[Path, typer.Argument(help="an archive written by `campuscard backup`")],
) -> None:
    """Restore FILE into an empty database: a fresh data directory (embedded) or an empty
    CAMPUSCARD_DATABASE_URL. Then run `campuscard ledger check`."""
    from campuscard.db import backup as backups

    if not file.is_file():
        raise typer.BadParameter("no such file", param_hint="FILE")
    settings = _settings()
    with runtime.database(settings, migrate_schema=False) as url:
        tables = asyncio.run(backups.tables_in(url))
        if tables:
            typer.echo(
                f"refused: the database already holds {tables} tables; restore into a fresh "
                "data directory (CAMPUSCARD_DATA_DIR) or an empty database",
                err=True,
            )
            raise typer.Exit(1)
        try:
            backups.restore(url, file)
        except backups.BackupError as err:
            typer.echo(str(err), err=True)
            raise typer.Exit(1) from err
    typer.echo(f"restored {file}; now run `campuscard ledger check`")


@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostgreSQL and leave it running (for psql, pgbench, tools)."""
    settings = _settings()
    server = EmbeddedPostgres(settings.pgdata, settings.embedded_port, settings.embedded_fsync)
    server.start()
    typer.echo(server.url_for(runtime.APP_DATABASE))


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL."""
    settings = _settings()
    EmbeddedPostgres(settings.pgdata, settings.embedded_port).stop()
    typer.echo("stopped")


@ledger_app.command("check")
def ledger_check() -> None:
    """Prove the ledger's invariants over the whole database; exit 1 on any violation."""
    from campuscard.ledger.checks import check_ledger

    settings = _settings()
    with runtime.database(settings) as url:

        async def run() -> Any:
            conn = await connect(url)
            try:
                return await check_ledger(conn)
            finally:
                await conn.close()

        report = asyncio.run(run())
    typer.echo(
        f"accounts {report.accounts}, transactions {report.transactions}, "
        f"postings {report.postings}, sum of balances {report.total_balance}"
    )
    for violation in report.violations:
        typer.echo(f"VIOLATION {violation}", err=True)
    if not report.ok:
        raise typer.Exit(1)
    typer.echo("ledger OK: I1 sum zero, I2 transactions net zero, I3 floors, I4 balances/versions")


@import_app.command("students")
def import_students(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="xlsx or CSV")],
    school: Annotated[str, typer.Option(help="school code")],
    url: Annotated[str, typer.Option(help="CampusCard base URL (default: public_url)")] = "",
    username: Annotated[str, typer.Option(help="a teacher's or card center user name")] = "",
    password: Annotated[
        str, typer.Option(envvar="CAMPUSCARD_PASSWORD", help="asked for when not given")
    ] = "",
    token: Annotated[str, typer.Option(envvar="CAMPUSCARD_TOKEN", help="API token")] = "",
) -> None:
    """Upload student records (seed 004 layout or English headers) with the checksum handshake:
    the server's echo is compared with the file and a damaged upload is sent again, up to 3
    times. Exit 1 if the upload failed or rows were refused (each is listed)."""
    import httpx

    from campuscard.clients.import_uploader import upload_students

    base = (url or _settings().public_url).rstrip("/")
    content = file.read_bytes()

    async def run() -> Any:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            bearer = token
            if not bearer:
                user = username or typer.prompt("user name")
                secret = password or typer.prompt("password", hide_input=True)
                r = await client.post(
                    "/api/v1/auth/login",
                    json={"username": user, "password": secret, "school": school},
                )
                if r.status_code != 200:
                    typer.echo(f"sign-in failed: {r.text}", err=True)
                    raise typer.Exit(1)
                bearer = r.json()["token"]
            return await upload_students(
                client,
                school=school,
                content=content,
                filename=file.name,
                headers={"Authorization": f"Bearer {bearer}"},
            )

    try:
        outcome = asyncio.run(run())
    except DomainError as err:  # the file is not a table at all
        typer.echo(f"{err.message}", err=True)
        raise typer.Exit(1) from err
    for line in outcome.history:
        typer.echo(line)
    for error in outcome.errors:
        typer.echo(f"row {error['row']}: {error['field']}: {error['reason']}", err=True)
    typer.echo(outcome.message, err=not outcome.ok)
    if not outcome.ok:
        raise typer.Exit(1)


KioskSn = Annotated[str, typer.Option(help="this kiosk's serial number")]
KioskUrl = Annotated[str, typer.Option(help="CampusCard base URL (default: public_url)")]
KioskDispenser = Annotated[
    str, typer.Option(help="HOST:PORT of the dispenser's serial bridge; empty: a simulator")
]
KioskKey = Annotated[
    str,
    typer.Option(
        envvar="CAMPUSCARD_TERMINAL_KEY",
        help="the kiosk's terminal key (hex); default: derived from the local master key",
    ),
]
KioskKeyVersion = Annotated[int, typer.Option(help="terminal key version")]


def _kiosk_target(sn: str, url: str, key: str, key_version: int) -> tuple[str, bytes]:
    """The platform's base URL and the kiosk's terminal key (given, or derived from the local
    master key as beside a demo)."""
    from campuscard.platform.signing import derive_terminal_key

    settings = _tool_settings()
    base = (url or settings.public_url).rstrip("/")
    if key:
        return base, bytes.fromhex(key)
    return base, derive_terminal_key(settings.master_key.get_secret_value(), sn, key_version)


@contextlib.asynccontextmanager
async def kiosk_agent(
    *,
    sn: str,
    base: str,
    terminal_key: bytes,
    key_version: int = 1,
    dispenser: str = "",
    stock: int | None = None,
) -> AsyncIterator[Any]:
    """The kiosk's agent as the kiosk runs it: its dispenser at HOST:PORT, or a simulator of one
    (with ``stock`` blank cards) while the block runs."""
    import httpx

    from campuscard.adapters.dispenser.serial import SerialDispenser
    from campuscard.adapters.dispenser.simulator import DispenserSimulator
    from campuscard.clients.kiosk_agent import KioskAgent

    sim: DispenserSimulator | None = None
    if dispenser:
        host, _, port = dispenser.rpartition(":")
        driver = SerialDispenser(host or "127.0.0.1", int(port))
    else:
        sim = DispenserSimulator() if stock is None else DispenserSimulator(stock=stock)
        driver = SerialDispenser("127.0.0.1", await sim.start())
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield KioskAgent(
                client, sn=sn, terminal_key=terminal_key, dispenser=driver, key_version=key_version
            )
    finally:
        if sim is not None:
            with contextlib.suppress(Exception):
                await sim.stop()


@kiosk_app.command("pickup")
def kiosk_pickup(
    code: Annotated[str, typer.Argument(help="the pickup code as the student types it")],
    sn: KioskSn = "KIOSK-DEMO-001",
    url: KioskUrl = "",
    dispenser: KioskDispenser = "",
    key: KioskKey = "",
    key_version: KioskKeyVersion = 1,
) -> None:
    """Run one pickup as the kiosk does: sync codes, check locally, get the platform's
    authorization, dispense, report the card number."""

    base, terminal_key = _kiosk_target(sn, url, key, key_version)

    async def run() -> Any:
        async with kiosk_agent(
            sn=sn,
            base=base,
            terminal_key=terminal_key,
            key_version=key_version,
            dispenser=dispenser,
        ) as agent:
            live = await agent.sync()
            typer.echo(f"{sn}: {live} pickup code(s) waiting at this school")
            return await agent.pickup(code)

    import httpx

    try:
        result = asyncio.run(run())
    except httpx.HTTPStatusError as err:  # the platform refused the kiosk itself
        status = err.response.status_code
        hint = " (check --sn and --key)" if status == 401 else ""
        typer.echo(f"the platform refused this kiosk: HTTP {status}{hint}", err=True)
        raise typer.Exit(1) from err
    except httpx.TransportError as err:
        typer.echo(f"cannot reach the platform at {base}: {err!r}", err=True)
        raise typer.Exit(1) from err
    typer.echo(result.message, err=not result.ok)
    if not result.ok:
        raise typer.Exit(1)


@kiosk_app.command("serve")
def kiosk_serve(
    sn: KioskSn = "KIOSK-DEMO-001",
    url: KioskUrl = "",
    port: Annotated[int, typer.Option(help="port of the kiosk's touch-screen pages")] = 8700,
    dispenser: KioskDispenser = "",
    key: KioskKey = "",
    key_version: KioskKeyVersion = 1,
) -> None:
    """Serve the kiosk's touch-screen pages on 127.0.0.1:PORT (pickup and self-service),
    running on the kiosk beside its dispenser and holding its terminal key."""
    import uvicorn

    from campuscard.web.kiosk.routes import create_kiosk_app

    base, terminal_key = _kiosk_target(sn, url, key, key_version)

    async def run() -> None:
        if not dispenser:
            typer.echo("dispenser: simulator with 100 blank cards")
        async with kiosk_agent(
            sn=sn,
            base=base,
            terminal_key=terminal_key,
            key_version=key_version,
            dispenser=dispenser,
            stock=100,
        ) as agent:
            typer.echo(f"kiosk {sn} pages on http://127.0.0.1:{port}/ (platform {base})")
            server = uvicorn.Server(
                uvicorn.Config(
                    create_kiosk_app(agent),
                    host="127.0.0.1",
                    port=port,
                    log_config=None,
                    access_log=False,
                )
            )
            await server.serve()

    asyncio.run(run())


def _setup_logging(settings: Settings, *, demo: bool = False) -> None:
    as_json = settings.log_json if settings.log_json is not None else not demo
    # uvicorn's worker processes build the app from the environment: same format there
    os.environ["CAMPUSCARD_LOG_JSON"] = "true" if as_json else "false"
    setup_logging(settings.log_level, as_json=as_json)


def _metrics_directory(settings: Settings) -> None:
    """Prometheus multiprocess mode: the workers write their values to files in one directory
    and a scrape of any worker sums them (decision 0160). Emptied at each start; an operator
    may name another directory in PROMETHEUS_MULTIPROC_DIR (then empty it before starting)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = settings.data_dir.resolve() / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _balance_directory(settings: Settings, workers: int) -> None:
    """Where several workers write how many connections each holds (edge/balance.py): one
    directory per server start, emptied at the start; none for one worker."""
    os.environ.pop(balance.ENV, None)
    if workers < 2 or not settings.balance_connections:
        return
    directory = settings.data_dir.resolve() / "connections"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[balance.ENV] = str(directory)


def _serve(
    settings: Settings, url: str, workers: int, factory: str = "campuscard.app:app_from_env"
) -> None:
    import uvicorn

    from campuscard.edge.server import serve_options

    os.environ["CAMPUSCARD_DATABASE_URL"] = url
    _metrics_directory(settings)
    _balance_directory(settings, workers)
    get_settings.cache_clear()
    # uvicorn stops gracefully on SIGTERM and then raises the signal again; with the default
    # action the process would die there, before the embedded database is stopped (the
    # caller's `finally`). As SystemExit(0) instead, the stop runs, and a stop that was asked
    # for ends with status 0.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(
            factory,
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_config=None,
            access_log=False,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            **serve_options(settings),  # header deadline and size, keep-alive (edge/server.py)
        )
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _refuse_unsafe_secrets(settings: Settings) -> None:
    problems = unsafe_secrets(settings)
    if problems:
        for line in problems:
            typer.echo(f"refusing to start: {line}", err=True)
        typer.echo(
            "Generate each secret with `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'` (docs/security.md).",
            err=True,
        )
        raise typer.Exit(2)


@app.command("serve")
def serve(
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 0,
) -> None:
    """Serve the API and web pages (migrating first). Production: refuses development or
    short secrets, and mounts no simulator."""
    settings = _settings()
    _refuse_unsafe_secrets(settings)
    _setup_logging(settings)
    with runtime.database(settings) as url:
        _serve(settings, url, workers or settings.workers)


@app.command("worker")
def worker() -> None:
    """Deliver the outbox (SMS, pushes) and run periodic jobs until interrupted."""
    from campuscard.platform.worker import run_forever

    settings = _settings()
    _refuse_unsafe_secrets(settings)
    _setup_logging(settings)
    with runtime.database(settings) as url:
        settings = settings.model_copy(update={"database_url": url})
        asyncio.run(run_forever(settings))


@app.command("demo")
def demo(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
    history_days: Annotated[
        int,
        typer.Option(
            min=0, max=90, help="finished days of campus life to book when the campus is created"
        ),
    ] = 30,
) -> None:
    """Load the demo campus (once, with a month of history) and serve it, with its own random
    secrets (kept in the data directory) and the SMS, utility and provider simulators under
    /dev/."""
    from campuscard import demo as demo_data
    from campuscard.payments.terminals import terminal_key_hex

    settings = with_demo_secrets(_settings())
    if env_name("provider_url") not in os.environ:  # the provider simulator the demo mounts
        provider_url = settings.public_url.rstrip("/") + "/dev/provider"
        os.environ[env_name("provider_url")] = provider_url  # for the server processes too
        settings = settings.model_copy(update={"provider_url": provider_url})
    with runtime.database(settings) as url:

        async def load() -> demo_data.DemoCampus:
            conn = await connect(url)
            try:
                return await demo_data.load_demo(
                    conn,
                    history_days=history_days,
                    master_key=settings.master_key.get_secret_value(),
                )
            finally:
                await conn.close()

        campus = asyncio.run(load())
        base = settings.public_url.rstrip("/")
        lines = [
            "",
            "CampusCard demo campus " + ("created" if campus.created else "found"),
        ]
        if campus.history is not None:
            h = campus.history
            lines.append(
                f"  History:        {h.days} days closed: {h.payments} payments, {h.topups} "
                f"online top-ups, {h.refunds} refunds, {h.reversals} reversal, "
                f"{h.subsidy_batches} subsidy batch"
            )
        if campus.watched is not None:
            w = campus.watched
            median = sorted(w.per_student_week)[len(w.per_student_week) // 2]
            lines.append(
                f"  Watched over:   {w.alerts} alerts from {w.evaluated} payments read at their "
                f"instants (median {median:.2f} a student a week), {w.candidates} quiet-help "
                "candidates"
            )
        lines += [
            f"  API docs:       {base}/api/docs",
            f"  Health:         {base}/api/health",
            f"  Web pages:      {base}/",
            "  Sign in (school code / user / password):",
        ]
        for who, school, user in campus.logins:
            student = who.startswith("student")
            password = demo_data.STUDENT_PASSWORD if student else demo_data.DEMO_PASSWORD
            lines.append(f"    {who:<28} {school or '-':<6} {user:<14} {password}")
        lines.append("  Terminals (SN, key version, key; `campuscard sim pos --sn SN ...` signs):")
        for sn, key_version in campus.terminal_keys:
            key = terminal_key_hex(settings, sn, key_version)
            lines.append(f"    {sn:<16} v{key_version} {key}")
        lines.append("  Demo cards: 880000000001 .. 880000000200, chip UID 04A10001 .. 04A100C8")
        lines.append(f"  Database: {url}")
        lines.append(
            f"  Secrets:  {settings.data_dir / DEMO_SECRETS_FILE} (random, this demo's only)"
        )
        typer.echo("\n".join(lines), err=False)
        sys.stdout.flush()
        if serve_after:
            _setup_logging(settings, demo=True)
            _serve(settings, url, settings.workers, "campuscard.app:demo_app_from_env")


@settlement_app.command("close")
def settlement_close(
    school: Annotated[str, typer.Option(help="school code")],
    day: Annotated[
        str, typer.Option("--date", help="business date YYYY-MM-DD; default yesterday")
    ] = "",
    early: Annotated[bool, typer.Option(help="close today before its cut-off")] = False,
) -> None:
    """Close a business day (idempotent) and print its figures."""
    import json
    from datetime import date, timedelta

    from campuscard.db.pool import create_pool
    from campuscard.platform.actors import SYSTEM
    from campuscard.platform.errors import DomainError
    from campuscard.settlement import clearing

    settings = _settings()
    with runtime.database(settings) as url:

        async def run() -> dict[str, Any]:
            pool = await create_pool(url, min_size=1, max_size=2)
            try:
                school_id = await pool.fetchval("SELECT id FROM schools WHERE code = $1", school)
                if school_id is None:
                    raise typer.BadParameter(f"unknown school {school!r}", param_hint="--school")
                if day:
                    try:
                        wanted = date.fromisoformat(day)
                    except ValueError as err:
                        raise typer.BadParameter("use YYYY-MM-DD", param_hint="--date") from err
                else:
                    today: date = await pool.fetchval("SELECT cc_business_date($1)", school_id)
                    wanted = today - timedelta(days=1)
                return await clearing.do_close_day(pool, SYSTEM, school_id, wanted, early=early)
            finally:
                await pool.close()

        try:
            result = asyncio.run(run())
        except DomainError as err:
            typer.echo(f"refused: {err.code} {err.message}", err=True)
            raise typer.Exit(1) from err
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2, default=str))


_POS: dict[str, Any] = {}


@pos_app.callback()
def pos_options(
    sn: Annotated[str, typer.Option(help="terminal SN, e.g. POS-DEMO-001")],
    key: Annotated[
        str, typer.Option(help="terminal key (64 hex); default: derived from the master key")
    ] = "",
    key_version: Annotated[int, typer.Option(help="key version")] = 1,
    url: Annotated[str, typer.Option(help="server URL; default CAMPUSCARD_PUBLIC_URL")] = "",
) -> None:
    from campuscard.payments.terminals import terminal_key_hex

    settings = _tool_settings()
    _POS["terminal"] = (
        url or settings.public_url,
        sn,
        bytes.fromhex(key or terminal_key_hex(settings, sn, key_version)),
        key_version,
    )


def _pos_run(work: Any) -> None:
    from campuscard.clients.pos_terminal import DeviceAnswer, PosTerminal

    base, sn, key, version = _POS["terminal"]
    terminal = PosTerminal(base_url=base, sn=sn, key=key, key_version=version)

    async def go() -> DeviceAnswer:
        result: DeviceAnswer = await work(terminal)
        return result

    answer = asyncio.run(go())
    typer.echo(json.dumps(answer.body, ensure_ascii=False, indent=2))
    if not answer.ok:
        raise typer.Exit(1)


def _meter_command(kind: str, unit: str) -> None:
    def run(
        sn: Annotated[str, typer.Option(help="the device's terminal SN")],
        card: Annotated[str, typer.Option(help="card number")],
        uid: Annotated[str, typer.Option(help="chip UID (hex)")],
        units: Annotated[
            int, typer.Option(help="units used: seconds, pulses, cycles, minutes or trips")
        ],
        key: Annotated[str, typer.Option(help="terminal key (64 hex); default: derived")] = "",
        key_version: Annotated[int, typer.Option(help="key version")] = 1,
        url: Annotated[str, typer.Option(help="server URL; default CAMPUSCARD_PUBLIC_URL")] = "",
        session_id: Annotated[str | None, typer.Option(help="reuse to resend a session")] = None,
        never_end: Annotated[
            bool, typer.Option(help="start, then never report (the hold expires)")
        ] = False,
    ) -> None:
        from campuscard.clients.meter_device import MeterDevice
        from campuscard.clients.pos_terminal import PosTerminal
        from campuscard.payments.terminals import terminal_key_hex

        settings = _settings()
        device = MeterDevice(
            PosTerminal(
                base_url=url or settings.public_url,
                sn=sn,
                key=bytes.fromhex(key or terminal_key_hex(settings, sn, key_version)),
                key_version=key_version,
            )
        )
        started, ended = asyncio.run(
            device.session(card, uid, units, session_id=session_id, report=not never_end)
        )
        out = {"start": started.body, "end": ended.body if ended else None}
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
        if not started.ok or (ended is not None and not ended.ok):
            raise typer.Exit(1)

    run.__doc__ = (
        f"A {kind.replace('_', ' ')} device: a card starts a session (a hold), "
        f"{unit}s are used, the device reports them (the price is captured)."
    )
    sim_app.command(kind.replace("_", "-"))(run)


for _kind, _unit in (
    ("shower", "second"),
    ("water", "pulse"),
    ("laundry", "cycle"),
    ("computer_lab", "minute"),
    ("bus", "trip"),
):
    _meter_command(_kind, _unit)


@pos_app.command("check")
def pos_check(
    card: Annotated[str, typer.Option(help="card number")],
    uid: Annotated[str, typer.Option(help="chip UID (hex)")],
    amount: Annotated[str, typer.Option(help='yuan, e.g. "12.50"')],
) -> None:
    """Preview a payment: allowed? PIN needed? balance after."""
    _pos_run(lambda t: t.check(card, uid, amount))


@pos_app.command("pay")
def pos_pay(
    card: Annotated[str, typer.Option(help="card number")],
    uid: Annotated[str, typer.Option(help="chip UID (hex)")],
    amount: Annotated[str, typer.Option(help='yuan, e.g. "12.50"')],
    pin: Annotated[str | None, typer.Option(help="6-digit PIN when required")] = None,
    client_id: Annotated[str | None, typer.Option(help="reuse to retry a payment")] = None,
) -> None:
    """Book a card payment; prints the receipt (client_id is in it, to retry or reverse)."""

    async def work(t: Any) -> Any:
        _, answer = await t.pay(card, uid, amount, pin=pin, client_id=client_id)
        return answer

    _pos_run(work)


@pos_app.command("paycode")
def pos_paycode(
    code: Annotated[str, typer.Option(help="the 20 digits scanned from the phone")],
    amount: Annotated[str, typer.Option(help='yuan, e.g. "12.50"')],
    pin: Annotated[str | None, typer.Option(help="6-digit PIN asked on the keypad")] = None,
    client_id: Annotated[str | None, typer.Option(help="reuse to retry a payment")] = None,
    wait: Annotated[int, typer.Option(help="seconds to wait for the phone's confirmation")] = 90,
) -> None:
    """Pay with a payment code; above the PIN threshold, waits while the student confirms on
    the phone (repeating the same request, as a real till does)."""

    async def work(t: Any) -> Any:
        cid = client_id or t.next_client_id()
        payload: dict[str, Any] = {"client_id": cid, "code": code, "amount": amount}
        if pin is not None:
            payload["pin"] = pin
        deadline = time.monotonic() + wait
        while True:
            answer = await t.request("POST", "/api/v1/terminal/paycode/pay", payload)
            if answer.status != 202 or time.monotonic() > deadline:
                return answer
            typer.echo("waiting for the student to confirm on the phone…", err=True)
            await asyncio.sleep(2)

    _pos_run(work)


@pos_app.command("show-amount")
def pos_show_amount(amount: Annotated[str, typer.Option(help='yuan, e.g. "12.50"')]) -> None:
    """Show the typed amount on this till's customer display (/pos/display/<id>)."""
    _pos_run(lambda t: t.request("POST", "/api/v1/terminal/display/pending", {"amount": amount}))


@pos_app.command("reverse")
def pos_reverse(client_id: Annotated[str, typer.Option(help="the payment's client id")]) -> None:
    """冲正: reverse this terminal's payment (also one that never arrived)."""
    _pos_run(lambda t: t.reverse(client_id))


@pos_app.command("refund")
def pos_refund(
    payment_id: Annotated[int, typer.Option(help="payment id from the receipt")],
    amount: Annotated[str, typer.Option(help='yuan, e.g. "2.00"')],
    user: Annotated[str, typer.Option(help="cashier username (refund permission)")],
    password: Annotated[str, typer.Option(help="cashier password", prompt=True, hide_input=True)],
    school: Annotated[str, typer.Option(help="school code")] = "DEMO",
    reason: Annotated[str, typer.Option(help="why")] = "",
) -> None:
    """Refund (part of) a payment; the cashier signs in on the device first."""

    async def work(t: Any) -> Any:
        token = await t.sign_in(user, password, school)
        return await t.refund(payment_id, amount, bearer=token, reason=reason)

    _pos_run(work)


@pos_app.command("blacklist")
def pos_blacklist(
    since: Annotated[int | None, typer.Option(help="version held; omit for the full list")] = None,
) -> None:
    """Fetch the card blacklist (changes since a version, or the full list)."""
    _pos_run(lambda t: t.blacklist(since))


pos_offline_app = typer.Typer(
    help="The till's offline mode: sell within the last list's limits, store, upload later.",
    no_args_is_help=True,
)
pos_app.add_typer(pos_offline_app, name="offline")
_POS_OFFLINE: dict[str, Path] = {}


@pos_offline_app.callback()
def pos_offline_options(
    state: Annotated[
        Path | None,
        typer.Option(help="the till's offline store; default ~/.campuscard/pos-offline-SN.json"),
    ] = None,
) -> None:
    _, sn, _, _ = _POS["terminal"]
    _POS_OFFLINE["state"] = state or Path.home() / ".campuscard" / f"pos-offline-{sn}.json"


def _offline_run(work: Any) -> None:
    from campuscard.clients.pos_terminal import OfflineTill, PosTerminal

    base, sn, key, version = _POS["terminal"]
    till = OfflineTill.load(
        PosTerminal(base_url=base, sn=sn, key=key, key_version=version), _POS_OFFLINE["state"]
    )
    ok, result = asyncio.run(work(till))
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
    if not ok:
        raise typer.Exit(1)


@pos_offline_app.command("refresh")
def pos_offline_refresh() -> None:
    """Fetch the blacklist and the offline limits (do this while online)."""

    async def work(till: Any) -> tuple[bool, Any]:
        answer = await till.refresh_list()
        return answer.ok, till.status() if answer.ok else answer.body

    _offline_run(work)


@pos_offline_app.command("sell")
def pos_offline_sell(
    card: Annotated[str, typer.Option(help="card number")],
    uid: Annotated[str, typer.Option(help="chip UID (hex)")],
    amount: Annotated[str, typer.Option(help='yuan, e.g. "12.50"')],
) -> None:
    """Sell without the server: approve within the limits, sign and store the record."""

    async def work(till: Any) -> tuple[bool, Any]:
        sale = till.sell_offline(card, uid, amount)
        return sale.approved, {"approved": sale.approved, "code": sale.code, "record": sale.record}

    _offline_run(work)


@pos_offline_app.command("upload")
def pos_offline_upload() -> None:
    """Send the stored records (batches of 200); prints the server's answers."""

    async def work(till: Any) -> tuple[bool, Any]:
        answers = await till.upload()
        return all(a.ok for a in answers), [a.body for a in answers]

    _offline_run(work)


@pos_offline_app.command("status")
def pos_offline_status() -> None:
    """What the till holds: records not uploaded, the list version, the limits."""

    async def work(till: Any) -> tuple[bool, Any]:
        return True, till.status()

    _offline_run(work)


@pos_app.command("heartbeat")
def pos_heartbeat() -> None:
    """Tell the server this terminal is alive."""
    _pos_run(lambda t: t.heartbeat())


@pos_app.command("rotate-key")
def pos_rotate_key() -> None:
    """Ask for a new key; prints it (store it on the device)."""
    _pos_run(lambda t: t.rotate_key())


@sim_app.command("provider")
def sim_provider(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8601,
) -> None:
    """Serve the payment-provider simulator with the merchant id and key from the settings."""
    import uvicorn

    from campuscard.adapters.provider.simulator import ProviderSimulator

    settings = _tool_settings()
    sim = ProviderSimulator(
        {settings.provider_mch_id: settings.provider_key.get_secret_value()},
        app_id=settings.provider_app_id,
    )
    typer.echo(f"provider simulator on http://127.0.0.1:{port} (mch_id {settings.provider_mch_id})")
    uvicorn.run(sim.app, host="127.0.0.1", port=port, log_level="warning")


@sim_app.command("bank")
def sim_bank(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8602,
    control_port: Annotated[
        int, typer.Option(help="HTTP controls on 127.0.0.1 (docs/bank-link.md)")
    ] = 8603,
    accounts: Annotated[
        list[str],
        typer.Option("--account", help="PAN:NAME:BALANCE_FEN, may be repeated"),
    ] = [],  # noqa: B006 - typer reads the default, it is never mutated
) -> None:
    """Serve the ISO 8583 bank simulator with the MAC key from the settings."""
    import uvicorn

    from campuscard.adapters.bank.simulator import BankSimulator

    settings = _tool_settings()
    sim = BankSimulator(settings.bank_mac_key.get_secret_value())
    from campuscard.demo import student_name

    # by default: a bank account for the demo's first student (bind it on /m/topup)
    for spec in accounts or [f"6222021234567890128:{student_name(1)}:1000000"]:
        pan, name, balance = spec.split(":")
        sim.open_account(pan, name, int(balance))
    typer.echo(f"bank simulator on 127.0.0.1:{port}; accounts: {', '.join(sim.accounts)}")
    typer.echo(f"controls (state, faults, hours, statements) on http://127.0.0.1:{control_port}")

    async def both() -> None:
        controls = uvicorn.Server(
            uvicorn.Config(
                sim.control_app(), host="127.0.0.1", port=control_port, log_level="warning"
            )
        )
        await asyncio.gather(sim.serve_forever("127.0.0.1", port), controls.serve())

    asyncio.run(both())


BANK_CONTROL = "http://127.0.0.1:8603"


def _bank_control(method: str, url: str, path: str, body: dict[str, object] | None) -> None:
    import httpx

    try:
        r = httpx.request(method, url.rstrip("/") + path, json=body, timeout=10)
    except httpx.HTTPError as err:
        raise SystemExit(f"the bank simulator's controls at {url} do not answer: {err}") from err
    if r.status_code != 200:
        raise SystemExit(f"refused ({r.status_code}): {r.text}")
    typer.echo(json.dumps(r.json(), ensure_ascii=False, indent=2))


@sim_app.command("bank-fault")
def sim_bank_fault(
    mti: Annotated[str, typer.Option(help="message type: 0100, 0200, 0400 or 0600")] = "0200",
    mode: Annotated[
        str, typer.Option(help="drop (act, never answer), drop_before, or delay:<seconds>")
    ] = "drop",
    times: Annotated[int, typer.Option(help="how many of the next requests")] = 1,
    clear: Annotated[bool, typer.Option(help="remove every pending fault instead")] = False,
    control: Annotated[str, typer.Option(help="the simulator's control URL")] = BANK_CONTROL,
) -> None:
    """Make the running bank simulator misbehave for its next requests (rehearse a timeout)."""
    if clear:
        _bank_control("DELETE", control, "/faults", None)
    else:
        _bank_control("POST", control, "/faults", {"mti": mti, "mode": mode, "times": times})


@sim_app.command("bank-state")
def sim_bank_state(
    control: Annotated[str, typer.Option(help="the simulator's control URL")] = BANK_CONTROL,
) -> None:
    """What the running bank simulator holds: accounts, transactions, reversals, faults."""
    _bank_control("GET", control, "/state", None)


def main() -> None:
    app()


if __name__ == "__main__":
    main()


door_app = typer.Typer(
    help="A door controller (docs/terminal-protocol.md, Door controllers): it keeps its list, "
    "anti-passback memory and unsent events in a state file, decides offline, syncs when online.",
    no_args_is_help=True,
)
sim_app.add_typer(door_app, name="door")


def _door(sn: str, key: str, key_version: int, url: str, state: str) -> Any:
    from campuscard.clients.door_reader import DoorController
    from campuscard.payments.terminals import terminal_key_hex

    settings = _tool_settings()
    door = DoorController(
        base_url=(url or settings.public_url).rstrip("/"),
        sn=sn,
        key=bytes.fromhex(key or terminal_key_hex(settings, sn, key_version)),
        key_version=key_version,
        state_path=Path(state or f".campuscard/doors/{sn}.json"),
    )
    door.load()
    return door


_SN = Annotated[str, typer.Option(help="the controller's terminal SN")]
_KEY = Annotated[str, typer.Option(help="terminal key (64 hex); default: derived")]
_KV = Annotated[int, typer.Option(help="key version")]
_URL = Annotated[str, typer.Option(help="server URL; default CAMPUSCARD_PUBLIC_URL")]
_STATE = Annotated[str, typer.Option(help="state file; default .campuscard/doors/SN.json")]


@door_app.command("sync")
def door_sync(
    sn: _SN, key: _KEY = "", key_version: _KV = 1, url: _URL = "", state: _STATE = ""
) -> None:
    """Upload unsent events, then fetch the list (delta or snapshot) if the server has news."""
    import httpx

    from campuscard.clients.door_reader import SyncFailed

    door = _door(sn, key, key_version, url, state)
    try:
        mode = asyncio.run(door.tick())
    except (SyncFailed, OSError, httpx.HTTPError) as err:
        typer.echo(f"offline: {err}; keeping list version {door.held.version}", err=True)
        raise typer.Exit(1) from err
    typer.echo(
        json.dumps(
            {
                "mode": mode or "current",
                "version": door.held.version,
                "cards": len(door.held.entries),
            }
        )
    )


@door_app.command("swipe")
def door_swipe(
    sn: _SN,
    card: Annotated[str, typer.Option(help="card number")],
    direction: Annotated[str, typer.Option(help="in (entry reader) or out (exit reader)")] = "in",
    key: _KEY = "",
    key_version: _KV = 1,
    url: _URL = "",
    state: _STATE = "",
) -> None:
    """A card at the door, decided from the held list alone (works offline); the event waits
    for the next sync."""
    if direction not in ("in", "out"):
        raise typer.BadParameter("in or out", param_hint="--direction")
    door = _door(sn, key, key_version, url, state)
    decision = door.present(card, direction)
    typer.echo(
        json.dumps({"granted": decision.granted, "reason": decision.reason, "flag": decision.flag})
    )
    if not decision.granted:
        raise typer.Exit(1)


@door_app.command("alarm")
def door_alarm(
    sn: _SN,
    kind: Annotated[str, typer.Option(help="forced or held_open")],
    key: _KEY = "",
    key_version: _KV = 1,
    url: _URL = "",
    state: _STATE = "",
) -> None:
    """The door was forced, or held open too long: an event for the next sync."""
    if kind not in ("forced", "held_open"):
        raise typer.BadParameter("forced or held_open", param_hint="--kind")
    door = _door(sn, key, key_version, url, state)
    door.alarm(kind)
    typer.echo(json.dumps({"pending": len(door.pending)}))


@door_app.command("run")
def door_run(
    sn: _SN,
    key: _KEY = "",
    key_version: _KV = 1,
    url: _URL = "",
    state: _STATE = "",
    every: Annotated[float, typer.Option(help="seconds between version polls")] = 2.0,
) -> None:
    """Stay online: poll the version every few seconds, sync and upload; survives outages."""
    import httpx

    from campuscard.clients.door_reader import SyncFailed

    door = _door(sn, key, key_version, url, state)

    async def loop() -> None:
        while True:
            try:
                mode = await door.tick()
                if mode:
                    typer.echo(
                        f"list {mode}: version {door.held.version}, {len(door.held.entries)} cards"
                    )
            except (SyncFailed, OSError, httpx.HTTPError) as err:
                typer.echo(f"offline ({err}); deciding from version {door.held.version}", err=True)
            await asyncio.sleep(every)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(loop())
