"""Truth over time: an older drop never replaces newer data, whatever order drops run in; a drop's roster and
results commit together, with their audit, or not at all; a student the newest drop no longer lists stays as
history. On SQLite and PostgreSQL (issue 21, findings 1, 3, 6 and 7)."""
import contextlib
import dataclasses
import datetime as dt
import os
import shutil
import time

import dagster as dg
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from belleville_mtss.cli import main
from belleville_mtss.dry_run import dry_run
from belleville_mtss.lib.config import load_settings
from belleville_mtss.lib.load import order
from belleville_mtss.lib.receive import drops
from belleville_mtss.lib.receive.drops import (RECEIVING_PREFIX, DropRefused, LocalDropSource, receive,
                                               receive_or_replay, sha256_of)
from belleville_mtss.lib.receive.vault import decrypt_bytes, new_key, parse_key
from belleville_mtss.lib.load.warehouse import (
    assessment_results, gate_acceptances, ingestion_files, make_engine, read_table, student_roster,
)
from belleville_mtss.lib.district.registry import RegistryError, load_district, PACKAGED_DISTRICTS_DIR
from belleville_mtss.report import OUTCOME_TAG, drop_alerts
from belleville_mtss.run import run_drop

from .conftest import one_backend
from .helpers import SMALL, edited_registry, errors, held_rows, prepare_drop, set_column

OLD = SMALL  # belleville/2026-11-01, 300 students
MIDDLE = dataclasses.replace(SMALL, drop_name="2026-11-05", students=295)
NEW = dataclasses.replace(SMALL, drop_name="2026-11-20", students=290)
KEY = {spec: f"belleville/{spec.drop_name}" for spec in (OLD, MIDDLE, NEW)}
NUMBER = "STUDENTS.STUDENT_NUMBER"


def later_drop(settings, spec, renumber: int = 0, keep_sr: float = 1.0):
    """A later snapshot of the district made from the first one's files (the ClassLink users stay the same): the
    first `spec.students` students, numbered `renumber` higher where given, SR.csv cut to a share of its rows."""
    first = settings.drop_dir / "belleville" / OLD.drop_name
    folder = settings.drop_dir / "belleville" / spec.drop_name
    shutil.copytree(first, folder)
    (folder / "drop.done").unlink(missing_ok=True)
    students = pl.read_csv(folder / "students.csv", infer_schema=False).head(spec.students)
    kept = set(students[NUMBER].to_list())
    shift = (lambda c: (pl.col(c).cast(pl.Int64) + renumber).cast(pl.Utf8)) if renumber else pl.col
    students.with_columns(shift(NUMBER).alias(NUMBER)).write_csv(folder / "students.csv")
    for star in ("SR.csv", "SM.csv", "SEL.csv"):
        rows = pl.read_csv(folder / star, infer_schema=False)
        rows = rows.filter(pl.col("StudentIdentifier").is_in(kept) | ~pl.col("StudentIdentifier").str.
                           contains(r"^\d+$")).with_columns(
            pl.when(pl.col("StudentIdentifier").is_in(kept)).then(shift("StudentIdentifier"))
            .otherwise(pl.col("StudentIdentifier")).alias("StudentIdentifier"))
        if star == "SR.csv" and keep_sr < 1:
            rows = rows.head(int(rows.height * keep_sr))
        rows.write_csv(folder / star)
    return folder


# ---- the order, as plain functions ---------------------------------------------------------------------------

def test_a_drop_is_dated_by_its_name_else_by_its_first_receipt():
    assert order.snapshot_date("belleville/2026-11-20", "%Y-%m-%d", None) == dt.date(2026, 11, 20)
    assert order.snapshot_date("belleville/export_2026-11-20_v2", "%Y-%m-%d", None) == dt.date(2026, 11, 20)
    assert order.snapshot_date("belleville/20261120", "%Y%m%d", None) == dt.date(2026, 11, 20)
    assert order.snapshot_date("belleville/11-20-2026", "%m-%d-%Y", None) == dt.date(2026, 11, 20)
    received = dt.datetime(2026, 11, 21, 23, 59)
    assert order.snapshot_date("belleville/resend", "%Y-%m-%d", received) == dt.date(2026, 11, 21)
    assert order.snapshot_date("belleville/2026-13-01", "%Y-%m-%d", received) == dt.date(2026, 11, 21)
    assert order.snapshot_date("belleville/resend", "%Y-%m-%d", None) is None


def test_only_a_strictly_newer_drop_supersedes_and_each_scope_counts():
    holding = {"roster": order.Held("roster", "b/2026-11-20", dt.date(2026, 11, 20)),
               "star SR 2026-2027": order.Held("star SR 2026-2027", "b/2026-11-20", dt.date(2026, 11, 20)),
               "star SM 2026-2027": order.Held("star SM 2026-2027", "b/2026-10-01", dt.date(2026, 10, 1))}
    older = dt.date(2026, 11, 1)
    assert [h.scope for h in order.newer(older, "b/2026-11-01", ["roster", "star SM 2026-2027"], holding)] == ["roster"]
    assert [h.scope for h in order.newer(older, "b/2026-11-01", ["star SR 2026-2027"], holding)] == [
        "star SR 2026-2027"]
    assert order.newer(older, "b/2026-11-01", ["star SM 2026-2027", "star SEL 2026-2027"], holding) == []
    # one date is one snapshot where receipts are not known: a re-sent correction of the newest applies; so does
    # the drop itself again
    assert order.newer(dt.date(2026, 11, 20), "b/2026-11-20b", ["roster"], holding) == []
    assert order.newer(dt.date(2026, 11, 20), "b/2026-11-20", ["roster"], holding) == []
    assert order.newer(None, "b/x", ["roster"], holding) == []


def test_of_two_drops_of_one_date_the_one_first_received_later_is_newer():
    """`2026-12-07_0800` and `2026-12-07_1400` are of one date: a late re-run of the morning drop (a retried
    receipt, a gate accepted after the afternoon's loaded) replaced the afternoon's data."""
    morning, afternoon = dt.datetime(2026, 12, 7, 8, 5), dt.datetime(2026, 12, 7, 14, 5)
    day = dt.date(2026, 12, 7)
    holding = {"roster": order.Held("roster", "b/2026-12-07_1400", day, received=afternoon)}
    assert [h.drop_key for h in order.newer(day, "b/2026-12-07_0800", ["roster"], holding, received=morning)] == [
        "b/2026-12-07_1400"]
    # the afternoon's correction of the morning's, and the afternoon's own re-run, apply
    held_morning = {"roster": order.Held("roster", "b/2026-12-07_0800", day, received=morning)}
    assert order.newer(day, "b/2026-12-07_1400", ["roster"], held_morning, received=afternoon) == []
    assert order.newer(day, "b/2026-12-07_1400", ["roster"], holding, received=afternoon) == []
    # a receipt not known on either side: one date is one snapshot, as before
    assert order.newer(day, "b/2026-12-07_0800", ["roster"], holding) == []


