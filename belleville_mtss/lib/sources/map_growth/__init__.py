"""NWEA MAP Growth: the Comprehensive Data File's AssessmentResults.csv, one row per test. The combined layout
carries DistrictName and District_StateID (the separate layout keeps them in StudentsBySchool.csv: its
AssessmentResults.csv carries no district evidence). Older exports say MeasurementScale/Discipline where newer
ones say Subject/Course; TestStartDate is month/day/year. Every other column a row carries (goals, growth,
Lexile, Quantile, projected proficiency...) is kept as a score under its header, identifying columns aside."""
from __future__ import annotations

from typing import Literal

import pandera.polars as pa
import polars as pl
from pydantic import Field

from ...load.warehouse import assessment_results, max_lengths
from ..base import (
    AssessmentSection, FileKind, SCORES, Source, declared, default_files, gathered, plain_reader, require,
    datetime_of, repeats_refused, split_refused, value, whole,
)
from .sample import sample

FILES = (FileKind("map_growth", "AssessmentResults*.csv",
                  "NWEA MAP Growth Comprehensive Data File, AssessmentResults, of the drop"),)
OLDER_HEADERS = {"MeasurementScale": "Subject", "Discipline": "Course"}
# The subject a result is stored under is its RIT scale (NWEA's norms: Mathematics, Reading, Language Usage,
# Science), whatever the layout: newer exports put Reading and Language Usage under Subject "Language Arts" (their
# Course tells them apart), older ones name the scale itself ("General Science", "Science - General Science" for
# Science). A subject is stored and named in messages (a shifted cell would put a student's name there): a row
# whose subject is none of NWEA's MAP Growth subjects is refused. Those outside the four norms' scales are kept as
# named (older exports' MeasurementScale: end-of-course, Spanish, science and social studies scales). The list is
# NWEA's subject codes as public districts' code that reads these exports names them, not NWEA's own documentation:
# a subject missing from it refuses its rows, each counted with its reason.
SCALES = ("Mathematics", "Reading", "Language Usage", "Science")
SUBJECTS = (*SCALES, "Science - Concepts and Processes", "Social Studies", "Reading - Spanish", "Spanish Reading",
            "Algebra 1", "Algebra 2", "Geometry", "Integrated Math 1", "Integrated Math 1 and 2", "Integrated Math 2",
            "Integrated Math 3", "Earth and Space Sciences", "Life Sciences", "Physical Sciences",
            "Earth, Space, and Life Sciences")


def _scale(subject: pl.Expr, course: pl.Expr) -> pl.Expr:
    arts = (pl.when(course.str.contains("(?i)language usage")).then(pl.lit("Language Usage"))
            .when(course.str.contains("(?i)reading")).then(pl.lit("Reading")).otherwise(subject))
    return (pl.when(subject == "Language Arts").then(arts)
            .when(subject.is_in(["General Science", "Science - General Science"])).then(pl.lit("Science"))
            .otherwise(subject))
# Read into our columns (the rest of a row is kept as scores), and never kept as a score: who the student is.
OURS = ("TermName", "DistrictName", "District_StateID", "SchoolName", "Subject", "Course", "TestID",
        "TestStartDate", "TestStartTime", "TestRITScore", "TestPercentile", "AchievementQuintile")
IDENTIFYING = ("StudentID", "Student_StateID", "School_StateID")
REQUIRED = ("TermName", "Subject", "TestStartDate", "TestRITScore")
# TestStartDate and TestStartTime as NWEA writes them, then as an Excel re-save (US) does: 9:57:27 AM, or 9:57
WHEN = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "%m/%d/%Y %I:%M %p")
RIT, PERCENTILE = (100, 350), (1, 99)


class MapGrowthResults(pa.DataFrameModel):
    district_name: str = pa.Field(nullable=True, **declared("DistrictName", "DistrictName (combined layout only)"))
    district_state_id: str = pa.Field(nullable=True, **declared("District_StateID", "The state's district id"))
    school_name: str = pa.Field(nullable=True, **declared("SchoolName", "SchoolName"))
    student_link: str = pa.Field(str_length={"min_value": 1}, **declared(
        "StudentID", "The MAP column the registry links by (StudentID by default), as text"))
    subject: str = pa.Field(**declared("Subject", "The RIT scale: Subject, or for Language Arts its Course's (Reading, "
                                                  "Language Usage); MeasurementScale in older exports"))
    course: str = pa.Field(nullable=True, **declared("Course", "Course (Discipline in older exports)"))
    test_key: str = pa.Field(unique=True, **declared("TestID", "The student's id and MAP TestID (for a test without "
                                                               "one: its subject and start time)"))
    term_name: str = pa.Field(**declared("TermName", "TermName, e.g. Fall 2025-2026"))
    school_year: str = pa.Field(str_matches=r"^\d{4}-\d{4}$", **declared(None, "School year, from TermName"))
    screening_window: str = pa.Field(**declared(None, "Fall, Winter, Spring or Summer, from TermName: the term a "
                                                      "load replaces"))
    completed_at: pl.Datetime = pa.Field(**declared("TestStartDate", "TestStartDate (month/day/year) and "
                                                                  "TestStartTime"))
    scaled_score: pl.Int32 = pa.Field(ge=RIT[0], le=RIT[1], **declared("TestRITScore", "RIT score"))
    percentile_rank: pl.Int32 = pa.Field(nullable=True, ge=PERCENTILE[0], le=PERCENTILE[1], **declared(
        "TestPercentile", "Achievement percentile"))
    benchmark_category: str = pa.Field(nullable=True, **declared("AchievementQuintile", "Achievement quintile "
                                                                                     "(Low ... High)"))
    scores: SCORES = pa.Field(nullable=True, **declared(None, "Every other column of the row, by header"))
    source_row: pl.UInt32 = pa.Field(**declared(None, "Line number in the file"))

    class Config:
        strict = True


