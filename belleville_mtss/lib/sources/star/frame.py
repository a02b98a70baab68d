"""Star's validated frame, declared once: each field's type, constraint, description and the v2 header it is read
from. Validation (pandera), the UI's column schemas, lineage and the docs all follow from this model."""
from __future__ import annotations

import datetime as dt

import pandera.polars as pa
import polars as pl

from ..base import declared
from .files import FILES

SUBJECTS = tuple(k.subject for k in FILES)
STATUSES = ("Active", "Deactivated")


class StarResults(pa.DataFrameModel):
    subject: str = pa.Field(isin=list(SUBJECTS), **declared(None, "SR (reading), SM (math) or SEL (early literacy)"))
    test_key: str = pa.Field(nullable=False, **declared(
        "AssessmentID", "AssessmentID; for a test without one, subject:student:completion time"))
    student_link: str = pa.Field(nullable=False, str_length={"min_value": 1}, **declared(
        "StudentIdentifier", "The Renaissance column the registry links by (StudentIdentifier by default), as text"))
    district_name: str = pa.Field(nullable=False, **declared("DistrictName",
                                                          "Renaissance DistrictName, as the vendor spells it"))
    school_name: str = pa.Field(nullable=True, **declared("SchoolName", "Renaissance SchoolName"))
    school_year: str = pa.Field(str_matches=r"^\d{4}-\d{4}$", **declared("SchoolYear", "School year, YYYY-YYYY"))
    completed_at: dt.datetime = pa.Field(nullable=False, **declared(
        "CompletedDate", "CompletedDate (UTC), parsed from any unambiguous layout; 1990-2100 only"))
    grade: str = pa.Field(nullable=True, **declared("Grade", "Grade at the time of the test (K, 1-12)"))
    scaled_score: pl.Int32 = pa.Field(nullable=True, ge=0, le=1400, **declared("ScaledScore", "Star scaled score"))
    percentile_rank: pl.Int32 = pa.Field(nullable=True, ge=0, le=100, **declared("PercentileRank",
                                                                              "Percentile rank (1-99)"))
    unified_score: pl.Int32 = pa.Field(nullable=True, ge=0, le=2000, **declared("UnifiedScore",
                                                                             "Star Unified scale score"))
    benchmark_category: str = pa.Field(nullable=True, **declared("RenaissanceBenchmarkCategoryName",
                                                              "Renaissance benchmark category name"))
    screening_window: str = pa.Field(nullable=True, **declared("ScreeningPeriodWindowName",
                                                            "Screening period window name"))
    assessment_status: str = pa.Field(isin=list(STATUSES), **declared(
        "AssessmentStatus", "Active, or Deactivated (a test a teacher invalidated: its scores emptied)"))
    deactivation_reason: str = pa.Field(nullable=True, **declared(
        "DeactivationReason", "Why a teacher deactivated the test, where Renaissance says"))
    source_row: pl.UInt32 = pa.Field(**declared(None, "Line number in the file (for tracing rejections, never a "
                                                   "student value)"))

    class Config:
        strict = True


STAR_SCHEMA = {name: col.dtype.type for name, col in StarResults.to_schema().columns.items()}
