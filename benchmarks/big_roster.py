"""A 10-million-row students.csv (a hostile or mistaken export, about 220 MB) through `belleville-mtss run`:
wall time and peak RSS of the run's process, against the bound in issue 11 (under 3 GB).

    python benchmarks/big_roster.py [--rows 10000000] [--work DIR]

The drop is the demo's sample with students.csv replaced by `--rows` generated students; the run goes through
Dagster exactly as users run it (the CLI, in a child process whose peak RSS is read with getrusage).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BOUND_BYTES = 3 * 1024 ** 3


def write_students(path: Path, rows: int) -> None:
    import polars as pl
    n = pl.col("n")
    pl.DataFrame({"n": pl.int_range(0, rows, eager=True)}).select(  # 23 bytes a row: 230 MB at 10 million
        (n + 1_000_000).cast(pl.Utf8).alias("STUDENTS.STUDENT_NUMBER"),
        (pl.lit("s") + n.cast(pl.Utf8) + pl.lit("@x.org")).alias("STUDENTS.EMAIL"),
    ).write_csv(path)


def registry_for_the_file(out: Path) -> Path:
    """The packaged Belleville entry, mapping only the two columns the file has."""
    import yaml
    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
    entry = yaml.safe_load((PACKAGED_DISTRICTS_DIR / "belleville.yaml").read_text())
    entry["powerschool"]["columns"] = {"student_number": "STUDENTS.STUDENT_NUMBER", "email": "STUDENTS.EMAIL"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "belleville.yaml").write_text(yaml.safe_dump(entry))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="mtss-big-roster-"))
    home = work / "home"
    env = {**os.environ, "MTSS_HOME": str(home)}
    env = {k: v for k, v in env.items() if not (k.startswith("MTSS_") and k != "MTSS_HOME")}

    cli = str(Path(sys.executable).parent / "belleville-mtss")
    # the demo lays out the databases and the sample drop; its students file is then replaced
    subprocess.run([cli, "demo", "--students", "600"], env=env, check=True, stdout=subprocess.DEVNULL)
    drop = home / "drops" / "belleville" / "big"
    drop.mkdir(parents=True, exist_ok=True)
    sample = home / "drops" / "belleville" / "2026-11-01"
    for name in ("SR.csv", "SM.csv", "SEL.csv"):
        (drop / name).write_bytes((sample / name).read_bytes())
    write_students(drop / "students.csv", args.rows)
    (drop / "drop.done").write_text("")
    size = (drop / "students.csv").stat().st_size
    started = time.perf_counter()
    env["MTSS_DISTRICTS_DIR"] = str(registry_for_the_file(work / "districts"))
    done = subprocess.run([cli, "run", "belleville/big"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # the largest child: the run
    print(f"students.csv: {args.rows:,} rows, {size / 1e6:,.0f} MB")
    print(f"belleville-mtss run: exit {done.returncode}, {wall:.1f} s, peak RSS {peak / 1e9:.2f} GB")
    print(f"verdict: {done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]}")
    met = peak < BOUND_BYTES
    print(f"peak RSS < 3 GB: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
