"""The core's time for a drop of the four other screeners (MAP Growth, i-Ready, DIBELS 8, FastBridge) beside a Star
drop of the same district and size: the same PowerSchool export, the same students, each drop generated with
`belleville-mtss generate`'s generator.

    python benchmarks/screeners.py [--students 100000] [--repeat 3] [--work DIR]

Each round times `pipeline.process_drop` (read, validate, crosswalk, link, roster and results; no database) on
each drop, alternately, in this one process; the two tables it takes from databases are read before the clock
starts. Prints each round, the medians, the rows each drop yields and the ratio of the medians.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

SCREENERS = ("map_growth", "iready", "dibels8", "fastbridge")


def district(sources: tuple[str, ...]):
    """Belleville's entry with a section for each of `sources` (i-Ready's files name no district: its folder binds
    them, as a person would sign off for a district whose i-Ready state ids are empty)."""
    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
    from belleville_mtss.lib.sources import BY_NAME

    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    sections = {name: entry.sources.get(name) or BY_NAME[name].section(bound_by_folder=name == "iready")
                for name in sources}
    return entry.model_copy(update={"sources": sections})


def generate(root: Path, students: int, sources: tuple[str, ...]) -> Path:
    from belleville_mtss.lib.sample import SampleSpec, generate_drop, write_tables

    drop = root / "drop"
    tables = generate_drop(drop, SampleSpec(students=students, sources=sources))
    write_tables(root / "tables", tables["classlink_users"])
    return drop


def core_seconds(drop: Path, entry, tables: Path) -> tuple[float, int, int]:
    """One process_drop of the drop: seconds, roster rows, result rows."""
    import polars as pl

    from belleville_mtss.lib.pipeline import files_in, process_drop

    tenant = pl.scan_csv(tables / "ClassLinkUsers.csv", infer_schema=False).filter(
        pl.col("TenantName").is_in(entry.source_names.classlink)
        & (pl.col("Role").str.to_lowercase() == "student")).select("UserId", "TenantName", "Email", "SourcedId").collect()
    account_info = pl.read_csv(tables / "AccountInfo.csv", schema_overrides={"NcesId": pl.Utf8})
    files = files_in(drop, entry)
    t = time.perf_counter()
    core = process_drop(files, entry, tenant, account_info, "belleville/bench")
    seconds = time.perf_counter() - t
    if core.stopped:
        raise SystemExit(f"the core stopped: {core.stopped}")
    return seconds, core.roster.height, core.results.height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, help="where the drops are generated (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mtss-screeners-") as tmp:
        root = args.work or Path(tmp)
        drops = {"star": ("star",), "four screeners": SCREENERS}
        made = {}
        for label, sources in drops.items():
            folder = root / label.replace(" ", "_")
            t = time.perf_counter()
            made[label] = (generate(folder, args.students, sources), district(sources), folder / "tables")
            print(f"generated the {label} drop of {args.students:,} students in {time.perf_counter() - t:.1f} s",
                  flush=True)
        seconds: dict[str, list[float]] = {label: [] for label in drops}
        rows = {}
        for i in range(args.repeat):
            for label, (drop, entry, tables) in made.items():
                s, roster, results = core_seconds(drop, entry, tables)
                seconds[label].append(s)
                rows[label] = (roster, results)
                print(f"round {i + 1}: {label}: core {s:.2f} s ({roster:,} roster rows, {results:,} results)",
                      flush=True)
        median = {label: statistics.median(v) for label, v in seconds.items()}
        for label, m in median.items():
            print(f"{label}: median core {m:.2f} s over {args.repeat} round(s); {rows[label][0]:,} roster rows, "
                  f"{rows[label][1]:,} results")
        print(f"four screeners / star: {median['four screeners'] / median['star']:.2f}x the core's time "
              f"({rows['four screeners'][1] / max(rows['star'][1], 1):.2f}x the results)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