def test_a_drop_date_a_name_cannot_be_read_with_is_refused_by_the_registry(tmp_path):
    for n, (fmt, said) in enumerate((("%d.%m", "must name the year"), ("%Y-%b-%d", "%b cannot be read"))):
        folder = edited_registry(tmp_path, lambda entry, fmt=fmt: entry.update(drop_date=fmt), f"r{n}")
        with pytest.raises(RegistryError, match=said):
            load_district(folder / "belleville.yaml")
    assert load_district(PACKAGED_DISTRICTS_DIR / "belleville.yaml").drop_date == "%Y-%m-%d"


# ---- whole drops, on both backends ---------------------------------------------------------------------------



def _same(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> bool:
    return a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)


def _audit(settings, key: str) -> list[str]:
    engine = make_engine(settings.warehouse_url)
    try:
        rows = read_table(engine, ingestion_files, ingestion_files.c.DropId == key)
        return rows.sort("FileId")["Outcome"].to_list()
    finally:
        engine.dispose()


def _run(settings, key: str, instance: dg.DagsterInstance | None = None, **tags):
    return run_drop(settings, key, instance=instance, tags=tags or None)


@one_backend
def test_an_older_drop_never_replaces_newer_data_and_its_outcome_says_superseded(backend, monkeypatch, new_instance):
    old_folder = prepare_drop(backend, OLD)
    assert _run(backend, KEY[OLD]).outcome == "loaded"
    later_drop(backend, NEW)
    assert _run(backend, KEY[NEW]).outcome == "loaded"
    newest = held_rows(backend)
    assert set(newest["results"]["DropId"]) == {KEY[NEW]}

    # finding 3: the ten students the newer drop no longer lists stay, not current, with the drop that last listed them
    roster = newest["roster"]
    gone = roster.filter(~pl.col("IsCurrent"))
    assert roster.filter(pl.col("IsCurrent")).height == NEW.students and gone.height == OLD.students - NEW.students
    assert set(gone["DropId"]) == {KEY[OLD]}

    # finding 1: a replay of the older drop writes nothing and says so
    instance = new_instance()
    report = _run(backend, KEY[OLD], instance)
    assert (report.outcome, report.exit_code) == ("superseded", 4)
    assert report.verdict().startswith(
        f"SUPERSEDED: {KEY[OLD]}: drop_is_newest: superseded: the warehouse holds the newer {KEY[NEW]} (of "
        "2026-11-20) for roster, star SEL ")
    assert report.verdict().endswith("; this drop is of 2026-11-01; nothing was written")
    assert _same(held_rows(backend), newest)
    assert [r.tags[OUTCOME_TAG] for r in instance.get_runs()] == ["superseded"]
    logged = errors(backend).filter(pl.col("DropId") == KEY[OLD])
    assert logged.filter(pl.col("Stage") == "replace")["Reason"].to_list() == ["superseded"]
    assert _audit(backend, KEY[OLD])[-4:] == ["superseded"] * 4

    # a corrected old drop, re-sent (new bytes, a new version), is still the old snapshot
    set_column(old_folder / "SR.csv", "GradeEquivalent", "1.0")
    later = time.time() + 5
    os.utime(old_folder / "SR.csv", (later, later))
    resent = _run(backend, KEY[OLD])
    assert resent.outcome == "superseded" and resent.version != report.version
    # the replay alerted no one; the new version, arriving older than the district's data, is said once
    assert drop_alerts(report, "r1", "drop_job", False) == []
    assert [a.kind for a in drop_alerts(resent, "r2", "drop_job", False)] == ["superseded_drop"]
    assert _same(held_rows(backend), newest)

    # a person applies it on purpose, with a reason (docs/operations.md, "Apply an older drop on purpose")
    monkeypatch.setenv("MTSS_HOME", str(backend.home))
    monkeypatch.setenv("MTSS_WAREHOUSE_URL", backend.warehouse_url)
    monkeypatch.setenv("MTSS_PROD_DB_URL", backend.prod_db_url)
    reason = "the district withdrew its 2026-11-20 export"  # the command docs/operations.md gives, literally
    assert main(["run", KEY[OLD], "--accept", "drop_is_newest", "--reason", reason]) == 0
    applied = held_rows(backend)
    assert set(applied["results"]["DropId"]) == {KEY[OLD]}
    assert applied["roster"].filter(pl.col("IsCurrent")).height == OLD.students
    engine = make_engine(backend.warehouse_url)
    try:
        accepted = read_table(engine, gate_acceptances)
    finally:
        engine.dispose()
    assert accepted.select("DropId", "Gate", "Reason").rows() == [(KEY[OLD], "drop_is_newest", reason)]
    # and the newer drop, run again, is newer than what is held: it loads
    assert _run(backend, KEY[NEW]).outcome == "loaded"
    assert _same(held_rows(backend), newest)

    # a drop newer still: the acceptance was made against 2026-11-20, and a plain replay of the old drop is judged
    # afresh against 2026-11-25 (it replaced the district's newest data, saying OK, at every replay or backfill)
    later_drop(backend, dataclasses.replace(NEW, drop_name="2026-11-25"))
    assert _run(backend, "belleville/2026-11-25").outcome == "loaded"
    latest = held_rows(backend)
    assert dry_run(backend, KEY[OLD]).outcome == "superseded"
    replay = _run(backend, KEY[OLD])
    assert replay.outcome == "superseded" and "the newer belleville/2026-11-25 (of 2026-11-25)" in replay.verdict()
    assert _same(held_rows(backend), latest)


LEFT = "roster, star SM 2026-2027, star SR 2026-2027"
PART_NOTE = f"{LEFT} left to newer drops (the newer {KEY[NEW]} holds {LEFT})"


def _newer_loaded_older_with_last_year(settings) -> dict[str, pl.DataFrame]:
    """The newer drop loaded; the older one holds last school year's SEL tests besides what the newer holds. Returns
    what the warehouse holds."""
    old_folder = prepare_drop(settings, OLD)
    later_drop(settings, NEW)
    last_year = pl.read_csv(old_folder / "SEL.csv", infer_schema=False).with_columns(
        pl.lit("2025-2026").alias("SchoolYear"), ("Y25-" + pl.col("AssessmentID")).alias("AssessmentID"))
    last_year.write_csv(old_folder / "SEL.csv")  # other tests than the newer drop's
    assert _run(settings, KEY[NEW]).outcome == "loaded"
    return held_rows(settings)


