"""Bulk loads keep every value as it was: nulls, empty strings, quotes, commas, newlines, timestamps."""
import datetime as dt

import polars as pl
import pytest
import sqlalchemy as sa

from belleville_mtss.lib.checks import LOAD_CHECKS, load_checks
from belleville_mtss.lib.sample import migrate_sample_warehouse
from belleville_mtss.lib.load.warehouse import (
    assessment_results, ingestion_files, load_figures, make_engine, mark_files, read_table, receipt_of,
    record_received, replace_results, replace_roster, results_scopes, student_roster,
)

AWKWARD = [None, "", 'He said "hi"', "a,b", "line\nbreak", "Ünïcödé ’"]


def _frame() -> pl.DataFrame:
    n = len(AWKWARD)
    return pl.DataFrame({
        "AccountInfoId": [107873] * n, "Assessment": ["star"] * n, "Subject": ["SR"] * n,
        "TestKey": [f"t{i}" for i in range(n)],
        "StudentNumber": [f"00{i}" for i in range(n)], "SchoolYear": ["2026-2027"] * n,
        "CompletedAt": [dt.datetime(2026, 10, 1, 13, 5, 7, 123000)] * n, "Grade": AWKWARD,
        "ScaledScore": [None, 0, 1, 2, 3, 1400], "PercentileRank": [None] * n, "UnifiedScore": [900] * n,
        "BenchmarkCategory": list(reversed(AWKWARD)), "ScreeningWindow": ["Fall"] * n,
        "DropId": ["belleville/x"] * n, "LoadedAt": [dt.datetime(2026, 11, 28)] * n,
    }, schema_overrides={"ScaledScore": pl.Int32, "PercentileRank": pl.Int32})


def test_bulk_load_round_trips_awkward_values(engine):
    frame = _frame()
    assert replace_results(engine, 107873, frame) == frame.height
    back = read_table(engine, assessment_results).sort("TestKey")
    for col in ("StudentNumber", "Grade", "BenchmarkCategory", "ScaledScore", "PercentileRank"):
        assert back[col].to_list() == frame[col].to_list(), col
    assert back["CompletedAt"].to_list() == frame["CompletedAt"].to_list()


def test_replacing_a_scope_leaves_other_years_and_districts(engine):
    frame = _frame()
    replace_results(engine, 107873, frame)
    other_year = frame.with_columns(pl.lit("2025-2026").alias("SchoolYear"), pl.col("TestKey") + "-prior")
    replace_results(engine, 107873, other_year)
    other_district = frame.with_columns(pl.lit(999).alias("AccountInfoId"))
    replace_results(engine, 999, other_district)
    replace_results(engine, 107873, frame.head(2))  # a smaller re-send of 2026-2027
    back = read_table(engine, assessment_results)
    counts = dict(back.group_by("AccountInfoId", "SchoolYear").len().select(
        pl.concat_str(["AccountInfoId", "SchoolYear"], separator="/"), "len").iter_rows())
    assert counts == {"107873/2026-2027": 2, "107873/2025-2026": 6, "999/2026-2027": 6}


