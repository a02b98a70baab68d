"""read_text_csv: broken files are refused with a reason code (and no cell value in the message); awkward but
well-formed files are read with every cell intact."""
from pathlib import Path

import polars as pl
import pytest

from belleville_mtss.lib.read.csvfile import FileRejected, read_text_csv

SECRET = "zz-secret-value"

REFUSED = {
    "empty": (b"", "empty_file"),
    "header_only": (b"id,name,score\n", "header_only"),
    "header_only_no_newline": (b"id,name,score", "header_only"),
    "header_only_crlf": (b"id,name,score\r\n", "header_only"),
    "duplicate_header": (f"id,name,score,Name\n1,{SECRET},3,{SECRET}\n".encode(), "duplicate_header"),
    "truncated_last_line": (f"id,name,score\n1,{SECRET},3\n2,{SECRET}\n".encode(), "truncated"),
    "truncated_mid_field": (f"id,name,score\n1,{SECRET},3\n2,{SECRET[:6]}".encode(), "truncated"),
    "truncated_after_a_size": (f"id,name,size\n1,{SECRET},M\nXX".encode(), "truncated"),  # XXL, cut short
    "unclosed_quote_at_end": (f'id,name,score\n1,{SECRET},3\n2,"{SECRET},3\n'.encode(), "truncated"),
    "unclosed_quote_last_field": (f'id,name,score\n1,{SECRET},3\n2,{SECRET},"3'.encode(), "truncated"),
    # "é" is two bytes in UTF-8; the file stops after the first.
    "cut_in_multibyte_character": (f"id,name,score\n1,{SECRET},3\n2,{SECRET},caf\u00e9".encode()[:-1], "truncated"),
    # "€" is three bytes; the file stops after the first of them.
    "cut_in_three_byte_character": (f"id,name\n1,{SECRET}\n2,\u20ac".encode()[:-2], "truncated"),
    "ragged_rows": (f"id,name,score\n1,{SECRET},3,4\n2,{SECRET},3\n".encode(), "ragged_rows"),
    "ragged_last_row": (f"id,name,score\n1,{SECRET},3\n2,{SECRET},3,4\n".encode(), "ragged_rows"),
}


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / f"{name}.csv"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_broken_file_is_refused_with_its_reason(case, tmp_path):
    data, reason = REFUSED[case]
    path = write(tmp_path, case, data)
    with pytest.raises(FileRejected) as info:
        read_text_csv(path)
    assert info.value.reason == reason
    assert path.name in info.value.message
    # FERPA: messages name files, columns and counts, never a cell value.
    assert SECRET not in info.value.message
    assert SECRET[:6] not in info.value.message
    assert SECRET not in str(info.value)


def test_duplicate_header_message_names_the_column(tmp_path):
    path = write(tmp_path, "dup", f"id,name,score,Name\n1,{SECRET},3,{SECRET}\n".encode())
    with pytest.raises(FileRejected) as info:
        read_text_csv(path)
    assert "Name" in info.value.message


def test_truncated_message_counts_the_fields(tmp_path):
    path = write(tmp_path, "cut", f"id,name,score\n1,{SECRET},3\n2,{SECRET}\n".encode())
    with pytest.raises(FileRejected) as info:
        read_text_csv(path)
    assert "2 of 3 fields" in info.value.message


def test_utf8_bom_is_not_part_of_the_first_column_name(tmp_path):
    path = write(tmp_path, "bom", b"\xef\xbb\xbfStudentIdentifier,name\n000123,x\n")
    frame = read_text_csv(path)
    assert frame.columns == ["StudentIdentifier", "name"]
    assert frame["StudentIdentifier"].to_list() == ["000123"]


def test_crlf_line_endings(tmp_path):
    path = write(tmp_path, "crlf", b"id,name\r\n000123,Ana\r\n000124,Bo\r\n")
    frame = read_text_csv(path)
    assert frame.columns == ["id", "name"]
    assert frame.rows() == [("000123", "Ana"), ("000124", "Bo")]


def test_no_final_newline(tmp_path):
    path = write(tmp_path, "nonl", b"id,name,score\n000123,Ana,1\n000124,Bo,2")
    frame = read_text_csv(path)
    assert frame.rows() == [("000123", "Ana", "1"), ("000124", "Bo", "2")]


