"""Renaissance Star overall-results files (SR, SM, SEL): bind columns by header name, type them, reject bad rows.

Handles the v2 layouts (126/118/118 columns), the older 110-123 column layouts (missing trailing columns) and
the 80-column "Historical Enterprise" layout with human-readable headers. Dashboard Standards and Skill Area
files are a different kind of file and are refused by name.
"""
from __future__ import annotations

from collections.abc import Callable

import polars as pl

from ... import IN_MEMORY
from ...load.warehouse import RESULTS_FROM, account_info, assessment_results, max_lengths, not_storable
from ...read.csvfile import FileRejected
from ..base import EARLIEST, LATEST  # a test date outside them is a typo or a mangled value

# Our column -> the v2 header it comes from. `student_link` is the column that carries the student's PowerSchool
# identifier: StudentIdentifier unless the district's registry entry names another (sources.star.link).
STAR_COLUMNS = {
    "student_link": "StudentIdentifier",
    "district_name": "DistrictName",
    "school_name": "SchoolName",
    "school_year": "SchoolYear",
    "assessment_id": "AssessmentID",
    "completed_date": "CompletedDate",
    "grade": "Grade",
    "scaled_score": "ScaledScore",
    "percentile_rank": "PercentileRank",
    "unified_score": "UnifiedScore",
    "benchmark_category": "RenaissanceBenchmarkCategoryName",
    "screening_window": "ScreeningPeriodWindowName",
    "assessment_status": "AssessmentStatus",
    "deactivation_reason": "DeactivationReason",
    # Renaissance's own id of the student (v2 layouts): rows of one identifier under two of them are two children
    "renaissance_id": "StudentRenaissanceID",
}
REQUIRED = ("student_link", "district_name", "completed_date", "scaled_score", "school_year")

# The 80-column "Historical Enterprise" export names the same things in words.
HISTORICAL_HEADERS = {
    "Student Identifier": "StudentIdentifier",
    "District Name": "DistrictName",
    "School Name": "SchoolName",
    "School Year": "SchoolYear",
    "Renaissance Activity ID": "AssessmentID",
    "Activity Completed Date": "CompletedDate",
    "Current Grade": "Grade",
    "Scaled Score": "ScaledScore",
    "Percentile Rank": "PercentileRank",
    "Unified Scale": "UnifiedScore",
    "Screening Window Name": "ScreeningPeriodWindowName",
}
# Which subject a file's tests are of, by what it carries (the file's name says which it should be): a v2 export's
# columns of its own subject, and the historical layout's Activity Type on each row ("Star Math Enterprise Tests";
# the layout is the same for every subject). A file of another subject sent under a name loaded its scores as the
# name's subject.
SUBJECT_COLUMNS = {"SR": "InstructionalReadingLevel", "SM": "Quantile", "SEL": "LiteracyClassification"}
ACTIVITY_TYPE = "Activity Type"
_OTHER_STAR_FILES = {
    "DomainPercentMastery": "a Star Dashboard Standards file",
    "SkillAreaMasteryScore": "a Star Skill Area file",
}

# Unambiguous date layouts seen in real exports (native SQL Server, ISO, Excel US-locale re-saves). CompletedDate
# is Renaissance's UTC clock (CompletedDateLocal is the district's): a value with a zone (Z, +hh:mm) is converted to
# UTC first; the rest are UTC as written (an Excel re-save keeps the clock it was given).
_ZONED = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$"  # a zone after a time, never a date's "-2019"
_ZONED_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%z")
_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d",
    "%m/%d/%y %H:%M",
    "%m/%d/%Y %H:%M",
    "%m/%d/%y %I:%M %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y",
    "%m/%d/%y",
)


# A test a teacher invalidated is Deactivated: kept, flagged, its scores emptied (it is not a score). A file
# without the column (older layouts) marks every test Active, as Renaissance exports only active tests there.
from .frame import STAR_SCHEMA, STATUSES
SCORES = ("scaled_score", "percentile_rank", "unified_score", "benchmark_category")


def star_columns(link: str = "StudentIdentifier") -> dict[str, str]:
    """Our column -> the v2 header, with the district's link column."""
    return {**STAR_COLUMNS, "student_link": link}


