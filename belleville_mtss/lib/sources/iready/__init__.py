"""Curriculum Associates i-Ready Diagnostic Results: one file per subject, the subject only in the file's name
(diagnostic_results_ela*.csv, diagnostic_results_math*.csv), a UTF-8 byte-order mark, one row per diagnostic. The
files name no district: only `District State ID`, often empty. A registry entry lists the district's state ids
(`state_ids`: a file carrying one is the district's, any other id blocks it) or, where the ids are empty, binds the
files to the district by their folder (`bound_by_folder`). Kept as scores: the diagnostic's other measures
(domain scale scores and placements, Lexile or Quantile, growth), never the student's name, demographics or
classes."""
from __future__ import annotations

import re
from typing import Literal

import pandera.polars as pa
import polars as pl
from pydantic import Field

from ...load.warehouse import assessment_results, max_lengths
from ..base import (
    AssessmentSection, FileKind, SCORES, Source, declared, default_files, gathered, plain_reader, require,
    repeats_refused, split_refused, value, whole,
)
from .sample import sample

# Named "i-Ready Inform Results" from 2026-27, ELA as "reading" (English; the Spanish reading file is another
# subject): a district's files match either name
FILES = (
    FileKind("iready_ela", "diagnostic_results_ela*.csv|*inform_results_reading_english*.csv",
             "i-Ready Diagnostic (Inform) Results, ELA, of the drop", "ELA"),
    FileKind("iready_math", "diagnostic_results_math*.csv|*inform_results_math*.csv",
             "i-Ready Diagnostic (Inform) Results, math, of the drop", "Math"),
)
REQUIRED = ("Academic Year", "Completion Date", "Overall Scale Score")
# The measures a row carries beyond ours: kept as scores, by header. Anything else (names, sex, race, programme
# flags, classes, teachers) is never kept.
MEASURE = re.compile(r"(Scale Score|Placement|Percentile|Measure|Range|Growth.*|Gain|\(%\)|\(Y/N\)|Grouping|"
                     r"Duration \(min\)|Rush Flag|Read Aloud|Projection.*|Proficiency.*)$")
SCALE = (100, 800)


class IreadyResults(pa.DataFrameModel):
    district_state_id: str = pa.Field(nullable=True, **declared("District State ID", "The state's district id, "
                                                                                  "often empty"))
    school_name: str = pa.Field(nullable=True, **declared("School", "School"))
    student_link: str = pa.Field(str_length={"min_value": 1}, **declared(
        "Student ID", "The i-Ready column the registry links by (Student ID by default), as text"))
    subject: str = pa.Field(**declared(None, "ELA or Math: from the file's name"))
    test_key: str = pa.Field(unique=True, **declared(None, "The student's id, the subject and the completion date"))
    grade: str = pa.Field(nullable=True, **declared("Student Grade", "Grade at the time of the diagnostic"))
    school_year: str = pa.Field(str_matches=r"^\d{4}-\d{4}$", **declared("Academic Year", "Academic Year"))
    completed_at: pl.Datetime = pa.Field(**declared("Completion Date", "Completion Date (month/day/year)"))
    screening_window: str = pa.Field(nullable=True, **declared("Norming Window", "Fall, Winter or Spring, from the "
                                                                              "norming window"))
    scaled_score: pl.Int32 = pa.Field(ge=SCALE[0], le=SCALE[1], **declared("Overall Scale Score", "Overall scale score"))
    percentile_rank: pl.Int32 = pa.Field(nullable=True, ge=1, le=99, **declared("Percentile", "National percentile"))
    benchmark_category: str = pa.Field(nullable=True, **declared("Overall Relative Placement",
                                                              "Overall relative placement"))
    scores: SCORES = pa.Field(nullable=True, **declared(None, "The diagnostic's other measures, by header"))
    source_row: pl.UInt32 = pa.Field(**declared(None, "Line number in the file"))

    class Config:
        strict = True


