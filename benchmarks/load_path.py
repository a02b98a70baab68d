"""The PostgreSQL load rate of the staged path (issue 22: bulk copy into staging, then one short transaction that
applies from staging on the server) next to the direct path it replaced (COPY straight into the tables inside the
load's one transaction), on the same frames, the same server and the same machine.

    python benchmarks/load_path.py --pg-url postgresql+psycopg://postgres@127.0.0.1:55433/bench

The database is a scratch one: our tables in it are migrated and emptied. The frames have the shape of the
1,000,000-student scale run (docs/performance.md: 1,000,000 roster rows and 3,230,969 results, 107,543 rows/s
recorded there for the direct path). Each path loads twice: into an empty district (a first load) and over its own
rows (a re-send: every row replaced). It prints rows/s per path and load, and the staged path's ratio to the
direct one; the apply transaction's own duration is printed too (what other sessions could wait on).

    python benchmarks/load_path.py --pg-url ... --bounds

measures instead what bounds the apply: the results' own INSERT ... SELECT from staging, timed into scratch copies
of dm.AssessmentResults with their indexes as declared, without the student index, and with none; and what the
same rows would take as a new partition of the district, indexed after they are in, then attached.
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import polars as pl
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from belleville_mtss.lib.load import warehouse as w  # noqa: E402
from belleville_mtss.lib.sample import migrate_sample_warehouse  # noqa: E402

RECORDED_DIRECT = 107_543  # rows/s, docs/performance.md, load_postgres at 1,000,000 students
DISTRICT = 107873


def frames(students: int, results: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    s, r = pl.int_range(0, students, eager=True), pl.int_range(0, results, eager=True)
    number = (s + 200_000).cast(pl.String)
    roster = pl.DataFrame({
        "AccountInfoId": pl.repeat(DISTRICT, students, eager=True), "StudentNumber": number,
        "FirstName": "First" + s.cast(pl.String), "LastName": "Last" + (s * 7 % 10_007).cast(pl.String),
        "Email": "student" + s.cast(pl.String) + "@belleville.k12.nj.us",
        "GradeLevel": (s % 12 + 1).cast(pl.String), "SchoolId": (s % 9 + 1).cast(pl.String),
        "ClassLinkUserId": "cl-" + s.cast(pl.String), "StarTestCount": pl.repeat(3, students, eager=True),
        "DropId": pl.repeat("belleville/bench", students, eager=True),
        "LoadedAt": pl.repeat(dt.datetime(2026, 12, 3), students, eager=True),
    })
    subject = pl.Series(["SR", "SM", "SEL"]).gather(r % 3)
    result = pl.DataFrame({
        "AccountInfoId": pl.repeat(DISTRICT, results, eager=True),
        "Assessment": pl.repeat("star", results, eager=True), "Subject": subject,
        "TestKey": "{" + r.cast(pl.String).str.zfill(12) + "-4c1e-9a5b-0d2f}",
        "StudentNumber": (r % students + 200_000).cast(pl.String),
        "SchoolYear": pl.repeat("2026-2027", results, eager=True),
        "CompletedAt": pl.select(pl.lit(dt.datetime(2026, 10, 1, 9, 30)) + pl.duration(seconds=r % 86_400)
                                 ).to_series(),
        "Grade": (r % 12 + 1).cast(pl.String), "ScaledScore": (r % 1000 + 300).cast(pl.Int32),
        "PercentileRank": (r % 99 + 1).cast(pl.Int32), "UnifiedScore": (r % 800 + 600).cast(pl.Int32),
        "BenchmarkCategory": pl.Series(["At/Above Benchmark", "On Watch", "Intervention", "Urgent Intervention"]
                                       ).gather(r % 4),
        "ScreeningWindow": pl.repeat("Fall 2026 (08/01 - 11/30)", results, eager=True),
        "DropId": pl.repeat("belleville/bench", results, eager=True),
        "LoadedAt": pl.repeat(dt.datetime(2026, 12, 3), results, eager=True),
        "AssessmentStatus": pl.repeat("Active", results, eager=True),
    })
    return roster, result


def direct(engine: sa.Engine, roster: pl.DataFrame, results: pl.DataFrame) -> dict:
    """The path before issue 22 (write_roster and write_results at 59bdd24): the district's roster read, deleted
    and written again with the students it no longer lists, results deleted per scope, each COPY straight into the
    tables, all inside the one transaction."""
    t = time.perf_counter()
    with engine.begin() as conn:
        r = w.student_roster.c
        earlier = w.read_rows(conn, w.student_roster, r.AccountInfoId == DISTRICT)
        gone = (earlier.filter(~pl.col("StudentNumber").is_in(roster["StudentNumber"].implode()))
                .with_columns(pl.lit(False).alias("IsCurrent"))) if earlier.height else earlier
        conn.execute(w.student_roster.delete().where(r.AccountInfoId == DISTRICT))
        key = [c.name for c in w.student_roster.primary_key.columns]
        w._insert(conn, w.student_roster, roster.with_columns(pl.lit(True).alias("IsCurrent")).sort(key))
        if gone.height:
            w._insert(conn, w.student_roster, gone.sort(key))
        for scope in w.results_scopes(results):
            conn.execute(w.assessment_results.delete().where(w._in_scope(DISTRICT, scope)))
        w._insert(conn, w.assessment_results, results.sort([c.name for c in w.assessment_results.primary_key.columns]))
    return {"seconds": time.perf_counter() - t, "transaction_s": time.perf_counter() - t}


def staged(engine: sa.Engine, roster: pl.DataFrame, results: pl.DataFrame, account_info_id: int = DISTRICT
           ) -> dict:
    """Today's path: staged outside the transaction, applied in one short one (as defs/warehouse.py does)."""
    t = time.perf_counter()
    with w.staged(engine, roster, results) as load_id:
        applying = time.perf_counter()
        with engine.begin() as conn:
            w.apply_roster(conn, account_info_id, load_id)
            roster_applied = time.perf_counter()
            w.apply_results(conn, account_info_id, load_id, w.results_scopes(results))
        transaction = time.perf_counter() - applying
    total = time.perf_counter() - t
    # where a staged load's time goes: the bulk copy into staging, the apply (the roster's part, then the results'
    # with the commit), the staged rows deleted afterwards
    return {"seconds": total, "transaction_s": transaction, "stage_s": applying - t,
            "unstage_s": total - (applying - t) - transaction, "apply_roster_s": roster_applied - applying,
            "apply_results_s": transaction - (roster_applied - applying)}


