"""Linking a student across systems, and building the roster and assessment results from the links.

ClassLink email = PowerSchool email (case- and whitespace-insensitive); a Renaissance identifier = a PowerSchool
field, both the registry's (`student_link`: by default StudentIdentifier = STUDENT_NUMBER), compared as text with
leading zeros kept. An email shared by two students links neither; so does a link value two students share; an
identifier that matches only once its leading zeros are stripped is reported, never joined.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from ..read.catalog import SUBJECTS
from ..load.errors import ErrorRecord
from ..read.star import STAR_SCHEMA
from ..load.warehouse import RESULTS_FROM_STAR, ROSTER_FROM_POWERSCHOOL

RESULTS_SCHEMA = {"AccountInfoId": pl.Int32, "StudentNumber": pl.Utf8,
                  **{column: STAR_SCHEMA[ours] for column, ours in RESULTS_FROM_STAR.items()},
                  "DropId": pl.Utf8, "LoadedAt": pl.Datetime("us")}

LINK_STATES = pl.Enum(["linked", "not_in_classlink", "ambiguous", "no_email"])


def _ratio(n: int, d: int) -> float:
    return round(n / d, 4) if d else 0.0


@dataclass
class IdentityMap:
    """One row per PowerSchool student (in the students' order): its ClassLink user, link state and Star tests;
    with the counts of every link, in total and per Star file (subject)."""
    frame: pl.DataFrame
    stats: dict[str, dict[str, float | int]]
    by_subject: dict[str, dict[str, int]] = field(default_factory=dict)  # subject -> rows, linked, unknown, ...
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # subject -> (Star file, data rows it held)
    accepted: pl.DataFrame | None = None  # the links a person accepted (lib/students/review.py), applied here


def link_students(students: pl.DataFrame, classlink: pl.DataFrame, stars: dict[str, pl.DataFrame]) -> IdentityMap:
    """`stars`: each usable Star file's frame by subject. The large side (students) is only ever probed: every hash
    table is built on the ClassLink users or on a Star file's identifiers, which keeps a state-sized roster cheap."""
    key, link = pl.col("email_key"), pl.col("student_link")
    cl = (classlink.filter(key.is_not_null()).group_by("email_key")
          .agg(pl.len().alias("cl_users"), pl.col("classlink_user_id").first()))
    subjects = [s for s in SUBJECTS if s in stars]
    counts = {s: stars[s].group_by("student_link").len(s) for s in subjects}  # tests per identifier, per file
    lazy = (students.lazy().select("student_number", "student_link", "email_key",
                                   (key.is_duplicated() & key.is_not_null()).alias("ps_dupe"),
                                   (link.is_duplicated() & link.is_not_null()).alias("link_dupe"))
            .join(cl.lazy(), on="email_key", how="left", maintain_order="left"))
    for subject in subjects:
        lazy = lazy.join(counts[subject].lazy(), on="student_link", how="left", maintain_order="left")
    frame = (
        lazy.with_columns([pl.when(pl.col("link_dupe")).then(0).otherwise(pl.col(s).fill_null(0)).alias(s)
                           for s in subjects])
        .select(
            "student_number", "student_link",
            pl.when(pl.col("cl_users") == 1).then(pl.col("classlink_user_id")).alias("classlink_user_id"),
            pl.when(key.is_null()).then(pl.lit("no_email"))
            .when(pl.col("ps_dupe") | (pl.col("cl_users") > 1)).then(pl.lit("ambiguous"))
            .when(pl.col("cl_users") == 1).then(pl.lit("linked"))
            .otherwise(pl.lit("not_in_classlink")).cast(LINK_STATES).alias("classlink_link"),
            (pl.sum_horizontal(subjects) if subjects else pl.lit(0)).cast(pl.Int32).alias("star_test_count"),
            *subjects,
        )
        .with_columns(pl.when(pl.col("classlink_link") == "linked").then(pl.col("classlink_user_id"))
                      .alias("classlink_user_id"))
        .collect()
    )
    shared = students.filter(link.is_duplicated() & link.is_not_null())["student_link"].unique()
    by_subject = {}
    for subject in subjects:
        ambiguous = counts[subject].filter(link.is_in(shared.implode()))[subject].sum()
        linked = int(frame[subject].sum())
        by_subject[subject] = {"rows": stars[subject].height, "linked": linked, "ambiguous_link": int(ambiguous),
                               "unknown_student": stars[subject].height - linked - int(ambiguous),
                               "probable_leading_zeros": 0}
    if any(c["unknown_student"] for c in by_subject.values()):
        unknown = (pl.concat([counts[s].select("student_link", pl.lit(s).alias("subject"), pl.col(s).alias("n"))
                              for s in subjects])
                   .join(students.select("student_link"), on="student_link", how="anti"))
        for subject, n in _probable_leading_zero_rows(students, unknown).items():
            by_subject[subject]["probable_leading_zeros"] = n
    frame = frame.drop(subjects)

    by_state = dict(frame["classlink_link"].value_counts().iter_rows())
    linked = by_state.get("linked", 0)
    n_students = students.height
    star_rows = sum(f.height for f in stars.values())
    linked_rows = sum(c["linked"] for c in by_subject.values())
    with_tests = int((frame["star_test_count"] > 0).sum())
    stats = {
        "classlink_email": {
            "powerschool_students": n_students,
            "linked": linked,
            "not_in_classlink": by_state.get("not_in_classlink", 0),
            "ambiguous_email": by_state.get("ambiguous", 0),
            "no_email": by_state.get("no_email", 0),
            # a linked student's address is unique on both sides: one ClassLink user each
            "classlink_students_unmatched": classlink.height - linked,
            "match_rate": _ratio(linked, n_students),
        },
        "renaissance_link": {
            "star_rows": star_rows,
            "linked_rows": linked_rows,
            "unknown_student_rows": sum(c["unknown_student"] for c in by_subject.values()),
            "ambiguous_link_rows": sum(c["ambiguous_link"] for c in by_subject.values()),
            "probable_leading_zero_rows": sum(c["probable_leading_zeros"] for c in by_subject.values()),
            "students_with_tests": with_tests,
            "students_without_tests": n_students - with_tests,
            "match_rate": _ratio(linked_rows, star_rows),
        },
    }
    return IdentityMap(frame, stats, by_subject)


def _probable_leading_zero_rows(students: pl.DataFrame, unknown: pl.DataFrame) -> dict[str, int]:
    """Per subject, Star rows of unknown identifiers (`unknown`: student_link, subject, n) that equal exactly one
    student's link value once leading zeros are stripped on both sides (an Excel re-save): reported, never joined."""
    strip = pl.col("student_link").str.strip_chars_start("0")
    wanted = unknown.select(strip.alias("stripped"), "subject", "n")
    alike = students.select(strip.alias("stripped")).filter(pl.col("stripped").is_in(wanted["stripped"].implode()))
    single = alike.group_by("stripped").len().filter(pl.col("len") == 1)
    found = wanted.join(single, on="stripped", how="semi").group_by("subject").agg(pl.col("n").sum())
    return dict(found.iter_rows())


def build_roster(
    students: pl.DataFrame, identity: pl.DataFrame, account_info_id: int, drop_id: str, loaded_at: dt.datetime
) -> pl.DataFrame:
    # The identity map is built in the students' order: then the two sit side by side, no join of the roster.
    links = identity.drop("student_link")
    aligned = identity.height == students.height and identity["student_number"].equals(students["student_number"])
    joined = students.hstack(links.drop("student_number")) if aligned else \
        students.join(links, on="student_number", how="left")
    return joined.select(
        pl.lit(account_info_id, dtype=pl.Int32).alias("AccountInfoId"),
        *[pl.col(ours).alias(column) for column, ours in ROSTER_FROM_POWERSCHOOL.items()],
        pl.col("classlink_user_id").alias("ClassLinkUserId"),
        pl.col("star_test_count").alias("StarTestCount"),
        pl.lit(drop_id).alias("DropId"),
        pl.lit(loaded_at, dtype=pl.Datetime("us")).alias("LoadedAt"),
        pl.lit(True).alias("IsCurrent"),
    )


def build_results(
    stars: dict[str, pl.DataFrame], identity: pl.DataFrame, account_info_id: int, drop_id: str, loaded_at: dt.datetime
) -> tuple[pl.DataFrame, int]:
    """Star tests of linked students, stamped with their PowerSchool student number, one row per (subject, test
    key); returns rows and duplicates dropped. Each Star file is joined on its own: the files are never copied
    into one frame."""
    tested = identity.filter(pl.col("star_test_count") > 0).select("student_link", "student_number")
    parts, dropped = [], 0
    for subject in [s for s in SUBJECTS if s in stars]:
        joined = stars[subject].join(tested, on="student_link", how="inner", maintain_order="left")
        # Renaissance ids are unique: a cheap 64-bit hash finds candidates; only then runs the exact filter.
        repeated = joined.select(pl.col("test_key").hash(7).is_duplicated().any()).item()
        unique = joined.filter(pl.col("test_key").is_first_distinct()) if repeated else joined
        dropped += joined.height - unique.height
        parts.append(unique.select(
            pl.lit(account_info_id, dtype=pl.Int32).alias("AccountInfoId"),
            pl.col("student_number").alias("StudentNumber"),
            *[pl.col(ours).alias(column) for column, ours in RESULTS_FROM_STAR.items()],
            pl.lit(drop_id).alias("DropId"),
            pl.lit(loaded_at, dtype=pl.Datetime("us")).alias("LoadedAt"),
        ))
    if not parts:
        return pl.DataFrame(schema=RESULTS_SCHEMA), 0
    return pl.concat(parts), dropped


def link_problems(identity: IdentityMap, powerschool_file: str | None, star_files: dict[str, str],
                  link: str = "StudentIdentifier") -> list[ErrorRecord]:
    """Error-log records for links that were refused or doubtful, one per file and reason: counts, never who."""
    records = []
    ambiguous = identity.stats["classlink_email"]["ambiguous_email"]
    if ambiguous:
        records.append(ErrorRecord("identity", "ambiguous_email", f"{powerschool_file}: {ambiguous} student(s) not "
                                   "linked to ClassLink: their email is shared by two students or two ClassLink users",
                                   powerschool_file, ambiguous))
    texts = {
        "ambiguous_link": f"Star row(s) whose {link} two PowerSchool students share: not loaded",
        "probable_leading_zeros": f"Star row(s) whose {link} matches a student only without leading zeros: not joined",
        "unknown_student": f"Star row(s) for a {link} not in the PowerSchool export: not loaded",
    }
    for subject, counts in identity.by_subject.items():
        name = star_files.get(subject, subject)
        found = {"ambiguous_link": counts["ambiguous_link"],
                 "probable_leading_zeros": counts["probable_leading_zeros"],
                 "unknown_student": counts["unknown_student"] - counts["probable_leading_zeros"]}
        records += [ErrorRecord("identity", reason, f"{name}: {n} {texts[reason]}", name, n)
                    for reason, n in found.items() if n]
    return records