def test_a_term_export_replaces_only_its_terms_and_a_year_export_its_whole_year(engine):
    """NWEA's scheduled MAP Growth export holds the current term's tests only: its Winter drop deleted every Fall
    test of the school year. A MAP load replaces the terms it holds; Star's export is the year so far, so a Star
    load still replaces the year, a window it no longer lists included."""
    from belleville_mtss.lib.load import order
    frame = _frame()
    fall_winter = pl.concat([frame.with_columns(pl.lit("map_growth").alias("Assessment")),
                             frame.with_columns(pl.lit("map_growth").alias("Assessment"), pl.lit("Winter")
                                                .alias("ScreeningWindow"), pl.col("TestKey") + "-w")])
    replace_results(engine, 107873, fall_winter)
    replace_results(engine, 107873, frame)  # Star, Fall
    winter = fall_winter.filter(pl.col("ScreeningWindow") == "Winter").head(2)
    assert results_scopes(winter) == [("map_growth", "SR", "2026-2027", "Winter")]
    replace_results(engine, 107873, winter)
    star_winter = frame.head(1).with_columns(pl.lit("Winter").alias("ScreeningWindow"))
    assert results_scopes(star_winter) == [("star", "SR", "2026-2027", None)]
    replace_results(engine, 107873, star_winter)
    back = read_table(engine, assessment_results)
    assert dict(back.group_by("Assessment", "ScreeningWindow").len().select(
        pl.concat_str(["Assessment", "ScreeningWindow"], separator="/"), "len").iter_rows()) == {
        "map_growth/Fall": 6, "map_growth/Winter": 2, "star/Winter": 1}
    figures = load_figures(engine, assessment_results, 107873, "belleville/x", results_scopes(winter))
    assert figures["rows"] == 2  # read back: the term it replaced, not the Fall tests beside it
    assert load_figures(engine, assessment_results, 107873, "belleville/x", results_scopes(star_winter))["rows"] == 1
    # what the order and the shrink gate compare: the warehouse's scopes and the frame's, named alike
    with engine.connect() as conn:
        held = order.held(conn, 107873, "%Y-%m-%d")
    assert {s: h.rows for s, h in held.items()} == {"map_growth SR 2026-2027 Fall": 6,
                                                     "map_growth SR 2026-2027 Winter": 2, "star SR 2026-2027": 1}
    assert order.rows_per_scope(pl.concat([fall_winter, frame])) == {
        "map_growth SR 2026-2027 Fall": 6, "map_growth SR 2026-2027 Winter": 6, "star SR 2026-2027": 6}


def test_a_term_load_takes_its_tests_from_the_term_the_warehouse_held_them_under(engine):
    """A district that edits its term dates in MAP has NWEA reassign tests to terms: a Winter export listed tests the
    warehouse held under Fall, and the key (which holds no term) refused the load, and every load after it."""
    fall = _frame().with_columns(pl.lit("map_growth").alias("Assessment"), pl.lit("Mathematics").alias("Subject"))
    replace_results(engine, 107873, fall)
    moved = fall.head(2).with_columns(pl.lit("Winter").alias("ScreeningWindow"), pl.lit("belleville/y").alias("DropId"))
    assert replace_results(engine, 107873, moved) == 2
    back = read_table(engine, assessment_results)
    assert dict(back.group_by("ScreeningWindow").len().iter_rows()) == {"Fall": 4, "Winter": 2}
    assert set(back.filter(pl.col("ScreeningWindow") == "Winter")["TestKey"]) == {"t0", "t1"}


def test_a_school_year_load_takes_its_tests_from_the_year_the_warehouse_held_them_under(engine):
    """A district that edits its school-year dates in Renaissance has a late-June test counted in the next year: the
    year's replace left the old row, the key (which holds no year) refused the load, and every later load of the
    district failed with it."""
    june = _frame().with_columns(pl.lit("2025-2026").alias("SchoolYear"))  # Star
    replace_results(engine, 107873, june)
    moved = june.head(2).with_columns(pl.lit("2026-2027").alias("SchoolYear"), pl.lit("belleville/y").alias("DropId"))
    assert replace_results(engine, 107873, moved) == 2
    back = read_table(engine, assessment_results)
    assert dict(back.group_by("SchoolYear").len().iter_rows()) == {"2025-2026": june.height - 2, "2026-2027": 2}
    assert replace_results(engine, 107873, moved) == 2  # and the next load of that year


def test_load_checks_read_back_only_what_the_load_replaced(engine):
    frame = _frame()
    earlier = frame.with_columns(pl.lit("2025-2026").alias("SchoolYear"), pl.col("TestKey") + "-prior")
    replace_results(engine, 107873, earlier)
    other = frame.with_columns(pl.lit(999).alias("AccountInfoId"), pl.lit("riverton/x").alias("DropId"))
    replace_results(engine, 999, other)  # another district's drop
    replace_results(engine, 107873, frame)
    figures = load_figures(engine, assessment_results, 107873, "belleville/x", results_scopes(frame))
    assert figures == {"rows": frame.height, "duplicate_keys": 0, "other_account_rows": 0}
    assert all(c.passed for c in load_checks("dm.AssessmentResults", frame.height, figures, 107873))
    # the whole district, for a roster-like scope: both years count
    assert load_figures(engine, assessment_results, 107873, "belleville/x")["rows"] == 2 * frame.height


