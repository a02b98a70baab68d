"""PowerSchool: the district's student export (the roster). Its headers differ per district: the registry entry's
`powerschool:` section maps them onto our fields (section.py). It carries no district name: it is bound to the
district by the drop folder it arrives in."""
from __future__ import annotations

from pathlib import Path

import pandera.polars as pa
import polars as pl

from ..base import FileKind, Source
from .reader import map_columns, match_headers, read_powerschool, type_students

FILES = (FileKind("powerschool_students", "students*.csv", "PowerSchool student export of the drop"),)


class PowerSchoolStudents(pa.DataFrameModel):
    student_number: str = pa.Field(nullable=False, unique=True, str_length={"min_value": 1},
                                   description="PowerSchool STUDENT_NUMBER, as text")
    student_link: str = pa.Field(nullable=True, description="The PowerSchool field assessment identifiers carry "
                                                            "(the registry's student_link.powerschool)")
    email: str = pa.Field(nullable=True, description="Student email as typed in PowerSchool")
    email_key: str = pa.Field(nullable=True, description="Email trimmed and lower-cased: the ClassLink join key")
    first_name: str = pa.Field(nullable=True, description="First name")
    last_name: str = pa.Field(nullable=True, description="Last name")
    grade_level: str = pa.Field(nullable=True, description="PowerSchool grade level (0 = K)")
    school_id: str = pa.Field(nullable=True, description="PowerSchool school number")
    dob: str = pa.Field(nullable=True, description="Birth date, kept for suggesting counterparts of unlinked "
                                                   "students; never loaded")
    source_row: pl.UInt32 = pa.Field(description="Line number in the file")

    class Config:
        strict = True


# Our validated column -> the registry field whose header it is read from.
_FROM_FIELD = {"student_number": "student_number", "email": "email", "email_key": "email",
               "first_name": "first_name", "last_name": "last_name", "grade_level": "grade_level",
               "school_id": "school_id", "dob": "dob"}


def _headers(district) -> dict[str, str]:
    """Each validated column's header as the district's registry maps it (its first accepted one)."""
    columns = district.powerschool.columns
    found = {ours: columns[field][0] for ours, field in _FROM_FIELD.items() if field in columns}
    return found | {"student_link": columns[district.student_link.powerschool][0]}


def _read(path: Path, data: bytes | None, district, max_rows: int) -> pl.DataFrame:
    return read_powerschool(path, district.powerschool, data, max_rows)


def _validate(raw: pl.DataFrame, kind: FileKind, district, file_name: str):
    fmt = district.powerschool
    headers = match_headers(raw.columns, fmt)
    typed, rejected = type_students(map_columns(raw, fmt, file_name, district.required_fields)[0],
                                    district.student_link.powerschool, first_line=2 if fmt.has_header else 1)
    return typed, rejected, headers


SOURCE = Source("powerschool", "roster", "PowerSchool", FILES, PowerSchoolStudents, _read, _validate,
                header_map=_headers)
