"""FastBridge aReading and aMath screening exports: one row per student, one column group per screening period
(`Fall`, `Winter`, `Spring`, `Screening Period 4`, `5`). Each filled group (its `Final Date`) is one test event;
a student who took none has no event. The growth columns "from X to Y" belong to period Y's event; each period's
Lexile or Quantile too. The scale score is the Test Theta (a decimal: rounded into the common column, kept exactly
as a score). An export may carry a column with a blank header; the student's name, birth date and demographics
are never kept."""
from __future__ import annotations

import re
from typing import Literal

import pandera.polars as pa
import polars as pl
from pydantic import Field

from ...load.warehouse import assessment_results, max_lengths
from ...read.csvfile import FileRejected
from ..base import (
    AssessmentSection, FileKind, SCORES, Source, declared, default_files, gathered, plain_reader, require,
    repeats_refused, split_refused, value,
)
from .sample import sample

FILES = (
    FileKind("fastbridge_areading", "FastBridge_aReading*.csv", "FastBridge aReading screening export of the drop",
             "aReading"),
    FileKind("fastbridge_amath", "FastBridge_aMath*.csv", "FastBridge aMath screening export of the drop", "aMath"),
)
PERIODS = ("Fall", "Winter", "Spring", "Screening Period 4", "Screening Period 5")
THETA = (0, 1000)


class FastBridgeResults(pa.DataFrameModel):
    district_name: str = pa.Field(nullable=True, **declared("District", "District"))
    school_name: str = pa.Field(nullable=True, **declared("School", "School"))
    student_link: str = pa.Field(str_length={"min_value": 1}, **declared(
        "Local ID", "The FastBridge column the registry links by (Local ID by default), as text"))
    subject: str = pa.Field(**declared("Assessment", "aReading or aMath"))
    test_key: str = pa.Field(unique=True, **declared(None, "The student's id, the subject, the period and its date"))
    grade: str = pa.Field(nullable=True, **declared("Grade", "Grade, as FastBridge writes it"))
    school_year: str = pa.Field(str_matches=r"^\d{4}-\d{4}$", **declared(None, "School year (July to June) of the "
                                                                            "period's final date"))
    screening_window: str = pa.Field(isin=list(PERIODS), **declared(None, "The screening period"))
    completed_at: pl.Datetime = pa.Field(**declared("Final Date", "The period's final date (month/day/year)"))
    scaled_score: pl.Int32 = pa.Field(ge=THETA[0], le=THETA[1], **declared("Test Theta", "Test Theta, rounded"))
    percentile_rank: pl.Int32 = pa.Field(nullable=True, ge=0, le=100, **declared("Percentile at Nation",
                                                                              "National percentile, rounded"))
    benchmark_category: str = pa.Field(nullable=True, **declared("Risk Level", "Risk level"))
    scores: SCORES = pa.Field(nullable=True, **declared(None, "The period's other measures and its growth, by header"))
    source_row: pl.UInt32 = pa.Field(**declared(None, "Line number in the file"))

    class Config:
        strict = True


class FastBridgeSection(AssessmentSection):
    files: dict[str, str] = Field(default_factory=default_files(FILES))
    link: Literal["Local ID", "State ID", "FAST ID"] = "Local ID"


NOT_AVAILABLE = ("", "N/A", "N/A*")  # FastBridge's "not available": none in our columns, kept as written in scores


def _rounded(text: pl.Expr) -> pl.Expr:
    return text.cast(pl.Float64, strict=False).round(0).cast(pl.Int32, strict=False)


STORED_LENGTHS = max_lengths(assessment_results, {"TestKey": "test_key", "Subject": "subject", "Grade": "grade",
                                                  "BenchmarkCategory": "benchmark_category"})


