"""PowerSchool student exports: the district's headers (from its registry entry) mapped onto our columns."""
from __future__ import annotations

from pathlib import Path

import polars as pl

from ...load.warehouse import ROSTER_FROM, max_lengths, not_storable, student_roster

from ...read.csvfile import FileRejected, read_text_csv
from .section import POWERSCHOOL_FIELDS, PowerSchoolFormat

STORED_LENGTHS = max_lengths(student_roster, ROSTER_FROM)


def email_key(col: pl.Expr) -> pl.Expr:
    """The join key for emails: case and surrounding whitespace do not make two addresses different."""
    key = col.str.strip_chars().str.to_lowercase()
    return pl.when(key == "").then(None).otherwise(key)


def read_powerschool(path: Path, fmt: PowerSchoolFormat, data: bytes | None = None,
                     max_rows: int | None = None) -> pl.DataFrame:
    from ..oneroster.export import is_oneroster

    mapped = {h.strip().lower() for headers in fmt.columns.values() for h in headers}

    def ours(header: list[str]) -> list[str]:
        if is_oneroster(header):  # its users.csv lists teachers and parents beside students: never read as ours
            raise FileRejected("wrong_file", f"{path.name} is a OneRoster file, not a PowerSchool student export; "
                                             "this release reads the roster from a PowerSchool export only")
        return [h for h in header if h.strip().lower() in mapped]  # the rest is never kept

    return read_text_csv(
        path,
        data=data,
        max_rows=max_rows,
        whole_records=True,  # a record cut by a line break in an unquoted value made a student of its second half
        select=ours,
        delimiter=fmt.delimiter,
        encoding=fmt.encoding,
        has_header=fmt.has_header,
        column_names=fmt.column_order,
    )


def match_headers(columns: list[str], fmt: PowerSchoolFormat) -> dict[str, str | None]:
    """Our field -> the file's header it is read from: the first of the registry's accepted headers present
    (case and surrounding spaces aside), or None."""
    by_lower = {c.strip().lower(): c for c in columns}
    return {field: next((by_lower[h.strip().lower()] for h in headers if h.strip().lower() in by_lower), None)
            for field, headers in fmt.columns.items()}


def map_columns(raw: pl.DataFrame, fmt: PowerSchoolFormat, file_name: str,
                required: tuple[str, ...] = ("student_number",)) -> tuple[pl.DataFrame, dict[str, str | None]]:
    """Our fields, from the district's headers; refuse a file missing a required one (the student number and the
    fields the district's links use). A missing optional field is read as nulls: the caller warns of it."""
    matched = match_headers(raw.columns, fmt)
    missing = [f for f in required if matched.get(f) is None]
    if missing:
        wanted = "; ".join(f"{f} ({' or '.join(fmt.columns[f])})" for f in missing)
        raise FileRejected("missing_columns", f"{file_name}: missing required column(s) for {wanted}, as the district "
                                              "registry maps them")
    exprs = [pl.col(matched[f]).alias(f) if matched.get(f) else pl.lit(None, dtype=pl.Utf8).alias(f)
             for f in POWERSCHOOL_FIELDS]
    return raw.select(exprs), matched


def type_students(mapped: pl.DataFrame, link: str = "student_number",
                  first_line: int = 2) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed students and rejected rows (source row, reason). Student numbers stay text: leading zeros count.
    `student_link` is the field the district's Renaissance identifier carries (`link`). `first_line`: the file's
    line of the first student (1 in an export without a header row)."""
    blank = pl.col("student_number").is_null() | (pl.col("student_number") == "")
    duplicated = pl.col("student_number").is_duplicated() & ~blank
    reason = pl.when(blank).then(pl.lit("missing student number"))
    # the usual export has none: its rows are not hashed whole (numbers compared stripped, as they are typed)
    if mapped.select(pl.col("student_number").str.strip_chars().is_duplicated().any()).item():
        # a row listed twice alike (an export's join) is one student; rows of one number that differ are refused
        fields = pl.struct([c for c in mapped.columns if c != "source_row"])
        reason = (reason.when(duplicated & (fields.n_unique().over("student_number") > 1))
                  .then(pl.lit("duplicate student number"))
                  .when(duplicated & ~fields.is_first_distinct())
                  .then(pl.lit("a repeat of an earlier row (the same student, every field the same)")))
    reason = not_storable(STORED_LENGTHS, reason, read=mapped)
    # One lazy pass; the usual file has no bad row, and then the typed frame is not copied by a filter. A roster
    # assembled from several files (OneRoster) brings its own line numbers. A row of empty fields (an Excel
    # re-save's last line of commas) is no student and no refusal.
    empty = pl.all_horizontal([pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "")
                               for c in mapped.columns if c != "source_row"])
    lines = mapped.lazy() if "source_row" in mapped.columns else \
        mapped.lazy().with_row_index("source_row", offset=first_line)
    frame = lines.filter(~empty).with_columns(
        pl.col("student_number").str.strip_chars(),
        pl.col("email").str.strip_chars(),
        email_key(pl.col("email")).alias("email_key"),
        pl.col("grade_level").str.strip_chars(),
        pl.col("school_id").str.strip_chars(),
        pl.col(link).str.strip_chars().alias("student_link"),
    ).with_columns(
        pl.when(pl.col("student_link") == "").then(None).otherwise(pl.col("student_link")).alias("student_link"),
        reason.alias("reject_reason"),
    ).select(
        "student_number", "student_link", "email", "email_key", "first_name", "last_name", "grade_level", "school_id",
        "dob", "source_row", "reject_reason",
    ).collect()  # the default engine: here the in-memory one was slower (0.53-0.62 s against 0.46-0.49 s)
    rejected = frame.filter(pl.col("reject_reason").is_not_null()).select("source_row", "reject_reason")
    typed = frame.filter(pl.col("reject_reason").is_null()) if rejected.height else frame
    return typed.drop("reject_reason"), rejected