def test_a_load_of_no_results_replaces_nothing_and_passes_its_checks(engine):
    replace_results(engine, 107873, _frame())  # an earlier drop's results stay
    empty = _frame().clear()
    assert replace_results(engine, 107873, empty) == 0
    figures = load_figures(engine, assessment_results, 107873, "belleville/y", results_scopes(empty))
    assert figures == {"rows": 0, "duplicate_keys": 0, "other_account_rows": 0}
    assert all(c.passed for c in load_checks("dm.AssessmentResults", 0, figures, 107873))
    assert read_table(engine, assessment_results).height == _frame().height


def test_load_checks_fail_on_what_a_wrong_table_holds(engine):
    """A table recreated without its key (by another team, say) that ends up with a key twice, a row of this drop
    stamped with another district, and more rows than the frame: each check fails, with its error row."""
    import sqlalchemy as sa
    with engine.begin() as conn:
        assessment_results.drop(conn)
        keyless = sa.Table("AssessmentResults", sa.MetaData(), *(sa.Column(c.name, c.type) for c in assessment_results.c),
                           schema="dm")
        keyless.create(conn)
    frame = _frame()
    replace_results(engine, 107873, pl.concat([frame, frame.head(1)]))
    replace_results(engine, 999, frame.head(1).with_columns(pl.lit(999).alias("AccountInfoId")))
    figures = load_figures(engine, assessment_results, 107873, "belleville/x", results_scopes(frame))
    assert figures == {"rows": frame.height + 1, "duplicate_keys": 1, "other_account_rows": 1}
    outcomes = load_checks("dm.AssessmentResults", frame.height, figures, 107873)
    assert [c.name for c in outcomes if not c.passed] == list(LOAD_CHECKS)
    assert all(r.stage == "warehouse" and r.file_name == "dm.AssessmentResults" for c in outcomes for r in c.records)


def _roster(district: int, numbers: list[str], drop: str = "belleville/x") -> pl.DataFrame:
    n = len(numbers)
    return pl.DataFrame({
        "AccountInfoId": [district] * n, "StudentNumber": numbers, "FirstName": ["Ana"] * n, "LastName": [None] * n,
        "Email": [f"{s}@x.org" for s in numbers], "GradeLevel": ["K"] * n, "SchoolId": ["03"] * n,
        "ClassLinkUserId": [None] * n, "StarTestCount": list(range(n)), "DropId": [drop] * n,
        "LoadedAt": [dt.datetime(2026, 11, 28, 9, 30, 15, 250000)] * n,
        "ExtraFrameColumn": ["not a warehouse column"] * n,  # a frame column the table lacks is not loaded
    }, schema_overrides={"AccountInfoId": pl.Int32, "StarTestCount": pl.Int32, "LastName": pl.Utf8,
                         "ClassLinkUserId": pl.Utf8})


def test_the_roster_becomes_the_drops_for_its_district_only_and_a_student_no_longer_listed_stays_not_current(
        engine):
    assert replace_roster(engine, 107873, _roster(107873, ["003", "001", "002"])) == 3
    assert replace_roster(engine, 999, _roster(999, ["001"], "riverton/x")) == 1
    assert replace_roster(engine, 107873, _roster(107873, ["004", "001"], "belleville/y")) == 2
    back = read_table(engine, student_roster).sort("AccountInfoId", "StudentNumber")
    assert back.select("AccountInfoId", "StudentNumber", "DropId", "StarTestCount", "IsCurrent").rows() == [
        (999, "001", "riverton/x", 0, True), (107873, "001", "belleville/y", 1, True),
        (107873, "002", "belleville/x", 2, False), (107873, "003", "belleville/x", 0, False),
        (107873, "004", "belleville/y", 0, True)]
    expected = {**_roster(107873, ["004"], "belleville/y").drop("ExtraFrameColumn").row(0, named=True),
                "IsCurrent": True}
    assert back.filter(pl.col("StudentNumber") == "004").row(0, named=True) == expected
    # a student who comes back is current again, as the newest drop lists them
    replace_roster(engine, 107873, _roster(107873, ["002", "004", "001"], "belleville/z"))
    current = read_table(engine, student_roster, (student_roster.c.AccountInfoId == 107873)
                         & (student_roster.c.IsCurrent == sa.true()))
    assert sorted(current["StudentNumber"].to_list()) == ["001", "002", "004"]
    assert load_figures(engine, student_roster, 107873, "belleville/z")["rows"] == 3  # the history aside
    # an empty roster makes no one current (and only in its district); nobody is deleted
    assert replace_roster(engine, 107873, _roster(107873, [])) == 0
    after = read_table(engine, student_roster)
    assert after.filter(pl.col("IsCurrent"))["AccountInfoId"].to_list() == [999] and after.height == 5
    assert load_figures(engine, student_roster, 999, "riverton/x") == {
        "rows": 1, "duplicate_keys": 0, "other_account_rows": 0}


