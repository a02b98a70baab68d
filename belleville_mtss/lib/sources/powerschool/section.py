"""PowerSchool's section of a registry entry (`powerschool:`): how the district's student export is written."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Our canonical PowerSchool fields; the registry maps a district's headers onto them. Only the student number and
# the fields the district's links use are required in a file; the others are optional (absent: a warning).
POWERSCHOOL_FIELDS = ("student_number", "email", "first_name", "last_name", "grade_level", "school_id", "dob",
                      "enroll_status", "state_studentnumber", "dcid", "id")
# The PowerSchool fields an assessment's identifier can carry.
POWERSCHOOL_LINK_FIELDS = ("student_number", "state_studentnumber", "dcid", "id")


class PowerSchoolFormat(_Strict):
    delimiter: str = ","
    encoding: Literal["utf-8", "windows-1252"] = "utf-8"
    has_header: bool = True
    # Maps our field -> the district's header, or a list of accepted headers (the first present in the file wins),
    # matched case-insensitively and with surrounding spaces ignored.
    columns: dict[str, tuple[str, ...]]
    # Only for exports without a header row: the district's columns in file order.
    column_order: list[str] | None = None

    @field_validator("columns", mode="before")
    @classmethod
    def _alternatives(cls, columns):
        if not isinstance(columns, dict):
            return columns
        return {k: (v,) if isinstance(v, str) else tuple(v) if isinstance(v, list) else v for k, v in columns.items()}

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, columns: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        if not columns.get("student_number"):
            raise ValueError("missing required mapping for student_number")
        unknown = sorted(set(columns) - set(POWERSCHOOL_FIELDS))
        if unknown:
            raise ValueError(f"unknown column(s) {', '.join(unknown)} (known: {', '.join(POWERSCHOOL_FIELDS)})")
        empty = sorted(k for k, v in columns.items() if not v or not all(h.strip() for h in v))
        if empty:
            raise ValueError(f"no header given for {', '.join(empty)}")
        return columns

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, delimiter: str) -> str:
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise ValueError('must be one character (a comma, or a tab written "\\t" in double quotes), '
                             "not a quote or a line break")
        return delimiter

    @model_validator(mode="after")
    def _header_or_column_order(self) -> "PowerSchoolFormat":
        if self.has_header:
            if self.column_order is not None:
                raise ValueError("column_order is only for exports without a header row (has_header: false)")
            return self
        if not self.column_order:
            raise ValueError("an export without a header row (has_header: false) needs column_order")
        order = [c.strip().lower() for c in self.column_order]
        if len(set(order)) != len(order):
            raise ValueError("column_order names a column twice")
        missing = [hs[0] for hs in self.columns.values() if not any(h.strip().lower() in order for h in hs)]
        if missing:
            raise ValueError(f"column_order lacks the mapped column(s) {', '.join(missing)}")
        return self