@one_backend
def test_an_older_drop_run_after_a_newer_one_loads_what_no_newer_drop_holds(backend):
    """A drop whose run was killed and replayed after a newer drop loaded (or one backfilled) was refused whole: what
    it alone held was lost (a review's case: MAP Growth's Fall term, which NWEA's Winter export no longer lists; here
    last school year's SEL tests). The scopes a newer drop holds stay the newer drop's; the rest loads."""
    newest = _newer_loaded_older_with_last_year(backend)
    planned = dry_run(backend, KEY[OLD])
    report = _run(backend, KEY[OLD])
    assert (report.outcome, report.exit_code) == ("loaded", 0)
    sel = report.written["dm_assessment_results"]
    assert sel > 0 and report.written["dm_student_roster"] == 0
    assert report.verdict() == f"OK: {KEY[OLD]}: 0 roster rows and {sel:,} results loaded, every file; superseded " \
                               f"in part: {PART_NOTE}"
    assert planned.outcome == "loaded" and planned.lines[-1] == (
        f"DRY RUN: {KEY[OLD]}: would load 0 roster rows and {sel:,} results; superseded in part: {PART_NOTE}; nothing "
        "written")
    held = held_rows(backend)
    assert held["roster"].equals(newest["roster"])  # the newer drop's roster stays
    def by_drop(results):
        return sorted(results.group_by("Subject", "SchoolYear", "DropId").len().rows())
    assert by_drop(held["results"]) == sorted([("SEL", "2025-2026", KEY[OLD], sel), *by_drop(newest["results"])])
    assert held["results"].filter(pl.col("DropId") == KEY[NEW]).equals(newest["results"])
    # the files of what was left whole to the newer drop: students.csv, SR.csv, SM.csv; SEL.csv loaded
    assert _audit(backend, KEY[OLD]) == ["superseded", "superseded", "superseded", "loaded"]
    logged = errors(backend).filter((pl.col("DropId") == KEY[OLD]) & (pl.col("Stage") == "replace"))
    assert logged["Reason"].to_list() == ["superseded_in_part"]
    # the newer drop, run again, keeps last year's tests: it holds none of that year
    assert _run(backend, KEY[NEW]).outcome == "loaded"
    assert held_rows(backend)["results"].filter(pl.col("DropId") == KEY[OLD]).height == sel