def test_a_load_that_breaks_the_key_leaves_the_table_as_it_was(engine):
    replace_roster(engine, 107873, _roster(107873, ["001", "002"]))
    with pytest.raises(Exception):
        replace_roster(engine, 107873, _roster(107873, ["005", "005"], "belleville/bad"))
    assert read_table(engine, student_roster)["StudentNumber"].sort().to_list() == ["001", "002"]


def test_results_scopes_are_each_subject_and_school_year_once():
    frame = pl.DataFrame({"Assessment": ["star"] * 4, "Subject": ["SR", "SM", "SR", "SR"],
                          "SchoolYear": ["2026-2027", "2026-2027", "2025-2026", "2026-2027"]})
    assert results_scopes(frame) == [("star", "SM", "2026-2027", None), ("star", "SR", "2025-2026", None),
                                     ("star", "SR", "2026-2027", None)]


def _file(name: str, content: bytes):
    import hashlib

    from belleville_mtss.lib.read.csvfile import FileInfo
    return FileInfo(name, name, len(content), hashlib.sha256(content).hexdigest())


def test_the_audit_finds_bytes_an_earlier_drop_of_the_district_brought(engine):
    first = [_file("students.csv", b"s1"), _file("SR.csv", b"r1")]
    assert record_received(engine, "belleville/d1", 107873, "v1", first, "run1") == {
        "students.csv": None, "SR.csv": None}
    # the same drop received again (a replay) is not its own duplicate; another district's bytes are not either
    assert record_received(engine, "belleville/d1", 107873, "v2", first, "run2") == {
        "students.csv": None, "SR.csv": None}
    record_received(engine, "riverton/r1", 555001, "v1", [_file("SM.csv", b"m1")], "run3")
    again = [_file("students.csv", b"s2"), _file("SR.csv", b"r1"), _file("SM.csv", b"m1")]
    assert record_received(engine, "belleville/d0", 107873, "v1", [_file("SR.csv", b"r1")], "run4") == {
        "SR.csv": "belleville/d1"}
    # the earliest drop by name is named
    assert record_received(engine, "belleville/d2", 107873, "v1", again, "run5") == {
        "students.csv": None, "SR.csv": "belleville/d0", "SM.csv": None}
    assert record_received(engine, "belleville/d3", 107873, "v1", [], "run6") == {}
    rows = read_table(engine, ingestion_files, ingestion_files.c.RunId == "run5").sort("FileName")
    assert rows.select("DropId", "DropVersion", "FileName", "DistrictId", "SizeBytes", "Outcome",
                       "DuplicateOf").rows() == [
        ("belleville/d2", "v1", "SM.csv", 107873, 2, "received", None),
        ("belleville/d2", "v1", "SR.csv", 107873, 2, "received", "belleville/d0"),
        ("belleville/d2", "v1", "students.csv", 107873, 2, "received", None)]
    assert rows["Sha256"].to_list() == [f.sha256 for f in sorted(again, key=lambda f: f.name)]
    assert (rows["ReceivedAt"] == rows["OutcomeAt"]).all()


