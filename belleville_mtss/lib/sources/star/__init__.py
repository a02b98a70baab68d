"""Renaissance Star: the overall-results exports SR.csv (reading), SM.csv (math) and SEL.csv (early literacy), one
file per subject, one row per test. Adding a Star subject (say Star CBM, SC.csv) is one more FileKind in
files.py."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field, field_validator

from ...read.csvfile import read_text_csv
from ..base import AssessmentSection, FileKind, Source
from .files import FILES
from .frame import StarResults
from .reader import HISTORICAL_HEADERS, bind_columns, columns_to_read, detect_layout, type_rows
from .sample import sample

class StarSection(AssessmentSection):
    files: dict[str, str] = Field(default_factory=lambda: {f.asset: f.pattern for f in FILES})
    link: Literal["StudentIdentifier", "StudentStateID", "StudentSourcedID", "StudentUserID"] = "StudentIdentifier"

    @field_validator("files")
    @classmethod
    def _star_files(cls, files: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(files) - {f.asset for f in FILES})
        if unknown:
            raise ValueError(f"unknown Star file(s) {', '.join(unknown)} (known: {', '.join(f.asset for f in FILES)})")
        return files


def _read(path: Path, data: bytes | None, district, max_rows: int | None, select=None) -> pl.DataFrame:
    # Renaissance writes these exports by machine, wide (up to 126 columns): read only ours (or `select`'s)
    section = district.sources["star"]
    return read_text_csv(path, data=data, select=select or columns_to_read(section.link), project=True,
                         max_rows=max_rows, encoding=section.encoding)


def _validate(raw: pl.DataFrame, kind: FileKind, district, file_name: str):
    link = district.sources["star"].link
    typed, rejected = type_rows(bind_columns(raw, file_name, link, kind.subject), kind.subject, link)
    return typed, rejected, {}


SOURCE = Source(
    "star", "assessment", "Star", FILES, StarResults, _read, _validate, StarSection,
    district_column="district_name", district_ids=("DistrictStateID", "DistrictIdentifier", "DistrictSourcedID"),
    results_from={c: c for c in ("subject", "test_key", "student_link", "school_year", "completed_at", "grade",
                                 "scaled_score", "percentile_rank", "unified_score", "benchmark_category",
                                 "screening_window", "assessment_status", "deactivation_reason")},
    sample=sample,
    person={"first_name": "StudentFirstName", "last_name": "StudentLastName", "birth_date": "BirthDate",
            "school_id": "SchoolIdentifier", "email": "StudentEmail"},
    person_aliases={**HISTORICAL_HEADERS, "Student First Name": "StudentFirstName", "Student Last Name":
                    "StudentLastName", "Birthdate": "BirthDate", "School Id": "SchoolIdentifier",
                    "Student Email": "StudentEmail"},
    recognise=lambda header: detect_layout(header).startswith(("v2 family", "historical")),  # overall results
)
