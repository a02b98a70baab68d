"""Every source a drop's data comes from, one folder each (lib/sources/<source>/), listed once here. Everything
else (the asset graph, registry validation, the stages by role, the run report, lineage) is derived from this list:
adding a vendor is one new folder and its line below (README "Adding a source")."""
from __future__ import annotations

import importlib

from .base import RESULT_COLUMNS, SCORES, AssessmentSection, FileKind, Source, common_results

# The list of sources: each name is a folder beside this file whose __init__.py declares SOURCE.
NAMES = (
    "powerschool",
    "oneroster",
    "star",
    "map_growth",
    "iready",
    "dibels8",
    "fastbridge",
    "classlink",
)
SOURCES: tuple[Source, ...] = tuple(importlib.import_module(f"{__name__}.{name}").SOURCE for name in NAMES)

BY_NAME = {s.name: s for s in SOURCES}
ROSTERS = tuple(s for s in SOURCES if s.role == "roster")  # a district's roster is one of these (its registry's)
DIRECTORY = next(s for s in SOURCES if s.role == "directory")
ASSESSMENTS = tuple(s for s in SOURCES if s.role == "assessment")
FILES: tuple[FileKind, ...] = tuple(k for s in SOURCES for k in s.files)  # every kind of file of a drop
SOURCE_OF = {k.asset: s for s in SOURCES for k in s.files}  # file asset -> its source
KIND = {k.asset: k for k in FILES}
ASSESSMENT_FILES = tuple(k for s in ASSESSMENTS for k in s.files)
ROSTER_FILES = tuple(k for s in ROSTERS for k in s.files)
# The `Assessment` of each source whose export is one term's (lib/load/order.py: what a load replaces)
TERM_SNAPSHOTS = frozenset(s.assessment or s.name for s in ASSESSMENTS if s.snapshot == "term")

__all__ = ["ASSESSMENTS", "ASSESSMENT_FILES", "BY_NAME", "DIRECTORY", "FILES", "KIND",
           "RESULT_COLUMNS", "ROSTERS", "ROSTER_FILES", "SCORES", "SOURCES", "SOURCE_OF", "TERM_SNAPSHOTS",
           "AssessmentSection", "FileKind", "Source", "common_results"]