def test_each_file_moves_from_received_to_its_outcome_once(engine):
    files = [_file("students.csv", b"s1"), _file("SR.csv", b"r1"), _file("SM.csv", b"m1")]
    record_received(engine, "belleville/d1", 107873, "v1", files, "run1")
    record_received(engine, "belleville/d2", 107873, "v1", [_file("SR.csv", b"r1"), _file("SM.csv", b"m2")], "run2")
    record_received(engine, "belleville/d2", 107873, "v2", [_file("SR.csv", b"r1")], "run3")  # a later run

    def outcomes(run: str) -> dict[str, str]:
        return dict(read_table(engine, ingestion_files, ingestion_files.c.RunId == run)
                    .select("FileName", "Outcome").iter_rows())

    mark_files(engine, "belleville/d2", "run2", "halted", ["SM.csv"])
    mark_files(engine, "belleville/d2", "run2", "halted", [])  # no file named: nothing changes
    assert outcomes("run2") == {"SR.csv": "received", "SM.csv": "halted"}
    mark_files(engine, "belleville/d2", "run2", "loaded")
    # SR.csv brought the bytes of d1's SR.csv again: a duplicate; the halted file keeps its outcome
    assert outcomes("run2") == {"SR.csv": "duplicate", "SM.csv": "halted"}
    assert outcomes("run3") == {"SR.csv": "received"}  # another run's rows are its own
    assert outcomes("run1") == {"students.csv": "received", "SR.csv": "received", "SM.csv": "received"}
    mark_files(engine, "belleville/d1", "run1", "loaded", ["students.csv", "SR.csv"])
    mark_files(engine, "belleville/d1", "run1", "blocked")
    assert outcomes("run1") == {"students.csv": "loaded", "SR.csv": "loaded", "SM.csv": "blocked"}
    stamped = read_table(engine, ingestion_files, ingestion_files.c.RunId == "run1")
    assert (stamped["OutcomeAt"] >= stamped["ReceivedAt"]).all()


def test_bytes_received_after_those_a_run_loads_are_found_in_the_order_the_audit_took_them(engine, monkeypatch):
    import belleville_mtss.lib.load.warehouse as warehouse
    from belleville_mtss.lib.load.warehouse import later_receipt
    clock = iter(dt.datetime(2026, 11, 28, 9, m) for m in (0, 1, 2, 1, 1))  # the last two from a host behind
    monkeypatch.setattr(warehouse, "now", lambda: next(clock))
    first = [_file("SR.csv", b"r1"), _file("SM.csv", b"m1")]
    corrected = [_file("SR.csv", b"r2"), _file("SM.csv", b"m1")]
    record_received(engine, "belleville/d1", 107873, "v1", first, "run1")
    record_received(engine, "riverton/d1", 555001, "v9", first, "run0")  # another drop's receipts are not its own
    v1, v2 = {f.name: f.sha256 for f in first}, {f.name: f.sha256 for f in corrected}
    with engine.connect() as conn:
        assert later_receipt(conn, "belleville/d1", v1) == ""
        assert later_receipt(conn, "belleville/d9", v1) == ""  # no receipt at all
    # corrected in place: the same version with other bytes
    record_received(engine, "belleville/d1", 107873, "v1", corrected, "run2")
    with engine.connect() as conn:
        assert later_receipt(conn, "belleville/d1", v1) == (
            "other bytes of belleville/d1 (version v1) were received 2026-11-28 09:02:00")
        assert later_receipt(conn, "belleville/d1", v2) == ""
    # the first bytes again, from a host whose clock is behind; then the same bytes under a new version
    record_received(engine, "belleville/d1", 107873, "v3", first, "run3")
    with engine.connect() as conn:
        assert later_receipt(conn, "belleville/d1", v1) == ""
        assert later_receipt(conn, "belleville/d1", v2).startswith("other bytes of belleville/d1 (version v3)")
    record_received(engine, "belleville/d1", 107873, "v4", first, "run4")
    with engine.connect() as conn:
        assert later_receipt(conn, "belleville/d1", v1) == ""


def test_a_load_marks_the_rows_of_the_receipt_it_loads_whichever_run_received_it(engine):
    record_received(engine, "belleville/d1", 107873, "v1", [_file("SR.csv", b"r1")], "run1")
    record_received(engine, "belleville/d1", 107873, "v2", [_file("SR.csv", b"r2")], "run2")
    mark_files(engine, "belleville/d1", "run1", "failed")
    mark_files(engine, "belleville/d1", "run2", "failed")
    # run1 re-executed after run2 received other bytes: what it loads is run2's receipt, kept at rest
    mark_files(engine, "belleville/d1", "run3", "loaded", received_by="run2")
    audit = read_table(engine, ingestion_files)
    assert dict(audit.select("RunId", "Outcome").iter_rows()) == {"run1": "failed", "run2": "loaded"}
    # a blocked receipt, loaded by a re-execution that accepts its check; one kept by an earlier release, without
    # the run that received it, is found by its bytes
    record_received(engine, "belleville/d2", 107873, "v1", [_file("SR.csv", b"r3")], "run4")
    mark_files(engine, "belleville/d2", "run4", "blocked")
    with engine.connect() as conn:
        assert receipt_of(conn, "belleville/d2", {"SR.csv": _file("SR.csv", b"r3").sha256}) == "run4"
        assert receipt_of(conn, "belleville/d2", {"SR.csv": _file("SR.csv", b"r2").sha256}) is None
    mark_files(engine, "belleville/d2", "run5", "loaded", received_by="run4")
    assert read_table(engine, ingestion_files, ingestion_files.c.RunId == "run4")["Outcome"].to_list() == ["loaded"]


