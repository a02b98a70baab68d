"""Linking a student across systems, and building the roster and assessment results from the links.

ClassLink email = PowerSchool email (case- and whitespace-insensitive); each assessment file's link column (its
source's registry section: Star's StudentIdentifier by default) = a PowerSchool field (`student_link.powerschool`,
STUDENT_NUMBER by default), compared as text with leading zeros kept. An email shared by two students links
neither; so does a link value two students share; an identifier that matches only once its leading zeros are
stripped is reported, never joined. Every assessment source is linked alike, file by file (keyed by file asset).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from .. import IN_MEMORY
from ..load.errors import ErrorRecord
from ..load.warehouse import RESULTS_FROM, ROSTER_FROM
from ..sources import RESULT_COLUMNS

RESULTS_SCHEMA = {"AccountInfoId": pl.Int32, "Assessment": pl.Utf8, "StudentNumber": pl.Utf8,
                  **{column: RESULT_COLUMNS[ours] for column, ours in RESULTS_FROM.items()},
                  "DropId": pl.Utf8, "LoadedAt": pl.Datetime("us")}

# The column a student and their ClassLink user share, by the registry's student_link.classlink
CLASSLINK_ON = {"email": "email_key", "sourced_id": "sourced_id"}
LINK_STATES = pl.Enum(["linked", "not_in_classlink", "ambiguous", "no_email"])


def _ratio(n: int, d: int) -> float:
    return round(n / d, 4) if d else 0.0


@dataclass
class IdentityMap:
    """One row per PowerSchool student (in the students' order): its ClassLink user, link state and tests; with
    the counts of every link, in total and per assessment file (by file asset)."""
    frame: pl.DataFrame
    stats: dict[str, dict[str, float | int]]
    by_file: dict[str, dict[str, int]] = field(default_factory=dict)  # file asset -> rows, linked, unknown, ...
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # file asset -> (file name, data rows it held)
    accepted: pl.DataFrame | None = None  # the links a person accepted (lib/students/review.py), applied here


def link_students(students: pl.DataFrame, classlink: pl.DataFrame, tests: dict[str, pl.DataFrame],
                  on: str = "email_key") -> IdentityMap:
    """`tests`: each usable assessment file's rows (with `student_link`) by file asset; `on`: the column both the
    students and the ClassLink users carry that links them (the email key, or a OneRoster sourcedId). The large side
    (students) is only ever probed: every hash table is built on the ClassLink users or on a file's identifiers,
    which keeps a state-sized roster cheap."""
    key, link = pl.col(on), pl.col("student_link")
    cl = (classlink.filter(key.is_not_null()).group_by(on)
          .agg(pl.len().alias("cl_users"), pl.col("classlink_user_id").first()))
    assets = list(tests)
    counts = _tests_per_link(tests)  # one row per identifier, a column of its tests per file: one join for all
    frame = (
        students.lazy().select("student_number", "student_link", on,
                               (key.is_duplicated() & key.is_not_null()).alias("ps_dupe"),
                               (link.is_duplicated() & link.is_not_null()).alias("link_dupe"))
        .join(cl.lazy(), on=on, how="left", maintain_order="left")
        .join(counts.lazy(), on="student_link", how="left", maintain_order="left")
        .with_columns([pl.when(pl.col("link_dupe")).then(0).otherwise(pl.col(s).fill_null(0)).alias(s)
                       for s in assets])
        .select(
            "student_number", "student_link",
            pl.when(pl.col("cl_users") == 1).then(pl.col("classlink_user_id")).alias("classlink_user_id"),
            pl.when(key.is_null()).then(pl.lit("no_email"))
            .when(pl.col("ps_dupe") | (pl.col("cl_users") > 1)).then(pl.lit("ambiguous"))
            .when(pl.col("cl_users") == 1).then(pl.lit("linked"))
            .otherwise(pl.lit("not_in_classlink")).cast(LINK_STATES).alias("classlink_link"),
            (pl.sum_horizontal(assets) if assets else pl.lit(0)).cast(pl.Int32).alias("test_count"),
            "link_dupe", *assets,
        )
        .with_columns(pl.when(pl.col("classlink_link") == "linked").then(pl.col("classlink_user_id"))
                      .alias("classlink_user_id"))
        .collect(engine=IN_MEMORY)
    )
    shared = frame.filter(pl.col("link_dupe"))["student_link"].unique()  # link values two students carry
    ambiguous = counts.filter(link.is_in(shared.implode())).select(assets).sum()
    by_file = {}
    for asset in assets:
        linked, refused = int(frame[asset].sum()), int(ambiguous[asset][0] or 0)
        by_file[asset] = {"rows": tests[asset].height, "linked": linked, "ambiguous_link": refused,
                          "unknown_student": tests[asset].height - linked - refused, "probable_leading_zeros": 0}
    if any(c["unknown_student"] for c in by_file.values()):
        unknown = (counts.join(students.select("student_link"), on="student_link", how="anti")
                   .unpivot(assets, index="student_link", variable_name="asset", value_name="n")
                   .filter(pl.col("n") > 0))
        for asset, n in _probable_leading_zero_rows(students, unknown).items():
            by_file[asset]["probable_leading_zeros"] = n
    frame = frame.drop("link_dupe", *assets)

    by_state = dict(frame["classlink_link"].value_counts().iter_rows())
    linked = by_state.get("linked", 0)
    n_students = students.height
    rows = sum(f.height for f in tests.values())
    linked_rows = sum(c["linked"] for c in by_file.values())
    with_tests = int((frame["test_count"] > 0).sum())
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
        "assessment_link": {
            "rows": rows,
            "linked_rows": linked_rows,
            "unknown_student_rows": sum(c["unknown_student"] for c in by_file.values()),
            "ambiguous_link_rows": sum(c["ambiguous_link"] for c in by_file.values()),
            "probable_leading_zero_rows": sum(c["probable_leading_zeros"] for c in by_file.values()),
            "students_with_tests": with_tests,
            "students_without_tests": n_students - with_tests,
            "match_rate": _ratio(linked_rows, rows),
        },
    }
    return IdentityMap(frame, stats, by_file)


def _tests_per_link(tests: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Each identifier the files carry, with its tests in each file (a column per file asset): the files grouped
    once, together, instead of one group and one join each."""
    if not tests:
        return pl.DataFrame(schema={"student_link": pl.Utf8})
    tagged = pl.concat([frame.select("student_link", pl.lit(i, pl.UInt16).alias("file"))
                        for i, frame in enumerate(tests.values())])
    return tagged.group_by("student_link").agg((pl.col("file") == i).sum().cast(pl.UInt32).alias(asset)
                                               for i, asset in enumerate(tests))


def rows_by_source(identity: IdentityMap) -> dict[str, tuple[int, int]]:
    """Each assessment source's rows and linked rows, summed over its files (the gate and the run report)."""
    from ..sources import SOURCE_OF

    out: dict[str, tuple[int, int]] = {}
    for asset, counts in identity.by_file.items():
        rows, linked = out.get(SOURCE_OF[asset].name, (0, 0))
        out[SOURCE_OF[asset].name] = (rows + counts["rows"], linked + counts["linked"])
    return out


def _probable_leading_zero_rows(students: pl.DataFrame, unknown: pl.DataFrame) -> dict[str, int]:
    """Per file asset, rows of unknown identifiers (`unknown`: student_link, asset, n) that equal exactly one
    student's link value once leading zeros are stripped on both sides (an Excel re-save): reported, never joined."""
    strip = pl.col("student_link").str.strip_chars_start("0")
    wanted = unknown.select(strip.alias("stripped"), "asset", "n")
    alike = students.select(strip.alias("stripped")).filter(pl.col("stripped").is_in(wanted["stripped"].implode()))
    single = alike.group_by("stripped").len().filter(pl.col("len") == 1)
    found = wanted.join(single, on="stripped", how="semi").group_by("asset").agg(pl.col("n").sum())
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
        *[pl.col(ours).alias(column) for column, ours in ROSTER_FROM.items()],
        pl.col("classlink_user_id").alias("ClassLinkUserId"),
        pl.col("test_count").alias("StarTestCount"),
        pl.lit(drop_id).alias("DropId"),
        pl.lit(loaded_at, dtype=pl.Datetime("us")).alias("LoadedAt"),
        pl.lit(True).alias("IsCurrent"),
    )


