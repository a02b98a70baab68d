"""mCLASS DIBELS 8's sample generator (lib/sources/dibels8/sample.py): its benchmark export, in Amplify's layout,
reads through the source's own reader and validator to exactly its benchmarks, the refused ones counted by reason;
a drop holds it only where the spec lists the source."""
from collections import Counter
from pathlib import Path

import polars as pl

from belleville_mtss.lib.read.ingest import ingest_file, validate_file
from ...helpers import (VENDOR_SPEC, belleville_with, drop_with_and_without, headers_and_bom, students_with_tests,
                        written_sample)
from belleville_mtss.lib.sources.dibels8 import SOURCE, Dibels8Section

NAME = "dibels8_benchmark.csv"
REFERENCE = "assessments/mclass_dibels8__benchmark_sample_anonymized.csv"
SPEC = VENDOR_SPEC
_tested = students_with_tests


def _district():
    return belleville_with("dibels8", Dibels8Section())


def _written(tmp_path: Path) -> tuple[Path, list[dict]]:
    (kind,) = SOURCE.files
    return written_sample(tmp_path, SOURCE, {kind.asset: NAME})[kind.asset]


def test_the_file_reads_to_exactly_its_benchmarks_and_refuses_the_rows_without_a_score(tmp_path):
    path, rows = _written(tmp_path)
    tested = _tested()
    k_to_8 = set(tested.filter(pl.col("grade") <= 8)["student_number"])
    known = Counter(r["Student Primary ID"] for r in rows if r["Student Primary ID"] in set(tested["student_number"]))
    assert set(known) == k_to_8 and set(known.values()) == {1, 2}  # K-8 only: BOY, and for some MOY too
    assert {r["Benchmark Period"] for r in rows} == {"BOY", "MOY"}
    assert {r["Assessment Grade"] for r in rows} == {"K", *map(str, range(1, 9))}
    unknown = [r for r in rows if r["Student Primary ID"] not in known]
    assert len(unknown) == 2 and all(r["Student Primary ID"][0] == "9" and r["Student Primary ID"][1:] in known
                                     for r in unknown)
    assert sum(r["Composite Score"] == "n/a" for r in rows) == 3
    district = _district()
    validated, errors = validate_file(ingest_file("dibels8", path, district), district)
    assert validated.halted is None
    assert validated.rows == sum(known.values()) + len(unknown) - 3 == len(rows) - 3
    assert validated.rejected == {"Composite Score is not a whole number": 3}
    assert [(e.reason, e.row_count) for e in errors] == [("row_rejected", 3)]
    frame = validated.frame
    assert frame["district_name"].unique().to_list() == [SPEC.district_name_in_files]
    assert set(frame["screening_window"]) == {"Fall", "Winter"} and frame["school_year"].unique().to_list() == [
        "2026-2027"]
    assert frame["percentile_rank"].null_count() == 0
    # each grade's measures kept as scores: kindergarten's letter naming, grade 3's oral reading fluency
    kept = {g: {s["name"] for s in scores} for g, scores in zip(frame["grade"], frame["scores"])}
    assert "Letter Names (LNF) - Score" in kept["K"] and "Reading Fluency (ORF) - Score" not in kept["K"]
    assert "Reading Fluency (ORF) - Score" in kept["3"]


def test_its_headers_are_amplifys_in_their_order(tmp_path, reference_dir):
    path, _ = _written(tmp_path)
    assert headers_and_bom(path) == headers_and_bom(reference_dir / REFERENCE) and not headers_and_bom(path)[1]


def test_a_drop_holds_the_file_only_where_the_spec_lists_dibels8(tmp_path):
    drop_with_and_without(tmp_path, "dibels8", [NAME])
    district = _district()
    validated, _ = validate_file(ingest_file("dibels8", tmp_path / "both" / NAME, district), district)
    assert validated.rows > 0 and validated.rejected == {"Composite Score is not a whole number": 3}