def test_quoted_fields_with_commas_quotes_and_newlines(tmp_path):
    path = write(
        tmp_path,
        "quoted",
        b'id,note,score\n'
        b'000123,"Smith, Jr. said ""hi""\nthen left",1\n'
        b'000124,plain,2\n'
        b'000125,"ends quoted, again ""x""\nline two",3',
    )
    frame = read_text_csv(path)
    assert frame.height == 3
    assert frame["note"].to_list() == [
        'Smith, Jr. said "hi"\nthen left',
        "plain",
        'ends quoted, again "x"\nline two',
    ]
    assert frame["id"].to_list() == ["000123", "000124", "000125"]
    assert frame["score"].to_list() == ["1", "2", "3"]


def test_every_cell_stays_text(tmp_path):
    path = write(tmp_path, "text", b"id,grade,ge,lexile,score\n000123,K,< 1,BR400L,NA\n0042,01,3.40,695L,07\n")
    frame = read_text_csv(path)
    assert frame.dtypes == [pl.String] * 5
    assert frame.rows() == [("000123", "K", "< 1", "BR400L", "NA"), ("0042", "01", "3.40", "695L", "07")]


@pytest.mark.parametrize(("data", "reason", "message"), [
    (b",,\n1,2,3\n", "no_header", "x.csv: the first row is blank; a header row is expected"),
    (b" , \n1,2\n", "no_header", "x.csv: the first row is blank; a header row is expected"),
    (b"id\rname\r1\r", "line_endings", "x.csv: lines end in a bare carriage return (old Mac style); export with CRLF "
                                       "or LF line endings"),
    (b"id,n\xe9\n1,2\n", "encoding", "x.csv: the header row is not valid utf-8 text"),
    (b"id,name\n1,\xe9\n2,b\n", "encoding", "x.csv: not valid utf-8 text near the end of the file"),
])
def test_a_first_row_that_is_no_header_is_refused_saying_why(data, reason, message):
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=data)
    assert (info.value.reason, info.value.message) == (reason, message)


@pytest.mark.parametrize("first_row", [f"000123,{SECRET}@x.org", "2026-09-15,Ana", "12.5,Bo", "10/5/22 21:32,Cy"])
def test_a_data_row_where_the_header_should_be_is_refused_without_quoting_it(first_row):
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=f"{first_row}\n1,2\n".encode())
    assert info.value.reason == "no_header"
    assert info.value.message == (
        "x.csv: the first row holds values (numbers, dates or email addresses), not column names; a header row is "
        "expected (an export without one needs has_header: false and column_order in the district registry)")
    assert first_row.split(",")[0] not in info.value.message and SECRET not in info.value.message


def test_header_names_are_read_without_the_spaces_around_them():
    frame = read_text_csv(Path("x.csv"), data=b" StudentIdentifier ,\tDistrictName , Grade 5\n000123,B,K\n")
    assert frame.columns == ["StudentIdentifier", "DistrictName", "Grade 5"]
    # and spaced names still collide, case aside
    with pytest.raises(FileRejected, match=r"duplicated column name\(s\) ID, name$"):
        read_text_csv(Path("x.csv"), data=b"id, Name ,ID,name\n1,2,3,4\n")


def test_blank_header_names_are_kept_apart():
    frame = read_text_csv(Path("x.csv"), data=b"id,,name,\n1,2,3,4\n")
    assert frame.width == 4 and frame.columns[0] == "id" and frame.columns[2] == "name"
    assert frame.row(0) == ("1", "2", "3", "4")


def test_an_export_without_a_header_reads_by_the_declared_column_order():
    frame = read_text_csv(Path("x.csv"), data=b"000123,Ana\n000124,Bo\n", has_header=False,
                          column_names=["id", "name"])
    assert frame.columns == ["id", "name"] and frame.rows() == [("000123", "Ana"), ("000124", "Bo")]
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=b"000123,Ana\n", has_header=False)
    assert (info.value.reason, info.value.message) == ("no_header", "x.csv: no header row and no column order declared")
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=b"000123,Ana,5\n000124,Bo\n", has_header=False, column_names=["id", "name"])
    assert (info.value.reason, info.value.message) == (
        "ragged_rows", "x.csv: some rows have more fields than the 2 columns declared")
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=b"000123,Ana\n000124\n", has_header=False, column_names=["id", "name"])
    assert (info.value.reason, info.value.message) == (
        "truncated", "x.csv: the last record has 1 of 2 fields (file cut short?)")


