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


def link_students(
    students: pl.DataFrame, classlink: pl.DataFrame, star: pl.DataFrame
) -> tuple[pl.DataFrame, dict[str, dict[str, float | int]]]:
    """One row per PowerSchool student with its ClassLink user and Star test count; counts per link."""
    ps_dupe = students.filter(pl.col("email_key").is_not_null())["email_key"].is_duplicated()
    ps_keys = students.filter(pl.col("email_key").is_not_null()).with_columns(ps_dupe.alias("ps_dupe"))
    cl = classlink.filter(pl.col("email_key").is_not_null()).with_columns(
        pl.col("email_key").is_duplicated().alias("cl_dupe")
    )
    cl_unique = cl.filter(~pl.col("cl_dupe")).select("email_key", "classlink_user_id")
    cl_dupe_keys = cl.filter(pl.col("cl_dupe")).select("email_key").unique().with_columns(pl.lit(True).alias("cl_dupe"))

    emails = (
        ps_keys.select("student_number", "email_key", "ps_dupe")
        .join(cl_unique, on="email_key", how="left")
        .join(cl_dupe_keys, on="email_key", how="left")
        .with_columns(
            pl.when(pl.col("ps_dupe") | pl.col("cl_dupe").fill_null(False))
            .then(pl.lit("ambiguous"))
            .when(pl.col("classlink_user_id").is_not_null())
            .then(pl.lit("linked"))
            .otherwise(pl.lit("not_in_classlink"))
            .alias("classlink_link")
        )
        .with_columns(
            pl.when(pl.col("classlink_link") == "linked").then(pl.col("classlink_user_id")).alias("classlink_user_id")
        )
        .select("student_number", "classlink_user_id", "classlink_link")
    )

    # One join of the Star rows to the students (a row index), then counting on integers.
    index = students.select("student_number").with_row_index("sidx")
    matched = star.select(pl.col("student_identifier").alias("student_number")).join(
        index, on="student_number", how="left")
    test_counts = (matched.filter(pl.col("sidx").is_not_null()).group_by("sidx").len("star_test_count")
                   .join(index, on="sidx").select("student_number", "star_test_count"))
    unknown = matched.filter(pl.col("sidx").is_null()).group_by("student_number").len("star_test_count")

    identity = (
        students.select("student_number")
        .join(emails, on="student_number", how="left")
        .join(test_counts, on="student_number", how="left")
        .with_columns(
            pl.col("classlink_link").fill_null("no_email"),
            pl.col("star_test_count").fill_null(0).cast(pl.Int32),
        )
    )

    stripped = students.select(pl.col("student_number").str.strip_chars_start("0").alias("stripped"))
    stripped = stripped.filter(~pl.col("stripped").is_duplicated())
    probable = unknown.with_columns(pl.col("student_number").str.strip_chars_start("0").alias("stripped")).join(
        stripped, on="stripped", how="semi"
    )
    linked_rows = int(test_counts["star_test_count"].sum())
    unknown_rows = int(unknown["star_test_count"].sum())
    probable_rows = int(probable["star_test_count"].sum())

    n_students = students.height
    link_counts = identity["classlink_link"].value_counts()
    by_state = dict(zip(link_counts["classlink_link"].to_list(), link_counts["count"].to_list()))
    linked = by_state.get("linked", 0)
    cl_students = classlink.height
    cl_matched = cl_unique.join(emails.filter(pl.col("classlink_link") == "linked"), on="classlink_user_id", how="semi").height
    stats = {
        "classlink_email": {
            "powerschool_students": n_students,
            "linked": linked,
            "not_in_classlink": by_state.get("not_in_classlink", 0),
            "ambiguous_email": by_state.get("ambiguous", 0),
            "no_email": by_state.get("no_email", 0),
            "classlink_students_unmatched": cl_students - cl_matched,
            "match_rate": _ratio(linked, n_students),
        },
        "renaissance_student_identifier": {
            "star_rows": star.height,
            "linked_rows": linked_rows,
            "unknown_student_rows": unknown_rows,
            "probable_leading_zero_rows": probable_rows,
            "students_with_tests": test_counts.height,
            "students_without_tests": n_students - test_counts.height,
            "match_rate": _ratio(linked_rows, star.height),
        },
    }
    return identity, stats


def build_roster(
    students: pl.DataFrame, identity: pl.DataFrame, account_info_id: int, drop_id: str, loaded_at: dt.datetime
) -> pl.DataFrame:
    return students.join(identity, on="student_number", how="left").select(
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
    joined = star.join(
        roster.select(pl.col("StudentNumber").alias("student_identifier")), on="student_identifier", how="semi"
    )
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
