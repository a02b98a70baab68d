"""Bulk loads keep every value as it was: nulls, empty strings, quotes, commas, newlines, timestamps."""
import datetime as dt

import polars as pl
import pytest

from belleville_mtss.lib.pipeline import LOAD_CHECKS, load_checks
from belleville_mtss.lib.sample import migrate_sample_warehouse
from belleville_mtss.lib.warehouse import (
    assessment_results, load_figures, make_engine, read_table, replace_results, results_scopes,
)

AWKWARD = [None, "", 'He said "hi"', "a,b", "line\nbreak", "Ünïcödé ’"]


def _frame() -> pl.DataFrame:
    n = len(AWKWARD)
    return pl.DataFrame({
        "AccountInfoId": [107873] * n, "Subject": ["SR"] * n, "TestKey": [f"t{i}" for i in range(n)],
        "StudentNumber": [f"00{i}" for i in range(n)], "SchoolYear": ["2026-2027"] * n,
        "CompletedAt": [dt.datetime(2026, 10, 1, 13, 5, 7, 123000)] * n, "Grade": AWKWARD,
        "ScaledScore": [None, 0, 1, 2, 3, 1400], "PercentileRank": [None] * n, "UnifiedScore": [900] * n,
        "BenchmarkCategory": list(reversed(AWKWARD)), "ScreeningWindow": ["Fall"] * n,
        "DropId": ["belleville/x"] * n, "LoadedAt": [dt.datetime(2026, 11, 28)] * n,
    }, schema_overrides={"ScaledScore": pl.Int32, "PercentileRank": pl.Int32})


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    url = f"sqlite:///{tmp_path}/w.db" if request.param == "sqlite" else request.getfixturevalue("pg_database")
    eng = make_engine(url)
    migrate_sample_warehouse(eng)
    yield eng
    eng.dispose()


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
