"""i-Ready's sample generator (lib/sources/iready/sample.py): its ELA and math Diagnostic Results, in Curriculum
Associates' layout (byte-order mark included), read through the source's own reader and validator to exactly their
diagnostics, the refused ones counted by reason; a drop holds them only where the spec lists the source."""
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from belleville_mtss.lib.read.ingest import ingest_file, validate_file
from ...helpers import (VENDOR_SPEC, belleville_with, drop_with_and_without, headers_and_bom, students_with_tests,
                        written_sample)
from belleville_mtss.lib.sources.iready import SOURCE, IreadySection

FILES = {"iready_ela": ("diagnostic_results_ela.csv",
                        "assessments/iready__diagnostic_results_ela_sample_anonymized.csv"),
         "iready_math": ("diagnostic_results_math.csv",
                         "assessments/iready__diagnostic_results_math_sample_anonymized.csv")}
SPEC = VENDOR_SPEC
_tested = students_with_tests


def _district():
    return belleville_with("iready", IreadySection())


def _written(tmp_path: Path) -> dict[str, tuple[Path, list[dict]]]:
    return written_sample(tmp_path, SOURCE, {asset: name for asset, (name, _r) in FILES.items()})


@pytest.mark.parametrize("asset", list(FILES))
def test_each_file_reads_to_exactly_its_diagnostics_and_refuses_the_rows_without_a_score(tmp_path, asset):
    path, rows = _written(tmp_path)[asset]
    tested = _tested()
    k_to_8 = set(tested.filter(pl.col("grade") <= 8)["student_number"])
    known = Counter(r["Student ID"] for r in rows if r["Student ID"] in set(tested["student_number"]))
    assert set(known) == k_to_8 and set(known.values()) == {1, 2}  # K-8 only: a fall diagnostic, some a winter one
    assert {r["Student Grade"] for r in rows} == {"K", *map(str, range(1, 9))}
    unknown = [r for r in rows if r["Student ID"] not in known]
    assert len(unknown) == 2 and all(r["Student ID"][0] == "9" and r["Student ID"][1:] in known for r in unknown)
    assert sum(r["Overall Scale Score"] == "n/a" for r in rows) == 3
    district = _district()
    validated, errors = validate_file(ingest_file(asset, path, district), district)
    assert validated.halted is None
    assert validated.rows == sum(known.values()) + len(unknown) - 3 == len(rows) - 3
    assert validated.rejected == {"Overall Scale Score is not a whole number": 3}
    assert [(e.reason, e.row_count) for e in errors] == [("row_rejected", 3)]
    frame = validated.frame
    assert frame["subject"].unique().to_list() == [{"iready_ela": "ELA", "iready_math": "Math"}[asset]]
    assert set(frame["screening_window"]) == {"Fall", "Winter"} and frame["school_year"].unique().to_list() == [
        "2026-2027"]
    assert frame["percentile_rank"].null_count() == 0


@pytest.mark.parametrize("asset", list(FILES))
def test_its_headers_and_byte_order_mark_are_curriculum_associates(tmp_path, reference_dir, asset):
    path, _ = _written(tmp_path)[asset]
    assert headers_and_bom(path) == headers_and_bom(reference_dir / FILES[asset][1]) and headers_and_bom(path)[1]


def test_a_drop_holds_the_files_only_where_the_spec_lists_iready(tmp_path):
    drop_with_and_without(tmp_path, "iready", [name for name, _ in FILES.values()])
    district = _district()
    for asset, (name, _) in FILES.items():
        validated, _ = validate_file(ingest_file(asset, tmp_path / "both" / name, district), district)
        assert validated.rows > 0 and validated.rejected == {"Overall Scale Score is not a whole number": 3}
