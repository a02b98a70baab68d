"""Linking a student across systems, and building the roster and assessment results from the links.

ClassLink email = PowerSchool email (case- and whitespace-insensitive); PowerSchool student number =
Renaissance StudentIdentifier (text, leading zeros kept). An email shared by two students links neither;
an identifier that matches only once its leading zeros are stripped is reported, never joined.
"""
from __future__ import annotations

import datetime as dt

import polars as pl

from .warehouse import RESULTS_FROM_STAR, ROSTER_FROM_POWERSCHOOL


def _ratio(n: int, d: int) -> float:
    return round(n / d, 4) if d else 0.0


LINK_STATES = pl.Enum(["linked", "not_in_classlink", "ambiguous", "no_email"])


def link_students(
    students: pl.DataFrame, classlink: pl.DataFrame, star: pl.DataFrame
) -> tuple[pl.DataFrame, dict[str, dict[str, float | int]]]:
    """One row per PowerSchool student, in the students' order, with its ClassLink user and Star test count;
    counts per link. The large side (students) is only ever probed: every hash table is built on the ClassLink
    users or on the Star identifiers, which keeps a state-sized roster cheap."""
    key = pl.col("email_key")
    cl = (classlink.filter(key.is_not_null()).group_by("email_key")
          .agg(pl.len().alias("cl_users"), pl.col("classlink_user_id").first()))
    tests = star.group_by("student_identifier").len("star_test_count")
    identity = (
        students.lazy().select("student_number", "email_key", (key.is_duplicated() & key.is_not_null()).alias("ps_dupe"))
        .join(cl.lazy(), on="email_key", how="left", maintain_order="left")
        .join(tests.lazy(), left_on="student_number", right_on="student_identifier", how="left", maintain_order="left")
        .select(
            "student_number",
            pl.when(pl.col("cl_users") == 1).then(pl.col("classlink_user_id")).alias("classlink_user_id"),
            pl.when(key.is_null()).then(pl.lit("no_email"))
            .when(pl.col("ps_dupe") | (pl.col("cl_users") > 1)).then(pl.lit("ambiguous"))
            .when(pl.col("cl_users") == 1).then(pl.lit("linked"))
            .otherwise(pl.lit("not_in_classlink")).cast(LINK_STATES).alias("classlink_link"),
            pl.col("star_test_count").fill_null(0).cast(pl.Int32),
        )
        .with_columns(pl.when(pl.col("classlink_link") == "linked").then(pl.col("classlink_user_id"))
                      .alias("classlink_user_id"))
        .collect()
    )
    linked_ids = identity.filter(pl.col("star_test_count") > 0)["student_number"]
    unknown = tests.filter(~pl.col("student_identifier").is_in(linked_ids.implode()))
    probable_rows = _probable_leading_zero_rows(students, unknown)

    by_state = dict(identity["classlink_link"].value_counts().iter_rows())
    linked = by_state.get("linked", 0)
    linked_rows = int(identity["star_test_count"].sum())
    with_tests = linked_ids.len()
    n_students = students.height
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
        "renaissance_student_identifier": {
            "star_rows": star.height,
            "linked_rows": linked_rows,
            "unknown_student_rows": star.height - linked_rows,
            "probable_leading_zero_rows": probable_rows,
            "students_with_tests": with_tests,
            "students_without_tests": n_students - with_tests,
            "match_rate": _ratio(linked_rows, star.height),
        },
    }
    return identity, stats


def _probable_leading_zero_rows(students: pl.DataFrame, unknown: pl.DataFrame) -> int:
    """Star rows of unknown identifiers that equal exactly one student's number once leading zeros are stripped
    on both sides (an Excel re-save): reported, never joined."""
    if unknown.is_empty():
        return 0
    strip = pl.col("student_number").str.strip_chars_start("0")
    wanted = unknown.select(pl.col("student_identifier").str.strip_chars_start("0").alias("stripped"),
                            "star_test_count")
    alike = students.select(strip.alias("stripped")).filter(pl.col("stripped").is_in(wanted["stripped"].implode()))
    single = alike.group_by("stripped").len().filter(pl.col("len") == 1)
    return int(wanted.join(single, on="stripped", how="semi")["star_test_count"].sum())


def build_roster(
    students: pl.DataFrame, identity: pl.DataFrame, account_info_id: int, drop_id: str, loaded_at: dt.datetime
) -> pl.DataFrame:
    # The identity map is built in the students' order: then the two sit side by side, no join of the roster.
    aligned = identity.height == students.height and identity["student_number"].equals(students["student_number"])
    joined = students.hstack(identity.drop("student_number")) if aligned else \
        students.join(identity, on="student_number", how="left")
    return joined.select(
        pl.lit(account_info_id, dtype=pl.Int32).alias("AccountInfoId"),
        *[pl.col(ours).alias(column) for column, ours in ROSTER_FROM_POWERSCHOOL.items()],
        pl.col("classlink_user_id").alias("ClassLinkUserId"),
        pl.col("star_test_count").alias("StarTestCount"),
        pl.lit(drop_id).alias("DropId"),
        pl.lit(loaded_at, dtype=pl.Datetime("us")).alias("LoadedAt"),
    )


def build_results(
    star: pl.DataFrame, roster: pl.DataFrame, account_info_id: int, drop_id: str, loaded_at: dt.datetime
) -> tuple[pl.DataFrame, int]:
    """Star tests of rostered students, one row per (subject, test key); returns rows and duplicates dropped."""
    tested = roster.filter(pl.col("StarTestCount") > 0)["StudentNumber"]  # usually far fewer than the roster
    joined = star.filter(pl.col("student_identifier").is_in(tested.implode()))
    # Renaissance ids are unique: a cheap 64-bit hash finds candidates; only then runs the exact filter.
    repeated = joined.select(pl.struct("subject", "test_key").hash(7).is_duplicated().any()).item()
    unique = joined.filter(pl.struct("subject", "test_key").is_first_distinct()) if repeated else joined
    results = unique.select(
        pl.lit(account_info_id, dtype=pl.Int32).alias("AccountInfoId"),
        *[pl.col(ours).alias(column) for column, ours in RESULTS_FROM_STAR.items()],
        pl.lit(drop_id).alias("DropId"),
        pl.lit(loaded_at, dtype=pl.Datetime("us")).alias("LoadedAt"),
    )
    return results, joined.height - unique.height


def link_problems(stats: dict[str, dict]) -> list:
    """Error-log records for links that were refused or doubtful: counts by reason, never who."""
    from .errors import ErrorRecord

    cl, ren = stats["classlink_email"], stats["renaissance_student_identifier"]
    found = [
        ("ambiguous_email", cl["ambiguous_email"],
         "PowerSchool student(s) not linked to ClassLink: their email is shared by two students or two ClassLink users"),
        ("probable_leading_zeros", ren["probable_leading_zero_rows"],
         "Star row(s) whose StudentIdentifier matches a student number only without leading zeros: not joined"),
        ("unknown_student", ren["unknown_student_rows"] - ren["probable_leading_zero_rows"],
         "Star row(s) for a StudentIdentifier not in the PowerSchool export: not loaded"),
    ]
    return [ErrorRecord("identity", reason, f"{n} {text}", None, n) for reason, n, text in found if n]