def test_status_lists_receipts_in_the_order_the_audit_took_them(engine, monkeypatch):
    import belleville_mtss.lib.load.warehouse as warehouse
    from belleville_mtss.lib.load.audit import drop_status
    clock = iter([dt.datetime(2026, 11, 28, 9, 5), dt.datetime(2026, 11, 28, 9, 1)])  # the second host is behind
    monkeypatch.setattr(warehouse, "now", lambda: next(clock))
    record_received(engine, "belleville/d1", 107873, "v1", [_file("SR.csv", b"r1")], "first000")
    record_received(engine, "belleville/d1", 107873, "v2", [_file("SR.csv", b"r2")], "second00")
    lines = drop_status(engine, "belleville/d1").splitlines()
    assert [line.split(" · ")[1] for line in lines if "· run" in line] == ["run first000", "run second00"]


def test_an_outcome_is_stamped_with_the_time_it_was_decided(engine, monkeypatch):
    import belleville_mtss.lib.load.warehouse as warehouse
    clock = iter([dt.datetime(2026, 11, 28, 9, 0), dt.datetime(2026, 11, 28, 9, 5)])
    monkeypatch.setattr(warehouse, "now", lambda: next(clock))
    record_received(engine, "belleville/d1", 107873, "v1", [_file("SR.csv", b"r1")], "run1")
    mark_files(engine, "belleville/d1", "run1", "loaded")
    row = read_table(engine, ingestion_files, ingestion_files.c.RunId == "run1").row(0, named=True)
    assert (row["ReceivedAt"], row["Outcome"], row["OutcomeAt"]) == (
        dt.datetime(2026, 11, 28, 9, 0), "loaded", dt.datetime(2026, 11, 28, 9, 5))


def test_the_batched_insert_path_round_trips_awkward_values(pg_database):
    # A driver without COPY (as SQL Server's) loads through batched INSERTs: the same rows come back.
    import sqlalchemy as sa
    engine = make_engine(sa.engine.make_url(pg_database).set(drivername="postgresql+psycopg2")
                         .render_as_string(hide_password=False))
    try:
        migrate_sample_warehouse(engine)
        frame = _frame()
        assert replace_results(engine, 107873, frame) == frame.height
        back = read_table(engine, assessment_results).sort("TestKey")
        assert back.select(frame.columns).rows() == frame.rows()
    finally:
        engine.dispose()


