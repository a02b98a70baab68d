"""Faults caused for real: a database backend killed mid-load, the process killed mid-run, an SFTP session
cut mid-download. Each time: nothing half-written, and the re-run is exact."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from belleville_mtss.lib.receive.drops import receive, sha256_of
from belleville_mtss.lib.receive.sftp import SftpConfig, SftpDropSource, SftpTransient
from belleville_mtss.lib.receive.vault import decrypt_bytes, new_key, parse_key
from belleville_mtss.lib.sample import migrate_sample_warehouse
from belleville_mtss.lib.load.warehouse import (
    assessment_results, make_engine, read_table, replace_results,
)
from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import SMALL, prepare_drop, warehouse_counts
from .sshd_server import SshServer


def _results(n: int, year: str = "2026-2027") -> pl.DataFrame:
    import datetime as dt
    return pl.DataFrame({
        "AccountInfoId": [107873] * n, "Assessment": ["star"] * n, "Subject": ["SR"] * n,
        "TestKey": [f"k{i:07d}" for i in range(n)],
        "StudentNumber": [str(200000 + i % 5000) for i in range(n)], "SchoolYear": [year] * n,
        "CompletedAt": [dt.datetime(2026, 10, 1)] * n, "Grade": ["5"] * n, "ScaledScore": [500] * n,
        "PercentileRank": [50] * n, "UnifiedScore": [900] * n, "BenchmarkCategory": ["On Watch"] * n,
        "ScreeningWindow": ["Fall"] * n, "DropId": ["belleville/x"] * n,
        "LoadedAt": [dt.datetime(2026, 11, 28)] * n,
    })


def test_postgres_backend_terminated_mid_load_rolls_back_and_rerun_is_exact(pg_database):
    url = sa.engine.make_url(pg_database).update_query_dict({"application_name": "mtss_fault_load"})
    engine = make_engine(url.render_as_string(hide_password=False))
    migrate_sample_warehouse(engine)
    earlier = _results(1_000)
    replace_results(engine, 107873, earlier)
    big = _results(400_000)  # long enough to be killed mid-copy (about a second of COPY)
    admin = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    killed = []

    def kill_when_inserting():
        deadline = time.time() + 60
        with admin.connect() as conn:
            while time.time() < deadline and not killed:
                pids = conn.execute(sa.text(
                    "select pid from pg_stat_activity where application_name = 'mtss_fault_load' "
                    "and state = 'active' and (query ilike 'copy%' or query ilike 'insert%')")).scalars().all()
                if pids:
                    time.sleep(0.2)  # well into the load
                    killed.extend(conn.execute(sa.text("select pg_terminate_backend(:p)"), {"p": pids[0]}).scalars())
                time.sleep(0.01)

    killer = threading.Thread(target=kill_when_inserting)
    killer.start()
    with pytest.raises(sa.exc.DBAPIError):
        replace_results(engine, 107873, big)
    killer.join()
    assert killed == [True]
    engine.dispose()
    fresh = make_engine(pg_database)
    after_fault = read_table(fresh, assessment_results)
    assert sorted(after_fault["TestKey"]) == sorted(earlier["TestKey"])  # rolled back: the earlier load intact
    replace_results(fresh, 107873, big)
    loaded = read_table(fresh, assessment_results)
    assert loaded.height == big.height and loaded["TestKey"].n_unique() == big.height
    fresh.dispose()
    admin.dispose()


def _run_cli(home: Path, **env_extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTSS_")}
    env.update(MTSS_HOME=str(home), **env_extra)
    return subprocess.Popen([sys.executable, "-m", "belleville_mtss.cli", "run", "belleville/2026-11-01"],
                            env=env, stdout=subprocess.PIPE if env_extra else subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)


def test_process_killed_mid_run_then_rerun_is_idempotent(tmp_path):
    spec = replace(SMALL, students=6_000)
    reference = make_settings(tmp_path / "reference")
    prepare_drop(reference, spec)
    assert run_drop(reference).checks_passed
    expected = warehouse_counts(reference)

    killed_during_write = 0
    for attempt in range(3):
        settings = make_settings(tmp_path / f"killed{attempt}")
        prepare_drop(settings, spec)
        journal = Path(str(settings.home / "warehouse.db") + "-journal")
        proc = _run_cli(settings.home)
        deadline = time.time() + 120
        sightings = 0
        while proc.poll() is None and time.time() < deadline:
            if journal.exists():  # a write transaction is open in the warehouse right now
                sightings += 1
                if sightings > attempt * 2:
                    proc.send_signal(signal.SIGKILL)
                    killed_during_write += 1
                    break
            time.sleep(0.002)
        proc.wait(timeout=60)
        report = run_drop(settings)
        assert report.success and report.checks_passed, report.render()
        assert warehouse_counts(settings) == expected
    assert killed_during_write >= 1  # at least one kill landed inside a warehouse transaction


def test_sftp_session_cut_mid_download_is_fetched_again_and_verified(tmp_path):
    server = SshServer(tmp_path / "sshd").start()
    try:
        drop_dir = server.root / "belleville" / "big"
        drop_dir.mkdir(parents=True)
        big = drop_dir / "SR.csv"
        with big.open("wb") as fh:
            for _ in range(40):
                fh.write(os.urandom(4 * 1024 * 1024))  # 160 MiB
        (drop_dir / "drop.done").write_text("")
        env = server.env()
        cfg = SftpConfig(env["MTSS_SFTP_HOST"], int(env["MTSS_SFTP_PORT"]), env["MTSS_SFTP_USER"],
                         env["MTSS_SFTP_KEY_PATH"], env["MTSS_SFTP_KNOWN_HOSTS"], env["MTSS_SFTP_ROOT"])

        class CountingSource(SftpDropSource):
            fetches = 0

            def open(self, folder, drop, file):
                CountingSource.fetches += 1
                return super().open(folder, drop, file)

        source = CountingSource(cfg)
        (drop,) = source.list_drops("belleville", "belleville")
        staging = tmp_path / "staging" / "belleville" / "big"
        key = parse_key(new_key())
        cut = []

        def partial_size() -> int:  # the file being received: encrypted as it streams in, never in clear
            return sum(p.stat().st_size for p in staging.parent.glob(".incoming-big-*/SR.csv.*.part"))

        def cut_session():
            deadline = time.time() + 60
            while time.time() < deadline and not cut:
                if partial_size() > 8 * 1024 * 1024:
                    children = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True,
                                              text=True).stdout.split()
                    for pid in children:
                        os.kill(int(pid), signal.SIGKILL)
                    cut.append(len(children))
                time.sleep(0.005)

        cutter = threading.Thread(target=cut_session)
        cutter.start()
        staged = receive(source, "belleville", drop, staging, key, transient=(SftpTransient,), sleep=lambda s: None)
        cutter.join()
        assert cut and cut[0] >= 1
        assert CountingSource.fetches == 3  # the cut transfer, the one that completed, and its second read
        (sr,) = staged
        assert sr.sha256 == sha256_of(big) and sr.size == big.stat().st_size
        assert decrypt_bytes(key, staging / "SR.csv", sealed=bytes.fromhex(sr.sha256)) == big.read_bytes()
        # no receiving folder left behind: the drop's copy, and the district's lock of publishing (never removed)
        assert sorted(p.name for p in staging.parent.iterdir()) == [".publishing.lock", "big"]
    finally:
        server.stop()



def _errors_of(settings) -> pl.DataFrame:
    from belleville_mtss.lib.load.warehouse import ingestion_errors
    engine = make_engine(settings.warehouse_url)
    try:
        return read_table(engine, ingestion_errors)
    finally:
        engine.dispose()


def test_a_full_disk_while_receiving_is_logged_and_the_outcome_names_it(settings, monkeypatch):
    """A full disk cannot be caused here for real (a file system of its own needs root): staging raises what a full
    disk raises. The run failed with Dagster's wrapper for its reason, and no error row, no audit row: no trace."""
    import errno
    from belleville_mtss.defs import receive

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    prepare_drop(settings)
    monkeypatch.setattr(receive, "receive_or_replay", full)
    report = run_drop(settings, "belleville/2026-11-01")
    assert report.outcome == "failed" and report.verdict() == "FAILED: belleville/2026-11-01: receiving the drop " \
                                                              "failed: OSError: No space left on device"
    logged = _errors_of(settings).select("DistrictId", "DropId", "Stage", "Reason", "Message").rows()
    assert logged == [(107873, "belleville/2026-11-01", "receive", "receive_failed",
                       "receiving the drop failed: OSError: No space left on device"),
                      (107873, "belleville/2026-11-01", "run", "failed", "the run failed: received_drop (Failure); the "
                       "run's log holds each error, the rows of its steps say what they found")]


