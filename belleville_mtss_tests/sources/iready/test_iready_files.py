"""i-Ready Diagnostic Results (lib/sources/iready/): the public samples read to exactly their rows and measures, the
subject from the file's name; nothing that says who the student is kept as a score; a file that names no district
verified by its folder only where the registry says so."""
import csv
from pathlib import Path

import polars as pl
import pytest

from belleville_mtss.lib.district.crosswalk import build_crosswalk
from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
from belleville_mtss.lib.read.ingest import ingest_file, validate_file
from belleville_mtss.lib.sample import account_info_rows
from belleville_mtss.lib.sources.iready import MEASURE, IreadySection

SAMPLES = {"iready_ela": ("assessments/iready__diagnostic_results_ela_sample_anonymized.csv", "ELA"),
           "iready_math": ("assessments/iready__diagnostic_results_math_sample_anonymized.csv", "Math")}
WHO = ("Last Name", "First Name", "User Name", "Sex", "Hispanic or Latino", "Race", "English Language Learner",
       "Special Education", "Economically Disadvantaged", "Migrant", "Class(es)", "Class Teacher(s)",
       "Report Group(s)", "Student State ID")


def _district(**section):
    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    return entry.model_copy(update={"sources": {**entry.sources, "iready": IreadySection(**section)}})


@pytest.mark.parametrize("asset", list(SAMPLES))
def test_each_public_sample_reads_to_exactly_its_rows_and_measures(reference_dir, asset):
    path, subject = reference_dir / SAMPLES[asset][0], SAMPLES[asset][1]
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    district = _district()
    validated, errors = validate_file(ingest_file(asset, path, district), district)
    assert errors == [] and validated.rejected == {} and validated.rows == len(rows) == 5
    for got, row in zip(validated.frame.iter_rows(named=True), rows):
        assert (got["student_link"], got["subject"], got["school_year"]) == (row["Student ID"], subject, "2025-2026")
        assert got["scaled_score"] == int(row["Overall Scale Score"]) and got["percentile_rank"] == int(row["Percentile"])
        assert got["completed_at"].strftime("%-m/%-d/%Y") == row["Completion Date"]
        assert got["screening_window"] == row["Norming Window"].split()[0]
        assert got["benchmark_category"] == row["Overall Relative Placement"]
        kept = {s["name"]: s["value"] for s in got["scores"]}
        assert kept == {k: v for k, v in row.items() if v and MEASURE.search(k) and k not in (
            "Overall Scale Score", "Percentile", "Overall Relative Placement")}
        assert not set(kept) & set(WHO)  # nothing that says who the student is
    assert validated.frame["test_key"].is_unique().all()


def test_a_file_that_names_no_district_is_verified_by_its_folder_only_where_the_registry_says_so(reference_dir):
    path = reference_dir / SAMPLES["iready_ela"][0]
    accounts = pl.DataFrame(account_info_rows())
    for bound, verified in ((False, False), (True, True)):
        district = _district(bound_by_folder=bound)
        validated, _ = validate_file(ingest_file("iready_ela", path, district), district)
        frame = build_crosswalk(district, accounts, [validated])
        assert frame.select("decision", "verified").row(0) == (("bundled", True) if bound else ("unmatched", False))
        assert verified == frame["verified"].all()


def test_a_missing_column_halts_and_each_bad_row_is_refused_with_its_reason():
    district = _district()
    halted, _ = validate_file(ingest_file("iready_math", Path("diagnostic_results_math.csv"), district,
                                          b"Student ID,Academic Year\n1,2025-2026\n"), district)
    assert halted.halted.reason == "missing_columns" and "Completion Date, Overall Scale Score" in halted.halted.message
    body = ("Student ID,Academic Year,Completion Date,Norming Window,Overall Scale Score,Percentile,Last Name\n"
            "1,2025-2026,9/15/2025,Fall (Beginning of Year - November 15),450,40,Smith\n"
            "2,2025-2026,2025-09-15,Fall,450,40,Jones\n"
            "3,2025-2026,9/15/2025,Fall,4500,40,Brown\n"
            "1,2025-2026,9/15/2025,Fall,451,41,Smith\n"
            "4,2025-2026,9/16/2025,Fall,460,50,Lee\n"
            "4,2025-2026,9/16/2025,Fall,460,50,Lee\n")  # a row printed twice: the child's one diagnostic
    validated, _ = validate_file(ingest_file("iready_math", Path("diagnostic_results_math.csv"), district,
                                             body.encode()), district)
    assert validated.frame.select("student_link", "scaled_score", "source_row").rows() == [("4", 460, 6)]
    assert validated.rejected == {"unreadable Completion Date (month/day/year)": 1,
                                  "Overall Scale Score out of range (100, 800)": 1,
                                  "copies of one diagnostic (student, subject and day) that disagree": 2,
                                  "a repeat of an earlier row's diagnostic (student, subject and day)": 1}