def test_a_ragged_row_is_named_in_the_message():
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=b"id,name\n1,a,b\n2,c\n")
    assert info.value.message == "x.csv: some rows have more fields than the header"


def test_the_row_limit_refuses_a_file_one_row_over_it():
    data = b"id\n1\n2\n3\n"
    assert read_text_csv(Path("x.csv"), data=data, max_rows=3)["id"].to_list() == ["1", "2", "3"]
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=data, max_rows=2)
    assert (info.value.reason, info.value.message) == ("too_many_rows", "x.csv: more than 2 rows (MTSS_MAX_FILE_ROWS)")
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=b"id\n" + b"1\n" * 1500, max_rows=1200)
    assert info.value.message == "x.csv: more than 1,200 rows (MTSS_MAX_FILE_ROWS)"


@pytest.mark.parametrize("project", [False, True])
def test_only_the_selected_columns_are_kept(project, tmp_path):
    data = b"a,StudentIdentifier,b,ScaledScore\n1,000123,2,850\n"
    for source in (dict(data=data), dict()):
        path = write(tmp_path, "sel", data)
        frame = read_text_csv(path, select=lambda header: {"ScaledScore", "StudentIdentifier", "nothere"},
                              project=project, **source)
        assert frame.columns == ["StudentIdentifier", "ScaledScore"] and frame.row(0) == ("000123", "850")
    if project:
        # none of the wanted columns: the first is read, to count the rows
        assert read_text_csv(Path("x.csv"), data=data, select=lambda h: [], project=True).columns == ["a"]


def test_a_windows_1252_export_reads_as_text_and_a_bad_byte_is_refused(tmp_path):
    data = "id,name,note\n1,Jos\u00e9,\u201cok\u201d\n2,Ren\u00e9e,x\n".encode("cp1252")
    for kwargs in (dict(data=data), dict()):
        frame = read_text_csv(write(tmp_path, "w", data), encoding="windows-1252", **kwargs)
        assert frame.rows() == [("1", "Jos\u00e9", "\u201cok\u201d"), ("2", "Ren\u00e9e", "x")]
    projected = read_text_csv(Path("x.csv"), data=data, encoding="windows-1252", select=lambda h: ["name"],
                              project=True)
    assert projected.columns == ["name"] and projected["name"].to_list() == ["Jos\u00e9", "Ren\u00e9e"]
    # 0x81 is no character: near the end of the file, or before the tail that is checked first
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=b"id,name\n1,\x81\n2,b\n", encoding="windows-1252")
    assert (info.value.reason, info.value.message) == ("encoding", "x.csv: not valid windows-1252 text near the end "
                                                                   "of the file")
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=b"id,name\n1,\x81\n" + b"2,b\n" * 100_000, encoding="windows-1252")
    assert (info.value.reason, info.value.message) == ("encoding", "x.csv: not valid windows-1252 text")


def test_a_file_cut_short_is_found_in_a_large_file(tmp_path):
    # Only the tail is read to check the last record: it starts at a line boundary, whatever the file's size.
    body = b"".join(b"%06d,name,%d\n" % (i, i % 7) for i in range(40_000))
    path = write(tmp_path, "big", b"id,name,score\n" + body + b"040000,na")
    with pytest.raises(FileRejected) as info:
        read_text_csv(path)
    assert info.value.message == "big.csv: the last record has 2 of 3 fields (file cut short?)"
    assert read_text_csv(write(tmp_path, "whole", b"id,name,score\n" + body)).height == 40_000


def test_the_checksum_is_of_the_bytes_read_from_disk_or_memory(tmp_path):
    import hashlib

    from belleville_mtss.lib.read.csvfile import file_info
    data = b"id,name\n" + b"000123,Ana\n" * 200_000  # more than one 1 MiB chunk
    path = write(tmp_path, "f", data)
    expected = hashlib.sha256(data).hexdigest()
    on_disk, in_memory = file_info(path), file_info(path, data)
    assert on_disk == in_memory
    assert (on_disk.name, on_disk.path, on_disk.size, on_disk.sha256) == ("f.csv", str(path), len(data), expected)
    other = file_info(Path("g.csv"), b"id\n1\n")
    assert other.sha256 == hashlib.sha256(b"id\n1\n").hexdigest() and other.size == 5


