"""Amplify mCLASS DIBELS 8th Edition benchmark export: one row per student per benchmark period (BOY, MOY, EOY),
the composite (score, level, national norm percentile) and a score, level and percentile per measure. It names
the district (`District Name`, `Account Name`). Kept as scores: every measure's score, level, percentile and
growth, never the student's name, birth date, demographics, programmes, classes or teachers. mCLASS lists every
enrolled student, those not yet benchmarked with no Client Date and no Composite Score: no result, and no refusal
(early in a window they are hundreds, and a real unreadable date would hide among them)."""
from __future__ import annotations

import re
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

EDITION = "DIBELS 8th Edition"  # the subject its results are stored under: the only edition this source reads
FILES = (FileKind("dibels8", "dibels8*.csv", "mCLASS DIBELS 8th Edition benchmark export of the drop"),)
REQUIRED = ("School Year", "Benchmark Period", "Composite Score", "Client Date")
# The same export over mCLASS's SFTP (its Benchmark Student Summary) names the day Device Date, beside a Sync Date
# (so KIPP's public teamster models it: device_date, sync_date; not seen here in a file)
OTHER_HEADERS = {"Device Date": "Client Date"}
WINDOWS = {"BOY": "Fall", "MOY": "Winter", "EOY": "Spring"}
# The measures of a row, by header: kept as scores. Anything else is who the student is, or where they sit.
MEASURE = re.compile(r"( - (Level|Score|National Norm Percentile|Semester Growth|Year Growth|Lexile)|"
                     r"^Composite Level|^Assessment Grade|^Administration Type)$")
COMPOSITE = (0, 1000)


class Dibels8Results(pa.DataFrameModel):
    district_name: str = pa.Field(nullable=True, **declared("District Name", "District Name"))
    school_name: str = pa.Field(nullable=True, **declared("School Name", "School Name"))
    student_link: str = pa.Field(str_length={"min_value": 1}, **declared(
        "Student Primary ID", "The mCLASS column the registry links by (Student Primary ID by default)"))
    subject: str = pa.Field(**declared("Assessment Edition", "DIBELS 8th Edition (reading)"))
    test_key: str = pa.Field(unique=True, **declared(None, "The student's id, the school year, the period and the "
                                                             "benchmark's grade"))
    grade: str = pa.Field(nullable=True, **declared("Assessment Grade", "Grade of the benchmark given"))
    school_year: str = pa.Field(str_matches=r"^\d{4}-\d{4}$", **declared("School Year", "School Year"))
    screening_window: str = pa.Field(**declared("Benchmark Period", "Fall (BOY), Winter (MOY) or Spring (EOY)"))
    completed_at: pl.Datetime = pa.Field(**declared("Client Date", "The day the benchmark was given"))
    scaled_score: pl.Int32 = pa.Field(ge=COMPOSITE[0], le=COMPOSITE[1], **declared("Composite Score",
                                                                                "Composite score"))
    percentile_rank: pl.Int32 = pa.Field(nullable=True, ge=0, le=100, **declared(
        "Composite - National Norm Percentile", "Composite national norm percentile"))
    benchmark_category: str = pa.Field(nullable=True, **declared("Composite Level", "Composite level"))
    scores: SCORES = pa.Field(nullable=True, **declared(None, "Every measure's score, level, percentile and growth"))
    source_row: pl.UInt32 = pa.Field(**declared(None, "Line number in the file"))

    class Config:
        strict = True


class Dibels8Section(AssessmentSection):
    files: dict[str, str] = Field(default_factory=default_files(FILES))
    link: Literal["Student Primary ID", "Primary ID - Student ID (State ID)"] = "Student Primary ID"


STORED_LENGTHS = max_lengths(assessment_results, {"TestKey": "test_key", "Subject": "subject", "Grade": "grade",
                                                  "BenchmarkCategory": "benchmark_category"})


