"""A district's second roster load on the embedded SQLite warehouse, against its first (issue 34: the second used
to grow with the square of the roster).

    python benchmarks/roster_apply.py [--students 200000] [--work DIR]

Two loads of the same district into a fresh SQLite file, each staged and applied as a drop's load is
(`replace_roster`): the first into an empty warehouse, the second over the first's rows with one student in ten
new (the rest listed again, so replaced). Prints each load's seconds and the second's ratio to the first; the
bound is 2x.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from belleville_mtss.lib.load import warehouse as w  # noqa: E402
from belleville_mtss.lib.load.migrations import upgrade  # noqa: E402

BOUND = 2.0
DISTRICT = 107873


def roster(students: int, first_number: int, drop: str) -> pl.DataFrame:
    s = pl.int_range(0, students, eager=True)
    return pl.DataFrame({
        "AccountInfoId": pl.repeat(DISTRICT, students, eager=True), "StudentNumber": (s + first_number).cast(pl.String),
        "FirstName": "First" + s.cast(pl.String), "LastName": "Last" + s.cast(pl.String),
        "Email": "student" + s.cast(pl.String) + "@example.org", "GradeLevel": (s % 12 + 1).cast(pl.String),
        "SchoolId": (s % 9 + 1).cast(pl.String), "ClassLinkUserId": "cl-" + s.cast(pl.String),
        "StarTestCount": pl.repeat(3, students, eager=True), "DropId": pl.repeat(drop, students, eager=True),
        "LoadedAt": pl.repeat(dt.datetime(2026, 12, 4), students, eager=True),
    })


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", type=int, default=200_000)
    p.add_argument("--work", type=Path, default=None, help="folder for the SQLite file (default: a temporary one)")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="mtss-roster-apply-"))
    engine = w.make_engine(f"sqlite:///{work / 'warehouse.db'}")
    upgrade(engine)
    seconds = []
    for load, first_number in (("first", 200_000), ("second", 200_000 + args.students // 10)):
        frame = roster(args.students, first_number, f"belleville/{load}")
        t = time.perf_counter()
        w.replace_roster(engine, DISTRICT, frame)
        seconds.append(time.perf_counter() - t)
        print(f"{load} load of {args.students:,} students: {seconds[-1]:.2f} s", flush=True)
    ratio = seconds[1] / seconds[0]
    print(f"second / first: {ratio:.2f} (bound {BOUND:g}x: {'met' if ratio <= BOUND else 'NOT met'})")
    print(f"roster rows held: {w.count_rows(engine, w.student_roster):,}")
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
