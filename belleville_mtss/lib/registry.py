"""The district registry: one YAML file per district, the record of what a person verified.

Nothing here is guessed: a malformed or incomplete entry is refused with a message naming the field.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Our canonical PowerSchool columns; the registry maps a district's headers onto them.
POWERSCHOOL_REQUIRED = ("student_number", "email")
POWERSCHOOL_OPTIONAL = ("first_name", "last_name", "grade_level", "school_id", "dob", "enroll_status")

SOURCES = ("powerschool_students", "star_reading", "star_math", "star_early_literacy")
DEFAULT_FILE_PATTERNS = {
    "powerschool_students": "students*.csv",
    "star_reading": "SR.csv",
    "star_math": "SM.csv",
    "star_early_literacy": "SEL.csv",
}


class RegistryError(ValueError):
    """A registry entry that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceNames(_Strict):
    account_info: list[str] = Field(min_length=1)
    renaissance: list[str] = Field(min_length=1)
    classlink: list[str] = Field(min_length=1)


class PowerSchoolFormat(_Strict):
    delimiter: str = ","
    encoding: Literal["utf-8", "windows-1252"] = "utf-8"
    has_header: bool = True
    # Maps our column name -> the district's header (matched case-insensitively).
    columns: dict[str, str]
    # Only for exports without a header row: the district's columns in file order.
    column_order: list[str] | None = None

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        missing = [c for c in POWERSCHOOL_REQUIRED if not columns.get(c)]
        if missing:
            raise ValueError(f"missing required mapping for {', '.join(missing)}")
        unknown = sorted(set(columns) - set(POWERSCHOOL_REQUIRED) - set(POWERSCHOOL_OPTIONAL))
        if unknown:
            raise ValueError(f"unknown column(s) {', '.join(unknown)}")
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
        missing = [h for h in self.columns.values() if h.strip().lower() not in order]
        if missing:
            raise ValueError(f"column_order lacks the mapped column(s) {', '.join(missing)}")
        return self


class StudentLink(_Strict):
    classlink: Literal["email"] = "email"
    renaissance: Literal["StudentIdentifier", "StudentStateID", "StudentSourcedID", "StudentUserID"] = (
        "StudentIdentifier"
    )


class Verification(_Strict):
    verified_by: str = Field(min_length=1)
    verified_on: dt.date
    # Left empty until the FERPA review of the identifiers used is done: the district's drops are then
    # blocked by the ferpa_review_current check before anything is written.
    ferpa_review_on: dt.date | None


class District(_Strict):
    district: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    display_name: str
    nces_id: str = Field(pattern=r"^\d{7}$")
    account_info_id: int
    state: str = Field(pattern=r"^[A-Z]{2}$")
    county: str | None = None
    drop_folder: str = Field(min_length=1)
    source_names: SourceNames
    # ClassLink tenant ids, where known: the drop's ClassLink users are those of these tenants or of the tenant
    # names in source_names.classlink (the filter runs in the prod db).
    classlink_tenant_ids: list[int] = Field(default_factory=list)
    powerschool: PowerSchoolFormat
    files: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_FILE_PATTERNS))
    student_link: StudentLink = StudentLink()
    verification: Verification

    @field_validator("files")
    @classmethod
    def _known_sources(cls, files: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(files) - set(SOURCES))
        if unknown:
            raise ValueError(f"unknown source(s) {', '.join(unknown)}")
        return {**DEFAULT_FILE_PATTERNS, **files}


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(entry)"
        parts.append(f"{field}: {e['msg']}")
    return "; ".join(parts)


def load_district(path: Path) -> District:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path.name}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise RegistryError(f"{path.name}: expected a mapping of fields at the top level")
    try:
        return District.model_validate(raw)
    except ValidationError as exc:
        raise RegistryError(f"{path.name}: {_describe(exc)}") from None


def load_registry(directory: Path) -> dict[str, District]:
    districts: dict[str, District] = {}
    for path in sorted(directory.glob("*.yaml")):
        entry = load_district(path)
        if entry.district in districts:
            raise RegistryError(f"{path.name}: district '{entry.district}' is defined twice")
        districts[entry.district] = entry
    if not districts:
        raise RegistryError(f"{directory}: no district entries (*.yaml)")
    return districts
