"""MAP Growth's sample generator (lib/sources/map_growth/sample.py): its AssessmentResults.csv, in NWEA's layout,
reads through the source's own reader and validator to exactly its tests, the refused ones counted by reason; a drop
holds it only where the spec lists the source."""
from collections import Counter
from pathlib import Path


from belleville_mtss.lib.read.ingest import ingest_file, validate_file
from ...helpers import (VENDOR_SPEC, belleville_with, drop_with_and_without, headers_and_bom, students_with_tests,
                        written_sample)
from belleville_mtss.lib.sources.map_growth import SOURCE, MapGrowthSection

REFERENCE = "assessments/nwea_map_growth__AssessmentResults_sample_anonymized.csv"
SPEC = VENDOR_SPEC
_tested = students_with_tests


def _district():
    return belleville_with("map_growth", MapGrowthSection())


def _written(tmp_path: Path) -> tuple[Path, list[dict]]:
    (kind,) = SOURCE.files
    return written_sample(tmp_path, SOURCE, {kind.asset: "AssessmentResults.csv"})[kind.asset]


def test_the_file_reads_to_exactly_its_tests_and_refuses_the_rows_without_a_score(tmp_path):
    path, rows = _written(tmp_path)
    tested = set(_tested()["student_number"])
    known = Counter((r["StudentID"], r["Subject"]) for r in rows if r["StudentID"] in tested)
    # every student K-12, in both subjects, tested in the fall and some in the winter too
    assert {s for s, _ in known} == tested and {subject for _, subject in known} == {"Mathematics", "Reading"}
    assert set(known.values()) == {1, 2} and len(known) == 2 * len(tested)
    assert all(r["TermName"] in ("Fall 2026-2027", "Winter 2026-2027") for r in rows)
    unknown = [r for r in rows if r["StudentID"] not in tested]
    assert len(unknown) == 2 and all(r["StudentID"][0] == "9" and r["StudentID"][1:] in tested for r in unknown)
    assert sum(r["TestRITScore"] == "n/a" for r in rows) == 3
    district = _district()
    validated, errors = validate_file(ingest_file("map_growth", path, district), district)
    assert validated.halted is None
    assert validated.rows == sum(known.values()) + len(unknown) - 3 == len(rows) - 3
    assert validated.rejected == {"TestRITScore is not a whole number": 3}
    assert [(e.reason, e.row_count) for e in errors] == [("row_rejected", 3)]
    frame = validated.frame
    assert frame["district_name"].unique().to_list() == [SPEC.district_name_in_files]
    assert frame["school_year"].unique().to_list() == ["2026-2027"]
    assert frame["percentile_rank"].null_count() == 0 and frame["test_key"].is_unique().all()


def test_its_headers_are_nweas_in_their_order(tmp_path, reference_dir):
    path, _ = _written(tmp_path)
    assert headers_and_bom(path) == headers_and_bom(reference_dir / REFERENCE) and not headers_and_bom(path)[1]


def test_a_drop_holds_the_file_only_where_the_spec_lists_map_growth(tmp_path):
    drop_with_and_without(tmp_path, "map_growth", ["AssessmentResults.csv"])
    district = _district()
    validated, _ = validate_file(ingest_file("map_growth", tmp_path / "both" / "AssessmentResults.csv", district),
                                 district)
    assert validated.rows > 0 and validated.rejected == {"TestRITScore is not a whole number": 3}