def columns_to_read(link: str = "StudentIdentifier"):
    """Given a header, the only columns of a Star file we read (and the ones that tell its layout)."""
    wanted = (set(star_columns(link).values()) | set(HISTORICAL_HEADERS) | set(_OTHER_STAR_FILES)
              | set(SUBJECT_COLUMNS.values()) | {ACTIVITY_TYPE})
    return lambda header: wanted & set(header)


def detect_layout(columns: list[str]) -> str:
    cols = set(columns)
    for marker, what in _OTHER_STAR_FILES.items():
        if marker in cols:
            return what
    if "StudentIdentifier" in cols:
        return f"v2 family ({len(columns)} columns)"
    if "Student Identifier" in cols:
        return f"historical enterprise ({len(columns)} columns)"
    return "unknown"


def activity_subject(text: pl.Expr) -> pl.Expr:
    """The subject an Activity Type names (None: not a Star test of ours). A Spanish test is a subject of its own
    (SRS, SMS, SELS): its scores are on another scale than the English test's."""
    subject = (pl.when(text.str.contains("(?i)early literacy")).then(pl.lit("SEL"))
               .when(text.str.contains("(?i)math")).then(pl.lit("SM"))
               .when(text.str.contains("(?i)reading")).then(pl.lit("SR")))
    return pl.when(text.str.contains("(?i)spanish|español")).then(subject + "S").otherwise(subject)


def bind_columns(raw: pl.DataFrame, file_name: str, link: str = "StudentIdentifier",
                 subject: str | None = None) -> pl.DataFrame:
    """Select our columns by header name; refuse a file that lacks a required one, or (given the `subject` its name
    says) a file whose columns, or every row's Activity Type, are another subject's."""
    layout = detect_layout(raw.columns)
    if layout in _OTHER_STAR_FILES.values():
        raise FileRejected("wrong_file", f"{file_name} is {layout}, not an overall results file (SR/SM/SEL)")
    # a subject whose own columns are not known here (a Star subject added since) is not told apart
    known = subject in SUBJECT_COLUMNS
    carried = [s for s, column in SUBJECT_COLUMNS.items() if column in raw.columns]
    if known and carried and subject not in carried:
        raise FileRejected("wrong_file", f"{file_name}: its columns are a Star {carried[0]} export's "
                                         f"({SUBJECT_COLUMNS[carried[0]]}), not {subject}'s")
    if known and ACTIVITY_TYPE in raw.columns and raw.height:
        named = raw.select(activity_subject(pl.col(ACTIVITY_TYPE)).alias("s"))["s"]
        if not (named == subject).any():
            others = sorted(named.drop_nulls().unique().to_list())
            raise FileRejected("wrong_file", f"{file_name}: no row's Activity Type is a Star {subject} test "
                                             f"({', '.join(others) or 'none of ours'} instead)")
    frame = raw.rename({k: v for k, v in HISTORICAL_HEADERS.items() if k in raw.columns})
    columns = star_columns(link)
    missing = [columns[c] for c in REQUIRED if columns[c] not in frame.columns]
    if missing:
        raise FileRejected("missing_columns", f"{file_name}: missing required column(s) {', '.join(missing)}")
    bound = frame.select(
        [
            (pl.col(src) if src in frame.columns else pl.lit(None, dtype=pl.Utf8)).alias(ours)
            for ours, src in columns.items()
        ] + ([pl.col(ACTIVITY_TYPE).alias("activity_type")] if ACTIVITY_TYPE in frame.columns else [])
    )
    if "Current Grade" in raw.columns:  # the historical layout has the student's grade now, not at the test: it is
        # the test's grade only in the export's latest school year (an export of years put today's grade on each)
        year = pl.col("school_year").str.extract(r"(\d{4})")  # its first year, however written ("2023 - 2024")
        bound = bound.with_columns(pl.when(year == year.max()).then(pl.col("grade")).alias("grade"))
    return bound


_DT = pl.Datetime("us")