def test_a_headerless_tab_delimited_windows_1252_export_reads_every_row():
    data = "007\tJos\u00e9\n008\tRen\u00e9e\n".encode("cp1252")
    frame = read_text_csv(Path("x.txt"), data=data, encoding="windows-1252", delimiter="\t", has_header=False,
                          column_names=["id", "name"])
    assert frame.columns == ["id", "name"] and frame.rows() == [("007", "Jos\u00e9"), ("008", "Ren\u00e9e")]


def test_a_large_file_whose_last_record_spans_lines_is_whole():
    # The tail read to check the last record starts at a line boundary, not at its last line.
    body = b"".join(b"%06d,plain\n" % i for i in range(30_000))
    data = b"id,note\n" + body + b'030000,"a note\non three\nlines"'
    frame = read_text_csv(Path("x.csv"), data=data)
    assert frame.height == 30_001 and frame["note"][-1] == "a note\non three\nlines"


@pytest.mark.parametrize("header", [b"id,note", b'"id",note'], ids=["plain-header", "quoted-header"])
@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory", "on-disk"])
@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut-short"])
def test_a_large_file_whose_tail_begins_inside_a_quoted_note_is_judged_by_its_records(tmp_path, on_disk, cut, header):
    """The tail read to check the last record starts at its first line break: here one inside a note over several
    lines, so read from there the file's quotes pair up wrongly. A whole file is read whole (it was refused as cut
    short); a file cut inside its last quoted note still is. Whether the tail begins inside quotes is told by the
    parity of the quotes before it (1 or 3 here), whatever their number."""
    from belleville_mtss.lib.read.csvfile import _TAIL_BYTES
    rest_of_note, ending = b'over three\nlines"\n', b'777777,"a last note cut\nshort' if cut else b""
    rows = _TAIL_BYTES - 3 - len(rest_of_note) - len(ending)  # the tail begins 3 bytes before the note's first break
    n = rows // 13 - 1  # rows of 13 bytes, then one that takes up the rest
    body = b"".join(b"%06d,plain\n" % i for i in range(n)) + b"%06d,%s\n" % (n, b"y" * (rows - 13 * n - 8))
    data = header + b"\n" + b"".join(b"%06d,plain\n" % i for i in range(500_000, 501_000)) + \
        b'999999,"a note\n' + rest_of_note + body + ending
    start = len(data) - _TAIL_BYTES
    assert data[start:].split(b"\n", 1)[1].startswith(rest_of_note)  # the tail's first line break is the note's
    source = write(tmp_path, "notes", data) if on_disk else Path("notes.csv")
    read = (lambda: read_text_csv(source)) if on_disk else (lambda: read_text_csv(source, data=data))
    if cut:
        with pytest.raises(FileRejected) as info:
            read()
        assert info.value.message == "notes.csv: the last record is incomplete (unclosed quote)"
        return
    frame = read()
    assert frame.height == 1000 + 1 + n + 1 and frame["note"][1000] == "a note\nover three\nlines"


