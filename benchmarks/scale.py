"""Performance at state scale: the floor, our core, the pandas alternative, warehouse loads and a whole
Dagster materialization, on the same generated drops; wall time, peak memory and how time grows with N.

    python benchmarks/scale.py --students 1000000 [--sizes 10000,100000] [--pg-url URL] [--work DIR]

Each measurement runs in its own process, so that its peak RSS is its own. Drops are generated once per size
under --work (default: a temporary folder) with `belleville-mtss generate`'s generator.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGES = ("floor", "core", "pandas", "load_sqlite", "load_postgres", "dagster")


# ---- one measurement, in a child process ----------------------------------------------------------------------

def _district():
    from belleville_mtss.lib.config import PACKAGED_DISTRICTS_DIR
    from belleville_mtss.lib.registry import load_registry
    return load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]


def _tables(work: Path, district):
    """The ClassLink users as the prod db hands them over (the district's tenant's students, filtered in SQL),
    and dm.AccountInfo."""
    import polars as pl
    users = pl.read_csv(work / "tables" / "ClassLinkUsers.csv", infer_schema=False)
    tenant = users.filter(pl.col("TenantName").is_in(district.source_names.classlink)
                          & (pl.col("Role").str.to_lowercase() == "student")).select("UserId", "TenantName", "Email")
    return users, tenant, pl.read_csv(work / "tables" / "AccountInfo.csv", schema_overrides={"NcesId": pl.Utf8})


def _core(work: Path, district, key: str):
    from belleville_mtss.lib.pipeline import files_in, process_drop
    _users, tenant, account_info = _tables(work, district)
    t = time.perf_counter()
    core = process_drop(files_in(work / "drop", district), district, tenant, account_info, key)
    return core, time.perf_counter() - t


def measure(stage: str, work: Path, pg_url: str | None) -> dict:
    import polars as pl

    drop = work / "drop"
    district = _district()
    if stage == "floor":
        from belleville_mtss.lib.star import STAR_COLUMNS
        t = time.perf_counter()
        rows = 0
        for name in ("SR.csv", "SM.csv", "SEL.csv"):
            rows += pl.scan_csv(drop / name, infer_schema=False).select(list(STAR_COLUMNS.values())).collect().height
        rows += pl.scan_csv(drop / "students.csv", infer_schema=False).select(
            [headers[-1] for headers in district.powerschool.columns.values()]).collect().height
        return {"seconds": time.perf_counter() - t, "rows": rows}
    if stage == "pandas":
        import pandas as pd
        sys.path.insert(0, str(REPO / "benchmarks"))
        from pandas_alternative import process_drop as pandas_process
        cl = pd.read_csv(work / "tables" / "ClassLinkUsers.csv", dtype=str, keep_default_na=False)
        ai = pd.read_csv(work / "tables" / "AccountInfo.csv")
        t = time.perf_counter()
        verified, roster, results = pandas_process(drop, district, cl, ai)
        return {"seconds": time.perf_counter() - t, "rows": len(results), "verified": verified}

    if stage == "core":
        core, seconds = _core(work, district, "belleville/bench")
        return {"seconds": seconds, "rows": core.results.height, "verified": core.verified,
                "roster": core.roster.height}
    if stage in ("load_sqlite", "load_postgres"):
        from belleville_mtss.lib.sample import migrate_sample_warehouse
        from belleville_mtss.lib.warehouse import assessment_results, make_engine, replace_results, replace_roster
        if stage == "load_postgres" and not pg_url:
            return {"skipped": "no --pg-url"}
        core, _seconds = _core(work, district, "belleville/bench")
        url = pg_url if stage == "load_postgres" else f"sqlite:///{work / 'bench-warehouse.db'}"
        engine = make_engine(url)
        migrate_sample_warehouse(engine)
        replace_roster(engine, district.account_info_id, core.roster.head(0))  # a first load: start empty
        with engine.begin() as conn:
            conn.execute(assessment_results.delete().where(
                assessment_results.c.AccountInfoId == district.account_info_id))
        t = time.perf_counter()
        n = replace_roster(engine, district.account_info_id, core.roster)
        n += replace_results(engine, district.account_info_id, core.results)
        seconds = time.perf_counter() - t
        engine.dispose()
        return {"seconds": seconds, "rows": n, "rows_per_s": n / seconds}
    if stage == "dagster":
        from belleville_mtss.lib.config import load_settings
        from belleville_mtss.lib.sample import load_databases
        from belleville_mtss.run import run_drop
        home = work / "dagster-home"
        env = {"MTSS_HOME": str(home)}
        if pg_url:
            env |= {"MTSS_WAREHOUSE_URL": pg_url, "MTSS_PROD_DB_URL": pg_url}
        settings = load_settings(env)
        target = settings.drop_dir / "belleville" / "bench"
        target.mkdir(parents=True, exist_ok=True)
        for f in drop.iterdir():
            if not (target / f.name).exists():
                os.link(f, target / f.name)
        load_databases(settings.prod_db_url, settings.warehouse_url, _tables(work, district)[0])
        t = time.perf_counter()
        report = run_drop(settings, "belleville/bench")
        return {"seconds": time.perf_counter() - t, "rows": report.written.get("dm_assessment_results", 0),
                "verified": report.checks_passed}
    raise ValueError(stage)


def child(stage: str, work: Path, pg_url: str | None) -> None:
    try:
        result = measure(stage, work, pg_url)
    except MemoryError:
        result = {"failed": "out of memory"}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


# ---- the driver -------------------------------------------------------------------------------------------------

def run_stage(stage: str, work: Path, pg_url: str | None, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", stage, "--work", str(work)] + (["--pg-url", pg_url] if pg_url else [])
    env = {**os.environ, "PYTHONPATH": str(REPO), "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS", "2")}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"failed": f"over {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"failed": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}


def generate(n: int, root: Path) -> Path:
    work = root / f"n{n}"
    if not (work / "drop" / "drop.done").exists():
        from belleville_mtss.lib.sample import SampleSpec, generate_drop, write_tables
        tables = generate_drop(work / "drop", SampleSpec(students=n))
        write_tables(work / "tables", tables["classlink_users"])
    return work


def _fmt(r: dict, key: str, fmt: str) -> str:
    if "failed" in r:
        return r["failed"][:14]
    if "skipped" in r:
        return "skipped"
    return format(r[key], fmt) if key in r else ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", type=int, default=1_000_000)
    p.add_argument("--sizes", default="10000,100000", help="smaller sizes for the growth figures")
    p.add_argument("--pg-url", default=os.environ.get("MTSS_TEST_PG_URL"))
    p.add_argument("--work", type=Path)
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--child", choices=STAGES)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.work, args.pg_url)
        return 0

    sizes = sorted({int(s) for s in args.sizes.split(",") if s} | {args.students})
    stages = [s for s in args.stages.split(",") if s]
    root = args.work or Path(tempfile.mkdtemp(prefix="mtss-bench-"))
    started = time.perf_counter()
    table: dict[int, dict[str, dict]] = {}
    for n in sizes:
        t = time.perf_counter()
        work = generate(n, root)
        size_mb = sum(f.stat().st_size for f in (work / "drop").iterdir()) / 1e6
        print(f"N={n:,}: drop of {size_mb:,.0f} MB ready in {time.perf_counter() - t:.1f} s", flush=True)
        table[n] = {"_input_mb": {"value": size_mb}}
        for stage in stages if n == args.students else ["floor", "core"]:
            table[n][stage] = r = run_stage(stage, work, args.pg_url, args.timeout)
            print(f"  {stage:<14} {_fmt(r, 'seconds', '8.2f')} s  peak {_fmt(r, 'peak_rss_mb', ',.0f')} MB", flush=True)

    n = args.students
    big = table[n]
    print()
    print(f"Results at N = {n:,} students ({big['_input_mb']['value']:,.0f} MB of CSV), 2 polars threads")
    print(f"{'stage':<16}{'wall s':>10}{'peak RSS MB':>14}{'rows':>12}{'rows/s':>14}")
    for stage in stages:
        r = big.get(stage, {})
        print(f"{stage:<16}{_fmt(r, 'seconds', '10.2f'):>10}{_fmt(r, 'peak_rss_mb', ',.0f'):>14}"
              f"{_fmt(r, 'rows', ',d'):>12}{_fmt(r, 'rows_per_s', ',.0f'):>14}")
    def ratio(a, b):
        ra, rb = big.get(a, {}), big.get(b, {})
        return ra["seconds"] / rb["seconds"] if "seconds" in ra and "seconds" in rb else None
    print()
    checks = []
    core_floor = ratio("core", "floor")
    if core_floor is not None:
        checks.append(("core / floor", core_floor, "<= 2.0", core_floor <= 2.0))
    alt_core = ratio("pandas", "core")
    if alt_core is not None:
        checks.append(("pandas / core", alt_core, ">= 10", alt_core >= 10))
    if "peak_rss_mb" in big.get("core", {}):
        mem = big["core"]["peak_rss_mb"] / big["_input_mb"]["value"]
        checks.append(("core peak RSS / input size", mem, "<= 1.0", mem <= 1.0))
    pg = big.get("load_postgres", {})
    if "rows_per_s" in pg:
        checks.append(("PostgreSQL load rows/s", pg["rows_per_s"], ">= 200,000", pg["rows_per_s"] >= 200_000))
    for a, b in zip(sizes, sizes[1:]):
        for stage in ("floor", "core"):
            ra, rb = table[a].get(stage, {}), table[b].get(stage, {})
            if "seconds" in ra and "seconds" in rb:
                growth = rb["seconds"] / ra["seconds"]
                scale = b / a
                checks.append((f"{stage} time N={a:,} -> {b:,} ({scale:.0f}x N)", growth,
                               f"<= {scale * 1.1:.0f}x", growth <= scale * 1.1))
    print(f"{'ratio':<44}{'value':>12}  {'target':<12} met")
    for name, value, target, ok in checks:
        print(f"{name:<44}{value:>12,.2f}  {target:<12} {'yes' if ok else 'NO'}")
    print(f"\nbenchmark wall time {time.perf_counter() - started:.0f} s; work folder {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
