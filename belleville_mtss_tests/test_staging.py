"""Staging, then a short apply (issue 22), shown for real on PostgreSQL: a reader during a 1,000,000-row load sees
the district's old rows or its new ones, never an empty or half-written district; another district's load
finishes while the first district's apply transaction is still open."""
import datetime as dt
import threading
import time

import polars as pl
import sqlalchemy as sa

from belleville_mtss.lib.load.warehouse import (
    STAGING, apply_results, apply_roster, assessment_results, count_rows, make_engine, replace_results,
    replace_roster, results_scopes, staged, student_roster,
)
from belleville_mtss.lib.sample import migrate_sample_warehouse


def _results(account_info_id: int, n: int, drop: str) -> pl.DataFrame:
    i = pl.int_range(0, n, eager=True)
    return pl.DataFrame({
        "AccountInfoId": pl.repeat(account_info_id, n, eager=True, dtype=pl.Int64),
        "Assessment": pl.repeat("star", n, eager=True),
        "Subject": pl.repeat("SR", n, eager=True), "TestKey": (drop + "-") + i.cast(pl.String),
        "StudentNumber": (i % 50_000 + 200_000).cast(pl.String), "SchoolYear": pl.repeat("2026-2027", n, eager=True),
        "CompletedAt": pl.repeat(dt.datetime(2026, 10, 1), n, eager=True),
        "ScaledScore": pl.repeat(500, n, eager=True, dtype=pl.Int32),
        "DropId": pl.repeat(drop, n, eager=True), "LoadedAt": pl.repeat(dt.datetime(2026, 11, 28), n, eager=True),
    })


def _roster(account_info_id: int, n: int, drop: str) -> pl.DataFrame:
    i = pl.int_range(0, n, eager=True)
    return pl.DataFrame({
        "AccountInfoId": pl.repeat(account_info_id, n, eager=True, dtype=pl.Int64),
        "StudentNumber": (i + 300_000).cast(pl.String), "StarTestCount": pl.repeat(1, n, eager=True, dtype=pl.Int32),
        "DropId": pl.repeat(drop, n, eager=True), "LoadedAt": pl.repeat(dt.datetime(2026, 11, 28), n, eager=True),
    })


def _district_count(conn, account_info_id: int) -> int:
    c = assessment_results.c
    return conn.execute(sa.select(sa.func.count()).where(c.AccountInfoId == account_info_id)).scalar_one()


def test_a_reader_during_a_large_load_sees_the_old_rows_or_the_new_never_an_empty_district(pg_database):
    engine = make_engine(pg_database)
    migrate_sample_warehouse(engine)
    # 300,000 rows: a load of some seconds, through which the reader reads every 20 ms
    old, new = _results(107873, 100_000, "belleville/old"), _results(107873, 300_000, "belleville/new")
    replace_results(engine, 107873, old)
    seen, loading = [], threading.Event()

    def load():
        loading.set()
        try:
            replace_results(engine, 107873, new)
        finally:
            loading.clear()

    loader = threading.Thread(target=load)
    loader.start()
    loading.wait()
    reader = make_engine(pg_database)
    with reader.connect() as conn:
        while loading.is_set():
            seen.append(_district_count(conn, 107873))
            conn.commit()  # each read its own READ COMMITTED snapshot, as a report's would be
            time.sleep(0.02)
        loader.join()
        seen.append(_district_count(conn, 107873))
    reader.dispose()
    assert set(seen) == {old.height, new.height}, sorted(set(seen))
    assert seen.count(old.height) > 5  # the reader kept reading through the staging and the apply
    assert seen[-1] == new.height
    assert [count_rows(engine, t) for t in STAGING.values()] == [0, 0, 0]
    engine.dispose()


def test_a_second_district_loads_while_the_first_districts_apply_is_open(pg_database):
    engine = make_engine(pg_database)
    migrate_sample_warehouse(engine)
    # the second district's session gives up on any lock it would wait for more than 5 s
    waits_briefly = make_engine(sa.engine.make_url(pg_database).update_query_dict(
        {"options": "-c lock_timeout=5000"}).render_as_string(hide_password=False))
    a_results, a_roster = _results(107873, 50_000, "belleville/a"), _roster(107873, 5_000, "belleville/a")
    b_results, b_roster = _results(999, 50_000, "riverton/b"), _roster(999, 5_000, "riverton/b")
    replace_roster(engine, 999, _roster(999, 4_000, "riverton/earlier"))  # B has a roster the load replaces
    finished = {}

    def second_district():
        started = time.perf_counter()
        finished["roster"] = replace_roster(waits_briefly, 999, b_roster)
        finished["results"] = replace_results(waits_briefly, 999, b_results)
        finished["seconds"] = time.perf_counter() - started

    with staged(engine, a_roster, a_results) as load_id, engine.begin() as conn:
        apply_roster(conn, 107873, load_id)
        apply_results(conn, 107873, load_id, results_scopes(a_results))
        other = threading.Thread(target=second_district)
        other.start()
        other.join(timeout=60)
        assert not other.is_alive() and finished.get("results") == b_results.height, finished
        assert finished["roster"] == b_roster.height and finished["seconds"] < 5  # it never waited on A
        assert _district_count(conn, 107873) == a_results.height  # A's transaction is still open here
    with engine.connect() as conn:
        assert _district_count(conn, 107873) == a_results.height and _district_count(conn, 999) == b_results.height
        r = student_roster.c
        current = dict(conn.execute(sa.select(r.AccountInfoId, sa.func.count()).where(r.IsCurrent == sa.true())
                                    .group_by(r.AccountInfoId)).all())
    assert current == {107873: a_roster.height, 999: b_roster.height}
    engine.dispose()
    waits_briefly.dispose()