def test_a_run_failed_by_an_error_no_step_expected_gets_its_error_row_and_its_cause_named(settings, monkeypatch):
    """An error no step catches (a bug, say) failed the run with no error row at all: the error log missed it."""
    from belleville_mtss.defs import read

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")
    prepare_drop(settings)
    monkeypatch.setattr(read, "reading_order", broken)
    report = run_drop(settings, "belleville/2026-11-01")
    assert report.outcome == "failed" and report.causes == {"read_drop": "RuntimeError"}
    assert report.verdict() == "FAILED: belleville/2026-11-01: RuntimeError: a bug"  # not Dagster's wrapper
    logged = _errors_of(settings).select("DistrictId", "Stage", "Reason", "Message").rows()
    assert logged == [(107873, "run", "failed", "the run failed: read_drop (RuntimeError); the run's log holds each "
                                                "error, the rows of its steps say what they found")]


def test_a_run_stopped_after_its_load_committed_says_it_loaded(settings):
    """SIGTERM (systemd's stop, `docker stop`, Kubernetes) after the commit: the run said FAILED with Dagster's
    interruption for its reason, though the warehouse and the audit held the load."""
    from belleville_mtss.lib.load.warehouse import ingestion_files, student_roster
    prepare_drop(settings)
    proc = _run_cli(settings.home, MTSS_FAULT="after_commit:sleep=60")
    engine = make_engine(settings.warehouse_url)
    try:
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            try:
                if read_table(engine, student_roster).height == SMALL.students:  # committed: asleep after it
                    break
            except sa.exc.OperationalError:
                pass  # not made yet
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        audit = set(read_table(engine, ingestion_files)["Outcome"])
    finally:
        engine.dispose()
    assert proc.returncode == 1  # the run did not end as it should: a person looks
    assert re.match(rf"FAILED after loading: belleville/2026-11-01: {SMALL.students:,} roster rows and [\d,]+ results "
                    r"loaded; then .*interrupt", out.strip().splitlines()[-1], re.I), out[-500:]
    assert audit <= {"loaded", "duplicate"}