@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory", "on-disk"])
@pytest.mark.parametrize("header", [b"id,note", b'"id",note', b'"id","note"'], ids=["0", "2", "4"])
def test_a_file_cut_inside_a_long_quoted_note_is_refused_as_cut_whatever_the_quotes_before_its_tail(tmp_path, on_disk,
                                                                                                 header):
    """A file cut inside its last note, a long one over many lines of commas. Read as if the tail began inside
    quotes, its quotes would pair up into whole records: whether it does is told by the parity of the quotes before
    it (0, 2 or 4 here: even, so it does not), never by those in the tail. Refused as cut, not as unreadable."""
    from belleville_mtss.lib.read.csvfile import _TAIL_BYTES
    note = b",\n" * 90_000  # 180,000 bytes: its opening quote lies within csv's 128 KiB field limit of the tail's start
    rows = b"".join(b"%06d,plain\n" % i for i in range(_TAIL_BYTES // 13))
    data = header + b"\n" + rows + b'777777,"' + note
    assert data[-_TAIL_BYTES:].count(b'"') == 1
    source = write(tmp_path, "cut", data) if on_disk else Path("cut.csv")
    with pytest.raises(FileRejected) as info:
        read_text_csv(source, data=None if on_disk else data)
    assert (info.value.reason, info.value.message) == (
        "truncated", "cut.csv: the last record is incomplete (unclosed quote)")


def test_a_large_file_whose_tail_begins_inside_a_character_is_read_whole():
    """The tail is read from its first line break, never from the byte where it begins: there, in the middle of a
    two-byte character, it is no text at all."""
    from belleville_mtss.lib.read.csvfile import _TAIL_BYTES
    line = "\u00e9".encode() * 20 + b",plain\n"  # 47 bytes
    data = b"id,note\n" + b"1,x\n" + line * 7000
    data += b"2,x\n" if 0x80 <= data[-_TAIL_BYTES] < 0xC0 else b"22,x\n"  # a byte inside a character
    assert 0x80 <= data[-_TAIL_BYTES] < 0xC0
    frame = read_text_csv(Path("accents.csv"), data=data)
    assert frame.height == 7002 and frame["id"][2] == "\u00e9" * 20


def test_a_file_whose_last_record_is_longer_than_the_tail_is_read_whole():
    """No line break in the tail, not even a last one: the last record is read from where the tail begins, and has
    its three fields."""
    data = b"a,b,c\n1,2,3\n" + b",".join(letter * 100_000 for letter in (b"x", b"y", b"z"))
    frame = read_text_csv(Path("wide.csv"), data=data)
    assert frame.height == 2 and frame["c"][1] == "z" * 100_000


@pytest.mark.parametrize("inside", [False, True], ids=["tail-begins-before-the-note", "tail-begins-inside-it"])
def test_a_note_line_that_begins_with_a_quoted_word_where_the_tail_begins_is_whole(inside):
    """A note over several lines, one of which holds a quoted word right after a comma (its quotes doubled): read
    from a line break where the tail begins, before the note or inside it, the doubled quotes are part of the note."""
    from belleville_mtss.lib.read.csvfile import _TAIL_BYTES
    note = b'"' + (b"the parent said\n" if inside else b"") + b'he was,""sick"" on friday\nso absent",999999,y\n'
    # the tail begins 5 bytes before the note's record, or 3 bytes into the note
    size = _TAIL_BYTES + (3 if inside else -5) - len(note)
    n = size // 15 - 1  # rows of 15 bytes, then one that takes up the rest
    rest = b"".join(b"plain,%06d,y\n" % i for i in range(n)) + b"%s,%06d,y\n" % (b"w" * (size - 15 * n - 10), n)
    head = b"note,id,z\n" + b"".join(b"plain,%06d,y\n" % i for i in range(1000))
    data = head + note + rest
    start = len(data) - _TAIL_BYTES
    boundary = start + data[start:].index(b"\n") + 1
    assert data[boundary:].startswith(b'he was,""sick' if inside else b'"')  # where the check begins to read
    frame = read_text_csv(Path("notes.csv"), data=data)
    assert frame["note"][1000] == ("the parent said\n" if inside else "") + 'he was,"sick" on friday\nso absent'


def test_a_byte_that_is_no_character_at_the_very_end_is_an_encoding_problem_not_a_cut():
    # 0xFF never starts a UTF-8 character: the file is not cut in the middle of one, it is not UTF-8.
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=b"id,name\n1,caf\xff")
    assert (info.value.reason, info.value.message) == ("encoding", "x.csv: not valid utf-8 text near the end of the file")


def test_blank_lines_at_the_end_are_not_a_cut_record():
    frame = read_text_csv(Path("x.csv"), data=b"id,name\r\n000123,Ana\r\n\r\n\n")
    assert frame.row(0) == ("000123", "Ana")


def test_a_headerless_export_of_nothing_but_a_byte_order_mark_holds_no_data():
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=b"\xef\xbb\xbf", has_header=False, column_names=["id"])
    assert (info.value.reason, info.value.message) == ("empty_file", "x.csv holds no data")


def test_a_byte_that_is_not_utf_8_anywhere_in_a_large_file_is_refused():
    # Far from the header and from the tail that are checked first: the parser itself refuses it, never
    # replacing it with another character.
    data = b"id,name\n1,\xe9t\xe9\n" + b"2,b\n" * 100_000
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=data)
    assert (info.value.reason, info.value.message) == ("encoding", "x.csv: not valid utf-8 text")


