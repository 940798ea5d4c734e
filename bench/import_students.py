"""Benchmark: import 50,000 student records (seed 004 layout) — target at most 15 s.

Runs the whole server-side path (frame check, xlsx parse, row rules, COPY into staging, the
database checks, set-based upserts, the stored file version and the canonical echo) on a
throw-away embedded PostgreSQL, or on CAMPUSCARD_DATABASE_URL (a database you can drop).

    .venv/bin/python -m bench.import_students [--rows 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time

from openpyxl import Workbook

from bench.common import bench_school, throwaway_database
from campuscard.db.pool import connect
from campuscard.issuing import imports
from campuscard.issuing.import_rules import HEADERS_ZH, build_frame
from campuscard.platform import auth

TARGET_SECONDS = 15.0


def workbook(rows: int, school: str, *, renamed_every: int = 0) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(list(HEADERS_ZH))
    for i in range(1, rows + 1):
        name = f"学生{i}" + ("改" if renamed_every and i % renamed_every == 0 else "")
        sheet.append(
            [
                i,
                "江苏省",
                school,
                name,
                f"{2026 - i % 4}级{i % 40 + 1}班",
                f"B{i:08d}",
                f"{77000000 + i}",
            ]
        )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def run(url: str, rows: int) -> bool:
    conn = await connect(url)
    try:
        school_id = await bench_school(conn)
        user_id = await auth.create_user(
            conn,
            username="bench-teacher",
            password="bench-password-1",  # noqa: S106 - throw-away benchmark database
            school_id=school_id,
            roles=[("teacher", school_id, None)],
        )
        teacher = await auth.load_actor(conn, user_id)
        t0 = time.perf_counter()
        first = workbook(rows, "基准学校")
        t_make = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = await imports.do_import_students(
            conn, teacher, school_id, frame=build_frame(first), filename="bench.xlsx"
        )
        t_first = time.perf_counter() - t0
        second = workbook(rows, "基准学校", renamed_every=10)
        t0 = time.perf_counter()
        again = await imports.do_import_students(
            conn, teacher, school_id, frame=build_frame(second), filename="bench-v2.xlsx"
        )
        t_again = time.perf_counter() - t0
    finally:
        await conn.close()
    print(f"file: {rows} rows, {len(first) / 1e6:.1f} MB xlsx (made in {t_make:.1f} s)")
    print(f"first import:  {t_first:6.2f} s  added {result.added}  ({rows / t_first:,.0f} rows/s)")
    print(
        f"re-import:     {t_again:6.2f} s  updated {again.updated}  unchanged {again.unchanged}"
        f"  ({rows / t_again:,.0f} rows/s)"
    )
    ok = max(t_first, t_again) <= TARGET_SECONDS
    print(f"target <= {TARGET_SECONDS:.0f} s: {'OK' if ok else 'MISSED'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    with throwaway_database("cc-bench-import-", fsync=False) as (url, _):
        ok = asyncio.run(run(url, args.rows))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