def _parse_any(t: pl.Expr) -> pl.Expr:
    """Every unambiguous layout tried in turn; day-first dashed dates only where one part cannot be a month."""
    parsed = pl.coalesce([t.str.strptime(_DT, f, strict=False) for f in _DATE_FORMATS])
    # "15-02-2003" / "08-09-2019": read only when one part cannot be a month.
    parts = t.str.extract_groups(r"^(\d{1,2})-(\d{1,2})-(\d{4})$")
    a = parts.struct.field("1").cast(pl.Int32, strict=False)
    b = parts.struct.field("2").cast(pl.Int32, strict=False)
    dashed = (
        pl.when(a > 12)
        .then(t.str.strptime(_DT, "%d-%m-%Y", strict=False))
        .when(b > 12)
        .then(t.str.strptime(_DT, "%m-%d-%Y", strict=False))
    )
    return pl.coalesce([parsed, dashed])


def _in_utc(t: pl.Series) -> pl.Series:
    """Values with a zone, as naive UTC; null where they do not parse."""
    t = t.str.replace(r"Z$", "+00:00")
    out = None
    for f in _ZONED_FORMATS:
        parsed = t.str.strptime(pl.Datetime("us", "UTC"), f, strict=False)
        out = parsed if out is None else out.fill_null(parsed)
    return out.dt.replace_time_zone(None)


def _once_per_value(parse: Callable[[pl.Series], pl.Series]) -> Callable[[pl.Series], pl.Series]:
    """`parse` run on each distinct value once and mapped back to the rows, where values repeat (fewer than half
    distinct): a test's time repeats through an export (40,321 distinct in the 1,384,643 rows of the benchmark's
    1,000,000-student SR.csv), its school year far more. The distinct values keep the file's order, so that the
    date layout tried first is still the one the file's first values have."""
    def each(text: pl.Series) -> pl.Series:
        distinct = text.unique(maintain_order=True)
        if not text.len() or 2 * distinct.len() > text.len():
            return parse(text)
        return text.replace_strict(distinct, parse(distinct), default=None).alias(text.name)
    return each


def _parse_values(text: pl.Series) -> pl.Series:
    # One export uses one layout: parse every value with the layout its first values have (one pass),
    # then try every layout only on the few values that did not fit (Excel re-saves mix them).
    t = text.str.strip_chars()
    zoned = t.str.contains(_ZONED).fill_null(False)
    if zoned.any():
        out = _parse_naive(t.zip_with(~zoned, pl.repeat(None, len(t), dtype=pl.Utf8, eager=True)))
        return out.scatter(zoned.arg_true(), _in_utc(t.filter(zoned)))
    return _parse_naive(t)


def _parse_naive(t: pl.Series) -> pl.Series:
    sample = t.drop_nulls().head(200)
    primary = max(_DATE_FORMATS, key=lambda f: sample.str.strptime(_DT, f, strict=False).is_not_null().sum())
    out = t.str.strptime(_DT, primary, strict=False)
    left = (out.is_null() & t.is_not_null() & (t != "")).arg_true()
    if left.len():
        rest = pl.select(_parse_any(pl.lit(t.gather(left)))).to_series()
        out = out.scatter(left, rest)
    return out


def parse_dates(text: pl.Expr) -> pl.Expr:
    """Datetime from any unambiguous layout; null where unreadable or ambiguous (day-first dashed dates)."""
    return text.map_batches(_once_per_value(_parse_values), return_dtype=_DT)


def _school_year(text: pl.Series) -> pl.Series:
    return text.str.extract(r"(\d{4})\s*-\s*(\d{4})", 0).str.replace_all(" ", "")


def _blank(col: str) -> pl.Expr:
    # after strip_chars: empty, or Renaissance's "NA"
    return pl.col(col).is_null() | pl.col(col).is_in(["", "NA", "na", "Na"])


def _int(col: str) -> pl.Expr:
    c = pl.col(col)
    whole = c.cast(pl.Int32, strict=False)  # "8", "1170": the usual case, one cheap cast
    f = c.cast(pl.Float64, strict=False)  # "21.00"
    return pl.coalesce(whole, pl.when(f == f.round(0)).then(f.cast(pl.Int32, strict=False)))


# TestKey comes from AssessmentID; DistrictName is not stored, but is bounded like dm.AccountInfo's names.
STORED_LENGTHS = {**max_lengths(assessment_results, {**RESULTS_FROM, "TestKey": "assessment_id"}),
                  **max_lengths(account_info, {"DistrictName": "district_name"})}
