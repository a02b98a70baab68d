"""FastBridge's sample generator (lib/sources/fastbridge/sample.py): its aReading and aMath exports, in FastBridge's
layout (a row per student, a column group per screening period), read through the source's own reader and validator
to exactly their events, the refused ones counted by reason; a drop holds them only where the spec lists the
source."""
from pathlib import Path

import polars as pl
import pytest

from belleville_mtss.lib.read.ingest import ingest_file, validate_file
from ...helpers import (VENDOR_SPEC, belleville_with, drop_with_and_without, headers_and_bom, students_with_tests,
                        written_sample)
from belleville_mtss.lib.sources.fastbridge import PERIODS, SOURCE, FastBridgeSection

FILES = {"fastbridge_areading": ("FastBridge_aReading.csv", "aReading",
                                 "assessments/fastbridge__aReading_sample_anonymized.csv"),
         "fastbridge_amath": ("FastBridge_aMath.csv", "aMath", "assessments/fastbridge__aMath_sample_anonymized.csv")}
SPEC = VENDOR_SPEC
_tested = students_with_tests


def _district():
    return belleville_with("fastbridge", FastBridgeSection())


def _written(tmp_path: Path) -> dict[str, tuple[Path, list[dict]]]:
    return written_sample(tmp_path, SOURCE, {asset: name for asset, (name, _s, _r) in FILES.items()})


@pytest.mark.parametrize("asset", list(FILES))
def test_each_export_reads_to_exactly_its_events_and_refuses_the_ones_without_a_score(tmp_path, asset):
    path, rows = _written(tmp_path)[asset]
    subject = FILES[asset][1]
    tested = set(_tested()["student_number"])
    taken = {p: [r for r in rows if r[f"{p} {subject} Final Date"]] for p in PERIODS}  # each period's events
    known = [r for r in rows if r["Local ID"] in tested]
    # one row for each student K-12, each screened in the fall, some in the winter too, none later
    assert sorted(r["Local ID"] for r in known) == sorted(tested) and len(known) == len(tested)
    assert len(taken["Fall"]) == len(rows) and 0 < len(taken["Winter"]) < len(rows)
    assert not taken["Spring"] and not taken["Screening Period 4"] and not taken["Screening Period 5"]
    assert all(bool(r["Growth Score from Fall to Winter"]) == bool(r[f"Winter {subject} Final Date"]) for r in rows)
    unknown = [r for r in rows if r["Local ID"] not in tested]
    assert len(unknown) == 2 and all(r["Local ID"][0] == "9" and r["Local ID"][1:] in tested for r in unknown)
    assert sum(r[f"Fall {subject} Test Theta"] == "n/a" for r in rows) == 3
    district = _district()
    validated, errors = validate_file(ingest_file(asset, path, district), district)
    assert validated.halted is None
    assert validated.rows == sum(len(events) for events in taken.values()) - 3
    assert validated.rejected == {"Test Theta missing or not a number": 3}
    assert [(e.reason, e.row_count) for e in errors] == [("row_rejected", 3)]
    frame = validated.frame
    assert frame["district_name"].unique().to_list() == [SPEC.district_name_in_files]
    assert frame["school_year"].unique().to_list() == ["2026-2027"] and frame["subject"].unique().to_list() == [
        subject]
    assert frame.filter(pl.col("screening_window") == "Winter").height == len(taken["Winter"])
    assert frame["percentile_rank"].null_count() == 0 and frame["benchmark_category"].null_count() == 0


@pytest.mark.parametrize("asset", list(FILES))
def test_its_headers_are_fastbridges_in_their_order(tmp_path, reference_dir, asset):
    path, _ = _written(tmp_path)[asset]
    # the blank-headed column included, where the sample has it; no byte-order mark
    assert headers_and_bom(path) == headers_and_bom(reference_dir / FILES[asset][2]) and not headers_and_bom(path)[1]


def test_a_drop_holds_the_exports_only_where_the_spec_lists_fastbridge(tmp_path):
    drop_with_and_without(tmp_path, "fastbridge", [name for name, _, _ in FILES.values()])
    district = _district()
    for asset, (name, _, _) in FILES.items():
        validated, _ = validate_file(ingest_file(asset, tmp_path / "both" / name, district), district)
        assert validated.rows > 0 and validated.rejected == {"Test Theta missing or not a number": 3}
