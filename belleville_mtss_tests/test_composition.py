"""One composition: the core (lib/pipeline.process_drop, what scripts and the benchmark run) and a Dagster
materialization of the same drop give identical frames, checks and error rows: a normal drop, a drop with a
halted file, and a drop naming another district."""
import datetime as dt

import polars as pl
import pytest

from belleville_mtss.lib.sources import FILES
from belleville_mtss.lib.load.migrations import open_warehouse
from belleville_mtss.lib.persist import load
from belleville_mtss.lib.pipeline import files_in, process_drop
from belleville_mtss.lib.district.registry import load_registry
from belleville_mtss.lib.read.theirs import read_account_info, read_classlink_students
from belleville_mtss.lib.receive.vault import staging_key
from belleville_mtss.lib.load.warehouse import make_engine
from belleville_mtss.run import run_drop
from .helpers import errors, prepare_drop, set_column

KEY = "belleville/2026-11-01"
ROW = ("Stage", "Reason", "FileName", "RowCount", "Message")


def _damage(drop, case: str) -> None:
    if case == "halted":
        data = (drop / "SM.csv").read_bytes()
        (drop / "SM.csv").write_bytes(data[:-300])  # cut short: SM.csv halted, the rest loads
    elif case == "foreign":
        set_column(drop / "SR.csv", "DistrictName", "Nutley Public Schools")


def _stored(settings, asset: str):
    path = settings.storage_dir / asset / KEY
    return load(staging_key(settings.staging_key or None, settings.home), path) if path.exists() else None


def _same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    drop = [c for c in ("LoadedAt",) if c in a.columns]  # the time of loading is the only difference allowed
    assert a.drop(drop).equals(b.drop(drop)), (a.drop(drop), b.drop(drop))


@pytest.mark.parametrize("case", ["normal", "halted", "foreign"])
def test_the_core_and_a_dagster_materialization_agree(settings, case, new_instance):
    drop = prepare_drop(settings)
    _damage(drop, case)
    district = load_registry(settings.districts_dirs)["belleville"]
    warehouse = open_warehouse(settings.warehouse_url, settings.embedded_warehouse)
    prod = make_engine(settings.prod_db_url)
    core = process_drop(files_in(drop, district), district,
                        read_classlink_students(prod, district.source_names.classlink, []),
                        read_account_info(warehouse), KEY, today=dt.date.today(), ferpa_max_days=365)
    warehouse.dispose()
    prod.dispose()

    with new_instance() as instance:
        report = run_drop(settings, KEY, instance=instance)

    # checks: the same ones evaluated, with the same verdicts
    assert {c.name: c.passed for c in core.checks} == report.checks
    assert (core.stopped is None) == (report.outcome in ("loaded", "partial"))
    # frames, stage by stage
    for kind in FILES:
        ours, theirs = core.validated[kind.asset], _stored(settings, kind.validated)
        if not ours.sent:  # a kind the district does not send: the run leaves it out, and keeps nothing of it
            assert kind.asset not in district.file_patterns and theirs is None
            continue
        assert (ours.frame is None) == (theirs.frame is None) and ours.rejected == theirs.rejected
        if ours.frame is not None:
            _same(ours.frame, theirs.frame)
    crosswalk = _stored(settings, "district_crosswalk")
    if core.verified:
        _same(core.crosswalk, crosswalk)
    else:  # a refused drop's crosswalk is not materialized: its checks and the run's failure say why
        assert case == "foreign" and crosswalk is None
        assert "SR.csv: names 'Nutley Public Schools'" in report.failures["district_crosswalk"]
    identity = _stored(settings, "student_identity_map")
    if core.identity is None:
        assert case == "foreign" and identity is None
    else:
        _same(core.identity.frame, identity.frame)
        assert core.identity.stats == identity.stats and core.identity.by_file == identity.by_file
    for ours, asset in ((core.roster, "student_roster"), (core.results, "assessment_results")):
        stored = _stored(settings, asset)
        assert (ours is None) == (stored is None)
        if ours is not None:
            _same(ours.sort(ours.columns[:3]), stored.sort(stored.columns[:3]))
    # the error rows, every one
    logged = errors(settings).select(ROW).sort(ROW)
    expected = pl.DataFrame([{c: getattr(e, {"Stage": "stage", "Reason": "reason", "FileName": "file_name",
                                             "RowCount": "row_count", "Message": "message"}[c]) for c in ROW}
                             for e in core.errors], schema=logged.schema).sort(ROW)
    assert logged.equals(expected), (logged, expected)
    assert logged.height >= (1 if case == "normal" else 2)


def test_a_drop_is_read_largest_file_first_then_smallest_first():
    """The two largest files are typed apart (lib/read/ingest.py reading_order): the largest first, the second
    largest last; the errors still come in the sources' order (the test above compares them with Dagster's)."""
    from belleville_mtss.lib.read.ingest import reading_order
    assert reading_order({"SR.csv": 889, "students.csv": 120, "SM.csv": 850, "SEL.csv": 280}) == [
        "SR.csv", "students.csv", "SEL.csv", "SM.csv"]
    assert reading_order({}) == [] and reading_order({"SR.csv": 0}) == ["SR.csv"]
