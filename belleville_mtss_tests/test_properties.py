"""Property-based tests (hypothesis) of the CSV reader, the Star and PowerSchool column binding and the district
name normalisation: whatever the bytes, the process does not crash, and a file either validates or is refused with
a reason (FileRejected, or a halted SourceFile/ValidatedFile carrying an ErrorRecord)."""
import csv
import io
import os
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from belleville_mtss.lib.read.csvfile import FileRejected, read_text_csv
from belleville_mtss.lib.load.errors import ErrorRecord
from belleville_mtss.lib.read.ingest import SourceFile, ValidatedFile, ingest_file, validate_file
from belleville_mtss.lib.district.names import Reference, normalise
from belleville_mtss.lib.sources.powerschool.reader import map_columns
from belleville_mtss.lib.district.registry import PowerSchoolFormat, load_district
from belleville_mtss.lib.sources.star.frame import STAR_SCHEMA
from belleville_mtss.lib.sources.star.reader import REQUIRED, STAR_COLUMNS, bind_columns, type_rows

REPO = Path(__file__).resolve().parent.parent
DISTRICT = load_district(REPO / "belleville_mtss" / "districts" / "belleville.yaml")
NAME = Path("drop_file.csv")
# Every reason code read_text_csv may give; a new one must be added here on purpose.
READ_REASONS = {"empty_file", "header_only", "no_header", "duplicate_header", "truncated", "encoding", "ragged_rows",
                "unreadable", "line_endings"}