def build_results(
    tests: dict[str, pl.DataFrame], identity: pl.DataFrame, account_info_id: int, drop_id: str, loaded_at: dt.datetime
) -> tuple[pl.DataFrame, int]:
    """Tests of linked students (`tests`: common results by file asset, lib/sources/base.py), stamped with their
    PowerSchool student number, one row per test key of a file; returns rows and duplicates dropped. Each file's
    link column alone is looked up (its other columns are kept as they are, not gathered by a join); a file is
    filtered only where some of its rows link to no student."""
    # one row per link value: the identity map gives a value two students carry no tests (validate says so)
    tested = identity.filter(pl.col("test_count") > 0).select("student_link", "student_number")
    parts, dropped = [], 0
    for frame in tests.values():
        numbers = frame.select("student_link").join(tested, on="student_link", how="left", maintain_order="left",
                                                    validate="m:1")["student_number"]
        joined = frame.with_columns(numbers)
        if numbers.null_count():
            joined = joined.filter(pl.col("student_number").is_not_null())
        # vendors' test ids are unique: a cheap 64-bit hash finds candidates; only then runs the exact filter.
        repeated = joined.select(pl.col("test_key").hash(7).n_unique() < pl.len()).item()
        unique = joined.filter(pl.col("test_key").is_first_distinct()) if repeated else joined
        dropped += joined.height - unique.height
        parts.append(unique.select(
            pl.lit(account_info_id, dtype=pl.Int32).alias("AccountInfoId"),
            pl.col("assessment").alias("Assessment"),
            pl.col("student_number").alias("StudentNumber"),
            *[pl.col(ours).alias(column) for column, ours in RESULTS_FROM.items()],
            pl.lit(drop_id).alias("DropId"),
            pl.lit(loaded_at, dtype=pl.Datetime("us")).alias("LoadedAt"),
            *([pl.col("scores").alias("Scores")] if "scores" in unique.columns else []),
        ))
    if not parts:
        return pl.DataFrame(schema=RESULTS_SCHEMA), 0
    return pl.concat(parts, how="diagonal"), dropped