def test_a_test_deactivated_in_one_drop_and_reactivated_in_a_later_one_comes_back_with_its_scores(engine):
    scored = _frame().head(3).with_columns(pl.lit("Active").alias("AssessmentStatus"),
                                          pl.lit(None, pl.Utf8).alias("DeactivationReason"))
    off = scored.with_columns(
        pl.when(pl.col("TestKey") == "t2").then(pl.lit("Deactivated")).otherwise(pl.col("AssessmentStatus"))
        .alias("AssessmentStatus"),
        pl.when(pl.col("TestKey") == "t2").then(pl.lit("Student guessed")).alias("DeactivationReason"),
        pl.when(pl.col("TestKey") == "t2").then(None).otherwise(pl.col("ScaledScore")).alias("ScaledScore"))
    replace_results(engine, 107873, off)
    held = read_table(engine, assessment_results).sort("TestKey")
    assert held.select("TestKey", "AssessmentStatus", "DeactivationReason", "ScaledScore").rows()[2] == (
        "t2", "Deactivated", "Student guessed", None)
    # a reader counting scores counts active tests only, and sees none of the deactivated one
    active = held.filter(pl.col("AssessmentStatus") == "Active")
    assert active["TestKey"].to_list() == ["t0", "t1"]
    replace_results(engine, 107873, scored.with_columns(pl.lit("belleville/later").alias("DropId")))
    back = read_table(engine, assessment_results).sort("TestKey")
    assert back.select("TestKey", "AssessmentStatus", "ScaledScore").rows()[2] == ("t2", "Active", 1)


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_the_roster_apply_reads_the_staged_numbers_once(tmp_path, backend_name, request):
    # a correlated EXISTS over staging (which has no index) made a second load quadratic in the roster's size on
    # SQLite: 20,000 students took 0.15 s the first time, 20.7 s the second (benchmarks/roster_apply.py)
    from belleville_mtss.lib.load import warehouse as w
    from belleville_mtss.lib.load.migrations import upgrade
    url = f"sqlite:///{tmp_path}/w.db" if backend_name == "sqlite" else request.getfixturevalue("pg_database")
    engine = w.make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.schema.CreateSchema("dm", if_not_exists=True))
    upgrade(engine)
    deletes = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("DELETE FROM") and "Staging" not in statement.split()[2]:
            deletes.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", keep)
    frame = pl.DataFrame({"AccountInfoId": [7] * 3, "StudentNumber": ["1", "2", "3"], "StarTestCount": [0] * 3,
                          "DropId": ["d/1"] * 3, "LoadedAt": [dt.datetime(2026, 12, 4)] * 3})
    w.replace_roster(engine, 7, frame)
    w.replace_roster(engine, 7, frame.with_columns(pl.lit("d/2").alias("DropId")))
    [(statement, parameters)] = deletes[-1:]
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = " | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "LIST SUBQUERY" in plan and "CORRELATED" not in plan, plan
        else:  # a semi-join on the staged numbers, never a subplan run per roster row
            plan = " | ".join(conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars())
            assert "Semi Join" in plan or "HashAggregate" in plan, plan
            assert "SubPlan" not in plan, plan
    assert w.read_table(engine, w.student_roster)["DropId"].to_list() == ["d/2"] * 3
    engine.dispose()


def test_a_replay_of_an_older_term_drop_that_would_take_tests_from_a_newer_term_is_superseded(engine):
    """A district's edited term dates moved two Fall tests into Winter, and the Winter drop took them; a replay of
    the older Fall drop took them back, its checks blind to the Winter scope it undid. Now it is superseded there."""
    from belleville_mtss.lib import checks, pipeline
    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
    from belleville_mtss.lib.load.warehouse import apply_results, staged
    district = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]

    def term(drop: str, window: str, keys: list[str]) -> pl.DataFrame:
        return _frame().head(len(keys)).with_columns(
            pl.lit("map_growth").alias("Assessment"), pl.lit("Mathematics").alias("Subject"),
            pl.Series("TestKey", keys),
            pl.lit(window).alias("ScreeningWindow"), pl.lit(drop).alias("DropId"))

    def load(drop: str, results: pl.DataFrame) -> list[str]:
        scopes = results_scopes(results)
        with staged(engine, results=results) as load_id, engine.connect() as conn, conn.begin():
            failed = [o.name for o in checks.decide("replace", pipeline.replace_evidence(
                conn, district, drop, None, results, scopes)) if not o.passed]
            if not failed:
                apply_results(conn, 107873, load_id, scopes)
        return failed

    fall = term("belleville/2025-12-20", "Fall", ["T1", "T2", "T3", "T4"])
    assert load("belleville/2025-12-20", fall) == []
    assert load("belleville/2026-01-20", term("belleville/2026-01-20", "Winter", ["T3", "T4", "T5"])) == []
    assert load("belleville/2025-12-20", fall) == ["drop_is_newest"]  # the replay
    held = read_table(engine, assessment_results).sort("TestKey")
    assert held.select("TestKey", "ScreeningWindow").rows() == [("T1", "Fall"), ("T2", "Fall"), ("T3", "Winter"),
                                                                 ("T4", "Winter"), ("T5", "Winter")]
    # a replay that takes nothing from the newer term is still the Fall term's to reload
    assert load("belleville/2025-12-20", term("belleville/2025-12-20", "Fall", ["T1", "T2"])) == []


