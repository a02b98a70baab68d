"""N districts' drops through the real dagster-daemon (issue 23): N registry districts (synthetic districts of the
sample warehouse's dm.AccountInfo, each with its own ClassLink tenant and Star name), one ~300-student drop each in
its folder on a real OpenSSH server on 127.0.0.1, the production instance configuration (deploy/dagster.yaml:
PostgreSQL storage, the queued coordinator, 8 runs at once, one per district) and a PostgreSQL warehouse.

    python benchmarks/daemon_districts.py --pg-url postgresql+psycopg://postgres@127.0.0.1:55433/postgres --districts 100

The drops are written while the daemon runs, markers last. It prints how many drops loaded and failed, the time
from the last marker to the last load finished, and the drops an hour; then what bounds it: the machine's
busy CPU-seconds a drop over the window (every process: daemon, runs, sshd, PostgreSQL), and per run the
medians of the wait in the queue, the launch (launched to started: the run's process and its code), the run
(started to ended), its steps' own time, the rest of the run outside its steps, and its events.
"""
from __future__ import annotations

import argparse
import os
import statistics
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import polars as pl
import sqlalchemy as sa
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from belleville_mtss.lib.config import load_settings  # noqa: E402
from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR  # noqa: E402
from belleville_mtss.lib.load.warehouse import account_info, assessment_results, make_engine, student_roster  # noqa: E402
from belleville_mtss.lib.sample import SampleSpec, account_info_rows, generate_drop, load_databases  # noqa: E402
from belleville_mtss_tests.helpers import start_group, stop_group  # noqa: E402
from belleville_mtss_tests.sshd_server import SshServer  # noqa: E402


def specs(n: int) -> list[tuple[dict, SampleSpec]]:
    """N synthetic districts of the sample dm.AccountInfo, each named its own way by Star and ClassLink."""
    rows = [r for r in account_info_rows() if r["AccountInfoId"] >= 300000][:n]
    if len(rows) < n:
        raise SystemExit(f"the sample warehouse holds {len(rows)} synthetic districts; ask for at most that many")
    out = []
    for i, row in enumerate(rows):
        place = row["DistrictName"].split()[0].title()
        spec = SampleSpec(students=300, seed=1000 + i, district_name_in_files=row["DistrictName"].title(),
                          classlink_tenant=f"{place} {row['State']} tenant", classlink_tenant_id=20000 + i,
                          missing_from_classlink=5, without_tests=7, unknown_star_rows=3, excel_mangled_dates=0,
                          first_student_number=1_000_000 + 1000 * i,
                          email_domain=f"{place.lower()}-{row['State'].lower()}.example.org")
        out.append((row, spec))
    return out


def nces(i: int) -> str:
    return f"99{i:05d}"  # made-up LEA ids (the sample's synthetic districts have none)


def registry(folder: Path, districts: list[tuple[dict, SampleSpec]]) -> Path:
    base = yaml.safe_load((PACKAGED_DISTRICTS_DIR / "belleville.yaml").read_text())
    folder.mkdir()
    for i, (row, spec) in enumerate(districts):
        key = f"district{i:03d}"
        entry = {**base, "district": key, "display_name": spec.district_name_in_files, "nces_id": nces(i),
                 "account_info_id": row["AccountInfoId"], "state": row["State"], "county": None, "drop_folder": key,
                 "source_names": {"account_info": [row["DistrictName"]], "classlink": [spec.classlink_tenant]},
                 "sources": {"star": {**base["sources"]["star"], "names": [spec.district_name_in_files]}},
                 "verification": {"verified_by": "benchmarks/daemon_districts.py (synthetic district)",
                                  "verified_on": "2026-12-03", "ferpa_review_on": "2026-12-03"}}
        entry = {k: v for k, v in entry.items() if v is not None}
        (folder / f"{key}.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    return folder


def database(server_url: str, prefix: str) -> tuple[str, sa.Engine]:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False), admin


def cpu_seconds() -> float:
    """Busy CPU-seconds of the whole machine since boot (/proc/stat: every process, not only ours)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[int, int, float, float] | None:
    """(ppid, session, own CPU-seconds, CPU-seconds of its ended children it reaped) of a process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):  # ended meanwhile
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), int(fields[3]), (int(fields[11]) + int(fields[12])) / tick, \
        (int(fields[13]) + int(fields[14])) / tick


