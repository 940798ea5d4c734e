"""`python -m bench.metrics_cost`: what the Prometheus metrics cost a payment, in CPU.

A payment's request does two things for the metrics (issue 20, decision 0160): it counts the
payment by channel and outcome (``metrics.count_payment``) and puts the request's latency in
its route group's histogram (``metrics.observe_request``). Both write to prometheus-client's
multiprocess files, as under ``campuscard serve``. The sampler (once every few seconds) and
scrapes cost nothing per payment. This measures those two calls, approved and refused, on
this machine. It compares them with the server's CPU per payment that ``make bench`` prints
(``server_cpu_ms`` per payment; 1.4–2.3 ms in docs/performance.md), or with
``--server-cpu-ms`` when given.

Last line, JSON: {"metrics_us_per_payment": …, "server_cpu_ms": … or null, "share": … or null}.
Budget: share ≤ 0.03.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import timeit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=50_000)
    parser.add_argument("--server-cpu-ms", type=float, default=None)
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="campuscard-metrics-cost-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        from campuscard.platform import metrics  # after the variable: multiprocess mode

        def approved() -> None:
            metrics.count_payment("canteen", {}, 200)
            metrics.observe_request("/api/v1/terminal/pay", 200, 0.012)

        def refused() -> None:
            metrics.count_payment("canteen", {"error": {"code": "INSUFFICIENT_FUNDS"}}, 409)
            metrics.observe_request("/api/v1/terminal/pay", 409, 0.012)

        runs = []
        for call in (approved, refused, approved, refused, approved, refused):
            runs.append(timeit.timeit(call, number=args.payments) / args.payments * 1e6)
        us = min(runs[0::2] + runs[1::2])
        worst = max(runs)
        print(f"metrics per payment: {us:.1f} µs at best, {worst:.1f} µs at worst of six runs")
        share = None
        if args.server_cpu_ms:
            share = round(worst / 1000 / args.server_cpu_ms, 4)
            print(f"against {args.server_cpu_ms} ms of server CPU per payment: {share:.2%}")
        print(
            json.dumps(
                {
                    "metrics_us_per_payment": round(worst, 1),
                    "server_cpu_ms": args.server_cpu_ms,
                    "share": share,
                }
            )
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