SCRATCH = "mtss_bench"  # the schema of apply_bounds' scratch tables, dropped after each
STUDENT_INDEX = "IX_AssessmentResults_Student"


def apply_bounds(engine: sa.Engine, results: pl.DataFrame) -> dict[str, float]:
    """What bounds the apply on PostgreSQL, measured: the results staged again, then the apply's own statement
    (INSERT ... SELECT from staging) timed into three scratch copies of dm.AssessmentResults, alike but for their
    indexes: as declared, without the student index, with no index at all; and, for what per-district partitions
    would cost instead, the same rows into a new table of the district whose indexes are built after them, then
    attached to a scratch copy partitioned by district (`_new_partition`). Each starts after a checkpoint."""
    table = w.assessment_results
    seconds, district = {}, int(results["AccountInfoId"][0])  # one district's results, as a load's are
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCRATCH}"))
    try:
        with w.staged(engine, results=results) as load_id:
            for variant in ("declared", "without_student_index", "no_index"):
                copy = table.to_metadata(sa.MetaData(), schema=SCRATCH)  # same name: _from_staging finds staging
                if variant == "without_student_index":
                    copy.indexes = {i for i in copy.indexes if i.name != STUDENT_INDEX}
                elif variant == "no_index":
                    copy = sa.Table(table.name, sa.MetaData(), *(sa.Column(c.name, c.type) for c in table.columns),
                                    schema=SCRATCH)
                copy.drop(engine, checkfirst=True)
                copy.create(engine)
                _checkpoint(engine)
                t = time.perf_counter()
                with engine.begin() as conn:
                    rows = w._from_staging(conn, copy, load_id)
                seconds[variant] = time.perf_counter() - t
                copy.drop(engine)
                assert rows == results.height, (rows, results.height)
            seconds |= _new_partition(engine, load_id, results.height, district)
    finally:  # an interrupted measurement leaves no scratch table behind either
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {_partition(district)}"))  # when it was never attached
            conn.execute(sa.text(f'DROP TABLE IF EXISTS {SCRATCH}."{table.name}"'))
            conn.execute(sa.text(f"DROP SCHEMA {SCRATCH}"))
    return seconds


