"""Citus cost per booking call: the local cluster against a single node, in the same run.

A skeleton until CampusCard's schema is distributed: it books through a STAND-IN booking
function (tests/citus/workload.py, the one the citus tests delegate: lock a purse by school,
check, debit, append a payment row), not yet through the signed payment path over HTTP. pgbench
drives both servers with the same script and client count. Prints both rates and, last, one
JSON line:

    {"workload": "stand-in", "citus_payments_per_s": …, "single_payments_per_s": …, "ratio": …}

On one 2-core machine the three Citus nodes share the cores with pgbench: this measures the
per-call overhead of delegation, not what a cluster of real servers scales to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg
from tests.citus.build import ensure_built
from tests.citus.cluster import running_cluster
from tests.citus.workload import STAND_IN_SCHEMA

from campuscard.db.embedded import EmbeddedPostgres, bin_dir, free_port

_PGBENCH_SCRIPT = """\\set school random(1, {schools})
\\set purse random(1, {purses})
SELECT pay(:school, :purse, 1);
"""


async def _seed(url: str, *, schools: int, purses: int, distribute: bool) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(STAND_IN_SCHEMA)
        if distribute:
            await conn.execute("SELECT create_distributed_table('purse', 'school_id')")
            await conn.execute(
                "SELECT create_distributed_table('payment', 'school_id', colocate_with => 'purse')"
            )
            await conn.execute(
                "SELECT create_distributed_function('pay(bigint, bigint, bigint)', "
                "distribution_arg_name => 'p_school_id', colocate_with => 'purse', "
                "force_delegation => true)"
            )
        await conn.execute(
            "INSERT INTO purse (school_id, purse_id, balance) "
            "SELECT s, p, 100000000 FROM generate_series(1, $1) s, generate_series(1, $2) p",
            schools,
            purses,
        )
    finally:
        await conn.close()


def _pgbench(url: str, script: Path, *, clients: int, seconds: int) -> float:
    res = subprocess.run(
        [
            str(bin_dir() / "pgbench"),
            "-n",
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(seconds),
            "-f",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    m = re.search(r"tps = ([\d.]+)", res.stdout)
    if m is None:
        raise RuntimeError(f"pgbench printed no tps:\n{res.stdout}\n{res.stderr}")
    return float(m.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--schools", type=int, default=100)
    parser.add_argument("--purses", type=int, default=1000, help="per school")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cc-bench-citus-"))
    script = work / "pay.sql"
    script.write_text(_PGBENCH_SCRIPT.format(schools=args.schools, purses=args.purses))
    seed = {"schools": args.schools, "purses": args.purses}
    try:
        with running_cluster(ensure_built(), tag="bench") as cluster:
            asyncio.run(cluster.create_database("bench"))
            url = cluster.coordinator.url("bench")
            asyncio.run(_seed(url, **seed, distribute=True))
            citus = _pgbench(url, script, clients=args.clients, seconds=args.seconds)
        print(f"citus (coordinator + 2 workers): {citus:,.0f} payments/s")

        single_node = EmbeddedPostgres(pgdata=work / "single", port=free_port(), fsync=False)
        single_node.start()
        try:
            asyncio.run(_seed(single_node.url, **seed, distribute=False))
            single = _pgbench(single_node.url, script, clients=args.clients, seconds=args.seconds)
        finally:
            single_node.destroy()
        print(f"single node:                     {single:,.0f} payments/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    line = {
        "workload": "stand-in",
        "citus_payments_per_s": round(citus, 1),
        "single_payments_per_s": round(single, 1),
        "ratio": round(citus / single, 3),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