_RANGES = {"scaled_score": (0, 1400), "percentile_rank": (0, 100), "unified_score": (0, 2000)}
_SOURCE_NAMES = {"scaled_score": "ScaledScore", "percentile_rank": "PercentileRank", "unified_score": "UnifiedScore"}


def _shared_ids_refused(good: pl.DataFrame, rejected: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows whose AssessmentID other rows carry for another student are refused, all of them: whose test it is is
    never guessed (one student's test twice is kept once, as the results are built). Vendors' ids are unique: a
    cheap 64-bit hash finds candidates; only then runs the exact look."""
    if good.select(pl.col("assessment_id").hash(7).n_unique() == pl.len()).item():
        return good, rejected
    shared = pl.col("assessment_id").is_not_null() & (pl.col("student_link").n_unique().over("assessment_id") > 1)
    marked = good.with_columns(shared.alias("shared"))
    refused = marked.filter("shared").select("source_row", pl.lit("AssessmentID on rows of two students")
                                             .alias("reject_reason"))
    return marked.filter(~pl.col("shared")).drop("shared"), pl.concat([rejected, refused]).sort("source_row")


def _identifiers_of_two_students_refused(good: pl.DataFrame, rejected: pl.DataFrame, link: str
                                        ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows of an identifier that Renaissance holds for two of its students (two StudentRenaissanceIDs: two
    schools' local ids colliding, say) are refused, all of them: loaded, one child's tests went under the other."""
    rid = pl.col("renaissance_id")  # a 64-bit hash of the id (type_rows), null where blank: it names no one
    # Candidates first, grouped on the identifier's 64-bit hash (integers group fast; a collision only sends the
    # file to the exact look): no group with two ids, no identifier with two
    spans = good.lazy().group_by(pl.col("student_link").hash(7)).agg(rid.min().alias("lo"), rid.max().alias("hi"))
    if not spans.select((pl.col("lo") != pl.col("hi")).any()).collect().item():
        return good, rejected  # one Renaissance student (or none named) per identifier: the usual file
    two = rid.drop_nulls().n_unique().over("student_link") > 1
    marked = good.with_columns(two.alias("two"))
    refused = marked.filter("two").select("source_row", pl.lit(f"{link} of two Renaissance students")
                                          .alias("reject_reason"))
    return marked.filter(~pl.col("two")).drop("two"), pl.concat([rejected, refused]).sort("source_row")


def _copies_that_disagree_refused(good: pl.DataFrame, rejected: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows of one test (a student listed under two classes, say) whose copies disagree on what is stored of it (its
    scores, date, status) are refused, all of them: which copy is right is never guessed (the first one loaded,
    unsaid). Copies that agree are kept once, as the results are built."""
    if good.select(pl.col("test_key").hash(7).n_unique() == pl.len()).item():
        return good, rejected  # no test twice: the usual file
    stored = pl.struct(*(c for c in RESULTS_FROM.values() if c != "test_key"))
    marked = good.with_columns((stored.n_unique().over("test_key") > 1).alias("differ"))
    refused = marked.filter("differ").select("source_row", pl.lit("copies of one test that disagree (scores, date "
                                                                  "or status)").alias("reject_reason"))
    return marked.filter(~pl.col("differ")).drop("differ"), pl.concat([rejected, refused]).sort("source_row")


def type_rows(bound: pl.DataFrame, subject: str, link: str = "StudentIdentifier") -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed rows and rejected rows (source row number and reason only: no student data)."""
    if "renaissance_id" not in bound.columns:  # a frame bound by hand, without it
        bound = bound.with_columns(pl.lit(None, pl.Utf8).alias("renaissance_id"))
    text = ["student_link", "district_name", "school_year", "completed_date", "assessment_id", "scaled_score",
            "percentile_rank", "unified_score", "assessment_status", "deactivation_reason"]
    frame = bound.lazy().with_row_index("source_row", offset=2).with_columns(
        [pl.col(c).str.strip_chars() for c in text]
    ).with_columns(
        pl.lit(subject).alias("subject"),
        pl.col("school_year").map_batches(_once_per_value(_school_year), return_dtype=pl.Utf8),
        parse_dates(pl.col("completed_date")).alias("completed_at"),
        *[_int(c).alias(f"{c}_n") for c in _RANGES],
        pl.when(_blank("assessment_id")).then(None).otherwise(pl.col("assessment_id")).alias("assessment_id"),
        pl.when(_blank("assessment_status")).then(pl.lit("Active"))
        .otherwise(pl.col("assessment_status").str.to_lowercase().replace_strict(
            {s.lower(): s for s in STATUSES}, default=None, return_dtype=pl.Utf8)).alias("status"),
        pl.when(_blank("deactivation_reason")).then(None).otherwise(pl.col("deactivation_reason"))
        .alias("deactivation_reason"),
        # only compared, never kept: a hash holds a state's ids in 8 bytes each, not their text's copy
        pl.when(_blank("renaissance_id")).then(None).otherwise(pl.col("renaissance_id").str.strip_chars().hash(7))
        .alias("renaissance_id"),
    )
    of_subject = (activity_subject(pl.col("activity_type")) == subject) \
        if "activity_type" in bound.columns and subject in SUBJECT_COLUMNS else pl.lit(True)
    reason = (
        pl.when(_blank("student_link"))
        .then(pl.lit(f"missing {link}"))
        .when(~of_subject.fill_null(False))
        .then(pl.lit(f"Activity Type is not a Star {subject} test"))
        .when(_blank("completed_date"))
        .then(pl.lit("missing CompletedDate"))
        .when(pl.col("completed_at").is_null())
        .then(pl.lit("unreadable or ambiguous CompletedDate"))
        .when(~pl.col("completed_at").is_between(EARLIEST, LATEST, closed="left"))
        .then(pl.lit(f"CompletedDate outside {EARLIEST.year}-{LATEST.year - 1}"))
        .when(pl.col("school_year").is_null())
        .then(pl.lit("unreadable SchoolYear"))
        .when(_blank("district_name"))
        .then(pl.lit("missing DistrictName"))
        .when(pl.col("status").is_null())
        .then(pl.lit(f"AssessmentStatus is not one of {', '.join(STATUSES)}"))
    )
    for col, (lo, hi) in _RANGES.items():
        n, name = pl.col(f"{col}_n"), _SOURCE_NAMES[col]
        reason = reason.when(n.is_null() & ~_blank(col)).then(pl.lit(f"{name} is not a whole number"))
        reason = reason.when((n < lo) | (n > hi)).then(pl.lit(f"{name} out of range ({lo}-{hi})"))
    reason = not_storable(STORED_LENGTHS, reason, read=bound)
    frame = frame.with_columns(reason.alias("reject_reason")).collect(engine=IN_MEMORY)
    rejected = frame.filter(pl.col("reject_reason").is_not_null()).select("source_row", "reject_reason")
    good = frame.filter(pl.col("reject_reason").is_null())
    good, rejected = _shared_ids_refused(good, rejected)
    good, rejected = _identifiers_of_two_students_refused(good, rejected, link)
    # A test without an AssessmentID (seen in real "missing tests" exports) is keyed by who took it and when.
    keyless = good["assessment_id"].is_null().arg_true()
    key = good["assessment_id"]
    if keyless.len():
        made = good[keyless].select(pl.concat_str(
            [pl.col("subject"), pl.col("student_link"), pl.col("completed_at").dt.to_string("%Y%m%d%H%M%S%3f")],
            separator=":")).to_series()
        key = key.scatter(keyless, made)
    good = good.with_columns(
        key.alias("test_key"),
        pl.col("scaled_score_n").alias("scaled_score"),
        pl.col("percentile_rank_n").alias("percentile_rank"),
        pl.col("unified_score_n").alias("unified_score"),
        pl.col("status").alias("assessment_status"),
    )
    deactivated = pl.col("assessment_status") == "Deactivated"
    good = good.with_columns(pl.when(deactivated).then(None).otherwise(pl.col(c)).alias(c) for c in SCORES)
    return _copies_that_disagree_refused(good.select(list(STAR_SCHEMA)), rejected)
