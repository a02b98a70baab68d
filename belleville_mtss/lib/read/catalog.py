"""The files a drop holds, each declared once. Registry validation, readers, asset definitions, metadata and the run
report are all derived from this list.

Adding a fourth Star subject (say Star CBM, `SC.csv`) is one more `FileSource(..., kind="star", subject="SC")`:
the Star reader is the same for every subject. Another vendor's file is one entry with a new `kind`, plus its
reader and validator registered under that kind in lib/read/ingest.py (READERS).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileSource:
    name: str  # the asset that reads it, and the key of `files:` in a registry entry
    pattern: str  # the file-name pattern a registry entry starts from (case-insensitive)
    kind: str  # which reader and validator (lib/read/ingest.py READERS)
    description: str
    subject: str | None = None  # for Star files: the subject code results are stamped with

    @property
    def validated(self) -> str:
        return f"validated_{self.name}"


FILES = (
    FileSource("powerschool_students", "students*.csv", "powerschool", "PowerSchool student export of the drop"),
    FileSource("star_reading", "SR.csv", "star", "Renaissance Star Reading export (SR.csv) of the drop", "SR"),
    FileSource("star_math", "SM.csv", "star", "Renaissance Star Math export (SM.csv) of the drop", "SM"),
    FileSource("star_early_literacy", "SEL.csv", "star", "Renaissance Star Early Literacy export (SEL.csv) of the drop",
               "SEL"),
)
BY_NAME = {f.name: f for f in FILES}
STAR_FILES = tuple(f for f in FILES if f.kind == "star")
SUBJECTS = tuple(f.subject for f in STAR_FILES)
POWERSCHOOL = BY_NAME["powerschool_students"]
DEFAULT_PATTERNS = {f.name: f.pattern for f in FILES}