def test_a_drop_superseded_in_part_keeps_only_the_terms_no_newer_drop_holds(engine):
    """The review's case: the last Fall MAP Growth drop's run was killed, the first Winter drop loaded, and the Fall
    drop replayed was refused whole: its Fall tests, which no Winter export lists, were lost. A term whose tests a
    newer drop holds under another term is left to it whole (the load would take them back)."""
    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_district
    from belleville_mtss.lib.pipeline import superseded_in_part
    district = load_district(PACKAGED_DISTRICTS_DIR / "belleville.yaml")
    fall = _frame().with_columns(pl.lit("map_growth").alias("Assessment"), pl.lit("Mathematics").alias("Subject"),
                                 pl.lit("belleville/2026-12-01").alias("DropId"))
    winter = fall.with_columns(pl.lit("Winter").alias("ScreeningWindow"), pl.col("TestKey") + "-w",
                               pl.lit("belleville/2026-12-05").alias("DropId"))
    replace_roster(engine, 107873, _roster(107873, ["001", "002"], "belleville/2026-12-05"))
    replace_results(engine, 107873, winter)
    roster = _roster(107873, ["001", "002", "003"], "belleville/2026-12-01")
    with engine.connect() as conn:
        holds = superseded_in_part(conn, district, "belleville/2026-12-01", roster, pl.concat([fall, winter]))
        assert (holds.roster, holds.result_scopes) == (None, [("map_growth", "Mathematics", "2026-2027", "Fall")])
        assert holds.results.equals(fall) and holds.skipped == ["map_growth Mathematics 2026-2027 Winter", "roster"]
        assert holds.note == ("map_growth Mathematics 2026-2027 Winter, roster left to newer drops (the newer "
                              "belleville/2026-12-05 holds roster, map_growth Mathematics 2026-2027 Winter)")
        # a Fall test the newer drop holds under Winter (the district moved its term dates): Fall is left too
        moved = fall.with_columns(pl.when(pl.col("TestKey") == "t0").then(pl.lit("t0-w")).otherwise("TestKey")
                                  .alias("TestKey"))
        whole = superseded_in_part(conn, district, "belleville/2026-12-01", roster, moved)
        assert whole.skipped == [] and whole.roster is roster  # nothing kept: the drop as it is, for the check
        # a year kept that would take a test from a scope left to the newer drop is left too, its assessment
        # with it (here the other Fall term's, under which a test of it is held); the rest is judged again
        last_year = moved.with_columns(pl.lit("2025-2026").alias("SchoolYear"))
        star = _frame().with_columns(pl.lit("belleville/2026-12-01").alias("DropId"))
        again = superseded_in_part(conn, district, "belleville/2026-12-01", roster, pl.concat([winter, last_year,
                                                                                               star]))
        assert again.result_scopes == [("star", "SR", "2026-2027", None)] and again.results.equals(star)
        # a drop no newer drop holds anything of keeps everything
        newer = superseded_in_part(conn, district, "belleville/2026-12-09", roster, fall)
        assert newer.skipped == [] and newer.results is fall


def test_a_load_takes_its_tests_from_another_subject_of_the_assessment_that_held_them(engine):
    """MAP Growth results loaded under Subject "Language Arts" (as sent, before the RIT scale was read from Course),
    then under "Reading": the same tests were held twice, once under each subject. The tests the new export lists are
    taken; the others stay where they were (a load replacing the former subject's term whole would delete them
    unseen by the shrink gate, which weighs the load's own scopes)."""
    arts = _frame().with_columns(pl.lit("map_growth").alias("Assessment"), pl.lit("Language Arts").alias("Subject"))
    replace_results(engine, 107873, arts)
    other_year = arts.with_columns(pl.lit("2025-2026").alias("SchoolYear"), pl.col("TestKey") + "-prior")
    replace_results(engine, 107873, other_year)
    replace_results(engine, 107873, arts.head(4).with_columns(pl.lit("Reading").alias("Subject")))
    replace_results(engine, 107873, _frame().with_columns(pl.lit("Language Usage").alias("Subject"),
                                                          pl.lit("star").alias("Assessment")))  # not MAP's
    held = read_table(engine, assessment_results).group_by("Assessment", "Subject", "SchoolYear").len().sort(
        "Assessment", "Subject", "SchoolYear").rows()
    assert held == [("map_growth", "Language Arts", "2025-2026", 6), ("map_growth", "Language Arts", "2026-2027", 2),
                    ("map_growth", "Reading", "2026-2027", 4), ("star", "Language Usage", "2026-2027", 6)]
