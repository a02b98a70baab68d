"""OneRoster 1.1 and 1.2 CSV exports (the district's SIS through ClassLink Roster Server, Infinite Campus, Skyward,
...) as the district's roster, in place of a PowerSchool export: one file kind, the export, found by its
manifest.csv and read with the files beside it (export.py). Its students' district is the district org of
orgs.csv, by name and identifier: the crosswalk's evidence, as a screener's district column is."""
from __future__ import annotations

import re
from pathlib import Path

import pandera.polars as pa
import polars as pl
from pydantic import Field, field_validator

from ...read.csvfile import FileRejected, read_text_csv
from ..base import FileKind, Section, Source, default_files
from ..powerschool import PowerSchoolStudents
from .export import MANIFEST, NUMBER_COLUMNS, ROSTER_FILES, ExportRefused, assemble, typed

# Every file a OneRoster 1.1 or 1.2 CSV export may hold beside its manifest: all are the export's (claimed, audited
# with it); the roster is read from ROSTER_FILES, the others only need to be there when the manifest lists them.
EXPORT_FILES = ("academicSessions", "categories", "classes", "classResources", "courses", "courseResources",
                "demographics", "enrollments", "lineItemLearningObjectiveIds", "lineItems", "lineItemScoreScales",
                "orgs", "resources", "resultLearningObjectiveIds", "results", "resultScoreScales", "roles",
                "scoreScales", "userProfiles", "userResources", "users")
FILES = (FileKind("oneroster_export", MANIFEST, "OneRoster CSV export of the drop: manifest.csv and the files it "
                  "lists (users.csv, orgs.csv, enrollments.csv, ...)",
                  companions=tuple(f"{name.lower()}.csv" for name in EXPORT_FILES)),)
NUMBER = re.compile(rf"^({'|'.join(NUMBER_COLUMNS)}|userIds:\S+|metadata\.\S+)$")


class OneRosterStudents(PowerSchoolStudents):
    sourced_id: str = pa.Field(nullable=False, description="The student's OneRoster sourcedId (users.csv)")
    district_name: str = pa.Field(nullable=True, description="The name of the district org the student's school is "
                                                             "in (orgs.csv): checked by the crosswalk")
    district_id: str = pa.Field(nullable=True, description="That district org's identifier (orgs.csv): checked "
                                                           "against sources.oneroster.state_ids")


class OneRosterSection(Section):
    """`sources: oneroster:` of a registry entry: a district whose roster is a OneRoster export."""
    files: dict[str, str] = Field(default_factory=default_files(FILES))
    names: list[str] = Field(default_factory=list)  # district org names its exports carry, verified whatever score
    state_ids: list[str] = Field(default_factory=list)  # district org identifiers: each one seen must be listed
    # The users.csv column holding the student number (stored as StudentNumber): identifier, username, sourcedId,
    # userMasterIdentifier, userIds:TYPE (the id of that type in userIds) or a metadata.* column
    number: str = "identifier"
    link: str | None = None  # the column the assessments' identifiers carry, where it is not the number

    @field_validator("number", "link")
    @classmethod
    def _a_users_column(cls, column: str | None) -> str | None:
        if column is not None and not NUMBER.match(column):
            raise ValueError(f"{column!r} is not one of {', '.join(NUMBER_COLUMNS)}, userIds:TYPE or metadata.NAME")
        return column


def _companion(name: str, where: Path, content: bytes | None, max_rows: int) -> pl.DataFrame:
    """A roster file of the export. One with a header and no records (no demographics, no enrollments) is a bulk
    file of nothing, read as no rows; users.csv without any is still refused."""
    try:
        return read_text_csv(where, data=content, max_rows=max_rows)
    except FileRejected as exc:
        if exc.reason != "header_only" or name == "users.csv":
            raise
        return pl.read_csv(content if content is not None else where, infer_schema=False, n_rows=0)


def _read(path: Path, data: bytes | None, district, max_rows: int, companions=None) -> pl.DataFrame:
    """The export's students as the roster's fields (untyped); `companions`: the export's other files beside its
    manifest, name -> (path, bytes). Only the roster's files are parsed; the others need only be there."""
    section = district.sources["oneroster"]
    files = {MANIFEST: read_text_csv(path, data=data, max_rows=max_rows)}
    for name, (where, content) in (companions or {}).items():
        parsed = name.removesuffix(".csv") in ROSTER_FILES
        files[name] = _companion(name, where, content, max_rows) if parsed else pl.DataFrame()
    try:
        return assemble(files, section.number, section.link)[1]
    except ExportRefused as exc:
        raise FileRejected(exc.reason, f"{path.name}: {exc.message}") from None


def _validate(raw: pl.DataFrame, kind: FileKind, district, file_name: str):
    students, rejected = typed(raw)
    return students, rejected, _headers(district)


def _headers(district) -> dict[str, str]:
    """Each validated column's OneRoster column, as the district's registry section says for the number and link."""
    section = district.sources.get("oneroster") or OneRosterSection()
    return {"student_number": f"users.csv {section.number}", "student_link": f"users.csv {section.link or section.number}",
            "email": "users.csv email", "email_key": "users.csv email", "first_name": "users.csv givenName",
            "last_name": "users.csv familyName", "grade_level": "users.csv grades",
            "school_id": "orgs.csv identifier", "dob": "demographics.csv birthDate",
            "sourced_id": "users.csv sourcedId", "district_name": "orgs.csv name",
            "district_id": "orgs.csv identifier"}


SOURCE = Source("oneroster", "roster", "OneRoster", FILES, OneRosterStudents, _read, _validate,
                section=OneRosterSection, district_column="district_name", state_id_column="district_id",
                header_map=_headers)
