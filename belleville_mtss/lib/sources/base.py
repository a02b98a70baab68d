"""What every source declares (lib/sources/<source>/), and the common frames the stages after reading work on.

A source has a role: `roster` (the district's students: PowerSchool), `assessment` (a screener's results: Star,
...) or `directory` (the accounts students sign in with: ClassLink). The stages work by role, never by vendor:
the crosswalk resolves every file's district column, the identity map links each assessment file to the roster by
its link column, the load takes the common results frame (`RESULT_COLUMNS`).
"""
from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import pandera.polars as pa
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

Role = Literal["roster", "assessment", "directory"]
Column = tuple[str, str, str]  # name, type, description (column schemas shown in the UI and docs)


@dataclass(frozen=True)
class FileKind:
    """One kind of file a source comes as: its asset (`validated_<asset>` its validated frame), the file-name
    pattern a registry entry starts from (case-insensitive), and the subject when only the file name says it."""
    asset: str
    pattern: str
    description: str
    subject: str | None = None
    # The other files read with it, found beside it under the same prefix (a OneRoster export: its manifest.csv is
    # the file the pattern finds, users.csv and the rest are read with it). Each is one of the drop's files.
    companions: tuple[str, ...] = ()

    @property
    def validated(self) -> str:
        return f"validated_{self.asset}"

    @property
    def example(self) -> str:
        """A file name its pattern matches (its first name, without the wildcards): the demo's files."""
        return self.pattern.split("|")[0].replace("*", "")

    def found_in(self, files, pattern: str) -> tuple:
        """The drop's files (anything with a .name) it is read from: the first matching `pattern` (the registry's),
        then each companion beside it under the same prefix (`x_manifest.csv` -> `x_users.csv`); () when none."""
        from ..receive.drops import find_file

        first = find_file(files, pattern)
        if first is None:
            return ()
        prefix, by_name = self.prefix(first.name), {f.name.lower(): f for f in files}
        return (first, *(by_name[prefix + c] for c in self.companions if prefix + c in by_name))

    def prefix(self, name: str) -> str:
        """What comes before the kind's own name in the name of its file (lower case): its companions' prefix."""
        name = name.lower()
        return name[:-len(self.pattern)] if self.companions and name.endswith(self.pattern.lower()) else ""


class Section(BaseModel):
    """A source's section of a registry entry (`sources: <source>:`)."""
    model_config = ConfigDict(extra="forbid", frozen=True)


class AssessmentSection(Section):
    """What every assessment source's section holds; a source adds its own fields and narrows these."""
    files: dict[str, str]  # file asset -> the district's file-name pattern: the files the district sends
    names: list[str] = Field(default_factory=list)  # district names its files carry, verified whatever their score
    link: str  # the column that carries the student's roster identifier (the registry's student_link.powerschool)
    min_link_rate: float = Field(0.90, ge=0, le=1)  # gate: share of its rows linked to a student
    # The state's district ids its files may carry (MAP District_StateID, i-Ready District State ID): listed, each
    # id a file carries must be one of them; a file whose only evidence is a listed id is the district's.
    state_ids: list[str] = Field(default_factory=list)
    # A file of the source that names no district (MAP's separate layout, i-Ready without its state ids) is the
    # district's because of the folder it arrived in: allowed only where a person said so here.
    bound_by_folder: bool = False
    # Its exports' text encoding: a file re-saved from Excel ("CSV (Comma delimited)") is Windows-1252
    encoding: Literal["utf-8", "windows-1252"] = "utf-8"


# The common results frame: one row per test event, whatever the vendor (dm.AssessmentResults, lib/load/warehouse.py
# RESULTS_FROM). A source maps its validated columns onto these (`Source.results_from`); `scores` keeps the rest.
RESULT_COLUMNS: dict[str, pl.DataType] = {
    "assessment": pl.Utf8, "subject": pl.Utf8, "test_key": pl.Utf8, "student_link": pl.Utf8,
    "school_year": pl.Utf8, "completed_at": pl.Datetime("us"), "grade": pl.Utf8, "scaled_score": pl.Int32,
    "percentile_rank": pl.Int32, "unified_score": pl.Int32, "benchmark_category": pl.Utf8,
    "screening_window": pl.Utf8, "assessment_status": pl.Utf8, "deactivation_reason": pl.Utf8,
}
SCORES = pl.List(pl.Struct({"name": pl.Utf8, "value": pl.Utf8}))  # the scores beyond the common columns


