"""Performance at state scale, against issue 14's targets: the floor, our core, the pandas alternative, the
warehouse loads and a whole Dagster materialization (without, then with, the loads) on the same generated drops,
and a small drop run as users run it; wall time, peak memory and how time grows with N.

    python benchmarks/scale.py --students 1000000 [--sizes 10000,100000] [--pg-url URL] [--work DIR]
                               [--results DIR] [--small-repeat 5] [--small-here]

Each measurement runs in its own process, so that its peak RSS is its own; what a stage needs before its clock
starts (a Dagster home with the drop and its databases) is prepared in another process. Every stage runs at every
size. Drops are generated once per size under --work (default: a temporary folder) with `belleville-mtss
generate`'s generator. The figures are written to RESULTS/<UTC date and time>-n<N>.json with a PNG beside it
(benchmarks/plot.py redraws it from one or several of those files).
"""
from __future__ import annotations

import argparse
import importlib.util
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results"
sys.path.insert(0, str(BENCHMARKS))  # the sibling scripts (pandas_alternative, small_drop, plot) are modules here
STAGES = ("floor", "core", "pandas", "duckdb", "load_sqlite", "load_postgres", "dagster_no_loads", "dagster_sqlite",
          "dagster_postgres")
NEEDS_PG = ("load_postgres", "dagster_postgres")
DAGSTER_WITH_LOADS = {"dagster_sqlite": "SQLite", "dagster_postgres": "PostgreSQL"}
DROP_KEY = "belleville/bench"


# ---- one measurement, in a child process ----------------------------------------------------------------------

def _district():
    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
    from belleville_mtss.lib.district.registry import load_registry
    return load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]


def _tenant(work: Path, district):
    """The ClassLink users as the prod db hands them over: the district's tenant's students, filtered before they
    are read (as SQL filters them), and dm.AccountInfo."""
    import polars as pl
    tenant = pl.scan_csv(work / "tables" / "ClassLinkUsers.csv", infer_schema=False).filter(
        pl.col("TenantName").is_in(district.source_names.classlink)
        & (pl.col("Role").str.to_lowercase() == "student")).select("UserId", "TenantName", "Email", "SourcedId").collect()
    return tenant, pl.read_csv(work / "tables" / "AccountInfo.csv", schema_overrides={"NcesId": pl.Utf8})


