"""read_text_csv: broken files are refused with a reason code (and no cell value in the message); awkward but
well-formed files are read with every cell intact."""
from pathlib import Path

import polars as pl
import pytest

from belleville_mtss.lib.csvfile import FileRejected, read_text_csv

SECRET = "zz-secret-value"

REFUSED = {
    "empty": (b"", "empty_file"),
    "header_only": (b"id,name,score\n", "header_only"),
    "header_only_no_newline": (b"id,name,score", "header_only"),
    "header_only_crlf": (b"id,name,score\r\n", "header_only"),
    "duplicate_header": (f"id,name,score,Name\n1,{SECRET},3,{SECRET}\n".encode(), "duplicate_header"),
    "truncated_last_line": (f"id,name,score\n1,{SECRET},3\n2,{SECRET}\n".encode(), "truncated"),
    "truncated_mid_field": (f"id,name,score\n1,{SECRET},3\n2,{SECRET[:6]}".encode(), "truncated"),
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
