"""PowerSchool student exports in each header style a district may send, mapped through the district's registry
entry (header names matched case-insensitively), plus the two PowerSchool-shaped reference files read in place."""
from pathlib import Path

import pytest

from belleville_mtss.lib.read.csvfile import FileRejected, read_text_csv
from belleville_mtss.lib.read.ingest import ingest_file, validate_file
from belleville_mtss.lib.sources.powerschool.reader import map_columns, read_powerschool, type_students
from belleville_mtss.lib.district.registry import PowerSchoolFormat, load_district

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = "powerschool_official__Students_Data_Import_Template_2022_09.csv"
MENNOTECH = "mennotech_fsenrollment__students_example.csv"


def write(tmp_path: Path, text: str, name: str = "students.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


REQUIRED = ("student_number", "email")  # what the default links need


def load(path: Path, fmt: PowerSchoolFormat):
    mapped, _headers = map_columns(read_powerschool(path, fmt), fmt, path.name, REQUIRED)
    return type_students(mapped)


def by_number(typed) -> dict[str, dict]:
    return {r["student_number"]: r for r in typed.iter_rows(named=True)}


def test_dem_table_field_headers_through_the_belleville_registry(tmp_path):
    district = load_district(REPO / "belleville_mtss" / "districts" / "belleville.yaml")
    path = write(
        tmp_path,
        "STUDENTS.STUDENT_NUMBER,U_STUDENTSUSERFIELDS.CUSTOM_STUDENT_EMAIL,STUDENTS.FIRST_NAME,STUDENTS.LAST_NAME,"
        "STUDENTS.GRADE_LEVEL,STUDENTS.SCHOOLID,STUDENTS.DOB,STUDENTS.ENROLL_STATUS\r\n"
        "000123,  Ana.Lopez@Belleville.K12.NJ.US ,Ana,Lopez,3,101,01/02/2015,0\r\n"
        "4567,bo.kim@belleville.k12.nj.us,Bo,Kim,0,102,03/04/2018,0\r\n",
    )
    src = ingest_file("powerschool_students", path, district)
    validated, errors = validate_file(src, district)
    assert validated.halted is None and errors == []
    rows = by_number(validated.frame)
    assert list(rows) == ["000123", "4567"]
    assert rows["000123"]["email"] == "Ana.Lopez@Belleville.K12.NJ.US"
    assert rows["000123"]["email_key"] == "ana.lopez@belleville.k12.nj.us"
    assert rows["000123"]["grade_level"] == "3" and rows["4567"]["grade_level"] == "0"
    assert rows["4567"]["school_id"] == "102" and rows["4567"]["last_name"] == "Kim"


def test_bracketed_table_name_headers(tmp_path):
    fmt = PowerSchoolFormat(columns={
        "student_number": "[Students]Student_Number", "email": "[Students]Email",
        "last_name": "[students]last_name", "school_id": "[Schools]School_Number",
    })
    path = write(
        tmp_path,
        "[students]student_number,[STUDENTS]EMAIL,[Students]Last_Name,[schools]school_number\n"
        "000123,ANA@X.ORG ,Lopez,101\n"
        "000124,,Kim,102\n",
    )
    typed, rejected = load(path, fmt)
    assert rejected.is_empty()
    rows = by_number(typed)
    assert list(rows) == ["000123", "000124"]
    assert rows["000123"]["email_key"] == "ana@x.org"
    assert rows["000124"]["email_key"] is None  # a blank email is no join key
    assert rows["000124"]["last_name"] == "Kim" and rows["000124"]["school_id"] == "102"


def test_bracketed_table_number_headers(tmp_path):
    fmt = PowerSchoolFormat(columns={
        "student_number": "[01]Student_Number", "email": "[01]Email_Addr", "first_name": "[01]First_Name",
    })
    path = write(
        tmp_path,
        "[01]Student_Number,[01]first_name,[01]EMAIL_ADDR,[39]Name\n"
        "000123,Ana,\tAna@X.org\t,Belleville High\n",
    )
    typed, rejected = load(path, fmt)
    assert rejected.is_empty()
    assert typed.select("student_number", "first_name", "email", "email_key").row(0) == (
        "000123", "Ana", "Ana@X.org", "ana@x.org")


def test_plain_field_name_headers(tmp_path):
    fmt = PowerSchoolFormat(columns={
        "student_number": "student_number", "email": "EMAIL", "grade_level": "grade_level",
    })
    path = write(tmp_path, "Student_Number,Grade_Level,Email\n000123,-1, Pk.Kid@X.ORG\n0042,12,\n")
    typed, rejected = load(path, fmt)
    assert rejected.is_empty()
    rows = by_number(typed)
    assert list(rows) == ["000123", "0042"]
    assert rows["000123"]["grade_level"] == "-1"
    assert rows["000123"]["email_key"] == "pk.kid@x.org"
    assert rows["0042"]["email"] == "" and rows["0042"]["email_key"] is None


def test_lower_case_raw_table_headers(tmp_path):
    fmt = PowerSchoolFormat(columns={
        "student_number": "Student_Number", "email": "U_LD_Account_Management.Student_Email",
        "enroll_status": "Enroll_Status", "dob": "DOB",
    })
    path = write(
        tmp_path,
        "id,dcid,student_number,u_ld_account_management.student_email,enroll_status,dob\n"
        "1,9001,000123,A@B.C,0,2015-01-02\n"
        "2,9002,000124,  c@d.e  ,-1,2016-03-04\n",
    )
    mapped, _headers = map_columns(read_powerschool(path, fmt), fmt, path.name, REQUIRED)
    assert mapped["enroll_status"].to_list() == ["0", "-1"]
    assert mapped["dob"].to_list() == ["2015-01-02", "2016-03-04"]
    typed, rejected = type_students(mapped)
    assert rejected.is_empty()
    assert typed["student_number"].to_list() == ["000123", "000124"]
    assert typed["email_key"].to_list() == ["a@b.c", "c@d.e"]


def test_missing_mapped_header_is_refused_naming_it(tmp_path):
    fmt = PowerSchoolFormat(columns={
        "student_number": "STUDENTS.STUDENT_NUMBER", "email": "U_STUDENTSUSERFIELDS.custom_student_email",
        "grade_level": "STUDENTS.GRADE_LEVEL",
    })
    path = write(tmp_path, "STUDENTS.STUDENT_NUMBER,STUDENTS.GRADE_LEVEL\n000123,zz-secret-value\n")
    with pytest.raises(FileRejected) as info:
        map_columns(read_powerschool(path, fmt), fmt, path.name, REQUIRED)
    assert info.value.reason == "missing_columns"
    assert "U_STUDENTSUSERFIELDS.custom_student_email" in info.value.message
    assert "STUDENTS.GRADE_LEVEL" not in info.value.message  # only what is missing is named
    assert "zz-secret-value" not in info.value.message


def test_missing_mapped_header_halts_through_validate(tmp_path):
    district = load_district(REPO / "belleville_mtss" / "districts" / "belleville.yaml")
    path = write(tmp_path, "Student_Number,Email\n000123,a@b.c\n")
    validated, errors = validate_file(ingest_file("powerschool_students", path, district), district)
    assert validated.frame is None
    assert validated.halted.reason == "missing_columns"
    assert "STUDENTS.STUDENT_NUMBER" in validated.halted.message
    assert [e.reason for e in errors] == ["missing_columns"]


def test_duplicate_student_numbers_reject_both_rows_and_keep_the_rest(tmp_path):
    fmt = PowerSchoolFormat(columns={"student_number": "Student_Number", "email": "Email"})
    path = write(
        tmp_path,
        "Student_Number,Email\n"
        "000123,a@x.org\n"
        "000124,b@x.org\n"
        "000123 ,c@x.org\n"  # the same number once surrounding space is stripped
        "000125,d@x.org\n"
        ",e@x.org\n",
    )
    typed, rejected = load(path, fmt)
    assert typed["student_number"].to_list() == ["000124", "000125"]
    assert typed["source_row"].to_list() == [3, 5]
    assert sorted(rejected.iter_rows()) == [
        (2, "duplicate student number"),
        (4, "duplicate student number"),
        (6, "missing student number"),
    ]


def test_duplicates_are_counted_through_validate(tmp_path):
    district = load_district(REPO / "belleville_mtss" / "districts" / "belleville.yaml")
    path = write(
        tmp_path,
        "STUDENTS.STUDENT_NUMBER,U_STUDENTSUSERFIELDS.custom_student_email,STUDENTS.FIRST_NAME,"
        "STUDENTS.LAST_NAME,STUDENTS.GRADE_LEVEL,STUDENTS.SCHOOLID,STUDENTS.DOB,STUDENTS.ENROLL_STATUS\n"
        "000123,a@x.org,A,A,1,1,,0\n000123,b@x.org,B,B,1,1,,0\n000200,c@x.org,C,C,1,1,,0\n",
    )
    validated, errors = validate_file(ingest_file("powerschool_students", path, district), district)
    assert validated.rejected == {"duplicate student number": 2}
    assert validated.frame["student_number"].to_list() == ["000200"]
    assert [(e.reason, e.row_count) for e in errors] == [("row_rejected", 2)]


def test_tab_delimited_export(tmp_path):
    fmt = PowerSchoolFormat(delimiter="\t", columns={
        "student_number": "Student_Number", "email": "Email", "last_name": "Last_Name",
    })
    path = write(tmp_path, "Student_Number\tLast_Name\tEmail\n000123\tO'Brien, Jr.\tA@X.ORG\n000124\tKim\t\n",
                 name="students.txt")
    typed, rejected = load(path, fmt)
    assert rejected.is_empty()
    assert typed.select("student_number", "last_name", "email_key").rows() == [
        ("000123", "O'Brien, Jr.", "a@x.org"), ("000124", "Kim", None)]


def test_a_headerless_windows_1252_export_reads_by_the_registrys_column_order(tmp_path):
    fmt = PowerSchoolFormat(has_header=False, encoding="windows-1252", column_order=["Num", "Mail", "Last"],
                            columns={"student_number": "Num", "email": "Mail", "last_name": "Last"})
    path = tmp_path / "students.csv"
    path.write_bytes("000123,a@x.org,Mu\u00f1oz\n000124,b@x.org,Ren\u00e9e\n".encode("cp1252"))
    typed, rejected = load(path, fmt)
    assert rejected.is_empty()
    assert typed.select("student_number", "email_key", "last_name").rows() == [
        ("000123", "a@x.org", "Mu\u00f1oz"), ("000124", "b@x.org", "Ren\u00e9e")]


def test_an_export_over_the_row_limit_is_refused(tmp_path):
    fmt = PowerSchoolFormat(columns={"student_number": "N", "email": "E"})
    path = write(tmp_path, "N,E\n000123,a@x.org\n000124,b@x.org\n")
    assert read_powerschool(path, fmt, max_rows=2).height == 2
    with pytest.raises(FileRejected) as info:
        read_powerschool(path, fmt, max_rows=1)
    assert (info.value.reason, info.value.message) == ("too_many_rows", "students.csv: more than 1 rows (MTSS_MAX_FILE_ROWS)")


def test_tab_delimited_export_read_as_commas_is_refused(tmp_path):
    fmt = PowerSchoolFormat(columns={"student_number": "Student_Number", "email": "Email"})
    path = write(tmp_path, "Student_Number\tEmail\n000123\tA@X.ORG\n")
    with pytest.raises(FileRejected) as info:
        load(path, fmt)
    assert info.value.reason == "missing_columns"


def test_powerschool_import_template_lacks_an_email_column(reference_dir):
    path = reference_dir / "powerschool" / TEMPLATE
    fmt = PowerSchoolFormat(columns={"student_number": "Student_Number", "email": "Student_Email"})
    whole = read_text_csv(path)
    # A leading and a trailing empty header column around 34 named ones; Required/Recommended/Example rows.
    assert whole.width == 36 and whole.height == 3
    assert whole.columns[1] == "Student_Number" and whole.columns[-2] == "home_room"
    raw = read_powerschool(path, fmt)  # only the columns the registry maps are kept
    assert raw.columns == ["Student_Number"]
    assert raw["Student_Number"].to_list() == ["X", "", "12345"]
    with pytest.raises(FileRejected) as info:
        map_columns(raw, fmt, path.name, REQUIRED)
    assert info.value.reason == "missing_columns"
    assert "Student_Email" in info.value.message
    assert "Student_Number" not in info.value.message


def test_mennotech_example_has_19_students_and_no_email_column(reference_dir):
    path = reference_dir / "powerschool" / MENNOTECH
    fmt = PowerSchoolFormat(columns={
        "student_number": "student_number", "email": "Email", "grade_level": "GRADE_LEVEL",
    })
    whole = read_text_csv(path)
    assert whole.height == 19 and whole.width == 27
    assert whole["EntryDate"].unique().to_list() == ["9/2/25"]  # text, not a guessed date
    raw = read_powerschool(path, fmt)
    assert sorted(raw.columns) == ["Grade_Level", "Student_Number"]  # matched case-insensitively
    numbers = raw["Student_Number"].to_list()
    assert numbers[0] == "313202" and len(set(numbers)) == 19
    with pytest.raises(FileRejected) as info:
        map_columns(raw, fmt, path.name, REQUIRED)
    assert info.value.reason == "missing_columns"
    assert info.value.message.endswith("missing required column(s) for email (Email), as the district registry maps them")


BELLEVILLE_FMT = load_district(REPO / "belleville_mtss" / "districts" / "belleville.yaml").powerschool


def test_the_first_accepted_header_present_wins_and_unmapped_columns_are_never_read(tmp_path):
    path = write(tmp_path, "STUDENTS.SSN, u_studentsuserfields.CUSTOM_STUDENT_EMAIL ,STUDENTS.STUDENT_NUMBER,"
                           "students.email\n999-99-9999,custom@x.org,000123,main@x.org\n")
    raw = read_powerschool(path, BELLEVILLE_FMT)
    assert "STUDENTS.SSN" not in raw.columns and raw.width == 3
    mapped, headers = map_columns(raw, BELLEVILLE_FMT, path.name, REQUIRED)
    assert headers["email"] == "students.email" and headers["student_number"] == "STUDENTS.STUDENT_NUMBER"
    assert headers["first_name"] is None
    assert mapped.columns == ["student_number", "email", "first_name", "last_name", "grade_level", "school_id", "dob",
                              "enroll_status", "state_studentnumber", "dcid", "id"]
    assert mapped.row(0)[:3] == ("000123", "main@x.org", None)


def test_a_missing_required_column_is_named_with_each_header_accepted(tmp_path):
    path = write(tmp_path, "STUDENTS.FIRST_NAME\nAna\n")
    with pytest.raises(FileRejected) as info:
        map_columns(read_powerschool(path, BELLEVILLE_FMT), BELLEVILLE_FMT, path.name, REQUIRED)
    assert info.value.message == (
        "students.csv: missing required column(s) for student_number (STUDENTS.STUDENT_NUMBER); email "
        "(STUDENTS.EMAIL or U_STUDENTSUSERFIELDS.custom_student_email), as the district registry maps them")
    # by default only the student number is required
    raw = read_text_csv(write(tmp_path, "STUDENTS.STUDENT_NUMBER\n1\n"))
    assert map_columns(raw, BELLEVILLE_FMT, "students.csv")[0]["student_number"].to_list() == ["1"]


def test_a_value_longer_than_its_warehouse_column_rejects_the_row(tmp_path):
    fmt = PowerSchoolFormat(columns={"student_number": "N", "email": "E", "grade_level": "G"})
    path = write(tmp_path, f"N,E,G\n{'1' * 21},a@x.org,5\n{'2' * 20},b@x.org,123456789\n000123,c@x.org,K\n")
    typed, rejected = load(path, fmt)
    assert typed["student_number"].to_list() == ["000123"]
    assert rejected.rows() == [
        (2, "value_too_long: student_number longer than 20 characters (dm.StudentRoster.StudentNumber)"),
        (3, "value_too_long: grade_level longer than 8 characters (dm.StudentRoster.GradeLevel)")]


def test_the_link_field_is_trimmed_and_a_blank_one_links_nothing(tmp_path):
    fmt = PowerSchoolFormat(columns={"student_number": "N", "email": "E", "state_studentnumber": "S"})
    path = write(tmp_path, "N,E,S\n 000123 , A@X.org ,  NJ-77 \n000124,,\n000125, ,  \n")
    mapped, _ = map_columns(read_powerschool(path, fmt), fmt, path.name, REQUIRED)
    typed, rejected = type_students(mapped, link="state_studentnumber")
    assert rejected.is_empty()
    assert typed.select("student_number", "student_link", "email", "email_key", "source_row").rows() == [
        ("000123", "NJ-77", "A@X.org", "a@x.org", 2), ("000124", None, "", None, 3), ("000125", None, "", None, 4)]
    by_number_link, _ = type_students(mapped)
    assert by_number_link["student_link"].to_list() == ["000123", "000124", "000125"]


def test_grade_level_and_school_id_are_read_without_surrounding_spaces(tmp_path):
    fmt = PowerSchoolFormat(columns={"student_number": "N", "email": "E", "grade_level": "G", "school_id": "S"})
    path = write(tmp_path, "N,E,G,S\n000123,a@x.org, 3 ,\t101 \n000124,b@x.org,KG,102\n")
    typed, rejected = load(path, fmt)
    assert rejected.is_empty()
    assert typed.select("student_number", "grade_level", "school_id").rows() == [
        ("000123", "3", "101"), ("000124", "KG", "102")]


def test_a_row_with_more_fields_than_the_header_is_refused_not_read_past(tmp_path):
    # PowerSchool exports are typed by people: every field is parsed, so a stray comma is found.
    path = write(tmp_path, "STUDENTS.STUDENT_NUMBER,STUDENTS.EMAIL\n000123,a@x.org\n000124,O,Brien@x.org\n000125,c@x.org\n")
    with pytest.raises(FileRejected) as info:
        read_powerschool(path, BELLEVILLE_FMT)
    assert (info.value.reason, info.value.message) == (
        "ragged_rows", "students.csv: some rows have more fields than the header")


def test_a_record_cut_in_two_by_a_line_break_in_an_unquoted_value_halts_the_export(tmp_path):
    """The parser reads a short record as padded with empty values: a comment with a line break, exported without
    quotes, made the student lose their email (and ClassLink link) and the text after the break a student of its own,
    loaded as current, the run saying every file."""
    fmt = PowerSchoolFormat(columns={"student_number": "Student_Number", "email": "Email"})
    good = "Student_Number,Comment,Email\n000123,ok,a@x.org\n000124,\"moved\nback\",b@x.org\n"  # quoted: one record
    assert load(write(tmp_path, good), fmt)[0]["student_number"].to_list() == ["000123", "000124"]
    cut = good + "000125,Withdrew 10/2\n402117,c@x.org\n000126,ok,d@x.org\n"
    with pytest.raises(FileRejected) as refused:
        load(write(tmp_path, cut), fmt)
    assert refused.value.reason == "short_rows" and "2 record(s) have fewer fields than the 3 columns" in \
        refused.value.message
    # every value in quotes (a delimiter inside one is no field's end), no value over a line's end: one record short
    quoted = '"Student_Number","Comment","Email"\n"000123","a, b","a@x.org"\n"000124","b@x.org"\n"000125","","c@x"\n'
    with pytest.raises(FileRejected, match="1 record"):
        load(write(tmp_path, quoted), fmt)
    # and what is no short record: a value holding the unit separator (the count's own line reader failed on it, the
    # whole drop with it), a line of spaces, a quoted "" inside a value; two lone quotes inside unquoted values
    valid = 'Student_Number,Comment,Email\n000123,x\x1fy,a@x.org\n   \n000125,"say ""hi"", then",c@x.org\n'
    assert load(write(tmp_path, valid), fmt)[0]["student_number"].to_list() == ["000123", "000125"]
    from belleville_mtss.lib.read.csvfile import _short_records
    assert _short_records(b'a,b,c\n1,Ann "A,Lee "L\n', ",", 3, True) == 0


def test_a_row_listed_twice_alike_is_one_student_and_a_last_line_of_commas_is_no_row(tmp_path):
    """Both copies of a row an export listed twice were refused as a duplicate number: the student left the roster
    (not current), their tests unloaded. A last line of commas (an Excel re-save) was refused as a missing number on
    every drop."""
    fmt = PowerSchoolFormat(columns={"student_number": "Student_Number", "email": "Email"})
    typed, rejected = load(write(tmp_path, "Student_Number,Email\r\n000123,a@x.org\r\n000124,b@x.org\r\n"
                                           "000123,a@x.org\r\n000125,c@x.org\r\n000125,d@x.org\r\n,\r\n"), fmt)
    assert typed.select("student_number", "source_row").rows() == [("000123", 2), ("000124", 3)]
    assert sorted(rejected.iter_rows()) == [
        (4, "a repeat of an earlier row (the same student, every field the same)"),
        (5, "duplicate student number"), (6, "duplicate student number")]