def _cpu_seconds() -> list[float]:
    """The first line of /proc/stat, all CPUs since boot, in seconds: user, nice, system, idle, iowait, irq,
    softirq, steal, ... (Linux; raises OSError elsewhere)."""
    return [int(x) / os.sysconf("SC_CLK_TCK") for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def _proc_figures() -> tuple[float, int] | None:
    """This machine's busy CPU-seconds since boot (every process: user, nice, system, irq, softirq; not idle,
    iowait or steal) and the bytes this process has had fetched from storage (not the page cache); None where
    the system does not say (Linux only)."""
    try:
        cpu = _cpu_seconds()
        io = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
        return sum(cpu[i] for i in (0, 1, 2, 5, 6)), int(io["read_bytes"])
    except (OSError, IndexError, KeyError, ValueError):
        return None


class Clock:
    """Wall seconds, and CPU seconds of every thread of this process, since it was made: a stage's CPU time
    divided by the cores is the least wall time any scheduling of its work could take here; `system_s`, the part of
    it spent in the kernel (mostly handing out fresh zeroed pages: docs/performance.md). Where Linux says, also the
    machine's busy CPU-seconds over the same span (a database server's work included) and the MB this process read
    from storage (a stage that did was partly timing the disk)."""

    def __init__(self) -> None:
        self._wall, self._cpu, self._proc = time.perf_counter(), time.process_time(), _proc_figures()
        self._system = resource.getrusage(resource.RUSAGE_SELF).ru_stime

    def read(self) -> dict[str, float]:
        took = {"seconds": time.perf_counter() - self._wall, "cpu_s": time.process_time() - self._cpu,
                "system_s": resource.getrusage(resource.RUSAGE_SELF).ru_stime - self._system}
        now = _proc_figures()
        if self._proc is not None and now is not None:
            took |= {"machine_busy_s": now[0] - self._proc[0], "disk_read_mb": (now[1] - self._proc[1]) / 1e6}
        return took


def _core(work: Path, district):
    """The core's result and its wall and CPU seconds (reading the two tables is not timed: they come from
    databases)."""
    from belleville_mtss.lib.pipeline import files_in, process_drop
    tenant, account_info = _tenant(work, district)
    clock = Clock()
    core = process_drop(files_in(work / "drop", district), district, tenant, account_info, DROP_KEY)
    return core, clock.read()


def _floor(_stage: str, work: Path, district, _pg_url) -> dict:
    """Polars reading only the columns the core uses, and nothing else."""
    import polars as pl
    from belleville_mtss.lib.sources.powerschool.reader import match_headers
    from belleville_mtss.lib.sources.star.reader import star_columns
    drop = work / "drop"
    clock = Clock()
    rows = 0
    for name in ("SR.csv", "SM.csv", "SEL.csv"):
        rows += pl.scan_csv(drop / name, infer_schema=False).select(
            list(star_columns(district.sources["star"].link).values())).collect().height
    students = pl.scan_csv(drop / "students.csv", infer_schema=False)
    headers = [h for h in match_headers(students.collect_schema().names(), district.powerschool).values() if h]
    rows += students.select(headers).collect().height
    return {**clock.read(), "rows": rows}


def _core_stage(_stage: str, work: Path, district, _pg_url) -> dict:
    core, took = _core(work, district)
    if core.stopped:
        return {"failed": f"core stopped: {core.stopped}"}
    return {**took, "rows": core.results.height, "roster": core.roster.height,
            "by_stage": dict(core.seconds), "by_file": _file_seconds(core)}


def _file_seconds(core) -> dict[str, dict[str, float]]:
    """Each file's parse and typing seconds (read_files reads them at the same time: they overlap)."""
    return {v.file_name: v.seconds for v in core.validated.values() if v.file_name and v.seconds}


def _pandas(_stage: str, work: Path, district, _pg_url) -> dict:
    import pandas as pd
    from pandas_alternative import process_drop as pandas_process
    users = pd.read_csv(work / "tables" / "ClassLinkUsers.csv", dtype=str, keep_default_na=False)
    account_info = pd.read_csv(work / "tables" / "AccountInfo.csv")
    t = time.perf_counter()
    verified, _roster, results = pandas_process(work / "drop", district, users, account_info)
    return {"seconds": time.perf_counter() - t, "rows": len(results), "verified": verified}


def _duckdb(_stage: str, work: Path, district, _pg_url) -> dict:
    if importlib.util.find_spec("duckdb") is None:  # a bench extra
        return {"skipped": "duckdb is not installed: pip install -e '.[bench]'"}
    from duckdb_alternative import connect, process_drop as duckdb_process
    _tenant_frame, account_info = _tenant(work, district)
    con = connect(work / "tables" / "ClassLinkUsers.csv", district)  # the users, as the core is handed them
    t = time.perf_counter()
    verified, _roster, results = duckdb_process(con, work / "drop", district, account_info)
    return {"seconds": time.perf_counter() - t, "rows": len(results), "verified": verified}


def _start_empty(engine, account_info_id: int) -> None:
    """The district's rows removed from our two tables and, on PostgreSQL, vacuumed away: every load measured is a
    first load, which finds none of the district's rows, live or dead (into the dead rows of the run before, every
    new key is checked against their index entries: 56 s at 1,000,000 students against 46-51 s after VACUUM,
    docs/performance.md)."""
    from belleville_mtss.lib.load.warehouse import assessment_results, student_roster
    from load_path import vacuum
    with engine.begin() as conn:
        for table in (student_roster, assessment_results):
            conn.execute(table.delete().where(table.c.AccountInfoId == account_info_id))
    if engine.dialect.name == "postgresql":
        vacuum(engine)


def _load(stage: str, work: Path, district, pg_url: str | None) -> dict:
    """The warehouse load alone, of frames the core made (the peak RSS includes that core), as warehouse_load
    makes it: the roster and results staged, then applied in one transaction; where its time goes."""
    from belleville_mtss.lib.sample import migrate_sample_warehouse
    from belleville_mtss.lib.load.warehouse import make_engine
    from load_path import apply_bounds, staged
    core, _took = _core(work, district)
    if core.stopped:
        return {"failed": f"core stopped: {core.stopped}"}
    engine = make_engine(pg_url if stage == "load_postgres" else f"sqlite:///{work / 'bench-warehouse.db'}")
    migrate_sample_warehouse(engine)
    _start_empty(engine, district.account_info_id)
    took = staged(engine, core.roster, core.results, district.account_info_id)
    if stage == "load_postgres":  # what bounds its apply, measured after it (not part of its time)
        took["apply_bounds"] = apply_bounds(engine, core.results)
    engine.dispose()
    n = core.roster.height + core.results.height
    return {**took, "rows": n, "results_rows": core.results.height, "rows_per_s": n / took["seconds"]}


def _dagster_settings(stage: str, work: Path, pg_url: str | None):
    from belleville_mtss.lib.config import load_settings
    env = {"MTSS_HOME": str(work / f"home-{stage}")}
    if stage == "dagster_postgres":
        env |= {"MTSS_WAREHOUSE_URL": pg_url, "MTSS_PROD_DB_URL": pg_url}
    return load_settings(env)


def prepare_dagster(stage: str, work: Path, pg_url: str | None) -> dict:
    """A fresh MTSS_HOME with the drop in its drop folder and the databases filled, so that the run measured is
    the first receipt and the first load of the drop."""
    import polars as pl
    from belleville_mtss.lib.sample import load_databases
    from belleville_mtss.lib.load.warehouse import make_engine
    settings = _dagster_settings(stage, work, pg_url)
    shutil.rmtree(settings.home, ignore_errors=True)
    target = settings.drop_dir / DROP_KEY
    target.mkdir(parents=True)
    for f in (work / "drop").iterdir():
        os.link(f, target / f.name)  # the same bytes, without a copy
    load_databases(settings.prod_db_url, settings.warehouse_url,
                   pl.read_csv(work / "tables" / "ClassLinkUsers.csv", infer_schema=False))
    # a PostgreSQL warehouse keeps the previous size's roster, which the roster_size gate would compare with
    engine = make_engine(settings.warehouse_url)
    _start_empty(engine, _district().account_info_id)
    engine.dispose()
    return {"prepared": str(settings.home)}


def _dagster(stage: str, work: Path, _entry, pg_url: str | None) -> dict:
    """`run_drop`, the materialization `belleville-mtss run` does, timed whole (definitions built, instance,
    staging, hashing, encryption, frames kept at rest); without the two warehouse loads for dagster_no_loads."""
    from belleville_mtss.report import WAREHOUSE
    from belleville_mtss.run import run_drop
    settings = _dagster_settings(stage, work, pg_url)
    # Without what writes to the warehouse: the two loads, and link_review (it writes dm.LinkSuggestions, and the
    # core does not suggest links: comparing like with like). The runs with the loads include it; its seconds are
    # in their "by step" line.
    leave_out = (*WAREHOUSE, "link_review") if stage == "dagster_no_loads" else ()
    waited = _time_the_wait_for_writes_at_rest()
    clock = Clock()  # the run is executed in this process (execute_in_process): its CPU is this process's
    report = run_drop(settings, DROP_KEY, log_level="CRITICAL", leave_out=leave_out)  # the CLI's default
    took = clock.read()
    if report.failures or not report.checks_passed:
        return {"failed": report.verdict()}
    return {**took, "rows": sum(report.written.values()) if report.written else None,
            "steps": step_seconds(settings), "writes_wait_s": sum(waited)}


def _time_the_wait_for_writes_at_rest() -> list[float]:
    """The seconds the run's end waits for the IO manager's writes at rest (its teardown, after the last step:
    part of the time outside the steps), appended to the list returned; this stage's process only."""
    from belleville_mtss.defs.io import EncryptedFrameIOManager
    waited, teardown = [], EncryptedFrameIOManager.teardown_after_execution

    def timed(self, context):
        t = time.perf_counter()
        try:
            return teardown(self, context)
        finally:
            waited.append(time.perf_counter() - t)
    EncryptedFrameIOManager.teardown_after_execution = timed
    return waited


def step_seconds(settings) -> dict[str, float]:
    """Each step's wall seconds in the run just made (Dagster's own step stats), slowest first: what bounds the
    run, measured."""
    from belleville_mtss.run import instance_for
    instance = instance_for(settings)
    (run,) = instance.get_runs(limit=1)
    took = {s.step_key: round(s.end_time - s.start_time, 3) for s in instance.get_run_step_stats(run.run_id)
            if s.start_time is not None and s.end_time is not None}
    return dict(sorted(took.items(), key=lambda kv: -kv[1]))


CORES = os.cpu_count() or 1
HASH_PASSES = 1  # a run's SHA-256 passes over a local drop whose files have settled: the receipt's stream (its
# rewrite check is the files' stamps; an SFTP drop is read a second time, 2 passes), and read_drop's check of a
# staged copy is its decryption: the receipt sealed the SHA-256 into it


def _byte_passes(_stage: str, work: Path, district, _pg_url) -> dict:
    """What a Dagster run does to the drop and the core does not, each once over the whole drop on one core: a
    SHA-256 pass (a run makes HASH_PASSES: the receipt hashes the stream), the encryption into staging,
    read_drop's decryption (which checks the copy), and the IO manager's writes at rest (lib/persist.py `save`)
    of what the run keeps: each file as validated, the identity map, the roster and the results (a file as read
    is a record, its rows the staged copy's: defs/read.py)."""
    from belleville_mtss.lib.persist import save
    from belleville_mtss.lib.receive.drops import sha256_of
    from belleville_mtss.lib.receive.vault import decrypt_bytes, encrypt_file, new_key, parse_key
    drop = work / "drop"
    key, files = parse_key(new_key()), sorted(f for f in drop.iterdir() if f.suffix == ".csv")
    staged = Path(tempfile.mkdtemp(prefix="byte-passes-", dir=work))
    try:
        t = time.perf_counter()
        for f in files:
            sha256_of(f)
        hashed, t = time.perf_counter() - t, time.perf_counter()
        for f in files:
            encrypt_file(key, f, staged / f.name)
        encrypted, t = time.perf_counter() - t, time.perf_counter()
        for f in files:
            decrypt_bytes(key, staged / f.name)
        decrypted = time.perf_counter() - t
        core, _took = _core(work, district)
        kept = [v for v in core.validated.values() if v.frame is not None]
        kept += [core.identity, core.roster, core.results]
        t = time.perf_counter()
        for i, obj in enumerate(kept):
            save(key, obj, staged / f"kept-{i}")
        written = time.perf_counter() - t
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return {"sha256_pass": hashed, "encrypt": encrypted, "decrypt": decrypted, "writes_at_rest": written,
            "seconds": HASH_PASSES * hashed + encrypted + decrypted + written,
            "mb": sum(f.stat().st_size for f in files) / 1e6}


MEASURES = {"floor": _floor, "core": _core_stage, "pandas": _pandas, "duckdb": _duckdb, "load_sqlite": _load, "load_postgres": _load,
            "dagster_no_loads": _dagster, "dagster_sqlite": _dagster, "dagster_postgres": _dagster,
            "byte_passes": _byte_passes}


def peak_rss_mb() -> float:
    """This process's peak RSS in MB (10^6 bytes, as the input's size is counted). On Linux, VmHWM: getrusage's
    ru_maxrss of a child also counts its parent's peak from before the exec (the driver holds a generated drop)."""
    status = Path("/proc/self/status")
    if status.exists():
        hwm = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(hwm.split()[1]) * 1024 / 1e6  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024) / 1e6  # bytes on macOS, KiB elsewhere