def _partition(district: int) -> str:
    return f'{SCRATCH}."AssessmentResults_{district}"'


def _checkpoint(engine: sa.Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("CHECKPOINT"))


def _new_partition(engine: sa.Engine, load_id: str, expected: int, district: int) -> dict[str, float]:
    """The apply as a district's first load into per-district partitions would make it (not built: a decision of
    its own, docs/performance.md): in one transaction, the staged rows into a new table with no index, the
    declared key and indexes built on it after them (in bulk, by sorting), then the table attached as the
    district's partition of a scratch copy of dm.AssessmentResults partitioned by AccountInfoId, whose indexes it
    then shares (a CHECK constraint of the district spares the attach a scan). Each part's seconds."""
    table, staging = w.assessment_results, w.STAGING[w.assessment_results.name]
    parent = table.to_metadata(sa.MetaData(), schema=SCRATCH)
    parent.dialect_options["postgresql"]["partition_by"] = 'LIST ("AccountInfoId")'
    parent.drop(engine, checkfirst=True)
    parent.create(engine)
    quote = engine.dialect.identifier_preparer.quote
    columns = ", ".join(quote(c.name) for c in table.columns)
    key = ", ".join(quote(c.name) for c in table.primary_key.columns)
    partition = _partition(district)
    _checkpoint(engine)
    t = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE {partition} (LIKE {SCRATCH}."{table.name}" INCLUDING DEFAULTS)'))
        rows = conn.execute(sa.text(f"INSERT INTO {partition} ({columns}) SELECT {columns} FROM "
                                    f"{staging.schema}.{quote(staging.name)} WHERE \"LoadId\" = :id"),
                            {"id": load_id}).rowcount
        loaded = time.perf_counter()
        conn.execute(sa.text(f'ALTER TABLE {partition} ADD CHECK ("AccountInfoId" = {district}), ADD PRIMARY KEY '
                             f"({key})"))
        for index in table.indexes:
            conn.execute(sa.text(f"CREATE INDEX ON {partition} ({', '.join(quote(c.name) for c in index.columns)})"))
        indexed = time.perf_counter()
        conn.execute(sa.text(f'ALTER TABLE {SCRATCH}."{table.name}" ATTACH PARTITION {partition} FOR VALUES IN '
                             f"({district})"))
    done = time.perf_counter()
    assert rows == expected, (rows, expected)
    with engine.connect() as conn:  # every declared index of the parent has the partition's as its own
        attached = conn.execute(sa.text(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relkind = 'i' AND "
            f"i.inhparent IN (SELECT indexrelid FROM pg_index WHERE indrelid = '{SCRATCH}.\"{table.name}\"'::regclass)"
        )).scalar_one()
    assert attached == len(table.indexes) + 1, attached
    return {"new_partition": done - t, "new_partition_rows": loaded - t, "new_partition_indexes": indexed - loaded,
            "new_partition_attach": done - indexed}