class MapGrowthSection(AssessmentSection):
    files: dict[str, str] = Field(default_factory=default_files(FILES))
    link: Literal["StudentID", "Student_StateID"] = "StudentID"


STORED_LENGTHS = max_lengths(assessment_results, {"TestKey": "test_key", "Subject": "subject",
                                                  "ScreeningWindow": "screening_window",
                                                  "BenchmarkCategory": "benchmark_category"})


def _validate(raw: pl.DataFrame, kind: FileKind, district, file_name: str):
    frame = raw.rename({old: new for old, new in OLDER_HEADERS.items()
                        if old in raw.columns and new not in raw.columns})
    link = district.sources["map_growth"].link
    require(frame, (link, *REQUIRED), file_name)
    others = [h for h in frame.columns if h not in OURS and h not in IDENTIFYING and h != link
              and not h.startswith("Student")]
    term = value(frame, "TermName")
    when = pl.concat_str([value(frame, "TestStartDate"), pl.coalesce(value(frame, "TestStartTime"),
                                                                      pl.lit("00:00:00"))], separator=" ")
    typed = frame.with_row_index("source_row", offset=2).select(
        value(frame, "DistrictName").alias("district_name"),
        value(frame, "District_StateID").alias("district_state_id"),
        value(frame, "SchoolName").alias("school_name"),
        value(frame, link).alias("student_link"),
        _scale(value(frame, "Subject"), value(frame, "Course")).alias("subject"),
        value(frame, "Subject").alias("subject_as_sent"),
        value(frame, "Course").alias("course"),
        value(frame, "TestID").alias("test_id"),
        term.alias("term_name"),
        term.str.extract(r"(\d{4})\s*-\s*(\d{4})", 0).str.replace_all(" ", "").alias("school_year"),
        term.str.extract(r"^(Fall|Winter|Spring|Summer)\b", 1).alias("screening_window"),
        datetime_of(when, WHEN).alias("completed_at"),
        datetime_of(value(frame, "TestStartDate"), ("%m/%d/%Y",)).is_not_null().alias("date_read"),
        value(frame, "TestRITScore").alias("rit_text"),
        whole(value(frame, "TestRITScore")).alias("scaled_score"),
        value(frame, "TestPercentile").alias("percentile_text"),
        whole(value(frame, "TestPercentile")).alias("percentile_rank"),
        value(frame, "AchievementQuintile").alias("benchmark_category"),
        gathered(frame, others),
        "source_row",
    )
    # The key is the student's with the test's: NWEA's TestID, or for a test without one (screeners in the public
    # sample) its subject and start time; the public sample also repeats one TestID across students.
    # (its subject as sent: keys of tests loaded before subjects were stored as scales stay the same)
    typed = typed.with_columns(pl.concat_str([pl.col("student_link"), pl.coalesce(
        pl.col("test_id"), pl.concat_str([pl.col("subject_as_sent"),
                                          pl.col("completed_at").dt.to_string("%Y%m%d%H%M%S")], separator=":"))],
        separator=":").alias("test_key"))
    reason = (pl.when(pl.col("student_link").is_null()).then(pl.lit(f"missing {link}"))
              .when(pl.col("subject").is_null()).then(pl.lit("missing Subject"))
              .when(~pl.col("subject").is_in(SUBJECTS))
              .then(pl.lit("Subject is none of NWEA's MAP Growth subjects (Mathematics, Reading, Language Usage, "
                           "Science, ...; Language Arts with a Reading or Language Usage Course)"))
              .when(pl.col("completed_at").is_null() & pl.col("date_read"))
              .then(pl.lit("unreadable TestStartTime (hour:minute:second, or an Excel re-save's 9:57:27 AM)"))
              .when(pl.col("completed_at").is_null()).then(pl.lit("unreadable TestStartDate (month/day/year)"))
              .when(pl.col("school_year").is_null()).then(pl.lit("TermName without a school year"))
              .when(pl.col("screening_window").is_null())
              .then(pl.lit("TermName without its season (Fall, Winter, Spring or Summer)"))
              .when(pl.col("scaled_score").is_null()).then(pl.lit("TestRITScore is not a whole number"))
              .when(~pl.col("scaled_score").is_between(*RIT)).then(pl.lit(f"TestRITScore out of range {RIT}"))
              .when(pl.col("percentile_text").is_not_null()
                    & ~pl.col("percentile_rank").is_between(*PERCENTILE).fill_null(False))
              .then(pl.lit(f"TestPercentile is not a whole number in {PERCENTILE}")))
    reason = repeats_refused(reason, typed, f"test ({link} and TestID)")
    return split_refused(typed, reason, STORED_LENGTHS, MapGrowthResults)


SOURCE = Source(
    # NWEA's public sample ends without a line break, its last record one (empty) trailing field short
    "map_growth", "assessment", "MAP Growth", FILES, MapGrowthResults, plain_reader("map_growth", 1), _validate,
    MapGrowthSection,
    district_column="district_name", state_id_column="district_state_id",
    results_from={"subject": "subject", "test_key": "test_key", "student_link": "student_link",
                  "school_year": "school_year", "completed_at": "completed_at", "scaled_score": "scaled_score",
                  "percentile_rank": "percentile_rank", "benchmark_category": "benchmark_category",
                  "screening_window": "screening_window"},
    sample=sample,
    recognise=lambda header: {"TestRITScore", "TermName", "TestID"} <= set(header),
    snapshot="term",  # a daily or weekly export holds the current term's tests only (NWEA's Data Export Scheduler)
)