def child(stage: str, work: Path, pg_url: str | None, prepare: bool) -> None:
    if stage.startswith("dagster") and not prepare:  # a run's code imported as `belleville-mtss run` imports it
        from belleville_mtss.start import imported
        imported("run")
    try:
        result = prepare_dagster(stage, work, pg_url) if prepare else MEASURES[stage](stage, work, _district(), pg_url)
    except MemoryError:
        result = {"failed": "out of memory"}
    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


# ---- the driver -------------------------------------------------------------------------------------------------

def cpu_stolen_s() -> float | None:
    """The CPU seconds the hypervisor has given elsewhere while this machine's CPUs wanted them (`steal` in
    /proc/stat, all CPUs) since boot; None where the system does not say."""
    try:
        return _cpu_seconds()[7]
    except (OSError, IndexError, ValueError):
        return None


def _in_child(stage: str, work: Path, pg_url: str | None, timeout: float, prepare: bool = False) -> dict:
    """The stage's result, with `stolen_s`: the CPU the host took from this machine while it ran (on a shared
    host, a stage's figure is only as good as that is small)."""
    cmd = [sys.executable, __file__, "--child", stage, "--work", str(work)] + (["--pg-url", pg_url] if pg_url else [])
    env = {**os.environ, "PYTHONPATH": str(REPO), "POLARS_MAX_THREADS": polars_threads()}
    stolen = cpu_stolen_s()
    try:
        done = subprocess.run(cmd + (["--prepare"] if prepare else []), capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"failed": f"over {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            after = cpu_stolen_s()
            return {**json.loads(line[7:]), **({} if stolen is None else {"stolen_s": round(after - stolen, 2)})}
    return {"failed": f"exit {done.returncode}: {(done.stderr.strip().splitlines() or [''])[-1][:200]}"}


def warm(work: Path) -> None:
    """Every file of the drop read once, just before a stage, so that each stage parses it from memory: this
    machine's memory manager drops file pages left unread for a while, and a floor that read them back from disk
    took 6.68 s against 1.65-1.89 s from memory (its ratio then judged the disk, not the core). What a stage still
    read from storage is in its `disk_read_mb`."""
    buffer = bytearray(8 << 20)
    for f in sorted((work / "drop").iterdir()):
        with f.open("rb", buffering=0) as fh:
            while fh.readinto(buffer):
                pass


def run_stage(stage: str, work: Path, pg_url: str | None, timeout: float) -> dict:
    if stage in NEEDS_PG and not pg_url:
        return {"skipped": "no --pg-url"}
    if stage.startswith("dagster"):
        prepared = _in_child(stage, work, pg_url, timeout, prepare=True)
        if "failed" in prepared:
            return {"failed": f"preparing: {prepared['failed']}"}
        warm(work)
        result = _in_child(stage, work, pg_url, timeout)
        shutil.rmtree(prepared["prepared"], ignore_errors=True)  # staging holds a copy of the drop: free the disk
        return result
    warm(work)
    return _in_child(stage, work, pg_url, timeout)


def polars_threads() -> str:
    return os.environ.get("POLARS_MAX_THREADS", "2")


def generate(n: int, root: Path) -> Path:
    work = root / f"n{n}"
    if not (work / "drop" / "drop.done").exists():
        from belleville_mtss.lib.sample import SampleSpec, generate_drop, write_tables
        tables = generate_drop(work / "drop", SampleSpec(students=n))
        write_tables(work / "tables", tables["classlink_users"])
    return work


def machine() -> dict:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    return {"cores": os.cpu_count(), "usable_cores": usable, "memory_gb": memory and round(memory / 1e9, 1),
            "platform": platform.platform(), "python": platform.python_version(), "polars": version("polars"),
            "polars_threads": int(polars_threads()), "dagster": version("dagster"), "pandas": version("pandas")}


# ---- the targets ------------------------------------------------------------------------------------------------

@dataclass
class Target:
    name: str
    figure: float | None
    bound: str  # how the figure is judged, e.g. "<= 2.0"; empty for a figure printed beside a target
    verdict: str  # met, NOT met, not measured (the stage was not run), beside (not judged)


def _judge(name: str, figure: float | None, op: str, bound: float, why_none: str) -> Target:
    if figure is None:
        return Target(name, None, f"{op} {bound:,g}", why_none)
    met = figure <= bound if op == "<=" else figure >= bound
    return Target(name, figure, f"{op} {bound:,g}", "met" if met else "NOT met")


def _beside(name: str, figure: float | None) -> Target:
    return Target(name, figure, "", "beside (not judged)")


def _ratio(a: dict, b: dict) -> float | None:
    return a["seconds"] / b["seconds"] if "seconds" in a and "seconds" in b else None


def _per_input(r: dict, input_mb: float) -> float | None:
    return r["peak_rss_mb"] / input_mb if "seconds" in r else None  # a failed stage's peak is no figure


def _why_none(*results: dict) -> str:
    """Why a target has no figure: a stage that failed does not meet it; one that was not run is not measured."""
    return "NOT met (a stage failed)" if any("failed" in r for r in results) else "not measured"


# the two time targets: a stage's time at most this many times another's (judged in `targets`, bounded in `print_cpu`)
TIME_BOUNDS = {("core", "floor"): 2.0, ("dagster_no_loads", "core"): 1.5}
WHOLE_JOB_BOUND = 3.0  # issue 38's: dagster_postgres at most this many times the core (printed beside, not judged)


def targets(by_n: dict[int, dict], n: int, small: dict | None) -> list[Target]:
    """Issue 14's targets at N = n (growth between each size and the next), with the Dagster run that includes the
    warehouse loads printed beside each Dagster target."""
    s = by_n[n]["stages"]
    input_mb = by_n[n]["input_mb"]
    empty: dict = {}
    core, floor, dag = s.get("core", empty), s.get("floor", empty), s.get("dagster_no_loads", empty)
    loaded = {db: s[stage] for stage, db in DAGSTER_WITH_LOADS.items() if "seconds" in s.get(stage, empty)}
    out = [_judge("core time / floor time", _ratio(core, floor), "<=", TIME_BOUNDS["core", "floor"],
                  _why_none(core, floor)),
           _judge("Dagster without the loads time / core time", _ratio(dag, core), "<=",
                  TIME_BOUNDS["dagster_no_loads", "core"], _why_none(dag, core))]
    out += [_beside(f"  beside: Dagster + {db} loads / core", _ratio(r, core)) for db, r in loaded.items()]
    out.append(_judge("core peak RSS / input size on disk", _per_input(core, input_mb), "<=", 1.0,
                      _why_none(core)))
    out.append(_judge("Dagster without the loads peak RSS / input size", _per_input(dag, input_mb), "<=",
                      1.5, _why_none(dag)))
    out += [_beside(f"  beside: Dagster + {db} loads peak RSS / input", _per_input(r, input_mb))
            for db, r in loaded.items()]
    sizes = sorted(by_n)
    for a, b in zip(sizes, sizes[1:]):
        grows = f"N={a:,} -> {b:,}"
        bound = b / a * 1.1  # 10x the students: at most 11x the time
        for stage, label in (("core", "core"), ("dagster_no_loads", "Dagster without the loads")):
            ra, rb = by_n[a]["stages"].get(stage, empty), by_n[b]["stages"].get(stage, empty)
            out.append(_judge(f"{label} time growth {grows}", _ratio(rb, ra), "<=", round(bound, 2),
                              _why_none(ra, rb)))
        for stage, db in DAGSTER_WITH_LOADS.items():
            ra, rb = by_n[a]["stages"].get(stage, empty), by_n[b]["stages"].get(stage, empty)
            if "seconds" in ra and "seconds" in rb:
                out.append(_beside(f"  beside: Dagster + {db} loads time growth {grows}", _ratio(rb, ra)))
    pandas = s.get("pandas", empty)
    out.append(_judge("pandas + pandera time / core time", _ratio(pandas, core), ">=", 8.0, _why_none(pandas, core)))
    duck = s.get("duckdb", empty)  # the core ahead of the same job in DuckDB SQL
    out.append(_judge("DuckDB SQL time / core time", _ratio(duck, core), ">=", 1.0, _why_none(duck, core)))
    small = small or {}
    out.append(_judge("small drop: `belleville-mtss run` median wall s", small.get("seconds"), "<=", 2.5,
                      _why_none(small)))
    pg = s.get("load_postgres", empty)
    if "rows_per_s" in pg:  # kept from the first benchmark: the bulk load's own speed
        out.append(_judge("PostgreSQL load rows/s", pg["rows_per_s"], ">=", 200_000, "not measured"))
    return out


# ---- the report -------------------------------------------------------------------------------------------------

def _fmt(r: dict, key: str, fmt: str) -> str:
    if "failed" in r:
        return r["failed"][:14]
    if "skipped" in r:
        return "skipped"
    return format(r[key], fmt) if r.get(key) is not None else ""


def print_stages(by_n: dict[int, dict], n: int, stages: list[str]) -> None:
    at_n = by_n[n]
    print(f"Results at N = {n:,} students ({at_n['input_mb']:,.0f} MB of CSV), {polars_threads()} polars threads")
    print(f"{'stage':<18}{'wall s':>10}{'peak RSS MB':>14}{'rows':>12}{'rows/s':>14}")
    for stage in stages:
        r = at_n["stages"].get(stage, {})
        print(f"{stage:<18}{_fmt(r, 'seconds', '10.2f'):>10}{_fmt(r, 'peak_rss_mb', ',.0f'):>14}"
              f"{_fmt(r, 'rows', ',d'):>12}{_fmt(r, 'rows_per_s', ',.0f'):>14}")
    for r in at_n["stages"].values():
        if "failed" in r:
            print(f"  failed: {r['failed']}")
    stolen = {stage: r["stolen_s"] for stage, r in at_n["stages"].items() if "stolen_s" in r}
    if stolen:  # a figure measured while the host took CPU away is slower than the code
        print("CPU the host took during each stage (steal): "
              + ", ".join(f"{stage} {s:.2f} s" for stage, s in stolen.items()))
    disk = {stage: r["disk_read_mb"] for stage, r in at_n["stages"].items() if "disk_read_mb" in r}
    if disk:  # the drop is read into memory before each stage: a stage that still read from storage timed the disk
        print("read from storage during each stage, the drop read into memory just before it: "
              + ", ".join(f"{stage} {mb:,.0f} MB" for stage, mb in disk.items()))
    for stage in ("dagster_no_loads", *DAGSTER_WITH_LOADS):  # where each Dagster run's time goes, measured
        r = at_n["stages"].get(stage, {})
        if r.get("steps"):
            steps = r["steps"]
            print(f"by step, {stage}: {r['seconds'] - sum(steps.values()):.2f} s outside the steps (of which the "
                  f"run's end waiting for its writes at rest {r.get('writes_wait_s', 0):.2f} s); "
                  + ", ".join(f"{k} {v:.2f}" for k, v in list(steps.items())[:8]))
    print_cpu(at_n["stages"])
    print_core(at_n["stages"])
    for stage in ("load_sqlite", "load_postgres"):  # where a load's time goes: the copy, the apply, the clean-up
        r = at_n["stages"].get(stage, {})
        if "transaction_s" in r:
            print(f"by part, {stage}: bulk copy into staging {r['stage_s']:.2f} s "
                  f"({r['rows'] / r['stage_s']:,.0f} rows/s), the apply transaction {r['transaction_s']:.2f} s "
                  f"({r['rows'] / r['transaction_s']:,.0f} rows/s: the roster {r['apply_roster_s']:.2f} s, the "
                  f"results and the commit {r['apply_results_s']:.2f} s), staged rows deleted {r['unstage_s']:.2f} s")
        if "apply_bounds" in r:
            from load_path import describe_bounds
            print(f"what bounds the apply, {stage}: {describe_bounds(r['apply_bounds'], r['results_rows'])}")
    b = at_n.get("byte_passes", {})
    if "seconds" in b:
        print(f"what a Dagster run does to the drop's {b['mb']:,.0f} MB and the core does not, one core: "
              f"a SHA-256 pass {b['sha256_pass']:.2f} s ({HASH_PASSES} a run), encryption into staging "
              f"{b['encrypt']:.2f} s, decryption {b['decrypt']:.2f} s, the writes at rest {b['writes_at_rest']:.2f} s: "
              f"{b['seconds']:.2f} s, {b['seconds'] / CORES:.2f} s on {CORES} cores at best")
    elif "failed" in b:
        print(f"  byte passes failed: {b['failed']}")


def print_cpu(stages: dict) -> None:
    """The CPU time of the stages the time targets compare, and the least wall time it allows on this machine's
    cores: a ratio still above its bound at that least time is bound by the work done, not by how it is spread."""
    busy = {k: r for k, r in stages.items() if "cpu_s" in r and r.get("seconds")}
    if not busy:
        return
    print("CPU time, every thread of the stage's process: " + ", ".join(
        f"{k} {r['cpu_s']:.2f} s ({r['cpu_s'] / r['seconds']:.2f} cores busy on average"
        + (f", the kernel's {r['system_s']:.2f} s of it)" if "system_s" in r else ")") for k, r in busy.items()))
    for (stage, against), bound in TIME_BOUNDS.items():
        if stage in busy and against in busy:
            least, wall = busy[stage]["cpu_s"] / CORES, busy[against]["seconds"]
            print(f"  {stage}'s work on {CORES} cores takes at least {least:.2f} s: {least / wall:.2f}x the "
                  f"{against}'s wall time (bound {bound:g})")
    whole, core = stages.get("dagster_postgres", {}), busy.get("core")
    if "machine_busy_s" in whole and core:  # the server's work is not the run's process's: the machine's CPU is
        least = whole["machine_busy_s"] / CORES
        print(f"  dagster_postgres, the whole job into PostgreSQL: this machine's busy CPU while it ran "
              f"{whole['machine_busy_s']:.2f} s (its own process {whole['cpu_s']:.2f} s, the rest other processes', "
              f"the database server's among them); on {CORES} cores at least {least:.2f} s: "
              f"{least / core['seconds']:.2f}x the core's wall time (issue 38's bound {WHOLE_JOB_BOUND:g})")


def print_core(stages: dict) -> None:
    """Where the core's time goes against the floor's: its stages, and each file's parsing (what the floor does)
    and typing (what it does not)."""
    core, floor = stages.get("core", {}), stages.get("floor", {})
    if not core.get("by_stage"):
        return
    print("by stage, core: " + ", ".join(f"{k} {v:.2f}" for k, v in core["by_stage"].items()))
    files = core["by_file"]
    parse, typed = (sum(f[part] for f in files.values()) for part in ("parse", "type"))
    print(f"  its {len(files)} files, read {min(len(files), CORES)} at a time: parsing {parse:.2f} s, "
          f"typing and validating {typed:.2f} s"
          + (f" (the floor parses the same columns, one file after another, in {floor['seconds']:.2f} s)"
             if "seconds" in floor else "") + "; "
          + ", ".join(f"{name} {f['parse']:.2f} + {f['type']:.2f}" for name, f in files.items()))


TURN_2 = RESULTS / "20261129T002758Z-n1000000.json"  # issue 14's last full run, which issue 23 compares against


def print_targets(found: list[Target], before: Path | None = TURN_2) -> None:
    """Each target's figure, and beside it the same target's figure in an earlier result file."""
    earlier = {}
    if before and before.is_file():
        earlier = {t["name"]: t["figure"] for t in json.loads(before.read_text())["targets"]}
    label = f"before ({before.name[:16]})" if earlier else ""
    print(f"{'target':<70}{'figure':>12}{label:>24}  {'bound':<12} verdict")
    for t in found:
        figure = "" if t.figure is None else f"{t.figure:,.2f}"
        was = earlier.get(t.name)
        was = "" if was is None else f"{was:,.2f}"
        print(f"{t.name:<70}{figure:>12}{was:>24}  {t.bound:<12} {t.verdict}")


def write_results(folder: Path, started: dt.datetime, args: argparse.Namespace, by_n: dict[int, dict],
                  small: dict | None, found: list[Target], wall: float) -> Path:
    """One file per run: <UTC date and time>-n<N>.json."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{started:%Y%m%dT%H%M%SZ}-n{args.students}.json"
    path.write_text(json.dumps({
        "started_utc": started.isoformat(timespec="seconds"), "students": args.students, "sizes": sorted(by_n),
        "pg_url_given": bool(args.pg_url), "machine": machine(), "wall_seconds": round(wall, 1),
        "by_n": {str(size): at_n for size, at_n in sorted(by_n.items())},
        "small_drop": small, "targets": [asdict(t) for t in found],
    }, indent=2) + "\n")
    return path


def _small_drop(repeat: int, root: Path, here: bool) -> dict | None:
    if repeat < 1:
        return None
    import small_drop
    try:
        return small_drop.measure(repeat=repeat, work=root, here=here)
    except subprocess.CalledProcessError as exc:  # installing the command or laying the drop out failed
        return {"failed": f"{' '.join(map(str, exc.cmd[1:3]))} exit {exc.returncode}"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", type=int, default=1_000_000)
    p.add_argument("--sizes", default="10000,100000", help="smaller sizes for the growth figures")
    # a scratch database: its ClassLink, AccountInfo and our tables are replaced (never MTSS_TEST_PG_URL's own)
    p.add_argument("--pg-url")
    p.add_argument("--work", type=Path)
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--sizes-stages", help="the stages run at the smaller sizes (default: every stage); the growth "
                                          "targets need only core and dagster_no_loads")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed to one stage")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of the result files (JSON and PNG)")
    p.add_argument("--small-repeat", type=int, default=5, help="runs of the small drop (0: not measured)")
    p.add_argument("--small-here", action="store_true",
                   help="the small drop with this environment's command, not one installed anew (small_drop.py)")
    p.add_argument("--before", type=Path, default=TURN_2, help="an earlier result file whose figures are printed beside")
    p.add_argument("--child", choices=list(MEASURES))
    p.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.work, args.pg_url, args.prepare)
        return 0

    sizes = sorted({int(s) for s in args.sizes.split(",") if s} | {args.students})
    stages = [s for s in args.stages.split(",") if s]
    root = args.work or Path(tempfile.mkdtemp(prefix="mtss-bench-"))
    started_at = dt.datetime.now(dt.timezone.utc)
    started = time.perf_counter()
    # The small drop first, on a machine still idle: measured after every stage of a 1,000,000-student run its
    # median was 2.57 s, alone 2.30-2.35 s and after the Dagster stage without loads 2.37 s (2026-12-04).
    small = _small_drop(args.small_repeat, root, args.small_here)
    by_n: dict[int, dict] = {}
    for n in sizes:
        t = time.perf_counter()
        work = generate(n, root)
        size_mb = sum(f.stat().st_size for f in (work / "drop").iterdir()) / 1e6
        print(f"N={n:,}: drop of {size_mb:,.0f} MB ready in {time.perf_counter() - t:.1f} s", flush=True)
        by_n[n] = {"input_mb": size_mb, "stages": {}}
        smaller = [s for s in (args.sizes_stages or "").split(",") if s] if n != args.students else []
        for stage in (s for s in stages if not smaller or s in smaller):
            by_n[n]["stages"][stage] = r = run_stage(stage, work, args.pg_url, args.timeout)
            print(f"  {stage:<18} " + (f"skipped: {r['skipped']}" if "skipped" in r else
                  f"{_fmt(r, 'seconds', '8.2f')} s  peak {_fmt(r, 'peak_rss_mb', ',.0f')} MB"), flush=True)
        if n == args.students and "dagster_no_loads" in by_n[n]["stages"]:  # what bounds Dagster against the core
            by_n[n]["byte_passes"] = _in_child("byte_passes", work, None, args.timeout)

    n = args.students
    print()
    print_stages(by_n, n, stages)
    if small is not None:
        from small_drop import describe
        print(describe(small))
    print()
    found = targets(by_n, n, small)
    print_targets(found, args.before)
    path = write_results(args.results, started_at, args, by_n, small, found, time.perf_counter() - started)
    print(f"\nresults: {path}")
    from plot import draw
    drawn = draw([path], path.with_suffix(".png"))
    if drawn:
        print(f"plot: {drawn}")
    print(f"benchmark wall time {time.perf_counter() - started:.0f} s; work folder {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