@dataclass(frozen=True)
class Source:
    """One source, declared once in its folder. `read(path, data, district, max_rows)` -> the raw frame (bytes in
    memory when `data` is given; an assessment source's reader may also take `select`, a header -> the columns to
    read, as `plain_reader`'s does: link review reads a file's identifying columns again);
    `validate(raw, kind, district, file_name)` -> (typed, rejected, headers read),
    raising FileRejected for a file it refuses; `model`: the validated frame, each field with its type,
    constraint, description and (metadata `header`) the source header it is read from."""
    name: str  # the key of its registry section (and of its causes in the review queue)
    role: Role
    title: str
    files: tuple[FileKind, ...]
    model: type[pa.DataFrameModel]
    read: Callable | None = None
    validate: Callable | None = None
    section: type[Section] | None = None  # its registry section (assessment sources)
    district_column: str | None = None  # the validated column naming the district, resolved by the crosswalk
    state_id_column: str | None = None  # the validated column of the state's district id, checked by the crosswalk
    district_ids: tuple[str, ...] = ()  # other headers of district ids its files carry (shown at onboarding)
    results_from: dict[str, str | None] = field(default_factory=dict)  # common column <- validated column
    scores: tuple[str, ...] = ()  # validated columns kept in the scores table (dm.AssessmentScores), beside a
    # `scores` column the validator may gather itself
    sample: Callable | None = None  # (students, spec, rng, section) -> {file name: frame}: the demo's files
    recognise: Callable[[list[str]], bool] | None = None  # a header that is this source's (onboarding)
    # Who a row's student is, as its files say (first_name, last_name, birth_date, school_id, email -> header): read
    # again only for identifiers that link to no student, to suggest their counterpart (lib/students/suggest.py)
    person: dict[str, str] = field(default_factory=dict)
    # Another layout's header -> the header `person` and the link name (Star's historical export writes "Student
    # First Name" for StudentFirstName): read again under the names above
    person_aliases: dict[str, str] = field(default_factory=dict)
    # The `Assessment` its results are stamped with in dm.AssessmentResults, where it is not its name: the vendor's
    # export family is the source (i-Ready), the assessment one of its products (iready_diagnostic)
    assessment: str | None = None
    # What one of its exports holds, and so what its load replaces: the school year so far ("school_year": each
    # subject's school year is replaced whole), or one term ("term": NWEA's scheduled Comprehensive Data File and
    # mCLASS's benchmark export hold one term's tests; only the terms a drop holds are replaced, the others kept)
    snapshot: Literal["school_year", "term"] = "school_year"
    header_map: Callable | None = None  # (district) -> validated column -> header, where the registry maps them

    def link_columns(self) -> tuple[str, ...]:
        """The columns of its files that can carry the roster's student identifier, preferred first (its section's
        `link` choices)."""
        return typing.get_args(self.section.model_fields["link"].annotation) if self.section else ()

    def header_of(self, column: str | None) -> str | None:
        """The source header a validated column is read from (as its model declares it)."""
        col = self.model.to_schema().columns.get(column) if column else None
        return (col.metadata or {}).get("header") if col is not None else None

    def columns(self) -> list[Column]:
        """The validated frame's columns, from its model."""
        return [(name, _type_name(col.dtype), col.description or "")
                for name, col in self.model.to_schema().columns.items()]

    def headers(self, district) -> dict[str, str]:
        """Validated column -> the source header it is read from, for this district (the link column: its
        registry's)."""
        if self.header_map is not None:
            return self.header_map(district)
        found = {name: (col.metadata or {}).get("header")
                 for name, col in self.model.to_schema().columns.items()}
        if "student_link" in found and self.name in district.sources:
            found["student_link"] = district.sources[self.name].link
        return {name: header for name, header in found.items() if header}


