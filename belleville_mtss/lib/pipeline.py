"""The whole core of one drop as plain function calls, in the order the asset graph runs them.

The Dagster assets call these same functions one stage at a time; this composition is what benchmarks and
scripts use to run the core without Dagster.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .crosswalk import build_crosswalk
from .csvfile import FileInfo
from .drops import find_file
from .identity import build_results, build_roster, link_students
from .ingest import ValidatedFile, ingest_file, validate_classlink, validate_powerschool, validate_star
from .registry import District
from .star import STAR_SCHEMA

STAR_SOURCES = ("star_reading", "star_math", "star_early_literacy")


@dataclass
class CoreResult:
    validated: dict[str, ValidatedFile]
    crosswalk: pl.DataFrame
    identity: pl.DataFrame
    link_stats: dict
    roster: pl.DataFrame
    results: pl.DataFrame

    @property
    def verified(self) -> bool:
        return bool(self.crosswalk["verified"].all())


def process_drop(folder: Path, district: District, classlink_users: pl.DataFrame, account_info: pl.DataFrame,
                 drop_key: str) -> CoreResult:
    files = tuple(p for p in folder.iterdir() if p.is_file())
    paths = {s: find_file(files, pattern) for s, pattern in district.files.items()}
    # Checksums are taken when a drop is received (received_drop); the core itself does not hash again.
    def read(source: str):
        path = paths[source]
        info = FileInfo(path.name, str(path), path.stat().st_size, "") if path else None
        return ingest_file(source, path, district, info=info)

    validated = {s: validate_star(read(s), district)[0] for s in STAR_SOURCES}
    validated["powerschool_students"] = validate_powerschool(read("powerschool_students"), district)[0]
    validated["classlink_users"] = validate_classlink(classlink_users, district)[0]
    crosswalk = build_crosswalk(district, account_info, validated["powerschool_students"],
                                validated["classlink_users"], [validated[s] for s in STAR_SOURCES])
    frames = [validated[s].frame for s in STAR_SOURCES if validated[s].usable]
    star = pl.concat(frames) if frames else pl.DataFrame(schema=STAR_SCHEMA)
    students = validated["powerschool_students"].frame
    identity = link_students(students, validated["classlink_users"].frame, star)
    now = dt.datetime.now()
    roster = build_roster(students, identity.frame, district.account_info_id, drop_key, now)
    results, _dupes = build_results(star, identity.frame, district.account_info_id, drop_key, now)
    return CoreResult(validated, crosswalk, identity.frame, identity.stats, roster, results)