def test_text_after_a_closing_quote_far_from_the_end_is_unreadable():
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=f'id,name\n1,"{SECRET}"x\n'.encode() + b"2,b\n" * 100_000)
    assert (info.value.reason, info.value.message) == ("unreadable", "x.csv: not a readable CSV file (ComputeError)")


def test_a_headerless_export_whose_first_record_spans_lines_reads_whole(tmp_path):
    # A small file is checked whole: its first line is not skipped as if it were a cut one.
    data = b'"a note\non two lines",000123\nplain,000124\n'
    for source in (dict(data=data), dict()):
        frame = read_text_csv(write(tmp_path, "n", data), has_header=False, column_names=["note", "id"], **source)
        assert frame.rows() == [("a note\non two lines", "000123"), ("plain", "000124")]


def test_a_note_spanning_lines_where_the_checked_tail_begins_is_whole():
    # The last 256 KiB are checked from their first line boundary: a quoted note that starts on the next line
    # and ends on the one after is one record, not an unclosed quote.
    end = b'000001,"a note\non two lines"\n' + b"000002,plain\n" * 20_088
    data = b"id,note\n" + b"000003,y\n" * 100 + b"000000," + b"x" * 2000 + b"\n" + end
    frame = read_text_csv(Path("x.csv"), data=data)
    assert frame.height == 20_190 and frame["note"][101] == "a note\non two lines"


def test_a_cut_record_is_found_when_the_header_ends_in_a_tab():
    # A trailing tab is an empty last column: the header has 3 names, and the cut record 2 of 3 fields.
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.txt"), data=b"id\tname\t\n1\ta\t\n2\tb", delimiter="\t")
    assert (info.value.reason, info.value.message) == (
        "truncated", "x.txt: the last record has 2 of 3 fields (file cut short?)")


@pytest.mark.parametrize("last", [b'2,5" tall', b'2,"tall"er', b'2,"tall""'])
def test_broken_quoting_in_the_last_record_is_refused_as_an_unclosed_quote(last):
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=b"id,height\n1,short\n" + last + b"\n")
    assert (info.value.reason, info.value.message) == (
        "truncated", "x.csv: the last record is incomplete (unclosed quote)")


def test_selected_columns_without_projection_still_refuse_a_ragged_row():
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=b"id,name\n1,a,b\n2,c\n", select=lambda header: ["name"])
    assert (info.value.reason, info.value.message) == ("ragged_rows", "x.csv: some rows have more fields than the header")


def test_a_header_row_longer_than_64_kib_is_refused_not_cut_mid_name(tmp_path):
    # Only the first 64 KiB are read for the header: a row of 65,536 bytes before its line break would lose the
    # end of a column name. One byte shorter, the header is read whole.
    def header(length: int) -> bytes:
        names = b",".join(b"Column%05d" % i for i in range(length // 12 + 1))
        return names[:length - 1] + b"Z"
    for length, refused in ((65_535, False), (65_536, True), (70_000, True)):
        line = header(length)
        assert len(line) == length
        data = line + b"\n" + b",".join(b"1" for _ in line.split(b",")) + b"\n"
        for source in (dict(data=data), dict()):
            path = write(tmp_path, "wide", data)
            if refused:
                with pytest.raises(FileRejected) as info:
                    read_text_csv(path, **source)
                assert (info.value.reason, info.value.message) == (
                    "no_header", "wide.csv: the first row is longer than 64 KiB; a header row of column names is "
                                 "expected")
            else:
                assert read_text_csv(path, **source).columns == [c.decode() for c in line.split(b",")]


def test_a_long_first_line_is_data_in_an_export_without_a_header():
    data = b"x" * 70_000 + b",000123\nshort,000124\n"
    frame = read_text_csv(Path("x.csv"), data=data, has_header=False, column_names=["note", "id"])
    assert frame["id"].to_list() == ["000123", "000124"]


def test_a_large_file_with_old_mac_line_endings_is_refused_for_them():
    with pytest.raises(FileRejected) as info:
        read_text_csv(Path("x.csv"), data=b"id,name\r" + b"000123,Ana\r" * 10_000)
    assert info.value.reason == "line_endings"