# ---- what the vendors' folders share ------------------------------------------------------------------------

def declared(header: str | None, description: str) -> dict:
    """A model field's description and the source header it is read from (None: one we make)."""
    return {"description": description, "metadata": {"header": header} if header else None}


def plain_reader(source: str, last_record_slack: int = 0) -> Callable:
    """A source's reader for a plain CSV export, every column kept (or those `select` picks from the header;
    lib/read/csvfile.py: the drop's checks), in the encoding its registry section declares."""
    from ..read.csvfile import read_text_csv

    def read(path, data, district, max_rows: int | None, select=None) -> pl.DataFrame:
        return read_text_csv(path, data=data, max_rows=max_rows, last_record_slack=last_record_slack,
                             encoding=district.sources[source].encoding, select=select, project=select is not None)
    return read


def default_files(files: tuple[FileKind, ...]) -> Callable[[], dict[str, str]]:
    """A section's default `files`: every kind the source comes as, under its default pattern."""
    return lambda: {k.asset: k.pattern for k in files}


def value(frame: pl.DataFrame, header: str, blanks: tuple[str, ...] = ("",)) -> pl.Expr:
    """A column's text, trimmed; a blank (or a vendor's `blanks`) is none; a column the file lacks is none."""
    text = pl.col(header).str.strip_chars() if header in frame.columns else pl.lit(None, pl.Utf8)
    return pl.when(text.is_in(list(blanks))).then(None).otherwise(text)


def datetime_of(text: pl.Expr, formats: tuple[str, ...]) -> pl.Expr:
    """A datetime from text written in any of `formats` (a vendor's own, then what an Excel re-save writes in its
    place); none where it is in none of them."""
    return pl.coalesce([text.str.to_datetime(f, strict=False, time_unit="us") for f in formats])


def whole(text: pl.Expr) -> pl.Expr:
    """A whole number from text ("208", "208.0"); anything else is none."""
    number = text.cast(pl.Float64, strict=False)
    return pl.when(number == number.round(0)).then(number.cast(pl.Int32, strict=False))


def gathered(frame: pl.DataFrame, headers: list[str]) -> pl.Series:
    """The `scores` column of `frame`'s rows: each of `headers` that holds a value, by header, as written (trimmed),
    in header order. Built long (one row per filled cell) and grouped back: a struct per cell across a wide export
    (MAP: over a hundred columns) costs ten times as much."""
    if not headers:
        return pl.Series("scores", [[]] * frame.height, SCORES)
    long = (frame.select([value(frame, h).alias(h) for h in headers]).with_row_index("row")
            .unpivot(index="row", variable_name="name", value_name="value").drop_nulls("value")
            .group_by("row").agg(pl.struct("name", "value").alias("scores")))
    rows = pl.DataFrame({"row": pl.int_range(frame.height, eager=True, dtype=pl.UInt32)})
    return rows.join(long, on="row", how="left", maintain_order="left")["scores"].fill_null([]).cast(SCORES)


def require(frame: pl.DataFrame, headers, file_name: str) -> None:
    """A file without one of `headers` is halted, naming each it lacks."""
    from ..read.csvfile import FileRejected

    missing = [h for h in headers if h not in frame.columns]
    if missing:
        raise FileRejected("missing_columns", f"{file_name}: missing required column(s) {', '.join(missing)}")


# A test date outside these is a typo or a mangled value (0202-01-15, or "5/19/26" read as the year 26): refused
EARLIEST, LATEST = dt.datetime(1990, 1, 1), dt.datetime(2101, 1, 1)