class IreadySection(AssessmentSection):
    files: dict[str, str] = Field(default_factory=default_files(FILES))
    link: Literal["Student ID", "Student State ID"] = "Student ID"


STORED_LENGTHS = max_lengths(assessment_results, {"TestKey": "test_key", "ScreeningWindow": "screening_window",
                                                  "Grade": "grade", "BenchmarkCategory": "benchmark_category"})


def _validate(raw: pl.DataFrame, kind: FileKind, district, file_name: str):
    link = district.sources["iready"].link
    require(raw, (link, *REQUIRED), file_name)
    ours = {link, "District State ID", "School", "Student Grade", "Academic Year", "Completion Date",
            "Norming Window", "Overall Scale Score", "Percentile", "Overall Relative Placement"}
    measures = [h for h in raw.columns if h not in ours and MEASURE.search(h)]
    completed = value(raw, "Completion Date").str.to_datetime("%m/%d/%Y", strict=False, time_unit="us")
    typed = raw.with_row_index("source_row", offset=2).select(
        value(raw, "District State ID").alias("district_state_id"),
        value(raw, "School").alias("school_name"),
        value(raw, link).alias("student_link"),
        pl.lit(kind.subject).alias("subject"),
        value(raw, "Student Grade").alias("grade"),
        value(raw, "Academic Year").str.extract(r"(\d{4})\s*-\s*(\d{4})", 0).str.replace_all(" ", "")
        .alias("school_year"),
        completed.alias("completed_at"),
        value(raw, "Norming Window").str.extract(r"^(Fall|Winter|Spring)\b", 1).alias("screening_window"),
        whole(value(raw, "Overall Scale Score")).alias("scaled_score"),
        value(raw, "Percentile").alias("percentile_text"),
        whole(value(raw, "Percentile")).alias("percentile_rank"),
        value(raw, "Overall Relative Placement").alias("benchmark_category"),
        gathered(raw, measures),
        "source_row",
    ).with_columns(pl.concat_str([pl.col("student_link"), pl.col("subject"),
                                  pl.col("completed_at").dt.to_string("%Y%m%d")], separator=":").alias("test_key"))
    reason = (pl.when(pl.col("student_link").is_null()).then(pl.lit(f"missing {link}"))
              .when(pl.col("completed_at").is_null()).then(pl.lit("unreadable Completion Date (month/day/year)"))
              .when(pl.col("school_year").is_null()).then(pl.lit("unreadable Academic Year"))
              .when(pl.col("scaled_score").is_null()).then(pl.lit("Overall Scale Score is not a whole number"))
              .when(~pl.col("scaled_score").is_between(*SCALE))
              .then(pl.lit(f"Overall Scale Score out of range {SCALE}"))
              .when(pl.col("percentile_text").is_not_null()
                    & ~pl.col("percentile_rank").is_between(1, 99).fill_null(False))
              .then(pl.lit("Percentile is not a whole number in (1, 99)")))
    reason = repeats_refused(reason, typed, "diagnostic (student, subject and day)")
    return split_refused(typed, reason, STORED_LENGTHS, IreadyResults)


SOURCE = Source(
    "iready", "assessment", "i-Ready", FILES, IreadyResults, plain_reader("iready"), _validate, IreadySection,
    state_id_column="district_state_id", district_ids=("Account State ID",),
    person={"first_name": "First Name", "last_name": "Last Name"},
    assessment="iready_diagnostic",
    results_from={"subject": "subject", "test_key": "test_key", "student_link": "student_link", "grade": "grade",
                  "school_year": "school_year", "completed_at": "completed_at", "scaled_score": "scaled_score",
                  "percentile_rank": "percentile_rank", "benchmark_category": "benchmark_category",
                  "screening_window": "screening_window"},
    sample=sample,
    recognise=lambda header: {"Overall Scale Score", "Norming Window", "Completion Date"} <= set(header),
)