def describe_bounds(b: dict[str, float], rows: int) -> str:
    return (f"the results' apply ({rows:,} rows, INSERT ... SELECT from staging) into a scratch copy of "
            f"dm.AssessmentResults as declared {b['declared']:.2f} s, without {STUDENT_INDEX} "
            f"{b['without_student_index']:.2f} s, with no index {b['no_index']:.2f} s: its indexes "
            f"{b['declared'] - b['no_index']:.2f} s of it, the student index alone (its rows come in the primary "
            f"key's order, not its own) {b['declared'] - b['without_student_index']:.2f} s; into a new partition "
            f"of the district instead, its indexes built after its rows, then attached: {b['new_partition']:.2f} s "
            f"(the rows {b['new_partition_rows']:.2f} s, the indexes {b['new_partition_indexes']:.2f} s, the "
            f"attach and commit {b['new_partition_attach']:.2f} s)")


def empty(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for table in (w.student_roster, w.assessment_scores, w.assessment_results):
            conn.execute(table.delete().where(table.c.AccountInfoId == DISTRICT))


def vacuum(engine: sa.Engine) -> None:
    """Every table vacuumed, as autovacuum would between two days' loads, and a checkpoint: each load starts from
    the same state whichever path ran before it."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text('VACUUM ANALYZE dm."StudentRoster", dm."AssessmentResults", dm."StudentRosterStaging", '
                             'dm."AssessmentResultsStaging"'))
        conn.execute(sa.text("CHECKPOINT"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg-url", required=True, help="a scratch PostgreSQL database (our tables are emptied)")
    p.add_argument("--students", type=int, default=1_000_000)
    p.add_argument("--results", type=int, default=3_230_969)
    p.add_argument("--rounds", type=int, default=3, help="each path measured this many times, alternately; "
                   "the median is reported (the machine's other load moves single runs by 20%%)")
    p.add_argument("--bounds", action="store_true", help="only measure what bounds the apply: the results' "
                   "INSERT from staging into scratch tables with and without their indexes")
    args = p.parse_args(argv)
    engine = w.make_engine(args.pg_url)
    migrate_sample_warehouse(engine)
    roster, results = frames(args.students, args.results)
    rows = roster.height + results.height
    print(f"{roster.height:,} roster rows + {results.height:,} results = {rows:,} rows, PostgreSQL "
          f"{engine.dialect.server_version_info}", flush=True)
    if args.bounds:
        print("what bounds the apply: " + describe_bounds(apply_bounds(engine, results), results.height))
        engine.dispose()
        return 0
    figures: dict[tuple[str, str], list[dict]] = {}
    for round_ in range(1, args.rounds + 1):
        for name, path in (("direct", direct), ("staged", staged)):
            for load in ("first load", "re-send"):
                if load == "first load":
                    empty(engine)
                vacuum(engine)
                r = path(engine, roster, results)
                figures.setdefault((name, load), []).append(r)
                split = (f"  (staging {r['stage_s']:.2f} s, apply: roster {r['apply_roster_s']:.2f} s, results "
                         f"{r['apply_results_s']:.2f} s; unstaging {r['unstage_s']:.2f} s)" if "stage_s" in r else "")
                print(f"  round {round_}  {name:<7} {load:<11} {r['seconds']:7.2f} s  {rows / r['seconds']:>9,.0f} "
                      f"rows/s  transaction {r['transaction_s']:6.2f} s{split}", flush=True)
    empty(engine)
    vacuum(engine)
    engine.dispose()

    def median(name: str, load: str, key: str) -> float:
        return statistics.median(r[key] for r in figures[(name, load)])

    print(f"\nmedians of {args.rounds} round(s):")
    for load in ("first load", "re-send"):
        d, s_ = median("direct", load, "seconds"), median("staged", load, "seconds")
        print(f"  {load:<11} direct {rows / d:>9,.0f} rows/s, staged {rows / s_:>9,.0f} rows/s: staged/direct "
              f"{d / s_:.2f}x; apply transaction {median('staged', load, 'transaction_s'):.2f} s instead of "
              f"{median('direct', load, 'transaction_s'):.2f} s")
    rate = rows / median("staged", "first load", "seconds")
    print(f"  staged first load {rate:,.0f} rows/s against {RECORDED_DIRECT:,} recorded for the direct path in "
          f"docs/performance.md: {rate / RECORDED_DIRECT:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
