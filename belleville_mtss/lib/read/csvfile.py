"""Reading a district's CSV file into a frame of strings, refusing files whose format or structure is broken.

Every column is read as text: identifiers keep their leading zeros and "NA", "< 1", "BR400L" survive
until a typed stage casts them. Messages name files, columns and counts, never cell values (FERPA).
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import polars as pl

_TAIL_BYTES = 256 * 1024


class FileRejected(Exception):
    """A whole file is refused. `reason` is a short code, the message is for a district data engineer."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class FileInfo:
    name: str
    path: str
    size: int
    sha256: str


def file_info(path: Path, data: bytes | None = None) -> FileInfo:
    """Size and SHA-256 of a file, from its bytes when they are already in memory (decrypted staging)."""
    digest = hashlib.sha256()
    if data is not None:
        digest.update(data)
        return FileInfo(name=path.name, path=str(path), size=len(data), sha256=digest.hexdigest())
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return FileInfo(name=path.name, path=str(path), size=path.stat().st_size, sha256=digest.hexdigest())


def _head_tail(source: Path | bytes) -> tuple[int, bytes, bytes]:
    if isinstance(source, bytes):
        return len(source), source[: 64 * 1024], source[-_TAIL_BYTES:]
    size = source.stat().st_size
    with source.open("rb") as fh:
        head = fh.read(64 * 1024)
        fh.seek(max(0, size - _TAIL_BYTES))
        return size, head, fh.read()


def _first_line(raw: bytes) -> bytes:
    return raw.split(b"\n", 1)[0].rstrip(b"\r")


