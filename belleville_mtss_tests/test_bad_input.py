"""Bad input, caused for real: a prepared sample drop is damaged the way real exports are, the whole drop is run,
and the warehouse and dm.IngestionErrors are read back.

1. Awkward but valid files load (BOM, CRLF, no final newline, quoting, extra columns, older Star layouts, NA and
   blank scores, a tab-delimited or declared Windows-1252 PowerSchool export, a declared header-less export).
2. Broken files are refused as files: one error row naming the file, nothing from it in the warehouse, the rest
   of the drop (and other drops) unaffected; a broken PowerSchool export stops the roster, so nothing is written.
3. Bad rows are refused row by row and counted by reason, without student data in any message.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
import yaml

from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
from belleville_mtss.lib.read.csvfile import FileRejected, read_text_csv
from belleville_mtss.lib.district.registry import PowerSchoolFormat, RegistryError, load_district
from belleville_mtss.lib.load.warehouse import (
    assessment_results, class_link_users, ingestion_files, make_engine, read_table, student_roster,
)
from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import SMALL, errors, prepare_drop, warehouse_counts

BELLEVILLE = 107873
DROP_ID = "belleville/2026-11-01"
STAR = {"SR.csv": "SR", "SM.csv": "SM", "SEL.csv": "SEL"}
VALIDATED = {"students.csv": "validated_powerschool_students", "SR.csv": "validated_star_reading",
             "SM.csv": "validated_star_math", "SEL.csv": "validated_star_early_literacy"}
PS_NUMBER, PS_EMAIL = "STUDENTS.STUDENT_NUMBER", "U_STUDENTSUSERFIELDS.custom_student_email"
# What the sample drop logs on its own: 3 Excel-mangled SR dates, 3 Star rows of unknown students.
BASELINE = {("SR.csv", "validation", "row_rejected"), *((f, "identity", "unknown_student") for f in STAR)}


# ----------------------------------------------------------------------------------------------------------------
# helpers

def read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def write(frame: pl.DataFrame, path: Path) -> None:
    frame.write_csv(path)


def table(settings, t: sa.Table) -> pl.DataFrame:
    engine = make_engine(settings.warehouse_url)
    try:
        return read_table(engine, t)
    finally:
        engine.dispose()


def expected_results(drop: Path, numbers: set[str], skip: set[str] = frozenset()) -> int:
    """Star rows of the students with a readable CompletedDate, counted from the Star files themselves."""
    n = 0
    for name in STAR:
        if name in skip:
            continue
        star = read(drop / name)
        n += star.filter(pl.col("StudentIdentifier").is_in(numbers) & ~pl.col("CompletedDate").str.contains(
            r"^\d\d:\d\d\.\d$")).height
    return n


def registry_with(tmp_path: Path, **powerschool) -> Path:
    registry = tmp_path / "districts"
    shutil.copytree(PACKAGED_DISTRICTS_DIR, registry)
    path = registry / "belleville.yaml"
    entry = yaml.safe_load(path.read_text())
    entry["powerschool"].update(powerschool)
    path.write_text(yaml.safe_dump(entry, sort_keys=False))
    return registry


def csv_text(frame: pl.DataFrame, *, delimiter=",", terminator="\n", quoting=csv.QUOTE_MINIMAL, header=True) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=terminator, quoting=quoting)
    if header:
        writer.writerow(frame.columns)
    writer.writerows(frame.rows())
    return out.getvalue()


def assert_loaded_normally(settings, drop: Path, report, pii) -> None:
    assert report.success and report.checks_passed, report.render()
    assert report.halted == {}
    assert warehouse_counts(settings) == {"roster": SMALL.students, "results": expected_results(drop, pii[0])}
    logged = errors(settings)
    assert {(r["FileName"], r["Stage"], r["Reason"]) for r in logged.iter_rows(named=True)} <= BASELINE
    assert (drop / "drop.done").exists()


def pii_of(drop: Path) -> tuple[set[str], set[str], set[str]]:
    ps = read(drop / "students.csv")
    numbers = set(ps[PS_NUMBER].str.strip_chars().to_list())
    emails = {e.strip().lower() for e in ps[PS_EMAIL].to_list()}
    names = set(ps["STUDENTS.FIRST_NAME"].to_list()) | set(ps["STUDENTS.LAST_NAME"].to_list())
    return numbers, emails, names


def assert_no_pii(settings, pii) -> None:
    """`pii`: pii_of the drop as generated, before any damage."""
    numbers, emails, names = pii
    numbers = numbers | {n.lstrip("0") for n in numbers}
    for message in errors(settings)["Message"].to_list():
        assert "@" not in message
        assert not any(e in message.lower() for e in emails)
        words = set(re.findall(r"[A-Za-z]+", message))
        assert not words & names, (message, words & names)
        assert not set(re.findall(r"\d{5,}", message)) & numbers, message


# ----------------------------------------------------------------------------------------------------------------
# 1. Must load correctly

def _bom(data: bytes) -> bytes:
    return b"\xef\xbb\xbf" + data


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


def _no_final_newline(data: bytes) -> bytes:
    return data.rstrip(b"\n")


def _quote_all(data: bytes) -> bytes:
    frame = pl.read_csv(io.BytesIO(data), infer_schema=False)
    return csv_text(frame, quoting=csv.QUOTE_ALL).encode()


def _all_at_once(data: bytes) -> bytes:
    return _bom(_no_final_newline(_crlf(_quote_all(data))))


MECHANICS = {"utf8_bom": _bom, "crlf": _crlf, "no_final_newline": _no_final_newline, "every_field_quoted": _quote_all,
             "bom_crlf_quoted_no_final_newline": _all_at_once}


@pytest.mark.parametrize("quirk", sorted(MECHANICS))
def test_real_export_mechanics_load_every_file(quirk, settings):
    drop = prepare_drop(settings)
    pii = pii_of(drop)
    originals = {name: read(drop / name) for name in ("students.csv", *STAR)}
    for name in originals:
        path = drop / name
        path.write_bytes(MECHANICS[quirk](path.read_bytes()))
    report = run_drop(settings)
    assert_loaded_normally(settings, drop, report, pii)
    # every value arrives as sent: no BOM glued to a name, no CR kept at the end of a line's last value
    roster = table(settings, student_roster).sort("StudentNumber")
    ps = originals["students.csv"].sort(PS_NUMBER)
    assert roster["StudentNumber"].to_list() == ps[PS_NUMBER].to_list()
    # the last column of the export (emails are stored without surrounding blanks)
    assert roster["Email"].to_list() == ps[PS_EMAIL].str.strip_chars().to_list()
    results = table(settings, assessment_results)
    assert not results["ScreeningWindow"].str.contains("\r").any()


def test_quoted_fields_with_commas_quotes_and_newlines_arrive_intact(settings):
    drop = prepare_drop(settings)
    pii = pii_of(drop)
    ps = read(drop / "students.csv")
    tricky = 'O\'Brien, "Jr."\r\nthe Third'
    number = ps[PS_NUMBER][0]
    ps = ps.with_columns(pl.when(pl.col(PS_NUMBER) == number).then(pl.lit(tricky))
                         .otherwise(pl.col("STUDENTS.LAST_NAME")).alias("STUDENTS.LAST_NAME"))
    write(ps, drop / "students.csv")
    sm = read(drop / "SM.csv").with_columns(
        pl.lit('Room 4, "B"\nnorth wing').alias("GroupOrClassName"),
        pl.lit('Fall, "early"\nwindow').alias("ScreeningPeriodWindowName"))
    write(sm, drop / "SM.csv")
    report = run_drop(settings)
    assert_loaded_normally(settings, drop, report, pii)
    roster = table(settings, student_roster)
    assert roster.filter(pl.col("StudentNumber") == number)["LastName"].to_list() == [tricky]
    results = table(settings, assessment_results).filter(pl.col("Subject") == "SM")
    assert results.height == sm.filter(pl.col("StudentIdentifier").is_in(ps[PS_NUMBER].to_list())).height
    assert set(results["ScreeningWindow"].to_list()) == {'Fall, "early"\nwindow'}


def test_unexpected_extra_columns_are_ignored_by_name(settings):
    drop = prepare_drop(settings)
    pii = pii_of(drop)
    for name in ("students.csv", *STAR):
        frame = read(drop / name)
        # in front, so that binding by position would shift every column; and one at the end
        frame = frame.select(pl.lit("x, 1").alias("Unexpected Column"), pl.all(), pl.lit("9").alias("ZZ_New"))
        write(frame, drop / name)
    report = run_drop(settings)
    assert_loaded_normally(settings, drop, report, pii)
    results = table(settings, assessment_results)
    sm = read(drop / "SM.csv").select("AssessmentID", "ScaledScore")
    joined = results.filter(pl.col("Subject") == "SM").join(sm, left_on="TestKey", right_on="AssessmentID")
    assert joined.height == results.filter(pl.col("Subject") == "SM").height > 0
    assert joined["ScaledScore"].cast(pl.Utf8).to_list() == joined["ScaledScore_right"].to_list()
    roster = table(settings, student_roster)
    assert not roster.select(pl.any_horizontal(pl.col(pl.String) == "x, 1")).to_series().any()
    assert not results.select(pl.any_horizontal(pl.col(pl.String) == "x, 1")).to_series().any()


# Renaissance appended columns over time (FORMATS 1.5): files of older layouts end earlier.
OLDER_LAYOUTS = {
    "SR.csv": ["CurrentSGP", "TakenAt", "TakenAtByIPAddress", "StudentDisplayID", "TeacherDisplayID",
               "SATBenchmarkCategory", "ACTBenchmarkCategory"],  # SR 2019-20, 119 columns
    "SM.csv": ["CurrentSGP", "Quantile", "TakenAt", "TakenAtByIPAddress", "StudentDisplayID", "TeacherDisplayID",
               "SATBenchmarkCategory", "ACTBenchmarkCategory"],  # SM 2019-20, 110 columns
    "SEL.csv": ["TakenAt", "TakenAtByIPAddress", "StudentDisplayID", "TeacherDisplayID", "Lexile",
                "LexileRange"],  # SEL v1, 112 columns
}


def test_older_star_layouts_without_the_trailing_columns_load(settings):
    drop = prepare_drop(settings)
    pii = pii_of(drop)
    for name, gone in OLDER_LAYOUTS.items():
        frame = read(drop / name)
        write(frame.drop(gone), drop / name)
    assert [read(drop / n).width for n in OLDER_LAYOUTS] == [119, 110, 112]
    report = run_drop(settings)
    assert_loaded_normally(settings, drop, report, pii)
    assert set(table(settings, assessment_results)["Subject"].to_list()) == {"SR", "SM", "SEL"}


def test_na_and_blank_score_markers_become_nulls_not_rejections(settings):
    drop = prepare_drop(settings)
    pii = pii_of(drop)
    sm = read(drop / "SM.csv")
    marker = pl.int_range(pl.len()) % 4  # 0: NA, 1: blank, 2: " na ", 3: untouched
    sm = sm.with_columns([
        pl.when(marker == 0).then(pl.lit("NA")).when(marker == 1).then(pl.lit("")).when(marker == 2)
        .then(pl.lit(" na ")).otherwise(pl.col(c)).alias(c)
        for c in ("ScaledScore", "PercentileRank", "UnifiedScore")
    ])
    write(sm, drop / "SM.csv")
    report = run_drop(settings)
    assert_loaded_normally(settings, drop, report, pii)
    assert report.rejected["validated_star_math"] == 0
    results = table(settings, assessment_results).filter(pl.col("Subject") == "SM")
    by_id = dict(zip(sm["AssessmentID"].to_list(), sm["ScaledScore"].to_list()))
    for test_key, score, pr, unified in results.select("TestKey", "ScaledScore", "PercentileRank",
                                                       "UnifiedScore").iter_rows():
        sent = by_id[test_key]
        if sent.strip().upper() in ("", "NA"):
            assert score is None and pr is None and unified is None
        else:
            assert score == int(sent)
    assert results["ScaledScore"].null_count() > results.height // 2


def test_tab_delimited_powerschool_export_declared_in_the_registry(settings, tmp_path):
    s = make_settings(settings.home, MTSS_DISTRICTS_DIR=str(registry_with(tmp_path, delimiter="\t")))
    drop = prepare_drop(s)
    pii = pii_of(drop)
    ps = read(drop / "students.csv").with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("Smith, Jr.")).otherwise(pl.col("STUDENTS.LAST_NAME"))
        .alias("STUDENTS.LAST_NAME"))
    (drop / "students.csv").write_text(csv_text(ps, delimiter="\t", terminator="\r\n"))
    report = run_drop(s)
    assert_loaded_normally(s, drop, report, pii)
    roster = table(s, student_roster)
    assert "Smith, Jr." in roster["LastName"].to_list()
    assert set(roster["StudentNumber"].to_list()) == set(ps[PS_NUMBER].to_list())


def _with_accented_name(drop: Path) -> tuple[pl.DataFrame, str]:
    ps = read(drop / "students.csv")
    number = ps[PS_NUMBER][0]
    ps = ps.with_columns(
        pl.when(pl.col(PS_NUMBER) == number).then(pl.lit("José")).otherwise(pl.col("STUDENTS.FIRST_NAME"))
        .alias("STUDENTS.FIRST_NAME"),
        pl.when(pl.col(PS_NUMBER) == number).then(pl.lit("Muñoz")).otherwise(pl.col("STUDENTS.LAST_NAME"))
        .alias("STUDENTS.LAST_NAME"))
    return ps, number


def test_declared_windows_1252_powerschool_export_decodes(settings, tmp_path):
    s = make_settings(settings.home, MTSS_DISTRICTS_DIR=str(registry_with(tmp_path, encoding="windows-1252")))
    drop = prepare_drop(s)
    pii = pii_of(drop)
    ps, number = _with_accented_name(drop)
    data = csv_text(ps, terminator="\r\n").encode("cp1252")
    assert b"Jos\xe9" in data and b"Mu\xf1oz" in data
    (drop / "students.csv").write_bytes(data)
    report = run_drop(s)
    assert_loaded_normally(s, drop, report, pii)
    roster = table(s, student_roster).filter(pl.col("StudentNumber") == number)
    assert roster.select("FirstName", "LastName").rows() == [("José", "Muñoz")]


# ----------------------------------------------------------------------------------------------------------------
# 2. Must be refused as a file

def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _header_only(path: Path) -> None:
    path.write_bytes(path.read_bytes().split(b"\n", 1)[0] + b"\n")


def _drop_column(column: str):
    def mutate(path: Path) -> None:
        write(read(path).drop(column), path)
    return mutate


def _duplicate_header(path: Path) -> None:
    header, rest = path.read_bytes().split(b"\n", 1)
    cols = header.split(b",")
    cols[-1] = cols[1]  # the last column is named like the second one
    path.write_bytes(b",".join(cols) + b"\n" + rest)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 300])  # cut short in transfer, mid-record


def _cut_in_character(path: Path) -> None:
    # the last record's last field was "Montréal" (é is two bytes in UTF-8); the file stops after the first byte
    path.write_bytes(path.read_bytes().rstrip(b"\n") + "Montréal".encode()[:6])
    assert path.read_bytes().endswith(b"Montr\xc3")


def _windows_1252_last_value(path: Path) -> None:
    # an undeclared Windows-1252 file: "Montréal" as byte 0xE9, in the very last value of the file
    path.write_bytes(path.read_bytes().rstrip(b"\n") + "Montréal\n".encode("cp1252"))


def _windows_1252_name(path: Path) -> None:
    ps, _ = _with_accented_name(path.parent)
    path.write_bytes(csv_text(ps).encode("cp1252"))


def _no_header(path: Path) -> None:
    path.write_bytes(path.read_bytes().split(b"\n", 1)[1])


def _bare_cr(path: Path) -> None:
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r"))


def _tab_delimited(path: Path) -> None:
    path.write_text(csv_text(read(path), delimiter="\t"))


# file, how it is broken, stage, reason
FILE_REFUSALS = {
    "star_empty": ("SR.csv", _empty, "ingest", "empty_file"),
    "star_header_only": ("SM.csv", _header_only, "ingest", "header_only"),
    "star_missing_required_column": ("SEL.csv", _drop_column("ScaledScore"), "validation", "missing_columns"),
    "star_duplicated_header": ("SM.csv", _duplicate_header, "ingest", "duplicate_header"),
    "star_truncated_last_line": ("SEL.csv", _truncate, "ingest", "truncated"),
    "star_cut_in_multibyte_character": ("SR.csv", _cut_in_character, "ingest", "truncated"),
    "star_undeclared_windows_1252": ("SR.csv", _windows_1252_last_value, "ingest", "encoding"),
    "star_no_header_row": ("SR.csv", _no_header, "ingest", "no_header"),
    "star_bare_cr_line_endings": ("SM.csv", _bare_cr, "ingest", "line_endings"),
    "ps_empty": ("students.csv", _empty, "ingest", "empty_file"),
    "ps_header_only": ("students.csv", _header_only, "ingest", "header_only"),
    "ps_missing_email_column": ("students.csv", _drop_column(PS_EMAIL), "mapping", "missing_columns"),
    "ps_duplicated_header": ("students.csv", _duplicate_header, "ingest", "duplicate_header"),
    "ps_truncated_last_line": ("students.csv", _truncate, "ingest", "truncated"),
    "ps_no_header_row_undeclared": ("students.csv", _no_header, "ingest", "no_header"),
    "ps_undeclared_windows_1252": ("students.csv", _windows_1252_name, "ingest", "encoding"),
    "ps_tab_delimited_undeclared": ("students.csv", _tab_delimited, "mapping", "missing_columns"),
}


@pytest.mark.parametrize("case", list(FILE_REFUSALS))
def test_a_broken_file_is_halted_at_its_stage_naming_the_file_and_no_value(case, tmp_path):
    """Each way a file breaks, at the level where a file is read and validated (lib/read/ingest.py): the file is
    halted, at its stage, for its reason, in words that name it and none of its values."""
    from belleville_mtss.lib.district.registry import load_registry
    from belleville_mtss.lib.read.ingest import ingest_file, validate_file
    from belleville_mtss.lib.sample import generate_drop
    name, damage, stage, reason = FILE_REFUSALS[case]
    drop = tmp_path / "drop"
    generate_drop(drop, SMALL)
    first_row = read(drop / name).row(0)
    damage(drop / name)
    district = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    data = (drop / name).read_bytes()  # as a run reads it: decrypted from staging
    validated, _errors = validate_file(ingest_file(VALIDATED[name].removeprefix("validated_"), drop / name,
                                                   district, data), district)
    assert not validated.usable
    halted = validated.halted
    assert (halted.stage, halted.reason, halted.file_name) == (stage, reason, name)
    assert name in halted.message and "nothing from it is loaded" in halted.message
    for value in first_row:
        if value and len(value) > 3:
            assert value not in halted.message, value


# Whole drops: a Star file halted as it is read, and the roster halted as it is mapped (every other case is the same
# path from the halted file on, tested above where it is decided)
@pytest.mark.parametrize("case", ["star_truncated_last_line", "ps_missing_email_column"])
def test_broken_file_is_refused_as_a_file(case, settings):
    name, damage, stage, reason = FILE_REFUSALS[case]
    drop = prepare_drop(settings)
    pii = pii_of(drop)
    first_row = read(drop / name).row(0)
    damage(drop / name)
    report = run_drop(settings)

    logged = errors(settings)
    mine = logged.filter(pl.col("FileName") == name)
    if name == "SR.csv":  # the sample's own Excel-mangled dates are not logged for a refused SR file
        assert "row_rejected" not in mine["Reason"].to_list()
    mine = mine.filter(pl.col("Reason") != "row_rejected")
    assert mine.height == 1, mine
    row = mine.row(0, named=True)
    assert (row["Stage"], row["Reason"]) == (stage, reason)
    assert row["DistrictId"] == BELLEVILLE and row["DropId"] == DROP_ID and row["OccurredAt"] is not None
    assert name in row["Message"] and "nothing from it is loaded" in row["Message"]
    # the message names the file and the problem, never a value of the file
    for value in first_row:
        if value and len(value) > 3:
            assert value not in row["Message"], value
    assert_no_pii(settings, pii)
    others = {(r["FileName"], r["Stage"], r["Reason"]) for r in logged.iter_rows(named=True)} - {
        (name, stage, reason)}
    # a run the halted roster fails has its run row (every failed run has one); a halted Star file fails none
    assert ((None, "run", "failed") in others) == (report.outcome == "failed") == (name == "students.csv")
    assert others - {(None, "run", "failed")} <= BASELINE, others
    assert VALIDATED[name] in report.halted
    assert (drop / "drop.done").exists()
    outcomes = dict(table(settings, ingestion_files).select("FileName", "Outcome").iter_rows())
    assert outcomes[name] == "halted"

    if name == "students.csv":
        # the roster needs the PowerSchool export: nothing is written, and the run says it failed
        assert not report.success
        assert report.written == {}
        assert warehouse_counts(settings) == {"roster": 0, "results": 0}
        return
    assert report.success and report.checks_passed, report.render()
    assert warehouse_counts(settings) == {"roster": SMALL.students, "results": expected_results(drop, pii[0], skip={name})}
    subjects = set(table(settings, assessment_results)["Subject"].to_list())
    assert subjects == set(STAR.values()) - {STAR[name]}
    assert {k for k, v in outcomes.items() if v == "halted"} == {name}


def test_a_refused_file_leaves_other_drops_data_alone(settings):
    first = prepare_drop(settings)
    pii = pii_of(first)
    assert run_drop(settings).success
    before = table(settings, assessment_results)
    later = dataclasses.replace(SMALL, drop_name="2026-11-20")
    second = prepare_drop(settings, later)
    _truncate(second / "SM.csv")
    report = run_drop(settings, "belleville/2026-11-20")
    assert report.success and report.checks_passed, report.render()
    after = table(settings, assessment_results)
    # SM of the first drop stays as it was; SR and SEL come from the second drop
    sm_before = before.filter(pl.col("Subject") == "SM").drop("LoadedAt").sort("TestKey")
    sm_after = after.filter(pl.col("Subject") == "SM").drop("LoadedAt").sort("TestKey")
    assert sm_after.equals(sm_before) and sm_after.height > 0
    assert set(sm_after["DropId"].to_list()) == {DROP_ID}
    assert set(after.filter(pl.col("Subject") != "SM")["DropId"].to_list()) == {"belleville/2026-11-20"}
    logged = errors(settings)
    refusal = logged.filter(pl.col("Reason") == "truncated")
    assert refusal.select("DropId", "FileName").rows() == [("belleville/2026-11-20", "SM.csv")]
    assert (first / "drop.done").exists() and (second / "drop.done").exists()
    assert_no_pii(settings, pii)


def test_two_exports_of_one_kind_in_a_drop_refuse_it_and_neither_loads(settings):
    # The first of the files `students*.csv` matched, by name, was read: last month's export beside this one
    # replaced the district's roster, the rest set aside as not expected, and the run said every file loaded.
    drop = prepare_drop(settings)
    older = pl.read_csv(drop / "students.csv", infer_schema=False)
    older.head(older.height - 10).write_csv(drop / "students_2026-10.csv")
    (drop / "students.csv").rename(drop / "students_2026-11.csv")
    report = run_drop(settings)
    assert report.outcome == "failed" and not report.success, report.render()
    assert warehouse_counts(settings) == {"roster": 0, "results": 0}
    refusal = errors(settings).filter(pl.col("Reason") == "ambiguous_file")
    assert refusal.height == 1 and "students_2026-10.csv, students_2026-11.csv" in refusal["Message"][0]


@pytest.mark.parametrize("file_name, rows", [("SM.csv", None), ("SEL.csv", slice(0, 5))],
                         ids=["another_district_in_belleville_folder", "star_file_mixing_two_districts"])
def test_district_mismatch_blocks_the_whole_drop(file_name, rows, settings):
    drop = prepare_drop(settings)
    pii = pii_of(drop)
    frame = read(drop / file_name)
    index = pl.int_range(pl.len())
    chosen = index < 5 if rows else pl.lit(True)
    write(frame.with_columns(pl.when(chosen).then(pl.lit("Nutley Public Schools")).otherwise(pl.col("DistrictName"))
                             .alias("DistrictName")), drop / file_name)
    report = run_drop(settings)
    assert report.checks["district_names_match_registry"] is False
    assert report.written == {}
    assert warehouse_counts(settings) == {"roster": 0, "results": 0}
    logged = errors(settings).filter(pl.col("Stage") == "district")
    assert logged.height == 1
    row = logged.row(0, named=True)
    assert (row["FileName"], row["Reason"], row["DistrictId"]) == (file_name, "district_mismatch", BELLEVILLE)
    assert row["OccurredAt"] is not None and row["DropId"] == DROP_ID
    assert "Nutley Public Schools" in row["Message"] and "NUTLEY" in row["Message"]
    assert (drop / "drop.done").exists()
    assert_no_pii(settings, pii)


# ----------------------------------------------------------------------------------------------------------------
# 3. Must be refused row by row, counted by reason, without student data

def test_excel_mangled_and_ambiguous_dates_are_refused_row_by_row(settings):
    drop = prepare_drop(settings)
    pii = pii_of(drop)
    sm = read(drop / "SM.csv")
    i = pl.int_range(pl.len())
    sm = sm.with_columns(
        pl.when(i == 10).then(pl.lit("51:23.7"))  # mm:ss.0: the date is lost
        .when(i == 11).then(pl.lit("00:00.0"))
        .when(i == 12).then(pl.lit("08-09-2026"))  # August 9 or September 8: ambiguous
        .when(i == 13).then(pl.lit("10/5/26 21:32"))  # Excel US re-save: readable
        .when(i == 14).then(pl.lit("15-10-2026"))  # day first, unambiguous
        .otherwise(pl.col("CompletedDate")).alias("CompletedDate"))
    write(sm, drop / "SM.csv")
    sr = read(drop / "SR.csv")
    mangled_sr = sr.filter(pl.col("CompletedDate") == "00:00.0")["AssessmentID"].to_list()
    assert len(mangled_sr) == SMALL.excel_mangled_dates
    report = run_drop(settings)
    assert report.success and report.checks_passed, report.render()
    logged = errors(settings).filter(pl.col("Stage") == "validation")
    got = {(r["FileName"], r["Reason"], r["RowCount"], r["Message"]) for r in logged.iter_rows(named=True)}
    assert got == {
        ("SR.csv", "row_rejected", 3, "SR.csv: 3 row(s) rejected: unreadable or ambiguous CompletedDate"),
        ("SM.csv", "row_rejected", 3, "SM.csv: 3 row(s) rejected: unreadable or ambiguous CompletedDate"),
    }
    assert report.rejected["validated_star_math"] == 3
    assert all(r["DistrictId"] == BELLEVILLE and r["OccurredAt"] is not None for r in logged.iter_rows(named=True))
    results = table(settings, assessment_results)
    keys = set(results["TestKey"].to_list())
    ids = sm["AssessmentID"].to_list()
    assert not keys & {*mangled_sr, ids[10], ids[11], ids[12]}
    read_back = dict(zip(results["TestKey"].to_list(), results["CompletedAt"].to_list()))
    assert str(read_back[ids[13]]).startswith("2026-10-05 21:32")
    assert str(read_back[ids[14]]).startswith("2026-10-15")
    assert_no_pii(settings, pii)


def test_duplicate_student_numbers_are_refused_row_by_row(settings):
    drop = prepare_drop(settings)
    pii = pii_of(drop)
    ps = read(drop / "students.csv")
    a, b = ps[PS_NUMBER][0], ps[PS_NUMBER][1]
    write(ps.with_columns(pl.when(pl.col(PS_NUMBER) == b).then(pl.lit(f" {a}")).otherwise(pl.col(PS_NUMBER))
                          .alias(PS_NUMBER)), drop / "students.csv")
    report = run_drop(settings)
    assert report.success and report.checks_passed, report.render()
    logged = errors(settings).filter(pl.col("FileName") == "students.csv")
    assert logged.select("Stage", "Reason", "RowCount", "Message").rows() == [
        ("validation", "row_rejected", 2, "students.csv: 2 row(s) rejected: duplicate student number")]
    roster = table(settings, student_roster)
    assert roster.height == SMALL.students - 2
    assert not {a, b} & set(roster["StudentNumber"].to_list())
    assert not {a, b} & set(table(settings, assessment_results)["StudentNumber"].to_list())
    assert_no_pii(settings, pii)


def _add_classlink_user(settings, email: str) -> None:
    engine = make_engine(settings.prod_db_url)
    with engine.begin() as conn:
        conn.execute(class_link_users.insert(), [{
            "UserId": "CL9999999", "TenantId": 4417, "TenantName": "Belleville PD", "Role": "student",
            "Email": email.upper(), "GivenName": "Dup", "FamilyName": "Account"}])
    engine.dispose()


@pytest.mark.parametrize("where", ["powerschool_email_shared", "classlink_email_shared", "both"])
def test_ambiguous_emails_link_no_one_and_are_counted(where, settings):
    drop = prepare_drop(settings)
    pii = pii_of(drop)
    ps = read(drop / "students.csv")
    numbers = ps[PS_NUMBER].to_list()
    emails = ps[PS_EMAIL].to_list()
    ambiguous = set()
    if where in ("powerschool_email_shared", "both"):
        # two students with one email (typed differently): neither is linked
        emails[1] = f"  {emails[0].strip().upper()} "
        ambiguous |= {numbers[0], numbers[1]}
    if where in ("classlink_email_shared", "both"):
        # a ClassLink email held by two ClassLink users: the student is linked to neither
        _add_classlink_user(settings, emails[2].strip())
        ambiguous.add(numbers[2])
    write(ps.with_columns(pl.Series(PS_EMAIL, emails)), drop / "students.csv")
    report = run_drop(settings)
    assert report.success and report.checks_passed, report.render()
    logged = errors(settings).filter(pl.col("Reason") == "ambiguous_email")
    assert logged.select("Stage", "RowCount", "DistrictId").rows() == [("identity", len(ambiguous), BELLEVILLE)]
    assert logged["OccurredAt"][0] is not None
    assert report.links["classlink_email"]["ambiguous_email"] == len(ambiguous)
    roster = table(settings, student_roster)
    assert roster.height == SMALL.students  # reported, still rostered
    unlinked = roster.filter(pl.col("StudentNumber").is_in(list(ambiguous)))
    assert unlinked.height == len(ambiguous) and unlinked["ClassLinkUserId"].null_count() == len(ambiguous)
    assert "CL9999999" not in roster["ClassLinkUserId"].to_list()
    # everyone else whose email is in ClassLink is still linked
    engine = make_engine(settings.prod_db_url)
    cl = read_table(engine, class_link_users).filter(pl.col("TenantName") == "Belleville PD")
    engine.dispose()
    cl_emails = set(cl["Email"].str.strip_chars().str.to_lowercase().to_list())
    expected = {n for n, e in zip(numbers, emails) if e.strip().lower() in cl_emails} - ambiguous
    assert set(roster.filter(pl.col("ClassLinkUserId").is_not_null())["StudentNumber"].to_list()) == expected
    assert len(expected) >= SMALL.students - SMALL.missing_from_classlink - 4
    assert_no_pii(settings, pii)


def test_star_identifier_that_lost_its_leading_zeros_is_reported_not_joined(settings):
    drop = prepare_drop(settings)
    pii = pii_of(drop)
    ps = read(drop / "students.csv")
    sr = read(drop / "SR.csv")
    number = next(n for n in ps[PS_NUMBER].to_list() if n in set(sr["StudentIdentifier"].to_list()))
    padded = "0" + number
    write(ps.with_columns(pl.when(pl.col(PS_NUMBER) == number).then(pl.lit(padded)).otherwise(pl.col(PS_NUMBER))
                          .alias(PS_NUMBER)), drop / "students.csv")
    star_rows = [read(drop / n).filter(pl.col("StudentIdentifier") == number) for n in STAR]
    readable = sum(f.filter(~pl.col("CompletedDate").str.contains(r"^\d\d:\d\d\.\d$")).height for f in star_rows)
    assert readable >= 1
    report = run_drop(settings)
    assert report.success and report.checks_passed, report.render()
    logged = errors(settings).filter(pl.col("Stage") == "identity")
    by_reason = logged.group_by("Reason").agg(pl.col("RowCount").sum()).sort("Reason").rows()
    assert by_reason == [("probable_leading_zeros", readable), ("unknown_student", SMALL.unknown_star_rows)]
    assert set(logged["FileName"]) <= set(STAR)  # one row per file and reason
    assert report.links["assessment_link"]["probable_leading_zero_rows"] == readable
    results = table(settings, assessment_results)
    assert not {number, padded} & set(results["StudentNumber"].to_list())
    roster = table(settings, student_roster).filter(pl.col("StudentNumber") == padded)
    assert roster["StarTestCount"].to_list() == [0]
    assert_no_pii(settings, pii)


# ----------------------------------------------------------------------------------------------------------------
# Reader and registry details behind the cases above

def test_declared_header_less_powerschool_export_loads(settings, tmp_path):
    prepare_drop(settings)  # only to learn the column order of the sample export
    order = read(settings.drop_dir / "belleville" / SMALL.drop_name / "students.csv").columns
    s = make_settings(tmp_path / "other", MTSS_DISTRICTS_DIR=str(registry_with(tmp_path, has_header=False,
                                                                                column_order=order)))
    drop = prepare_drop(s)
    pii = pii_of(drop)
    _no_header(drop / "students.csv")
    report = run_drop(s)
    assert_loaded_normally(s, drop, report, pii)


@pytest.mark.parametrize("has_header", [True, False])
def test_a_rejected_rosters_row_is_named_by_its_line_in_the_file_with_or_without_a_header(tmp_path, has_header):
    """A row refused for a blank student number is counted with its line, which an operator looks up in the
    export: line 2 of a file with a header row is line 1 of one without (it was said to be line 2 there too)."""
    from belleville_mtss.lib.read.ingest import ingest_file, validate_file
    order = [headers[0] for headers in load_district(PACKAGED_DISTRICTS_DIR / "belleville.yaml").powerschool
             .columns.values()]
    declared = {"has_header": False, "column_order": order} if not has_header else {}
    district = load_district(registry_with(tmp_path, **declared) / "belleville.yaml")
    def line(number: str, email: str) -> str:
        # (the registry's first email header: a row of a blank number and nothing else is no row at all)
        return ",".join(number if c == PS_NUMBER else email if c == "STUDENTS.EMAIL" else "" for c in order) + "\n"
    data = (",".join(order) + "\n" if has_header else "") + line("", "a@x.org") + line("000124", "b@x.org")
    validated, _ = validate_file(ingest_file("powerschool_students", Path("students.csv"), district, data.encode()),
                                 district)
    assert validated.usable and validated.rejected == {"missing student number": 1}
    assert validated.frame["source_row"].to_list() == [3 if has_header else 2]


@pytest.mark.parametrize("data, reason", [
    (b"id,name\n1,a\n2,Jos\xe9\n", "encoding"),  # Windows-1252 at the very end of a UTF-8 file: not a cut
    (b"id,name\n1,a\n2,Jos\xc3", "truncated"),  # UTF-8 cut inside a character
    (b"id,name\r1,a\r2,b\r", "line_endings"),
    (b"000123,ana@x.org\n000124,bo@x.org\n", "no_header"),
    (b"000123,000123,x\n000124,000124,y\n", "no_header"),  # would otherwise name "000123" as a duplicate column
    (b"sep=,\r\nid,name\r\n1,a\r\n", "excel_sep_line"),  # was ragged_rows, the message never naming the line
    (b"sep=\t\r\nid,name\r\n1,a\r\n", "excel_sep_line"),  # a tab: read as a header of 'sep=' and a blank
])
def test_reader_reasons(tmp_path, data, reason):
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    with pytest.raises(FileRejected) as info:
        read_text_csv(path)
    assert info.value.reason == reason
    assert "000123" not in info.value.message and "@" not in info.value.message


def test_header_less_rows_wider_than_the_declared_order_are_refused(tmp_path):
    path = tmp_path / "students.csv"
    path.write_bytes(b"000123,a@x.org,extra\n000124,b@x.org,extra\n")
    with pytest.raises(FileRejected) as info:
        read_text_csv(path, has_header=False, column_names=["n", "e"])
    assert info.value.reason == "ragged_rows"


def test_windows_1252_undefined_byte_is_an_encoding_refusal(tmp_path):
    path = tmp_path / "students.csv"
    path.write_bytes(b"id,name\n1,a\x81b\n" + b"2,abcdefgh\n" * 40_000)  # 0x81 is unassigned in Windows-1252
    with pytest.raises(FileRejected) as info:
        read_text_csv(path, encoding="windows-1252")
    assert info.value.reason == "encoding"


@pytest.mark.parametrize("change, field", [
    ({"has_header": False}, "column_order"),
    ({"has_header": False, "column_order": ["STUDENTS.STUDENT_NUMBER"]}, "column_order"),
    ({"column_order": ["STUDENTS.STUDENT_NUMBER", "U_STUDENTSUSERFIELDS.custom_student_email"]}, "column_order"),
    ({"delimiter": "\\t"}, "delimiter"),
    ({"delimiter": '"'}, "delimiter"),
])
def test_registry_refuses_an_unusable_powerschool_format(tmp_path, change, field):
    registry = registry_with(tmp_path, **change)
    with pytest.raises(RegistryError) as info:
        load_district(registry / "belleville.yaml")
    assert field in str(info.value)


def test_registry_accepts_a_declared_header_less_tab_export():
    fmt = PowerSchoolFormat(delimiter="\t", has_header=False, columns={"student_number": "N", "email": "E"},
                            column_order=["N", "X", "E"])
    assert fmt.column_order == ["N", "X", "E"]


def test_a_utf8_file_declared_windows_1252_is_refused_not_misread(tmp_path):
    """Nearly any UTF-8 is valid Windows-1252: a district that switched its export to UTF-8 after onboarding had
    every accented name loaded as other letters ("MuÃ±oz"), with no refusal."""
    path = tmp_path / "students.csv"
    for data in ("id,name\n1,Muñoz\n".encode("utf-8"), "\ufeffid,name\n1,Muñoz\n".encode("utf-8")):
        path.write_bytes(data)
        with pytest.raises(FileRejected) as info:
            read_text_csv(path, encoding="windows-1252")
        assert info.value.reason == "encoding" and "is UTF-8 text" in info.value.message
    path.write_bytes("id,name\n1,Muñoz\n".encode("cp1252"))  # a real Windows-1252 file still reads
    assert read_text_csv(path, encoding="windows-1252")["name"].to_list() == ["Muñoz"]


def test_a_header_row_in_an_export_declared_without_one_is_refused_not_loaded_as_a_student(tmp_path):
    path = tmp_path / "students.csv"
    path.write_bytes(b"Student_Number,Email\n000123,a@x.org\n")
    with pytest.raises(FileRejected) as info:
        read_text_csv(path, has_header=False, column_names=["student_number", "email"])
    assert info.value.reason == "unexpected_header" and "000123" not in info.value.message