def test_a_run_stopped_after_loading_a_drop_in_part_says_what_it_loaded_and_left(tmp_path):
    """SIGTERM after the commit of a load that left a part to a newer drop: the run said FAILED as if nothing was
    written (the part left was not said before it stopped), and the error log never said what was left."""
    import re
    import signal
    import subprocess
    import sys
    from .conftest import make_settings
    home = make_settings(tmp_path / "mtss")
    _newer_loaded_older_with_last_year(home)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MTSS_")}, "MTSS_HOME": str(home.home),
           "MTSS_FAULT": "after_commit:sleep=60"}
    proc = subprocess.Popen([sys.executable, "-m", "belleville_mtss.cli", "run", KEY[OLD]], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:  # until the part it loads is committed
        if (held_rows(home)["results"]["DropId"] == KEY[OLD]).any():
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert re.match(rf"FAILED after loading: {KEY[OLD]}: 0 roster rows and [\d,]+ results loaded; then ",
                    out.strip().splitlines()[-1]), out[-400:]
    logged = errors(home).filter(pl.col("DropId") == KEY[OLD])
    assert "superseded_in_part" in logged["Reason"].to_list()


@pytest.mark.parametrize("runs, outcomes", [
    ((NEW, MIDDLE, OLD), ["loaded", "superseded", "superseded"]),
    ((MIDDLE, NEW, OLD), ["loaded", "loaded", "superseded"]),
], ids=["reverse", "middle-first"])
@one_backend
def test_a_backfill_in_any_order_leaves_the_newest_drops_load(backend, runs, outcomes):
    prepare_drop(backend, OLD)
    for spec in (MIDDLE, NEW):
        later_drop(backend, spec)
    reports = {spec: _run(backend, KEY[spec]) for spec in runs}
    assert [reports[spec].outcome for spec in runs] == outcomes
    held = held_rows(backend)
    current = held["roster"].filter(pl.col("IsCurrent"))
    assert current["StudentNumber"].to_list() == [str(210001 + i) for i in range(NEW.students)]
    assert set(current["DropId"]) == {KEY[NEW]} and set(held["results"]["DropId"]) == {KEY[NEW]}
    assert held["results"].height == reports[NEW].written["dm_assessment_results"]


def _refuse(settings, table: str, event: str) -> None:
    """A real fault: the database refuses every `event` on `table` (a trigger), as a full disk or a revoked
    grant would."""
    engine = make_engine(settings.warehouse_url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql(f'CREATE TRIGGER refuse_{event} BEFORE {event} ON "{table}" '
                                     "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
            else:
                conn.exec_driver_sql("CREATE OR REPLACE FUNCTION dm.refuse() RETURNS trigger AS "
                                     "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql")
                conn.exec_driver_sql(f'CREATE TRIGGER refuse_{event} BEFORE {event} ON dm."{table}" '
                                     "FOR EACH ROW EXECUTE FUNCTION dm.refuse()")
    finally:
        engine.dispose()


@pytest.mark.parametrize("table, event", [("AssessmentResults", "INSERT"), ("IngestionFiles", "UPDATE")],
                         ids=["results-insert-fails", "audit-update-fails"])
def test_a_drops_roster_results_and_audit_commit_together_or_not_at_all(backend, table, event):
    prepare_drop(backend, OLD)
    assert _run(backend, KEY[OLD]).outcome == "loaded"
    before = held_rows(backend)
    later_drop(backend, NEW)
    _refuse(backend, table, event)
    report = _run(backend, KEY[NEW])
    assert report.outcome == "failed"
    assert report.verdict().startswith(f"FAILED: {KEY[NEW]}: loading the drop failed and was rolled back")
    assert _same(held_rows(backend), before)  # neither the roster nor the results of the newer drop
    assert report.written == {} and "(nothing written: the warehouse was not touched)" in report.render()
    assert "loaded" not in _audit(backend, KEY[NEW])


# ---- finding 4: identity churn and shrinking results -----------------------------------------------------------

def _evidence(**kw):
    from belleville_mtss.lib.checks import Evidence
    return Evidence(load_district(PACKAGED_DISTRICTS_DIR / "belleville.yaml"), "belleville/2026-11-20", **kw)


def test_churn_counts_the_current_roster_numbers_absent_from_the_new_roster():
    from belleville_mtss.lib.checks import student_number_churn
    current = {str(n) for n in range(100)}
    numbers = pl.Series([str(n) for n in range(200)])  # this drop's roster: a column, as the core hands it
    assert student_number_churn(_evidence(current_numbers=current, roster_numbers=numbers[50:])
                                ).passed  # 50% absent: at the limit
    failed = student_number_churn(_evidence(current_numbers=current, roster_numbers=numbers[51:]))
    assert not failed.passed and failed.figure.startswith("51.0% of the 100 student numbers")
    assert student_number_churn(_evidence(current_numbers=set(), roster_numbers=numbers[:1])).passed  # a first roster
    assert student_number_churn(_evidence(current_numbers=current, roster_numbers=None)).passed  # no roster loaded


_SCOPES = st.sampled_from([("star", "SR", "2026-2027"), ("star", "SR", "2025-2026"), ("star", "SM", "2026-2027"),
                           ("iready", "Reading", None), ("star", "SR", None)])


@settings(max_examples=100, deadline=None)
@given(st.lists(_SCOPES, max_size=40))
def test_a_drops_rows_per_scope_are_each_rows_scope_counted(rows):
    # runs of a scope, scopes back again after others, a missing school year: each row counted under its scope
    frame = pl.DataFrame(rows, schema={"Assessment": pl.Utf8, "Subject": pl.Utf8, "SchoolYear": pl.Utf8}, orient="row")
    counted = {}
    for scope in rows:
        counted[order.label(*scope)] = counted.get(order.label(*scope), 0) + 1
    assert order.rows_per_scope(frame) == counted


def test_shrink_compares_each_scope_with_what_the_warehouse_holds_for_it():
    from belleville_mtss.lib.checks import results_shrink
    holding = {"star SR 2026-2027": order.Held("star SR 2026-2027", "b/x", None, 1000),
               "star SM 2026-2027": order.Held("star SM 2026-2027", "b/x", None, 1000)}
    assert results_shrink(_evidence(holding=holding, results_rows={"star SR 2026-2027": 750,
                                                                   "star SEL 2026-2027": 5})).passed
    shrunk = results_shrink(_evidence(holding=holding, results_rows={"star SR 2026-2027": 749,
                                                                     "star SM 2026-2027": 1000}))
    assert not shrunk.passed and shrunk.figure == "star SR 2026-2027: 749 tests against 1,000 held (-25.1%)"


@one_backend
@pytest.mark.parametrize("case", ["renumbered", "results-filtered"])
def test_a_renumbered_roster_or_a_filtered_results_file_is_blocked_until_accepted(backend, monkeypatch, case):
    prepare_drop(backend, OLD)
    assert _run(backend, KEY[OLD]).outcome == "loaded"
    before = held_rows(backend)
    same_size = dataclasses.replace(NEW, students=OLD.students)
    if case == "renumbered":
        check = "student_number_churn"
        later_drop(backend, same_size, renumber=300000)
    else:
        check = "results_shrink"
        later_drop(backend, same_size, keep_sr=0.4)
    report = _run(backend, KEY[NEW])
    assert report.outcome == "blocked" and report.checks["roster_size"], report.render()
    assert report.verdict().startswith(f"BLOCKED: {KEY[NEW]}: {check}: gate {check}: ")
    assert _same(held_rows(backend), before)
    assert check in set(errors(backend).filter(pl.col("Stage") == "replace")["Reason"])
    # the remedy, as docs/operations.md gives it
    monkeypatch.setenv("MTSS_HOME", str(backend.home))
    monkeypatch.setenv("MTSS_WAREHOUSE_URL", backend.warehouse_url)
    monkeypatch.setenv("MTSS_PROD_DB_URL", backend.prod_db_url)
    reason = "the district renumbered its students" if case == "renumbered" else "the district sent one school"
    assert main(["run", KEY[NEW], "--accept", check, "--reason", reason]) == 0
    assert set(held_rows(backend)["results"].filter(pl.col("Subject") == "SR")["DropId"]) == {KEY[NEW]}


# ---- finding 9: registry edits checked against the warehouse -----------------------------------------------

def test_a_review_date_still_to_come_is_refused():
    from belleville_mtss.lib.district.crosswalk import ferpa_review_problem
    entry = load_district(PACKAGED_DISTRICTS_DIR / "belleville.yaml")
    future = entry.model_copy(update={"verification": entry.verification.model_copy(
        update={"ferpa_review_on": dt.date(2062, 1, 1)})})
    problem = ferpa_review_problem(future, dt.date(2026, 12, 2), 365)
    assert problem == ("belleville: the FERPA review is recorded on 2062-01-01, a date still to come; record the "
                       "date the review was actually done")
    assert ferpa_review_problem(entry.model_copy(update={"verification": entry.verification.model_copy(
        update={"ferpa_review_on": dt.date(2026, 12, 2)})}), dt.date(2026, 12, 2), 365) is None


def test_rows_under_an_old_account_info_id_block_the_district_until_moved(backend, monkeypatch, capsys):
    prepare_drop(backend, OLD)
    assert _run(backend, KEY[OLD]).outcome == "loaded"
    engine = make_engine(backend.warehouse_url)
    try:  # the registry's account_info_id was corrected from 107000 to 107873 after this load
        with engine.begin() as conn:
            for table in (student_roster, assessment_results):
                conn.execute(table.update().values(AccountInfoId=107000))
    finally:
        engine.dispose()
    later_drop(backend, NEW)
    report = _run(backend, KEY[NEW])
    assert report.outcome == "blocked"
    assert report.verdict().startswith(f"BLOCKED: {KEY[NEW]}: account_info_id_unchanged: the warehouse holds "
                                       "belleville's drops' ")
    assert report.verdict().endswith("row(s) under AccountInfoId 107000; the registry says 107873")
    assert held_rows(backend)["roster"]["AccountInfoId"].unique().to_list() == [107000]  # no second copy

    monkeypatch.setenv("MTSS_HOME", str(backend.home))
    monkeypatch.setenv("MTSS_WAREHOUSE_URL", backend.warehouse_url)
    monkeypatch.setenv("MTSS_PROD_DB_URL", backend.prod_db_url)
    assert main(["districts", "check", "belleville"]) == 1
    assert "belleville-mtss warehouse rekey belleville --from 107000" in capsys.readouterr().out
    assert main(["warehouse", "rekey", "belleville", "--from", "107873"]) == 2  # the registry's own id: refused
    assert capsys.readouterr().err.strip() == (
        "belleville-mtss: error: belleville's rows are under AccountInfoId 107873 already, the registry's: --from "
        "names the id they were loaded under before the registry changed")
    assert main(["warehouse", "rekey", "belleville", "--from", "107000"]) == 0  # the remedy, literally
    assert _run(backend, KEY[NEW]).outcome == "loaded"
    assert held_rows(backend)["roster"]["AccountInfoId"].unique().to_list() == [107873]


# ---- finding 8: a file rewritten while it is received --------------------------------------------------------

class RewrittenWhileRead(LocalDropSource):
    """A real drop folder whose SR.csv is rewritten in place after each of its first `times` reads: the same size,
    the mtime put back, as `sftp put -p` leaves it."""

    def __init__(self, root, times: int):
        super().__init__(root)
        self.times, self.reads, self.opened = times, 0, []

    @contextlib.contextmanager
    def open(self, folder, drop, file):
        self.opened.append(file.name)
        with super().open(folder, drop, file) as fh:
            yield fh
        if file.name == "SR.csv" and self.reads < self.times:
            self.reads += 1
            path = self.root / folder / drop.name / file.name
            st, data = path.stat(), bytearray(path.read_bytes())
            data[-2] = ord("7") if data[-2] != ord("7") else ord("8")  # a digit of the last row
            path.write_bytes(bytes(data))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("settled", [False, True], ids=["just-written", "settled"])
@pytest.mark.parametrize("times", [1, 10], ids=["rewritten-once", "still-being-rewritten"])
def test_a_file_whose_bytes_change_while_received_is_never_staged_torn(settings, tmp_path, times, settled):
    """Settled (its last change over a second old): the file's stamp, the same after the read as before, is the
    check, and only its change time tells this rewrite. Just written: the file is read a second time."""
    prepare_drop(settings, OLD)
    if settled:
        time.sleep(drops.SETTLED_NS / 1e9 + 0.1)
    source = RewrittenWhileRead(settings.drop_dir, times)
    (drop,) = [d for d in source.list_drops("belleville", "belleville") if d.key == KEY[OLD]]
    staging, key = tmp_path / "staging" / "belleville" / OLD.drop_name, parse_key(new_key())
    sr = settings.drop_dir / "belleville" / OLD.drop_name / "SR.csv"
    if not settled:  # just written: its change time now, right before the receipt (not when the drop was laid out)
        st = sr.stat()
        os.utime(sr, ns=(st.st_atime_ns, st.st_mtime_ns))
    if times == 1:
        staged = {f.name: f for f in receive(source, "belleville", drop, staging, key, sleep=lambda s: None)}
        assert staged["SR.csv"].sha256 == sha256_of(sr)  # the bytes the server holds now, whole
        assert decrypt_bytes(key, staging / "SR.csv", sealed=bytes.fromhex(staged["SR.csv"].sha256)) == sr.read_bytes()
        # settled: read, its stamp changed, read again (just rewritten now: no stamp) and twice more; else 2 + 2
        assert source.opened.count("SR.csv") == (3 if settled else 4)
        return
    with pytest.raises(DropRefused) as refused:
        receive(source, "belleville", drop, staging, key, sleep=lambda s: None)
    assert refused.value.reason == "changed_during_receipt"
    assert refused.value.message.startswith("'SR.csv': its bytes changed while it was received, 3 times")
    assert not staging.exists()  # nothing staged: a replay cannot reuse a torn copy


@pytest.mark.parametrize("settled", [False, True], ids=["just-written", "settled"])
def test_a_local_file_settled_is_read_once_one_just_written_twice(settings, tmp_path, settled):
    """A file last changed over a second ago is read once: its inode, size and times to the nanosecond, the same
    after the read as before, prove no byte changed. One changed just now is read twice and the hashes compared:
    a write in the same tick of the kernel's coarse clock could keep its stamp."""
    prepare_drop(settings, OLD)
    if settled:
        time.sleep(drops.SETTLED_NS / 1e9 + 0.1)
    source = RewrittenWhileRead(settings.drop_dir, times=0)  # never rewritten: it counts the opens
    (drop,) = [d for d in source.list_drops("belleville", "belleville") if d.key == KEY[OLD]]
    staging, key = tmp_path / "staging" / "belleville" / OLD.drop_name, parse_key(new_key())
    staged = receive(source, "belleville", drop, staging, key)
    folder = settings.drop_dir / "belleville" / OLD.drop_name
    assert {f.name: f.sha256 for f in staged} == {f.name: sha256_of(folder / f.name) for f in drop.files}
    assert sorted(source.opened) == sorted([f.name for f in drop.files] * (1 if settled else 2))


def test_a_drop_is_never_decrypted_at_its_receipt_and_an_incomplete_staged_copy_is_not_replayed(settings, tmp_path,
                                                                                                 monkeypatch):
    """A run of a drop staged before reads the server's bytes (a copy it keeps is opened, its last chunk only:
    the test after next); a replay (the server no longer has the drop) takes the staged copy as its manifest lists
    it, each file checked as it is read (the next test): neither decrypts a file whole."""
    prepare_drop(settings, OLD)
    source = LocalDropSource(settings.drop_dir)
    staging, key = tmp_path / "staging" / "belleville" / OLD.drop_name, parse_key(new_key())
    decrypted = []
    real = drops.decrypt_bytes  # the real decryption, each call counted
    monkeypatch.setattr(drops, "decrypt_bytes",
                        lambda k, path, *rest, **kw: decrypted.append(path.name) or real(k, path, *rest, **kw))

    def again():
        return receive_or_replay(source, "belleville", "belleville", OLD.drop_name, staging, key)

    first = again()
    assert not first.replayed and not again().replayed  # staged already, received again from the server
    shutil.rmtree(settings.drop_dir / "belleville" / OLD.drop_name)
    replayed = again()
    assert replayed.replayed and replayed.files == first.files and decrypted == []
    (staging / "SM.csv").unlink()
    with pytest.raises(LookupError, match="no complete staged copy"):
        again()


def test_a_copy_staged_under_a_rotated_key_or_cut_short_is_replaced_when_the_drop_is_received_again(settings,
                                                                                                    tmp_path):
    """docs/operations.md "Rotate the staging key": the next run of a drop the server still has receives it again,
    and the copy it receives replaces one that no longer opens (the same names, sizes and checksums alone kept the
    old copy, which no read could decrypt again). A copy that opens stays where it is."""
    from belleville_mtss.lib.receive.drops import read_staged
    prepare_drop(settings, OLD)
    source, old, new = LocalDropSource(settings.drop_dir), parse_key(new_key()), parse_key(new_key())
    staging = tmp_path / "staging" / "belleville" / OLD.drop_name
    sr = settings.drop_dir / "belleville" / OLD.drop_name / "SR.csv"

    def received(key):
        got = receive_or_replay(source, "belleville", "belleville", OLD.drop_name, staging, key)
        assert not got.replayed
        return {f.name: f for f in got.files}["SR.csv"], (staging / "SR.csv").stat().st_ino

    _, first = received(old)
    assert received(old)[1] == first  # the same bytes, opening with the key: kept in place
    staged, rotated = received(new)
    assert rotated != first and read_staged(staging, staged, new) == sr.read_bytes()
    (staging / "SR.csv").write_bytes((staging / "SR.csv").read_bytes()[:-5])  # cut short at rest
    staged, mended = received(new)
    assert mended != rotated and read_staged(staging, staged, new) == sr.read_bytes()


def test_a_replay_decrypts_no_more_than_a_run_from_the_server_and_a_damaged_file_loads_nothing(settings, monkeypatch):
    """A replay costs no decryption a run from the server does not (the check is the read); a staged file altered
    since its receipt fails the step that reads the drop, whole: an error row names the file, nothing is loaded."""
    prepare_drop(settings, OLD)
    decrypted: list[str] = []
    real = drops.decrypt_bytes
    monkeypatch.setattr(drops, "decrypt_bytes",
                        lambda k, path, *rest, **kw: decrypted.append(path.name) or real(k, path, *rest, **kw))
    assert _run(settings, KEY[OLD]).outcome == "loaded"
    from_server, decrypted[:] = sorted(decrypted), []
    shutil.rmtree(settings.drop_dir / "belleville" / OLD.drop_name)  # the server no longer has it
    replay = _run(settings, KEY[OLD])
    assert replay.outcome == "loaded" and replay.version
    assert sorted(decrypted) == from_server and set(from_server) >= {"students.csv", "SR.csv", "SM.csv", "SEL.csv"}
    held = held_rows(settings)

    (staged,) = settings.home.glob(f"staging/belleville/{OLD.drop_name}/SR.csv")
    data = bytearray(staged.read_bytes())
    data[len(data) // 2] ^= 1
    staged.write_bytes(bytes(data))
    damaged = _run(settings, KEY[OLD])
    assert damaged.outcome == "failed" and set(damaged.failures) == {"read_drop"}
    assert "the staged copy of SR.csv is unusable" in damaged.failures["read_drop"]
    assert damaged.source_rows == {}  # no file of the drop was read into a frame the run kept
    assert _same(held_rows(settings), held)
    logged = errors(settings).filter((pl.col("DropId") == KEY[OLD]) & (pl.col("Stage") == "ingest"))
    assert logged.select("Reason", "FileName").rows() == [("staged_copy_unusable", "SR.csv")]
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    monkeypatch.setenv("MTSS_WAREHOUSE_URL", settings.warehouse_url)
    monkeypatch.setenv("MTSS_PROD_DB_URL", settings.prod_db_url)
    found = dry_run(load_settings(), KEY[OLD])  # the dry run reads the same copy, alike
    assert found.exit_code == 1 and found.lines == [
        f"DRY RUN: {KEY[OLD]}: cannot run: the staged copy of drop {KEY[OLD]} is unusable (SR.csv: cannot be decrypted "
        "(wrong MTSS_STAGING_KEY, or altered)); receive it again"]


def test_a_staged_copy_is_checked_by_decrypting_it_and_one_staged_before_by_hashing_it(settings, tmp_path,
                                                                                       monkeypatch):
    """The receipt seals each file's SHA-256 into its staged copy: reading it back decrypts it once and hashes
    nothing, and no other checksum opens it. A copy staged before checksums were sealed (no checksum in it) is
    still read, hashed as it is decrypted, and refused when its bytes are not the ones recorded."""
    from belleville_mtss.lib.receive.drops import read_staged
    from belleville_mtss.lib.receive.vault import VaultError, encrypt_file
    prepare_drop(settings, OLD)
    source = LocalDropSource(settings.drop_dir)
    (drop,) = [d for d in source.list_drops("belleville", "belleville") if d.key == KEY[OLD]]
    staging, key = tmp_path / "staging" / "belleville" / OLD.drop_name, parse_key(new_key())
    sr = {f.name: f for f in receive(source, "belleville", drop, staging, key)}["SR.csv"]
    original = settings.drop_dir / "belleville" / OLD.drop_name / "SR.csv"
    hashed, real = [], drops.hashlib.sha256
    monkeypatch.setattr(drops.hashlib, "sha256", lambda *a: hashed.append(1) or real(*a))
    assert read_staged(staging, sr, key) == original.read_bytes() and hashed == []
    other = dataclasses.replace(sr, sha256=real(b"another file").hexdigest())
    with pytest.raises(VaultError, match="cannot be decrypted"):
        read_staged(staging, other, key)
    encrypt_file(key, original, staging / "SR.csv")  # as staged before: nothing sealed
    hashed.clear()
    assert read_staged(staging, sr, key) == original.read_bytes() and hashed == [1]
    with pytest.raises(VaultError, match="does not match its recorded SHA-256"):
        read_staged(staging, other, key)
    (staging / "SR.csv").unlink()  # a copy gone: the same one error, naming the file and never the path
    with pytest.raises(VaultError, match=r"^SR\.csv: the staged copy cannot be read \(No such file or directory\)$"):
        read_staged(staging, sr, key)


def test_a_read_of_a_staged_copy_a_later_receipt_replaced_says_so(settings, tmp_path):
    """A receipt whose staged copy a later receipt of the drop replaced, with other bytes, before its files were read
    fails its read saying so (a review saw it say the copy could not be decrypted, "wrong MTSS_STAGING_KEY, or
    altered", which hid the cause); a copy altered at rest under the receipt that staged it still says that."""
    from types import SimpleNamespace
    from belleville_mtss.defs.read import Unusable, _read
    from belleville_mtss.lib.receive.drops import replaced, why_unreadable
    from belleville_mtss.lib.receive.vault import VaultError
    from belleville_mtss.lib.sources import FILES
    prepare_drop(settings, OLD)
    source, key = LocalDropSource(settings.drop_dir), parse_key(new_key())
    staging = tmp_path / "staging" / "belleville" / OLD.drop_name
    entry = load_district(PACKAGED_DISTRICTS_DIR / "belleville.yaml")
    kind = next(k for k in FILES if k.asset == "star_reading")
    server = SimpleNamespace(vault_key=lambda: key, max_file_rows=drops.Limits.max_file_rows)

    def read(received):
        return _read(kind, entry, server, received, kind.found_in(received.files, entry.file_patterns[kind.asset]),
                     True)

    first = receive_or_replay(source, "belleville", "belleville", OLD.drop_name, staging, key)
    assert read(first)[2][0].rows > 0 and not replaced(first)
    sr = settings.drop_dir / "belleville" / OLD.drop_name / "SR.csv"
    set_column(sr, "GradeEquivalent", "1.0")  # corrected, and received again before the first receipt's read
    later = time.time() + 5
    os.utime(sr, (later, later))
    second = receive_or_replay(source, "belleville", "belleville", OLD.drop_name, staging, key)
    assert replaced(first) and not replaced(second)
    # what the run's read, link review's and the dry run's say of a staged file they cannot read
    assert why_unreadable(first, VaultError("SR.csv: cannot be decrypted")) == ("replaced by a later receipt of the "
                                                                                "drop, with other bytes")
    assert why_unreadable(second, VaultError("SR.csv: cannot be decrypted")) == "SR.csv: cannot be decrypted"
    with pytest.raises(Unusable, match=r"the staged copy of SR\.csv is unusable \(replaced by a later receipt of the "
                                       r"drop, with other bytes\); nothing of the drop is loaded"):
        read(first)
    data = bytearray((staging / "SR.csv").read_bytes())
    data[len(data) // 2] ^= 1  # altered at rest, under the receipt that staged it
    (staging / "SR.csv").write_bytes(bytes(data))
    with pytest.raises(Unusable, match=r"wrong MTSS_STAGING_KEY, or altered"):
        read(second)


def test_a_drop_refused_because_its_bytes_changed_is_requested_again_a_few_times(settings, new_instance):
    """The same version again: a rewrite that kept size and mtime leaves the listing, so the version, as it was."""
    from belleville_mtss.defs.sensors import RECEIPT_RETRIES
    from belleville_mtss.lib.load.errors import ErrorRecord, record_errors
    from .helpers import tick

    prepare_drop(settings, OLD)
    instance = new_instance()
    first = tick(settings, instance)
    [request] = first.run_requests
    assert request.run_key.startswith(f"{KEY[OLD]}@")
    cursor, keys = first.cursor, []
    engine = make_engine(settings.warehouse_url)
    try:
        for n in range(1, RECEIPT_RETRIES + 2):  # what received_drop records for each refused run
            record_errors(engine, [ErrorRecord("receive", "changed_during_receipt", "'SR.csv': its bytes changed "
                                               "while it was received, 3 times", "SR.csv")],
                          district_id=107873, drop_id=KEY[OLD], run_id=f"run{n}")
            result = tick(settings, instance, cursor)
            cursor = result.cursor
            keys.append([r.run_key for r in result.run_requests or []])
            assert tick(settings, instance, cursor).run_requests in (None, [])  # once per refusal
    finally:
        engine.dispose()
    assert keys == [[f"{request.run_key}#again{n}"] for n in range(1, RECEIPT_RETRIES + 1)] + [[]]


def test_a_corrected_version_refused_as_changed_is_asked_again_though_an_earlier_one_used_its_retries(
        settings, new_instance):
    """The retries are each version's: once an earlier version had all its requests again, a correction sent under
    the same name and refused `changed_during_receipt` was never requested again, though its refusal says it will
    be (the count was the drop's, over every version)."""
    from belleville_mtss.defs.sensors import RECEIPT_RETRIES
    from belleville_mtss.lib.load.errors import ErrorRecord, record_errors
    from .helpers import tick

    drop = prepare_drop(settings, OLD)
    instance = new_instance()
    result = tick(settings, instance)
    engine = make_engine(settings.warehouse_url)

    def refused(run: str) -> list[str]:
        record_errors(engine, [ErrorRecord("receive", "changed_during_receipt", "'SR.csv': its bytes changed while "
                                           "it was received, 3 times", "SR.csv")],
                      district_id=107873, drop_id=KEY[OLD], run_id=run)
        nonlocal result
        result = tick(settings, instance, result.cursor)
        return [r.run_key.rpartition("#")[2] for r in result.run_requests or []]

    try:
        assert [refused(f"v1-{n}") for n in range(1, RECEIPT_RETRIES + 2)] == [
            [f"again{n}"] for n in range(1, RECEIPT_RETRIES + 1)] + [[]]
        sr = drop / "SR.csv"
        sr.write_bytes(sr.read_bytes() + b"\n")  # the correction: a new version of the drop
        result = tick(settings, instance, result.cursor)
        [request] = result.run_requests
        assert "#" not in request.run_key
        assert [refused(f"v2-{n}") for n in range(1, RECEIPT_RETRIES + 2)] == [
            [f"again{n}"] for n in range(1, RECEIPT_RETRIES + 1)] + [[]]
    finally:
        engine.dispose()


def test_a_correction_withdrawn_runs_the_version_put_back_again(settings, new_instance, tmp_path):
    """A drop corrected (version B), then the correction withdrawn, its first files put back with their times (`cp -p`,
    `rsync -a`): version A again. The sensor found A's old run and requested nothing (and its run key, used once,
    would never have run again): the warehouse kept B's scores."""
    from .helpers import tick

    drop = prepare_drop(settings, OLD)
    shutil.copy2(drop / "SR.csv", tmp_path / "SR.csv")  # version A's file, with its time
    instance = new_instance()

    def run_requested(cursor=None) -> tuple[str, str]:
        result = tick(settings, instance, cursor)
        [request] = result.run_requests
        instance.add_dynamic_partitions("drops", [request.partition_key])
        assert run_drop(settings, KEY[OLD], instance=instance, tags=request.tags).outcome == "loaded"
        return result.cursor, request.run_key

    def scores() -> list:
        return held_rows(settings)["results"].filter(pl.col("Subject") == "SR")["ScaledScore"].sort().to_list()

    cursor, first = run_requested()
    held = scores()
    set_column(drop / "SR.csv", "ScaledScore", "999")  # version B
    cursor, corrected = run_requested(cursor)
    assert scores() != held
    shutil.copy2(tmp_path / "SR.csv", drop / "SR.csv")  # A put back as it was
    cursor, again = run_requested(cursor)
    assert scores() == held and len({first, corrected, again}) == 3
    assert not tick(settings, instance, cursor).run_requests  # A is the last run now: once


def test_another_districts_rows_never_count_as_ours_even_when_our_key_holds_a_like_wildcard(tmp_path):
    from belleville_mtss.lib.load.warehouse import under_other_ids
    from belleville_mtss.lib.sample import migrate_sample_warehouse
    engine = make_engine(f"sqlite:///{tmp_path}/w.db")
    migrate_sample_warehouse(engine)
    try:
        with engine.begin() as conn:  # "a_c" as a LIKE pattern would match "abc"
            conn.execute(student_roster.insert(), [
                {"AccountInfoId": 1, "StudentNumber": "1", "StarTestCount": 0, "DropId": "abc/2026-11-01",
                 "LoadedAt": dt.datetime(2026, 11, 1)},
                {"AccountInfoId": 3, "StudentNumber": "1", "StarTestCount": 0, "DropId": "a_c/2026-11-01",
                 "LoadedAt": dt.datetime(2026, 11, 1)}])
        assert under_other_ids(engine, "a_c", 2) == {3: 1}
    finally:
        engine.dispose()


# ---- a drop dated in the future (a mistyped year) --------------------------------------------------------------

def test_a_drop_dated_too_far_ahead_orders_no_drop_out():
    today = dt.date(2026, 12, 4)
    typo = {"roster": order.Held("roster", "b/2062-11-20", dt.date(2062, 11, 20))}
    assert order.newer(dt.date(2026, 11, 20), "b/2026-11-20", ["roster"], typo, today, max_days_ahead=2) == []
    tomorrow = {"roster": order.Held("roster", "b/2026-12-06", dt.date(2026, 12, 6))}  # within the tolerance
    assert order.newer(dt.date(2026, 11, 20), "b/2026-11-20", ["roster"], tomorrow, today, 2) == [tomorrow["roster"]]
    assert order.too_far_ahead(dt.date(2026, 12, 7), today, 2) and not order.too_far_ahead(None, today, 2)


@pytest.mark.parametrize("name, held", [("2026-13-05", "'2026-13-05'"), ("export-2026-02-30", "'2026-02-30'"),
                                         ("2026-11-05", None), ("vendor-job", None), ("2026-13-05-2026-11-05", None),
                                         # a date written another way than the registry's: it dated the drop by
                                         # its receipt, over newer data
                                         ("2026-11-5", "'2026-11-5'"), ("2026-1-5", "'2026-1-5'"),
                                         ("11-05-2026", "'11-05-2026'"), ("export_20261105", "'20261105'"),
                                         ("2026_11_05", "'2026_11_05'"), ("1_2_2026", "'1_2_2026'"),
                                         # digits that are no date as people write one, nor a real day: a
                                         # school year and a number (held, they were never loaded again)
                                         ("batch-12345678", None), ("v1.2.10", None), ("job-2026", None),
                                         ("map_2025-26_1", None), ("star_2025-26 2", None), ("2026-13-5", None)])
def test_a_drop_named_with_a_date_that_is_none_is_held(name, held):
    """A month typed 13 (or a 30th of February) is no date, so the drop was dated by the day it came: newer than
    the drops it predates, whose data it then replaced, and every real drop before that day was superseded. It is
    held now, as a year typed far ahead is; a name with a real date, or with none written, is not."""
    from belleville_mtss.lib.checks import Evidence, drop_date_plausible
    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    assert order.misdated(name, entry.drop_date) == (held and held.strip("'"))
    outcome = drop_date_plausible(Evidence(entry, f"belleville/{name}", today=dt.date(2026, 12, 6)))
    assert outcome.passed == (held is None)
    if held:
        assert [(r.reason, r.message) for r in outcome.records] == [("impossible_drop_date", (
            f"the drop's name writes {held} where its date goes (%Y-%m-%d), and that is no date in it: held, "
            "nothing written"))]


@one_backend
def test_a_drop_dated_in_the_future_is_held_and_the_next_real_drop_loads(backend):
    typo = dataclasses.replace(SMALL, drop_name="2062-11-20")  # a typo for 2026-11-20
    prepare_drop(backend, typo)
    report = _run(backend, "belleville/2062-11-20")
    assert report.outcome == "blocked" and "drop_date_plausible" in report.verdict()
    assert "days after today" in report.verdict() and "MTSS_MAX_DAYS_AHEAD" in report.verdict()
    assert held_rows(backend)["roster"].is_empty() and held_rows(backend)["results"].is_empty()  # nothing written
    logged = errors(backend).filter(pl.col("DropId") == "belleville/2062-11-20")
    assert logged.filter(pl.col("Stage") == "district")["Reason"].to_list() == ["future_drop"]
    assert set(_audit(backend, "belleville/2062-11-20")) == {"blocked"}
    # the real drop, renamed as the remedy says, loads; and so does the one after it
    shutil.copytree(backend.drop_dir / "belleville" / "2062-11-20", backend.drop_dir / "belleville" / "2026-11-01")
    assert _run(backend, KEY[OLD]).outcome == "loaded"
    later_drop(backend, NEW)
    assert _run(backend, KEY[NEW]).outcome == "loaded"
    assert set(held_rows(backend)["results"]["DropId"]) == {KEY[NEW]}


# ---- a correction made in place, its size and modification time kept --------------------------------------------

def _rewrite_one_score_in_place(path) -> tuple[str, int, int]:
    """One ScaledScore of SR.csv changed by one, the file's size and mtime kept; returns the test's AssessmentID,
    the old score and the new one."""
    st = path.stat()
    lines = path.read_bytes().split(b"\n")
    header = next(__import__("csv").reader([lines[0].decode()]))
    score, test = header.index("ScaledScore"), header.index("AssessmentID")
    for i, line in enumerate(lines[1:], start=1):
        cells = line.split(b",")
        if len(cells) == len(header) and cells[score].isdigit() and len(cells[score]) == 3 and \
                cells[score][-1:] not in (b"0", b"9"):
            old = int(cells[score])
            cells[score] = str(old + 1).encode()
            lines[i] = b",".join(cells)
            path.write_bytes(b"\n".join(lines))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
            assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
            return cells[test].decode().strip('"'), old, old + 1
    raise AssertionError("no score to change")


@one_backend
def test_a_correction_in_place_with_size_and_mtime_kept_is_loaded_by_its_bytes(backend):
    drop = prepare_drop(backend, OLD)
    assert _run(backend, KEY[OLD]).outcome == "loaded"
    test_key, old, new = _rewrite_one_score_in_place(drop / "SR.csv")
    (drop / "drop.done").touch()  # the marker written again, as the convention asks
    assert _run(backend, KEY[OLD]).outcome == "loaded"
    results = held_rows(backend)["results"]
    assert results.filter(pl.col("TestKey") == test_key)["ScaledScore"].to_list() == [new]  # not the stale copy
    engine = make_engine(backend.warehouse_url)
    audit = read_table(engine, ingestion_files, ingestion_files.c.FileName == "SR.csv").sort("FileId")
    engine.dispose()
    assert audit["Sha256"][-1] == sha256_of(drop / "SR.csv") != audit["Sha256"][0]  # the hash of what was loaded


# ---- a marker written while a file is still being written -------------------------------------------------------

@one_backend
def test_a_file_still_written_behind_its_marker_is_not_loaded_and_its_complete_version_is(backend, monkeypatch):
    import threading
    prepare_drop(backend, OLD)
    assert _run(backend, KEY[OLD]).outcome == "loaded"
    held = held_rows(backend)
    folder = later_drop(backend, NEW)
    complete = (folder / "SR.csv").read_bytes()
    lines = complete.split(b"\n")
    (folder / "SR.csv").write_bytes(b"\n".join(lines[: len(lines) * 3 // 4]) + b"\n")  # a quarter still to come
    (folder / "drop.done").touch()  # the sender's marker, written too early

    def sender_finishes():
        # once the receipt has read SR.csv (its staged copy complete under the receiving folder): then the sender
        # writes the rest, however long the run took to start
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(
                backend.staging_dir.glob(f"belleville/{RECEIVING_PREFIX}*/SR.csv")):
            time.sleep(0.01)
        (folder / "SR.csv").write_bytes(complete)

    monkeypatch.setenv("MTSS_FAULT", "after_receipt:sleep=1.5")  # every file read; the sender writes meanwhile
    writer = threading.Thread(target=sender_finishes)
    writer.start()
    report = _run(backend, KEY[NEW])
    writer.join()
    monkeypatch.delenv("MTSS_FAULT")
    assert report.outcome == "failed", report.render()
    assert _same(held_rows(backend), held)  # nothing of the partial file reached the warehouse, nothing was deleted
    logged = errors(backend).filter(pl.col("DropId") == KEY[NEW])
    assert logged.select("Stage", "Reason").rows() == [("receive", "changed_during_receipt"), ("run", "failed")]
    assert _run(backend, KEY[NEW]).outcome == "loaded"  # once it has settled: the complete file
    loaded = held_rows(backend)["results"].filter((pl.col("Subject") == "SR") & (pl.col("DropId") == KEY[NEW])).height
    assert loaded > len(lines) * 3 // 4  # more tests than the partial file held: the complete file's