# Bounded so the file runs in seconds; HX_N=3000 searches harder (and randomly) when looking for new failures.
_N = int(os.environ.get("HX_N", "300"))
_COMMON = dict(suppress_health_check=[HealthCheck.too_slow], derandomize="HX_N" not in os.environ, database=None)
FAST = settings(max_examples=_N, deadline=2000, **_COMMON)
SLOW = settings(max_examples=max(_N // 4, 20), deadline=4000, **_COMMON)

# Bytes that look like a CSV file: mostly the characters that matter to a CSV parser.
_CSV_ATOMS = st.sampled_from([b",", b"\t", b'"', b"\n", b"\r\n", b"\r", b"a", b"b", b"1", b"0", b" ", b"NA",
                              b"\xef\xbb\xbf", b"\xc3\xa9", b"\xc3", b"\xe9", b"\x81", b"\xe2\x82\xac", b"\x00",
                              b"StudentIdentifier", b"@"])
csvish_bytes = st.one_of(st.binary(max_size=300), st.lists(_CSV_ATOMS, max_size=60).map(b"".join))


def _check_frame(frame: pl.DataFrame) -> None:
    assert isinstance(frame, pl.DataFrame)
    assert frame.height >= 1
    assert all(dtype == pl.String for dtype in frame.dtypes)
    assert len(set(frame.columns)) == frame.width


def _check_rejection(exc: FileRejected) -> None:
    assert exc.reason in READ_REASONS
    assert NAME.name in exc.message


@FAST
@given(data=csvish_bytes, delimiter=st.sampled_from([",", "\t"]), encoding=st.sampled_from(["utf-8", "windows-1252"]))
def test_read_text_csv_never_crashes_with_a_header(data, delimiter, encoding):
    try:
        frame = read_text_csv(NAME, data=data, delimiter=delimiter, encoding=encoding)
    except FileRejected as exc:
        _check_rejection(exc)
    else:
        _check_frame(frame)


@FAST
@given(data=csvish_bytes, width=st.integers(1, 4), encoding=st.sampled_from(["utf-8", "windows-1252"]))
def test_read_text_csv_never_crashes_without_a_header(data, width, encoding):
    columns = [f"c{i}" for i in range(width)]
    try:
        frame = read_text_csv(NAME, data=data, encoding=encoding, has_header=False, column_names=columns)
    except FileRejected as exc:
        _check_rejection(exc)
    else:
        _check_frame(frame)
        assert frame.columns == columns


# A well-formed table of text, written the ways real exports write it, reads back cell for cell.
_header_name = st.from_regex(r"[A-Za-z][A-Za-z0-9_.]{0,11}", fullmatch=True)
_cell = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12)


@st.composite
def tables(draw):
    names = draw(st.lists(_header_name, min_size=2, max_size=5, unique_by=str.lower))
    rows = draw(st.lists(st.lists(_cell, min_size=len(names), max_size=len(names)), min_size=1, max_size=6))
    return names, rows


@FAST
@given(table=tables(), quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
       terminator=st.sampled_from(["\n", "\r\n"]), bom=st.booleans(), final_newline=st.booleans(),
       delimiter=st.sampled_from([",", "\t"]))
def test_well_formed_table_reads_back_every_cell(table, quoting, terminator, bom, final_newline, delimiter):
    names, rows = table
    if quoting == csv.QUOTE_MINIMAL and terminator == "\n":
        # Python's writer quotes only the terminator's characters: a lone CR would go out unquoted, which no
        # export does (and which is ambiguous), so such cells are left out of this round trip.
        rows = [[c.replace("\r", "") for c in r] for r in rows]
    out = io.StringIO()
    writer = csv.writer(out, quoting=quoting, lineterminator=terminator, delimiter=delimiter)
    writer.writerow(names)
    writer.writerows(rows)
    text = out.getvalue()
    if not final_newline:
        text = text[: -len(terminator)]
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    frame = read_text_csv(NAME, data=data, delimiter=delimiter)
    assert frame.columns == names
    assert [list(r) for r in frame.rows()] == rows


@FAST
@given(table=tables())
def test_windows_1252_declared_reads_back_every_cell(table):
    names, rows = table
    rows = [[c.encode("cp1252", "ignore").decode("cp1252") for c in r] for r in rows]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([names, *rows])
    frame = read_text_csv(NAME, data=out.getvalue().encode("cp1252"), encoding="windows-1252")
    assert frame.columns == names
    assert [list(r) for r in frame.rows()] == rows


@FAST
@given(table=tables(), cut=st.integers(1, 40))
def test_a_file_cut_short_is_refused_or_reads_whole_records(table, cut):
    """Cutting bytes off the end never yields a partial record silently: either refused, or every row read has the
    header's width and is a prefix of the original rows (a cut exactly at a record boundary is a valid file)."""
    names, rows = table
    rows = [[c.replace("\r", "") for c in r] for r in rows]  # see the round trip above
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([names, *rows])
    data = out.getvalue().encode("utf-8")
    assume(cut < len(data))
    try:
        frame = read_text_csv(NAME, data=data[:-cut])
    except FileRejected as exc:
        _check_rejection(exc)
        return
    got = [list(r) for r in frame.rows()]
    assert frame.columns == names
    # Every record but the last is intact; the last has all its fields, and only a cut inside its final unquoted
    # value (indistinguishable from a shorter value) may have shortened that value.
    assert got[:-1] == rows[: len(got) - 1]
    last, original = got[-1], rows[len(got) - 1]
    assert last[:-1] == original[:-1] and original[-1].startswith(last[-1])


# Star: binding by header name and typing rows, whatever the cells hold.
_star_value = st.one_of(
    st.sampled_from(["", "NA", " ", "na", "00:00.0", "51:23.7", "2026-09-15 13:05:00.000", "2023-08-21T17:28:05.852Z",
                     "10/5/22 21:32", "15-02-2003", "08-09-2019", "2026-2027", "2026 - 2027", "512", "512.0", "-3",
                     "1e3", "99999999999", "< 1", "BR400L", "Belleville Public Schools", "000123"]),
    st.text(max_size=8),
)
_extra_header = st.sampled_from(["Lexile", "TakenAt", "Unexpected Column", "ZZ_New", "StudentEmail"])


@st.composite
def star_frames(draw):
    headers = draw(st.lists(st.sampled_from([*STAR_COLUMNS.values()]), unique=True, min_size=0, max_size=12))
    headers += [h for h in draw(st.lists(_extra_header, unique=True, max_size=2)) if h not in headers]
    n = draw(st.integers(0, 6))
    return pl.DataFrame({h: draw(st.lists(_star_value, min_size=n, max_size=n)) for h in headers},
                        schema={h: pl.String for h in headers})


@FAST
@given(raw=star_frames(), subject=st.sampled_from(["SR", "SM", "SEL"]))
def test_star_binding_and_typing_never_crash_and_account_for_every_row(raw, subject):
    try:
        bound = bind_columns(raw, "SR.csv")
    except FileRejected as exc:
        assert exc.reason == "missing_columns"
        assert any(STAR_COLUMNS[c] not in raw.columns for c in REQUIRED)
        return
    assert all(STAR_COLUMNS[c] in raw.columns for c in REQUIRED)
    assert bound.columns == list(STAR_COLUMNS)
    typed, rejected = type_rows(bound, subject)
    assert typed.height + rejected.height == raw.height
    assert dict(typed.schema) == STAR_SCHEMA
    assert typed["completed_at"].null_count() == 0 and typed["student_link"].null_count() == 0
    # a blank or NA score is a null, never a rejection; a typed score that is blank in the file is null
    blank = raw["ScaledScore"].str.strip_chars().str.to_uppercase().is_in(["", "NA"]).to_list()
    for row, reason in rejected.iter_rows():
        assert not (blank[row - 2] and "ScaledScore" in reason)
    for row, score in typed.select("source_row", "scaled_score").iter_rows():
        assert (score is None) == blank[row - 2]


def _star_bytes(raw: pl.DataFrame) -> bytes:
    return raw.write_csv().encode() if raw.width else b""


@SLOW
@given(raw=star_frames(), source=st.sampled_from(["star_reading", "star_math", "star_early_literacy"]))
def test_a_star_file_validates_or_is_halted_with_an_error_record(raw, source):
    src = ingest_file(source, Path("SR.csv"), DISTRICT, data=_star_bytes(raw))
    _validates_or_halts(src, *validate_file(src, DISTRICT))


@SLOW
@given(data=csvish_bytes, source=st.sampled_from(["star_reading", "powerschool_students"]))
def test_arbitrary_bytes_as_a_drop_file_validate_or_halt(data, source):
    src = ingest_file(source, Path("students.csv" if source == "powerschool_students" else "SR.csv"), DISTRICT,
                      data=data)
    result = validate_file(src, DISTRICT)
    _validates_or_halts(src, *result)


def _validates_or_halts(src: SourceFile, validated: ValidatedFile, errors: list[ErrorRecord]) -> None:
    assert (src.frame is None) == (src.halted is not None)
    if validated.frame is not None:
        assert validated.halted is None
        assert sum(e.row_count for e in errors) == sum(validated.rejected.values())
        assert all(e.reason == "row_rejected" for e in errors)
        return
    halted = validated.halted
    assert isinstance(halted, ErrorRecord) and halted.reason and halted.stage in {"ingest", "validation", "mapping"}
    assert halted.file_name == src.file_name and src.file_name in halted.message
    assert "@" not in halted.message


# PowerSchool header mapping: by name, case-insensitively, in any order, extra columns ignored; of each field's
# accepted headers the first present wins; a missing required field refuses the file, a missing optional one is empty.
PS_COLUMNS = {field: headers[0] for field, headers in DISTRICT.powerschool.columns.items()}


@st.composite
def powerschool_headers(draw):
    ours = draw(st.lists(st.sampled_from(sorted(PS_COLUMNS)), unique=True, min_size=0, max_size=len(PS_COLUMNS)))
    headers = []
    for c in ours:
        h = PS_COLUMNS[c]
        style = draw(st.sampled_from(["same", "upper", "lower", "padded"]))
        headers.append({"same": h, "upper": h.upper(), "lower": h.lower(), "padded": f" {h} "}[style])
    extras = draw(st.lists(st.sampled_from(["STUDENTS.HOME_ROOM", "Unexpected", "STUDENTS.ID", "[39]name"]),
                           unique=True, max_size=3))
    headers += extras
    return ours, draw(st.permutations(headers))


@FAST
@given(spec=powerschool_headers(), n=st.integers(1, 4))
def test_powerschool_columns_map_by_name_or_are_refused_naming_what_is_missing(spec, n):
    ours, headers = spec
    raw = pl.DataFrame({h: [f"{h.strip().lower()}#{i}" for i in range(n)] for h in headers},
                       schema={h: pl.String for h in headers})
    fmt = PowerSchoolFormat(columns=PS_COLUMNS)
    missing = [PS_COLUMNS[c] for c in DISTRICT.required_fields if c not in ours]
    try:
        mapped, headers = map_columns(raw, fmt, "students.csv", DISTRICT.required_fields)
    except FileRejected as exc:
        assert missing and exc.reason == "missing_columns"
        assert all(m in exc.message for m in missing)
        return
    assert not missing
    for c, header in PS_COLUMNS.items():
        expected = [f"{header.lower()}#{i}" for i in range(n)] if c in ours else [None] * n
        assert mapped[c].to_list() == expected
        assert (headers[c] is None) == (c not in ours)
    assert not any(x in mapped.columns for x in ("STUDENTS.HOME_ROOM", "Unexpected", "STUDENTS.ID", "[39]name"))


# District names: normalisation and resolution never crash, and never guess on an empty name.
REFERENCE = Reference(pl.DataFrame({
    "key": ["3401350", "3411880", "3401830", "3401950", "3401980"],
    "name": ["BELLEVILLE SCHOOL DISTRICT", "NUTLEY", "BLOOMFIELD TOWNSHIP", "BOONTON TOWN", "BOONTON TOWNSHIP"],
    "state": ["NJ"] * 5, "county": ["ESSEX", "ESSEX", "ESSEX", "MORRIS", "MORRIS"],
    "account_info_id": [107873, 1, 2, 3, 4],
}))
_name_text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(["Belleville", "Public", "Schools", "SD", "Twp", "Boonton", "Town", "&", "'", "-",
                              "Nutley", "Bd of Ed", "N", "St", "SCHOOK", "ß", "İ", "ﬁ", " ", "\t", "é"]),
             max_size=6).map(" ".join),
)


@FAST
@given(name=_name_text)
def test_normalise_never_crashes_and_gives_plain_upper_words(name):
    norm = normalise(name)
    assert isinstance(norm, str)
    assert all(ch.isascii() and (ch.isupper() or ch.isdigit() or ch == " ") for ch in norm)
    assert norm == norm.strip() and "  " not in norm


@FAST
@given(name=_name_text, county=st.sampled_from([None, "ESSEX", "MORRIS", "OTHER"]))
def test_resolution_never_crashes_and_never_resolves_a_name_with_no_words(name, county):
    res = REFERENCE.resolve(name, state="NJ", county=county)
    assert res.decision in {"resolved", "ambiguous", "unmatched"}
    if not normalise(name):
        assert res.decision == "unmatched" and res.best is None
    if res.decision == "resolved":
        assert res.best is not None