def _period(raw: pl.DataFrame, period: str, subject: str, link: str) -> pl.DataFrame | None:
    """One period's events: the rows whose group for `period` has a final date."""
    prefix = f"{period} {subject} "
    final = f"{prefix}Final Date"
    if final not in raw.columns:
        return None
    mine = [h for h in raw.columns if (h.startswith(prefix) and h != final) or h.startswith(f"{period} Lexile")
            or h.startswith(f"{period} Quantile") or re.search(rf"Growth.* to {re.escape(period)}$", h)]
    filled = value(raw, final, NOT_AVAILABLE)
    taken = filled.str.to_datetime("%m/%d/%Y", strict=False, time_unit="us")
    year = taken.dt.year() - (taken.dt.month() < 7).cast(pl.Int32)
    return raw.with_row_index("source_row", offset=2).with_columns(gathered(raw, mine)).filter(
            filled.is_not_null()).select(
        value(raw, "District", NOT_AVAILABLE).alias("district_name"),
        value(raw, "School", NOT_AVAILABLE).alias("school_name"),
        value(raw, link, NOT_AVAILABLE).alias("student_link"),
        pl.lit(subject).alias("subject"),
        value(raw, "Grade", NOT_AVAILABLE).alias("grade"),
        pl.format("{}-{}", year, year + 1).alias("school_year"),
        pl.lit(period).alias("screening_window"),
        taken.alias("completed_at"),
        value(raw, f"{prefix}Test Theta", NOT_AVAILABLE).alias("theta"),
        _rounded(value(raw, f"{prefix}Test Theta", NOT_AVAILABLE)).alias("scaled_score"),
        value(raw, f"{prefix}Percentile at Nation", NOT_AVAILABLE).alias("percentile_text"),
        _rounded(value(raw, f"{prefix}Percentile at Nation", NOT_AVAILABLE)).alias("percentile_rank"),
        value(raw, f"{prefix}Risk Level", NOT_AVAILABLE).alias("benchmark_category"),
        "scores",
        "source_row",
    )


def _validate(raw: pl.DataFrame, kind: FileKind, district, file_name: str):
    link = district.sources["fastbridge"].link
    named = raw.select(value(raw, "Assessment")).to_series().drop_nulls()  # a blank cell names no assessment
    if not named.is_in([kind.subject]).all():
        raise FileRejected("wrong_file", f"{file_name}: not a FastBridge {kind.subject} export (its Assessment "
                                         "column says otherwise)")
    require(raw, (link, f"Fall {kind.subject} Final Date"), file_name)
    events = pl.concat([f for p in PERIODS if (f := _period(raw, p, kind.subject, link)) is not None])
    events = events.with_columns(pl.concat_str(["student_link", "subject", "screening_window", pl.col(
        "completed_at").dt.to_string("%Y%m%d")], separator=":").alias("test_key"))
    reason = (pl.when(pl.col("student_link").is_null()).then(pl.lit(f"missing {link}"))
              .when(pl.col("completed_at").is_null()).then(pl.lit("unreadable Final Date (month/day/year)"))
              .when(pl.col("theta").is_null() | pl.col("scaled_score").is_null())
              .then(pl.lit("Test Theta missing or not a number"))
              .when(~pl.col("scaled_score").is_between(*THETA)).then(pl.lit(f"Test Theta out of range {THETA}"))
              .when(pl.col("percentile_text").is_not_null() & pl.col("percentile_rank").is_null())
              .then(pl.lit("Percentile at Nation is not a number"))  # loaded empty, its text only in the scores
              .when(~pl.col("percentile_rank").is_between(0, 100)).then(pl.lit("Percentile at Nation out of range "
                                                                              "(0, 100)")))
    reason = repeats_refused(reason, events, "screening (student, period and day)")
    # in the file's order: a student's periods after one another
    return split_refused(events.sort("source_row", maintain_order=True), reason, STORED_LENGTHS,
                         FastBridgeResults)


SOURCE = Source(
    "fastbridge", "assessment", "FastBridge", FILES, FastBridgeResults, plain_reader("fastbridge"), _validate,
    FastBridgeSection,
    district_column="district_name",
    person={"first_name": "First Name", "last_name": "Last Name", "birth_date": "DOB"},
    results_from={"subject": "subject", "test_key": "test_key", "student_link": "student_link", "grade": "grade",
                  "school_year": "school_year", "completed_at": "completed_at", "scaled_score": "scaled_score",
                  "percentile_rank": "percentile_rank", "benchmark_category": "benchmark_category",
                  "screening_window": "screening_window"},
    sample=sample,
    recognise=lambda header: any(h.endswith("Test Theta") for h in header) and "FAST ID" in header,
)