def test_state_district_ids_a_registry_lists_verify_a_file_and_any_other_id_blocks_it():
    body = ("Student ID,District State ID,Academic Year,Completion Date,Norming Window,Overall Scale Score\n"
            "1,{a},2025-2026,9/15/2025,Fall,450\n2,{b},2025-2026,9/16/2025,Fall,460\n")
    accounts = pl.DataFrame(account_info_rows())

    def decided(ids: str, listed: list[str], bound: bool = False) -> list[tuple]:
        district = _district(state_ids=listed, bound_by_folder=bound)
        a, b = ids.split("|")
        validated, _ = validate_file(ingest_file("iready_ela", Path("diagnostic_results_ela.csv"), district,
                                                 body.format(a=a, b=b).encode()), district)
        frame = build_crosswalk(district, accounts, [validated])
        return frame.select("name_seen", "method", "decision", "verified").rows()

    assert decided("0702|0702", ["0702"]) == [("0702", "state_id", "resolved", True)]
    # one row of another district's id blocks the file, even where its folder would have been enough (one student's
    # row carries it: it may be their own number in the wrong column, so it is shown as a count)
    assert decided("0702|0999", ["0702"], bound=True) == [("0702", "state_id", "resolved", True),
                                                          ("<a value of 1 row(s), not shown>", "state_id",
                                                           "unmatched", False)]
    # ids the registry does not list bind nothing, nor does the folder bind a file that names a district by them:
    # another district's file put in ours loaded as ours (the folder is evidence only for a file naming none)
    hidden = ("<a value of 2 row(s), not shown>", "state_id", "unmatched", False)  # two students: shown as a count
    assert decided("0702|0702", []) == [hidden]
    assert decided("0702|0702", [], bound=True) == [hidden]
    assert decided("|", [], bound=True) == [(None, "drop", "bundled", True)]  # no id on any row: the folder binds


def test_an_export_in_windows_1252_reads_where_the_section_declares_it_and_is_halted_where_it_does_not():
    """A file re-saved from Excel ("CSV (Comma delimited)") is Windows-1252: one accented name halted the district's
    subject on every drop, and no registry setting could say so."""
    body = ("Student ID,Last Name,Academic Year,Completion Date,Norming Window,Overall Scale Score\n"
            "1,José,2025-2026,9/15/2025,Fall,450\n").encode("windows-1252")
    district = _district(encoding="windows-1252")
    validated, _ = validate_file(ingest_file("iready_ela", Path("diagnostic_results_ela.csv"), district, body),
                                 district)
    assert validated.halted is None and validated.rows == 1
    halted, _ = validate_file(ingest_file("iready_ela", Path("diagnostic_results_ela.csv"), _district(), body),
                              _district())
    assert halted.halted.reason == "encoding"
    # read again for link review's suggestions, in the same encoding: read as UTF-8 there, the run failed after
    # its load, with no suggestion made
    from belleville_mtss.lib.sources import BY_NAME
    from belleville_mtss.lib.students.suggest import read_people
    people = read_people("diagnostic_results_ela.csv", body, BY_NAME["iready"], district)
    assert people.rows() == [("1", "José")] and people.columns == ["Student ID", "Last Name"]


def test_the_files_are_found_under_their_names_before_and_from_2026_27_and_spanish_reading_is_not_ela():
    """Curriculum Associates renamed the exports for 2026-27 ("i-Ready Inform Results", ELA as reading): every
    i-Ready district was partial from then on, its files matching no pattern, until someone edited its entry."""
    from belleville_mtss.lib.read.ingest import drop_files
    district = _district()
    names = ["i-ready_inform_results_reading_english_CONFIDENTIAL.csv", "i-ready_inform_results_math_CONFIDENTIAL.csv",
             "i-ready_inform_results_reading_spanish_CONFIDENTIAL.csv", "SR.csv"]
    found = drop_files(district, [Path(n) for n in names])
    assert [f.name for f in found["iready_ela"]] == [names[0]] and [f.name for f in found["iready_math"]] == [names[1]]
    before = drop_files(district, [Path("Diagnostic_Results_ELA_2025.csv"), Path("diagnostic_results_math.csv")])
    assert [f.name for f in before["iready_ela"]] == ["Diagnostic_Results_ELA_2025.csv"]


def test_link_review_reads_again_with_a_reader_of_the_four_arguments_only():
    """A new source whose reader takes only what the docs named (path, data, district, max_rows) crashed link
    review, which asks for the identifying columns alone."""
    import dataclasses

    from belleville_mtss.lib.sources import BY_NAME
    from belleville_mtss.lib.students.suggest import read_people
    source = BY_NAME["iready"]
    four = dataclasses.replace(source, read=lambda path, data, district, max_rows: source.read(path, data, district,
                                                                                              max_rows))
    body = b"Student ID,Last Name,Academic Year\n1,Lee,2025-2026\n"
    assert read_people("diagnostic_results_ela.csv", body, four, _district()).rows() == [("1", "Lee")]