def link_problems(identity: IdentityMap, powerschool_file: str | None, files: dict[str, str],
                  links: dict[str, tuple[str, str]], roster: str = "PowerSchool") -> list[ErrorRecord]:
    """Error-log records for links that were refused or doubtful, one per file and reason: counts, never who.
    `files`: file asset -> file name; `links`: file asset -> (its source's title, its link column); `roster`: the
    title of the district's roster source (PowerSchool, OneRoster)."""
    records = []
    ambiguous = identity.stats["classlink_email"]["ambiguous_email"]
    if ambiguous:
        records.append(ErrorRecord("identity", "ambiguous_email", f"{powerschool_file}: {ambiguous} student(s) not "
                                   "linked to ClassLink: their email is shared by two students or two ClassLink users",
                                   powerschool_file, ambiguous))
    texts = {
        "ambiguous_link": "{title} row(s) whose {link} two {roster} students share: not loaded",
        "probable_leading_zeros": "{title} row(s) whose {link} matches a student only without leading zeros: not joined",
        "unknown_student": "{title} row(s) for a {link} not in the {roster} export: not loaded",
        "accepted_link_now_a_student": "{title} row(s) whose {link} a person linked to another student (an accepted "
                                       "suggestion) and is now a student's own: not loaded until that link is "
                                       "reviewed (belleville-mtss links review)",
    }
    for asset, counts in identity.by_file.items():
        name = files.get(asset, asset)
        title, link = links[asset]
        claimed = counts.get("accepted_link_now_a_student", 0)  # linked to no one: counted unknown by the link
        found = {"ambiguous_link": counts["ambiguous_link"],
                 "probable_leading_zeros": counts["probable_leading_zeros"],
                 "unknown_student": counts["unknown_student"] - counts["probable_leading_zeros"] - claimed,
                 "accepted_link_now_a_student": claimed}
        records += [ErrorRecord("identity", reason,
                                f"{name}: {n} " + texts[reason].format(title=title, link=link, roster=roster), name, n)
                    for reason, n in found.items() if n]
    return records