def repeats_refused(reason: pl.Expr, frame: pl.DataFrame, what: str, another_test: pl.Expr | None = None) -> pl.Expr:
    """`reason` with a test listed twice (a row printed twice, a student under two classes) refused by its
    `test_key`: copies that agree on what is stored of it (the common result columns) are kept once, the later ones
    refused as repeats (nothing lost); copies that disagree are all refused: which is right is never guessed. Rows
    `another_test` marks (refused as another test: another edition's) are no copies of the student's own."""
    stored = pl.struct([c for c in RESULT_COLUMNS if c in frame.columns and c != "test_key"])
    key = pl.col("test_key") if another_test is None else pl.struct(pl.col("test_key"), another_test.alias("apart"))
    return (reason.when(stored.n_unique().over(key) > 1).then(pl.lit(f"copies of one {what} that disagree"))
            .when(~key.is_first_distinct()).then(pl.lit(f"a repeat of an earlier row's {what}")))


def split_refused(frame: pl.DataFrame, reason: pl.Expr, lengths: dict, model: type[pa.DataFrameModel]):
    """(typed, rejected, headers) for a validator: rows with a reason (or a value the warehouse cannot store,
    lib/load/warehouse.py not_storable, or a test date outside EARLIEST-LATEST) refused by line number and reason,
    the rest as the model's columns."""
    from ..load.warehouse import assessment_scores, not_storable, utf16_units

    if "completed_at" in frame.columns:
        reason = reason.when(~pl.col("completed_at").is_between(EARLIEST, LATEST, closed="left")).then(pl.lit(
            f"the test's date is outside {EARLIEST.year}-{LATEST.year - 1} (a year of two digits?)"))

    if "scores" in frame.columns:  # a score dm.AssessmentScores cannot hold refuses its row, not the whole load
        scores = pl.col("scores").list
        for part, column in (("name", "ScoreName"), ("value", "ScoreValue")):
            n = assessment_scores.c[column].type.length
            too_long = scores.eval(utf16_units(pl.element().struct.field(part)) > n).list.any()  # as NVARCHAR counts
            unstorable = scores.eval(pl.element().struct.field(part).str.contains("\x00", literal=True)).list.any()
            reason = (reason.when(too_long).then(pl.lit(f"value_too_long: a score's {part} longer than {n} "
                                                        f"characters, more than {assessment_scores.fullname}."
                                                        f"{column} holds"))
                      .when(unstorable).then(pl.lit(f"text_not_storable: a score's {part} holds a NUL character")))
    frame = frame.with_columns(not_storable(lengths, reason, read=frame).alias("reject_reason"))
    rejected = frame.filter(pl.col("reject_reason").is_not_null()).select("source_row", "reject_reason")
    typed = frame.filter(pl.col("reject_reason").is_null()).select(list(model.to_schema().columns))
    return typed, rejected, {}


def _type_name(dtype) -> str:
    text = str(dtype).lower()
    for ours, theirs in (("datetime", "datetime"), ("int", "int"), ("float", "float"), ("bool", "bool")):
        if theirs in text:
            return ours
    return "string"


def common_results(source: Source, frame: pl.DataFrame) -> pl.DataFrame:
    """A validated assessment frame as common results: its columns mapped (`results_from`; unmapped: empty), the
    source's assessment (its name unless it says otherwise) as `assessment`, and each row's other scores (named by column) as `scores`."""
    exprs = [pl.lit(source.assessment or source.name).alias("assessment")] + [
        (pl.col(source.results_from[c]) if source.results_from.get(c) else pl.lit(None)).cast(t).alias(c)
        for c, t in RESULT_COLUMNS.items() if c != "assessment"]
    parts = [pl.concat_list([pl.struct(pl.lit(s).alias("name"), pl.col(s).cast(pl.Utf8).alias("value"))
                             for s in source.scores])] if source.scores else []
    if "scores" in frame.columns:  # a source whose validator gathered its other scores itself (its whole row)
        parts.append(pl.col("scores"))
    if parts:
        both = pl.concat_list(parts) if len(parts) > 1 else parts[0]
        exprs.append(both.list.filter(pl.element().struct.field("value").is_not_null()).cast(SCORES).alias("scores"))
    return frame.select(exprs)