def _parse_line(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


# A header cell is a column name: an email address, a number or a date in the first row means the row is data.
_DATA_CELL = re.compile(r"@|^[\d\s.,:/+-]*\d[\d\s.,:/+-]*$")


def read_text_csv(
    path: Path,
    *,
    data: bytes | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8",
    has_header: bool = True,
    column_names: list[str] | None = None,
    select: Callable[[list[str]], Iterable[str]] | None = None,
    project: bool = False,
    max_rows: int | None = None,
    last_record_slack: int = 0,
    whole_records: bool = False,
) -> pl.DataFrame:
    """Read `path` (or `data`, its bytes, named by `path`) as text columns.
    `select`, given the header, names the columns to keep. By default the others are dropped once the whole file
    has been checked (every row is parsed, so a row with more fields than the header is refused). With
    `project=True` the parser reads only the kept columns: several times faster on wide files, but a row with
    extra fields past the header goes unnoticed, so use it only for machine-written exports (Renaissance).
    A file of more than `max_rows` data rows is refused before it is parsed into a frame.
    `last_record_slack`: how many trailing fields the last record may lack (an exporter's quirk a source declares;
    the missing fields read as empty); a record shorter than that is a file cut short.
    `whole_records`: every record, not the last alone, must have the header's fields (the parser reads a short one
    as padded with empty values: a line break in an unquoted value made two records of one).
    Raises FileRejected for a file that is not a usable table."""
    source = data if data is not None else path
    size, head, tail = _head_tail(source)
    if size == 0:
        raise FileRejected("empty_file", f"{path.name} is empty (0 bytes)")
    header_bytes = _first_line(head.removeprefix(b"\xef\xbb\xbf"))
    try:
        header_text = header_bytes.decode(encoding)
    except UnicodeDecodeError:
        raise FileRejected("encoding", f"{path.name}: the header row is not valid {encoding} text") from None

    if re.fullmatch(r"sep=.", header_text.rstrip("\r\n")):  # Excel's line naming the delimiter, not a header
        raise FileRejected("excel_sep_line", f"{path.name}: the first line is Excel's '{header_text.strip()}' line, "
                           "not a header row: export the file without it")
    try:
        first_row = _parse_line(header_text, delimiter)
    except csv.Error:
        if "\r" in header_text:
            raise FileRejected("line_endings", f"{path.name}: lines end in a bare carriage return (old Mac style); "
                               "export with CRLF or LF line endings") from None
        raise FileRejected("unreadable", f"{path.name}: the first row is not readable CSV") from None
    if has_header:
        if b"\n" not in head and size > len(head):
            # Only the first 64 KiB are read for the header: a longer one would be cut in the middle of a name.
            raise FileRejected("no_header", f"{path.name}: the first row is longer than 64 KiB; a header row of "
                               "column names is expected")
        header = [h.strip() for h in first_row]
        if not any(header):
            raise FileRejected("no_header", f"{path.name}: the first row is blank; a header row is expected")
        if any(_DATA_CELL.search(h) for h in header if h):
            # Checked before duplicates: the names of a data row are cell values and must not be quoted.
            raise FileRejected("no_header", f"{path.name}: the first row holds values (numbers, dates or email "
                               "addresses), not column names; a header row is expected (an export without one "
                               "needs has_header: false and column_order in the district registry)")
        seen: set[str] = set()
        dupes = sorted({h for h in header if h and (h.lower() in seen or seen.add(h.lower()))})
        if dupes:
            raise FileRejected("duplicate_header", f"{path.name}: duplicated column name(s) {', '.join(dupes)}")
        width = len(header)
    else:
        if not column_names:
            raise FileRejected("no_header", f"{path.name}: no header row and no column order declared")
        if [c.strip().lower() for c in first_row] == [c.strip().lower() for c in column_names]:
            # its names would load as a student (the export's "include header" turned on since onboarding)
            raise FileRejected("unexpected_header", f"{path.name}: the first row is the declared column order, a "
                               "header row, though the registry entry says the export has none: set has_header: true "
                               "in the entry, or turn the export's header off")
        header = list(column_names)
        width = len(header)

    _check_end(path.name, source, tail, size, delimiter, encoding, width - last_record_slack)
    if whole_records:
        short = _short_records(source, delimiter, width, has_header)
        if short:
            raise FileRejected("short_rows", f"{path.name}: {short:,} record(s) have fewer fields than the {width} "
                               "columns (a line break inside a value not in quotes? export with values in quotes)")
    keep = None
    if select is not None and project and has_header:
        wanted = set(select(header))
        keep = [i for i, h in enumerate(header) if h in wanted] or [0]
        header = [header[i] for i in keep]

    # Never more than one record past the limit is parsed: a file above it is refused without being read whole.
    limit = None if max_rows is None else max_rows + 1
    options = dict(has_header=has_header, new_columns=None if has_header else header, separator=delimiter,
                   infer_schema=False, encoding="utf8" if encoding == "utf-8" else "utf8-lossy",
                   empty_string_is_null=False, raise_if_empty=True, quote_char='"', n_rows=limit)
    try:
        if keep is not None and encoding == "utf-8":
            # the lazy reader pushes the projection into the parser (measurably faster than read_csv's columns=)
            names = pl.scan_csv(source, **{**options, "n_rows": 0}).collect_schema().names()
            frame = pl.scan_csv(source, **options).select([names[i] for i in keep]).collect()
        else:
            frame = pl.read_csv(source, columns=keep, **options)
    except pl.exceptions.NoDataError:
        raise FileRejected("empty_file", f"{path.name} holds no data") from None
    except pl.exceptions.SchemaError:
        # Without a header row: more fields than the registry's column_order declares.
        raise FileRejected("ragged_rows", f"{path.name}: some rows have more fields than the {width} columns "
                           "declared") from None
    except pl.exceptions.ComputeError as exc:
        text = str(exc)
        if "more fields" in text:
            raise FileRejected("ragged_rows", f"{path.name}: some rows have more fields than the header") from None
        if "utf-8" in text.lower() or "utf8" in text.lower():
            raise FileRejected("encoding", f"{path.name}: not valid {encoding} text") from None
        raise FileRejected("unreadable", f"{path.name}: not a readable CSV file ({exc.__class__.__name__})") from None
    if limit is not None and frame.height >= limit:
        raise FileRejected("too_many_rows", f"{path.name}: more than {max_rows:,} rows (MTSS_MAX_FILE_ROWS)")
    if encoding != "utf-8":
        frame = _redecode(path.name, source, delimiter, encoding, has_header, header, keep)
    # Blank header names keep polars' unique placeholders: two of them would otherwise collide.
    frame = frame.rename({c: h for c, h in zip(frame.columns, header) if h and c != h})
    if frame.height == 0:
        raise FileRejected("header_only", f"{path.name} has a header row but no data rows")
    if select is not None and keep is None:
        wanted = set(select(list(frame.columns)))
        frame = frame.select([c for c in frame.columns if c in wanted])
    return frame


def _short_records(source: Path | bytes, delimiter: str, width: int, has_header: bool) -> int:
    """How many records have fewer than `width` fields, counted on the file's lines without a second parse: the
    delimiters outside quoted values (a value in quotes begins a field), a record being the lines from one that
    starts outside quotes to the next (a quoted value may hold line breaks). A blank line is no record."""
    try:  # the parser splits lines on every core; a value holding its separator makes it refuse, then Python does
        lines = pl.read_csv(source, has_header=False, separator="\x1f", quote_char=None, new_columns=["line"],
                            infer_schema=False, empty_string_is_null=False, encoding="utf8-lossy")
    except (pl.exceptions.ComputeError, pl.exceptions.SchemaError, pl.exceptions.ShapeError):
        raw = source if isinstance(source, bytes) else source.read_bytes()
        # each byte one character (the delimiter and the quote are ASCII in every encoding read): no decode error
        lines = pl.DataFrame({"line": raw.decode("latin-1").split("\n")})
    line = pl.col("line").str.strip_chars_end("\r")
    blank = line.str.strip_chars() == ""
    if not lines["line"].str.contains('"', literal=True).any():  # the usual export: a field ends at each delimiter
        counted = lines.select(line.str.count_matches(delimiter, literal=True).alias("delimiters"),
                               blank.alias("empty"))
    else:  # quoted values: their delimiters end no field, and one may span lines
        quotes = line.str.count_matches('"', literal=True)
        d = re.escape(delimiter)
        inside = ((quotes.cum_sum() - quotes) % 2) == 1  # the line begins within a quoted value
        text = pl.when(inside).then(pl.lit('"') + line).otherwise(line).str.replace_all('""', "", literal=True)
        outside = text.str.replace_all(f'(^|{d})"[^"]*("|$)', "${1}")
        counted = lines.select(outside.str.count_matches(delimiter, literal=True).alias("delimiters"),
                               (~inside).cum_sum().alias("record"), (~inside & blank).alias("empty"))
        if counted["record"].max() != counted.height:  # a value spans lines: a record is its lines
            counted = counted.group_by("record", maintain_order=True).agg(pl.col("delimiters").sum(),
                                                                          pl.col("empty").first())
    fields = counted.slice(1 if has_header else 0).filter(~pl.col("empty"))["delimiters"] + 1
    return int((fields < width).sum())


def _redecode(name, source, delimiter, encoding, has_header, header, keep) -> pl.DataFrame:
    # polars reads UTF-8 only; a declared legacy encoding is transcoded in memory first.
    raw = source if isinstance(source, bytes) else source.read_bytes()
    if not raw.isascii() and _utf8(raw):
        # Nearly any UTF-8 is valid Windows-1252 too, read as other letters ("MuÃ±oz"); a legacy file's accented
        # letter is almost never valid UTF-8. So these bytes are UTF-8 (the export's character set was changed).
        raise FileRejected("encoding", f"{name}: the file is UTF-8 text, not the {encoding} its registry entry "
                                       "declares: set the export's encoding in the entry to utf-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        raise FileRejected("encoding", f"{name}: not valid {encoding} text") from None
    return pl.read_csv(
        io.BytesIO(text.encode("utf-8")),
        columns=keep,
        has_header=has_header,
        new_columns=None if has_header else header,
        separator=delimiter,
        infer_schema=False,
        empty_string_is_null=False,
    )


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _quotes_before(source: Path | bytes, end: int) -> int:
    if isinstance(source, bytes):
        return source.count(b'"', 0, end)
    count = 0
    with source.open("rb") as fh:
        while end > 0:
            block = fh.read(min(end, 1 << 20))
            if not block:
                break
            count, end = count + block.count(b'"'), end - len(block)
    return count


def _check_end(name: str, source: Path | bytes, tail: bytes, size: int, delimiter: str, encoding: str,
               width: int) -> None:
    """The last record, read from the tail's first line break. That break may sit inside a quoted field (a note
    over several lines): a record found incomplete is read again knowing whether it does, from the count of quotes
    before it (each quoted field holds an even number), so a whole file is never refused for where its tail
    begins. Counting reads the file up to the tail: only for a file the quick look found incomplete."""
    if size > len(tail):
        tail = tail.split(b"\n", 1)[-1]  # start at a line boundary
    try:
        _check_last_record(name, tail, delimiter, encoding, width)
    except FileRejected as exc:
        if exc.reason != "truncated" or len(tail) == size or _quotes_before(source, size - len(tail)) % 2 == 0:
            raise
        _check_last_record(name, tail, delimiter, encoding, width, in_quotes=True)


def _check_last_record(name: str, tail: bytes, delimiter: str, encoding: str, width: int,
                       in_quotes: bool = False) -> None:
    """A file cut short in transfer ends mid-record: fewer fields, an open quote, or half a character. `tail`
    starts at a line boundary (`in_quotes`: one inside a quoted field)."""
    try:
        text = tail.decode(encoding)
    except UnicodeDecodeError as exc:
        # Only a multi-byte sequence that the end of the file interrupts is a cut; a byte that is invalid in
        # itself (Windows-1252 "é" in a UTF-8 file) is an encoding problem wherever it sits.
        if exc.reason == "unexpected end of data" and exc.end == len(tail):
            raise FileRejected("truncated", f"{name}: the file ends in the middle of a character (cut short?)")
        raise FileRejected("encoding", f"{name}: not valid {encoding} text near the end of the file") from None
    text = ('"' if in_quotes else "") + text.rstrip("\r\n")
    if not text:
        return
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error:
        raise FileRejected("truncated", f"{name}: the last record is incomplete (unclosed quote)") from None
    if text.count('"') % 2 == 1:
        raise FileRejected("truncated", f"{name}: the last record is incomplete (unclosed quote)")
    if records and len(records[-1]) < width:
        raise FileRejected(
            "truncated", f"{name}: the last record has {len(records[-1])} of {width} fields (file cut short?)"
        )