_KILLED_AFTER_STAGING = """
import os, signal, sys
import polars as pl
sys.path.insert(0, {tests!r})
from belleville_mtss.lib.load.warehouse import make_engine, staged
from test_staging import _results, _roster
engine = make_engine({url!r})
with staged(engine, _roster(555001, 2_000, "riverton/killed"), _results(555001, 6_000, "riverton/killed")) as load_id:
    print(load_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # before the apply, before the staged rows are deleted
"""


def test_a_load_killed_after_staging_leaves_rows_the_sweep_removes_by_age(pg_database):
    import subprocess
    import sys
    from pathlib import Path
    from belleville_mtss.lib.load.warehouse import sweep_staging
    engine = make_engine(pg_database)
    migrate_sample_warehouse(engine)
    script = _KILLED_AFTER_STAGING.format(tests=str(Path(__file__).parent), url=pg_database)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    killed_id = killed.stdout.strip()
    assert [count_rows(engine, t) for t in STAGING.values()] == [2_000, 6_000, 0]  # left behind by the kill
    with staged(engine, _roster(107873, 10, "belleville/live")) as live_id:  # a load still under way
        assert sweep_staging(engine, older_than_hours=1) == 0  # the killed load's rows are younger than an hour
        # a cutoff between the two loads' starts (each LoadId begins with its start, in ns): only the dead one's go
        killed_at, live_at = int(killed_id[:16], 16), int(live_id[:16], 16)
        age_hours = (time.time_ns() - (killed_at + live_at) // 2) / 3_600e9
        assert sweep_staging(engine, older_than_hours=age_hours) == 8_000
        staging = STAGING[student_roster.name]
        with engine.connect() as conn:
            assert conn.execute(sa.select(staging.c.LoadId).distinct()).scalars().all() == [live_id]
    assert [count_rows(engine, t) for t in STAGING.values()] == [0, 0, 0]
    engine.dispose()


def test_of_two_copies_of_a_drop_the_newer_is_the_one_whose_differing_files_were_read_later():
    from belleville_mtss.lib.receive.drops import _newer_copy

    def at(boot: str, n: int) -> list:
        return [boot, n]
    staged = {"SR.csv": ["a", at("b1", 5)], "SM.csv": ["m", at("b1", 2)]}
    # SR.csv differs: the staged copy's was read after ours (our read of it failed and was retried early, say)
    assert _newer_copy(staged, {"SR.csv": ["A", at("b1", 3)], "SM.csv": ["m", at("b1", 9)]}) == "theirs"
    # ours read after it: a retry that read the correction late
    assert _newer_copy(staged, {"SR.csv": ["A", at("b1", 7)], "SM.csv": ["m", at("b1", 1)]}) == "ours"
    # each has a differing file read after the other's: neither is the drop as it is now
    assert _newer_copy(staged, {"SR.csv": ["A", at("b1", 7)], "SM.csv": ["M", at("b1", 1)]}) == "mixed"
    # a file only the staged copy has counts as read when ours began
    assert _newer_copy({**staged, "SEL.csv": ["e", at("b1", 8)]}, {"SR.csv": ["a", at("b1", 6)],
                                                                   "SM.csv": ["m", at("b1", 3)]}) == "theirs"
    # staged before a restart, before reads were said, or nothing staged: ours
    assert _newer_copy({"SR.csv": ["a", at("b0", 99)]}, {"SR.csv": ["A", at("b1", 3)]}) == "ours"
    assert _newer_copy({"SR.csv": ["a", at("", 0)]}, {"SR.csv": ["A", at("b1", 3)]}) == "ours"
    assert _newer_copy({}, {"SR.csv": ["A", at("b1", 3)]}) == "ours"
    assert _newer_copy(staged, {"SR.csv": ["a", at("b1", 1)], "SM.csv": ["m", at("b1", 1)]}) == "ours"  # the same


def test_a_staged_manifest_whose_read_times_are_malformed_is_read_as_saying_none(tmp_path):
    import json

    from belleville_mtss.lib.receive.drops import MANIFEST, _held_copy
    files = [{"name": "SR.csv", "size": 1, "sha256": "a"}]
    (tmp_path / MANIFEST).write_text(json.dumps({"files": files, "began": {"SR.csv": ["boot1", "7"]}}))
    assert _held_copy(tmp_path) == {"SR.csv": ["a", ["boot1", 7]]}
    for began in ({"SR.csv": ["boot1", "x"]}, {"SR.csv": 5}, ["SR.csv"]):
        (tmp_path / MANIFEST).write_text(json.dumps({"files": files, "began": began}))
        assert _held_copy(tmp_path) == {}, began