def _validate(raw: pl.DataFrame, kind: FileKind, district, file_name: str):
    link = district.sources["dibels8"].link
    raw = raw.rename({old: new for old, new in OTHER_HEADERS.items() if old in raw.columns and new not in raw.columns})
    require(raw, (link, *REQUIRED), file_name)
    raw = raw.with_row_index("source_row", offset=2).filter(  # numbered first: a row keeps its line in the file
        value(raw, "Client Date").is_not_null() | value(raw, "Composite Score").is_not_null())
    ours = {"Composite Score", "Composite - National Norm Percentile", "Composite Level", "Assessment Grade"}
    measures = [h for h in raw.columns if h not in ours and MEASURE.search(h)]
    period = value(raw, "Benchmark Period").str.to_uppercase()
    typed = raw.select(
        pl.coalesce(value(raw, "District Name"), value(raw, "Account Name")).alias("district_name"),
        value(raw, "School Name").alias("school_name"),
        value(raw, link).alias("student_link"),
        value(raw, "Assessment Edition").alias("edition"),
        value(raw, "Assessment Grade").alias("grade"),
        value(raw, "School Year").str.extract(r"(\d{4})\s*-\s*(\d{4})", 0).str.replace_all(" ", "")
        .alias("school_year"),
        period.alias("period"),
        period.replace_strict(WINDOWS, default=None, return_dtype=pl.Utf8).alias("screening_window"),
        datetime_of(value(raw, "Client Date"), ("%Y-%m-%d", "%m/%d/%Y")).alias("completed_at"),  # or re-saved
        value(raw, "Composite Score").alias("composite_text"),
        whole(value(raw, "Composite Score")).alias("scaled_score"),
        value(raw, "Composite - National Norm Percentile").alias("percentile_text"),
        whole(value(raw, "Composite - National Norm Percentile")).alias("percentile_rank"),
        value(raw, "Composite Level").alias("benchmark_category"),
        gathered(raw, measures),
        "source_row",
    ).with_columns(pl.concat_str(  # a student may be given an off-grade benchmark beside their own in a period
        ["student_link", "school_year", "period", pl.col("grade").fill_null("")], separator=":").alias("test_key"),
        pl.lit(EDITION).alias("subject"))
    # another edition's row (mCLASS Lectura, DIBELS Next) is another test, on another scale, never a copy of the
    # student's DIBELS 8 benchmark; and a cell that is no edition (a shifted row's name) is never stored or shown
    other_edition = pl.col("edition").is_not_null() & ~pl.col("edition").str.contains(r"(?i)^dibels\s*8")
    reason = (pl.when(pl.col("student_link").is_null()).then(pl.lit(f"missing {link}"))
              .when(other_edition).then(pl.lit(f"Assessment Edition is not {EDITION}"))
              .when(pl.col("screening_window").is_null()).then(pl.lit("Benchmark Period is not BOY, MOY or EOY"))
              .when(pl.col("school_year").is_null()).then(pl.lit("unreadable School Year"))
              .when(pl.col("completed_at").is_null())
              .then(pl.lit("unreadable Client Date (year-month-day, or month/day/year)"))
              .when(pl.col("composite_text").is_null())  # a window half-way: measures given, no composite yet
              .then(pl.lit("benchmark not finished: no Composite Score yet (loaded once it has one)"))
              .when(pl.col("scaled_score").is_null()).then(pl.lit("Composite Score is not a whole number"))
              .when(~pl.col("scaled_score").is_between(*COMPOSITE))
              .then(pl.lit(f"Composite Score out of range {COMPOSITE}"))
              .when(pl.col("percentile_text").is_not_null()
                    & ~pl.col("percentile_rank").is_between(0, 100).fill_null(False))
              .then(pl.lit("Composite - National Norm Percentile is not a whole number in (0, 100)")))
    reason = repeats_refused(reason, typed, "benchmark (student, period and grade)", other_edition)
    return split_refused(typed, reason, STORED_LENGTHS, Dibels8Results)


SOURCE = Source(
    "dibels8", "assessment", "DIBELS 8", FILES, Dibels8Results, plain_reader("dibels8"), _validate, Dibels8Section,
    district_column="district_name", district_ids=("District Primary ID",),
    person={"first_name": "Student First Name", "last_name": "Student Last Name", "birth_date": "Date of Birth"},
    results_from={"subject": "subject", "test_key": "test_key", "student_link": "student_link", "grade": "grade",
                  "school_year": "school_year", "completed_at": "completed_at", "scaled_score": "scaled_score",
                  "percentile_rank": "percentile_rank", "benchmark_category": "benchmark_category",
                  "screening_window": "screening_window"},
    sample=sample,
    recognise=lambda header: {"Benchmark Period", "Composite Score", "Student Primary ID"} <= set(header),
    snapshot="term",  # mCLASS benchmark exports arrive a period at a time (BOY, MOY, EOY): each keeps the others
)
