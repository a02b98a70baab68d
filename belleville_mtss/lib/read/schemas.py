"""pandera contracts (polars backend) for the validated frames. Row-level cleaning happens before these:
a failure here means a bug or a file we do not understand, so messages carry check names, never values."""
from __future__ import annotations

import datetime as dt

import pandera.polars as pa
import polars as pl

from .catalog import SUBJECTS


class StarResults(pa.DataFrameModel):
    subject: str = pa.Field(isin=list(SUBJECTS))
    test_key: str = pa.Field(nullable=False)
    student_link: str = pa.Field(nullable=False, str_length={"min_value": 1})
    district_name: str = pa.Field(nullable=False)
    school_name: str = pa.Field(nullable=True)
    school_year: str = pa.Field(str_matches=r"^\d{4}-\d{4}$")
    completed_at: dt.datetime = pa.Field(nullable=False)
    grade: str = pa.Field(nullable=True)
    scaled_score: pl.Int32 = pa.Field(nullable=True, ge=0, le=1400)
    percentile_rank: pl.Int32 = pa.Field(nullable=True, ge=0, le=100)
    unified_score: pl.Int32 = pa.Field(nullable=True, ge=0, le=2000)
    benchmark_category: str = pa.Field(nullable=True)
    screening_window: str = pa.Field(nullable=True)
    assessment_status: str = pa.Field(isin=["Active", "Deactivated"])
    deactivation_reason: str = pa.Field(nullable=True)
    source_row: pl.UInt32 = pa.Field()

    class Config:
        strict = True


class PowerSchoolStudents(pa.DataFrameModel):
    student_number: str = pa.Field(nullable=False, unique=True, str_length={"min_value": 1})
    student_link: str = pa.Field(nullable=True)
    email: str = pa.Field(nullable=True)
    email_key: str = pa.Field(nullable=True)
    first_name: str = pa.Field(nullable=True)
    last_name: str = pa.Field(nullable=True)
    grade_level: str = pa.Field(nullable=True)
    school_id: str = pa.Field(nullable=True)
    dob: str = pa.Field(nullable=True)  # kept for suggesting counterparts of unlinked students, never loaded
    source_row: pl.UInt32 = pa.Field()

    class Config:
        strict = True


class ClassLinkUsers(pa.DataFrameModel):
    classlink_user_id: str = pa.Field(nullable=False, unique=True)
    tenant_name: str = pa.Field(nullable=False)
    email_key: str = pa.Field(nullable=True)

    class Config:
        strict = True


def validate(schema: type[pa.DataFrameModel], frame: pl.DataFrame, file_name: str) -> pl.DataFrame:
    from .csvfile import FileRejected

    try:
        return schema.validate(frame, lazy=True)
    except (pa.errors.SchemaErrors, pa.errors.SchemaError) as exc:
        failed = _failed_checks(exc)
        raise FileRejected("schema", f"{file_name}: failed schema {schema.__name__} ({failed})") from None


def _failed_checks(exc: Exception) -> str:
    cases = getattr(exc, "failure_cases", None)
    if cases is None:
        return type(exc).__name__
    # Column and check names only; failure_cases also holds the offending values, which may be PII.
    pairs = sorted({f"{c}:{k}" for c, k in cases.select("column", "check").iter_rows()})
    return ", ".join(pairs[:10])