class CpuByRole:
    """The window's CPU-seconds by what spent them, every process of the machine sampled from /proc every quarter
    second: the daemon, its code servers, the warm process and the runs forked from it (counted exactly: their
    CPU is added to the warm process's reaped children as each ends), PostgreSQL's connections by database, sshd,
    and every other process ("other": the kernel's threads among them). A process other than a run that ends loses
    at most its last quarter second; the machine's busy CPU left over (interrupts, those tails, a process that came
    and went between two looks) is printed as not attributed."""

    def __init__(self, session: int, databases: dict[str, str]):
        self.session, self.databases = session, databases
        self.first: dict[str, float] = {}  # pid -> CPU-seconds at its first sample (0 for one born in the window)
        self.last: dict[str, tuple[str, float]] = {}  # pid -> (role, CPU-seconds at its last sample)
        self.runs_first: dict[str, float] = {}  # warm process pid -> its reaped children's CPU at first sample
        self.runs_last: dict[str, float] = {}
        self._stop = None

    def _role(self, pid: str, ppid: int, session: int) -> str | None:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
        if args.startswith("postgres:"):
            words = args.split()
            return next((role for db, role in self.databases.items() if db in words[2:3]), "PostgreSQL, its own work")
        if "sshd" in args:
            return "sshd"
        if int(pid) == os.getpid():
            return "this benchmark"
        if session != self.session:
            return "other"
        if int(pid) == self.session:
            return "the daemon"
        if str(ppid) in self.runs_last:  # forked from the warm process: a run (its command line is the warm one's)
            return None
        return "the warm process" if "forkserver" in args else "code servers, the daemon's other processes"

    def sample(self, born_in_window: bool) -> None:
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            stat = _stat(pid)
            if stat is None:
                continue
            ppid, session, own, reaped = stat
            role = self.last[pid][0] if pid in self.last else self._role(pid, ppid, session)
            if role is None:  # a run: counted through the warm process once it has ended
                continue
            self.first.setdefault(pid, 0.0 if born_in_window else own)
            self.last[pid] = (role, own)
            if role == "the warm process":
                self.runs_first.setdefault(pid, 0.0 if born_in_window else reaped)
                self.runs_last[pid] = reaped

    def start(self) -> "CpuByRole":
        import threading
        self.sample(born_in_window=False)
        self._stop = threading.Event()

        def every_quarter_second():
            while not self._stop.wait(0.25):
                self.sample(born_in_window=True)
        self._thread = threading.Thread(target=every_quarter_second, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self.sample(born_in_window=True)
        spent: dict[str, float] = {}
        for pid, (role, own) in self.last.items():
            spent[role] = spent.get(role, 0.0) + own - self.first[pid]
        spent["the runs"] = sum(v - self.runs_first[pid] for pid, v in self.runs_last.items())
        return spent


def by_role_line(spent: dict[str, float], busy: float, drops: int) -> str:
    shown = {k: v for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v >= 0.05}
    parts = [f"{k} {v / max(drops, 1):.2f}" for k, v in shown.items()]
    parts.append(f"not attributed {(busy - sum(spent.values())) / max(drops, 1):.2f}")
    return "CPU-seconds a drop, by what spent them: " + ", ".join(parts)


def bounds(instance, runs: list) -> str:
    """Medians over the runs of where a run's time went, from the instance's own records."""
    parts: dict[str, list[float]] = {k: [] for k in ("queued", "launch", "run", "steps", "outside steps", "events")}
    for r in runs:
        stats = instance.get_run_stats(r.run_id)
        if not (stats.enqueued_time and stats.launch_time and stats.start_time and stats.end_time):
            continue
        steps = sum((s.end_time or 0) - (s.start_time or 0) for s in instance.get_run_step_stats(r.run_id))
        parts["queued"].append(stats.launch_time - stats.enqueued_time)
        parts["launch"].append(stats.start_time - stats.launch_time)
        parts["run"].append(stats.end_time - stats.start_time)
        parts["steps"].append(steps)
        parts["outside steps"].append(stats.end_time - stats.start_time - steps)
        parts["events"].append(len(instance.all_logs(r.run_id)))
    return "per run, medians: " + ", ".join(
        f"{k} {statistics.median(v):.0f}" if k == "events" else f"{k} {statistics.median(v):.2f} s"
        for k, v in parts.items() if v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg-url", required=True, help="a PostgreSQL server URL whose role may create databases")
    p.add_argument("--districts", type=int, default=100)
    p.add_argument("--timeout-minutes", type=float, default=90)
    args = p.parse_args(argv)
    import dagster as dg

    root = Path(tempfile.mkdtemp(prefix="mtss-daemon-"))
    server = SshServer(root / "sshd").start()
    warehouse_url, admin = database(args.pg_url, "mtss_bench_wh")
    dagster_url, _ = database(args.pg_url, "mtss_bench_dagster")
    districts = specs(args.districts)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MTSS_", "DAGSTER_"))}
    env |= {"MTSS_HOME": str(root / "mtss"), "MTSS_DISTRICTS_DIR": str(registry(root / "registry", districts)),
            "MTSS_WAREHOUSE_URL": warehouse_url, **server.env()}
    settings = load_settings(env)
    tables = []
    for _, spec in districts:  # ClassLink users first (generate_drop writes the drop too: into a scratch folder)
        tables.append(generate_drop(root / "scratch" / spec.classlink_tenant, spec)["classlink_users"])
    load_databases(settings.prod_db_url, settings.warehouse_url, pl.concat(tables))
    engine = make_engine(warehouse_url)
    with engine.begin() as conn:
        for i, (row, _) in enumerate(districts):
            conn.execute(account_info.update().where(account_info.c.AccountInfoId == row["AccountInfoId"])
                         .values(NcesId=nces(i)))
    engine.dispose()
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text().replace(
        "/var/lib/mtss/dagster/compute_logs", str(root / "compute_logs")))
    env |= {"DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": sa.engine.make_url(dagster_url).set(drivername="postgresql+psycopg2")
            .render_as_string(hide_password=False)}
    log = open(root / "daemon.log", "wb")
    daemon = start_group([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                         cwd=REPO, env=env, stdout=log, stderr=log)
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DAGSTER_PG_URL")})
    try:
        time.sleep(20)  # the daemon up and its first quiet tick done
        by_role = CpuByRole(daemon.pid, {sa.engine.make_url(warehouse_url).database: "PostgreSQL, the warehouse",
                                         sa.engine.make_url(dagster_url).database: "PostgreSQL, Dagster's storage"})
        first_marker, busy_before = time.time(), cpu_seconds()
        by_role.start()
        for i, (_, spec) in enumerate(districts):  # data files first, then the marker, as a district's job does
            scratch = root / "scratch" / spec.classlink_tenant
            drop = server.root / f"district{i:03d}" / spec.drop_name
            drop.mkdir(parents=True)
            for f in sorted(scratch.iterdir(), key=lambda f: f.name == "drop.done"):
                shutil.copy2(f, drop / f.name)
        last_marker = time.time()
        print(f"{len(districts)} drops written in {last_marker - first_marker:.1f} s", flush=True)
        instance = dg.DagsterInstance.get()
        deadline = time.time() + args.timeout_minutes * 60
        finished, last_end, shown = [], None, -1
        while time.time() < deadline:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": "sftp_drop_sensor"}))
            finished = [r for r in runs if r.is_finished]
            if len(finished) != shown:
                shown = len(finished)
                print(f"  {time.time() - last_marker:7.0f} s after the last marker: {len(runs)} runs, "
                      f"{len(finished)} finished", flush=True)
            if len(finished) >= len(districts):
                break
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited: {(root / 'daemon.log').read_text()[-3000:]}")
            time.sleep(5)
        busy, spent = cpu_seconds() - busy_before, by_role.stop()
        ends = [instance.get_run_stats(r.run_id).end_time for r in finished]
        last_end = max((e for e in ends if e), default=None)
        ok = sum(r.status == dg.DagsterRunStatus.SUCCESS for r in finished)
        for r in [r for r in finished if r.status != dg.DagsterRunStatus.SUCCESS][:3]:  # why, for the first few
            failures = [e for e in instance.all_logs(r.run_id)
                        if e.dagster_event and e.dagster_event.event_type_value == "STEP_FAILURE"]
            error = failures[0].dagster_event.event_specific_data.error if failures else None
            why = error.to_string()[-600:] if error else next(
                (e.message for e in instance.all_logs(r.run_id) if e.dagster_event
                 and e.dagster_event.event_type_value == "PIPELINE_FAILURE"), "?")
            print(f"  failed {r.tags.get('mtss/drop')}: {why}")
        engine = make_engine(warehouse_url)
        with engine.connect() as conn:
            loaded = conn.execute(sa.select(sa.func.count(sa.distinct(student_roster.c.AccountInfoId)))).scalar()
            results = conn.execute(sa.select(sa.func.count()).select_from(assessment_results)).scalar()
        engine.dispose()
        print(f"{'districts':>10}{'runs ok':>9}{'failed':>8}{'districts loaded':>18}{'results rows':>14}"
              f"{'last marker -> last load s':>28}{'drops/hour':>12}")
        span = (last_end - last_marker) if last_end else float("nan")
        print(f"{len(districts):>10}{ok:>9}{len(finished) - ok:>8}{loaded:>18}{results:>14,}{span:>28.0f}"
              f"{len(finished) / max(last_end - first_marker, 1) * 3600 if last_end else float('nan'):>12.0f}")
        print(f"what bounds it: {busy / max(len(finished), 1):.1f} busy CPU-seconds a drop on this machine's "
              f"{os.cpu_count()} cores, every process counted, over the {time.time() - first_marker:.0f} s from the "
              f"first drop written to the count above")
        print(by_role_line(spent, busy, len(finished)))
        print(bounds(instance, finished))
        return 0 if ok == len(districts) == loaded else 1
    finally:
        stop_group(daemon)
        server.stop()
        with admin.connect() as conn:
            for url in (warehouse_url, dagster_url):
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.engine.make_url(url).database}" WITH (FORCE)'))
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
