"""OneRoster exports as a roster (lib/sources/oneroster/export.py): the public synthetic fixtures in
../shared/reference/oneroster read to exactly their students, a delta export refused with what to ask for, a file
the manifest lists but the drop lacks refused naming it; each expected figure computed here with the csv module."""
import csv
from pathlib import Path

import polars as pl
import pytest

from belleville_mtss.lib.read.csvfile import read_text_csv
from belleville_mtss.lib.sources.oneroster.export import ExportRefused, read_export


def _files(reference_dir: Path, prefix: str, manifest: str | None = None) -> dict[str, pl.DataFrame]:
    """The fixture's files by their names in an export (users.csv ...), read as a drop's file is read."""
    folder = reference_dir / "oneroster"
    out = {p.name.removeprefix(prefix).lower(): read_text_csv(p) for p in sorted(folder.glob(f"{prefix}*.csv"))}
    if manifest is not None:
        out["manifest.csv"] = pl.DataFrame([line.split(",") for line in manifest.splitlines()[1:]],
                                           schema=["propertyName", "value"], orient="row")
    return out


def _rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_the_11_bulk_fixture_reads_to_exactly_its_students(reference_dir):
    folder = reference_dir / "oneroster"
    users = _rows(folder / "catalyst_v1p1_full__users.csv")
    expected = {u["identifier"]: u for u in users if u["role"] == "student"}
    enrolled = {e["userSourcedId"]: e["schoolSourcedId"] for e in _rows(folder / "catalyst_v1p1_full__enrollments.csv")
                if e["role"] == "student"}
    org_ids = {o["sourcedId"]: o["identifier"] or o["sourcedId"] for o in _rows(folder / "catalyst_v1p1_full__orgs.csv")}
    export = read_export(_files(reference_dir, "catalyst_v1p1_full__"))
    got = {r["student_number"]: r for r in export.students.iter_rows(named=True)}
    assert export.version == "1.1" and export.rejected.is_empty()
    assert set(got) == set(expected) and len(got) == 3  # the teachers and the parent are not students
    for number, user in expected.items():
        row = got[number]
        assert (row["sourced_id"], row["first_name"], row["last_name"], row["email"], row["grade_level"]) == (
            user["sourcedId"], user["givenName"], user["familyName"], user["email"], user["grades"])
        assert row["email_key"] == user["email"].lower() and row["student_link"] == number
        # the school: their student enrolment's, else their org; named by its identifier in orgs.csv
        org = enrolled.get(user["sourcedId"], user["orgSourcedIds"].split(",")[0])
        assert row["school_id"] == org_ids.get(org, org) == "History"
        assert row["source_row"] == users.index(user) + 2  # the line in users.csv
    assert export.districts.is_empty()  # the fixture's one org is a department


def test_a_student_number_from_a_userids_type_or_another_column(reference_dir):
    export = read_export(_files(reference_dir, "catalyst_v1p1_full__"), number="userIds:LDAP", link="username")
    assert export.students["student_number"].to_list() == ["34"]  # two students share LDAP 12: both refused
    assert dict(export.rejected.group_by("reject_reason").len().rows()) == {"duplicate student number": 2}
    with pytest.raises(ExportRefused, match="users.csv: no column metadata.sis_id"):
        read_export(_files(reference_dir, "catalyst_v1p1_full__"), number="metadata.sis_id")


def test_the_12_delta_fixture_is_refused_with_what_to_ask_for(reference_dir):
    with pytest.raises(ExportRefused) as refused:
        read_export(_files(reference_dir, "catalyst_v1p2__"))
    assert refused.value.reason == "delta_export"
    assert refused.value.message.startswith("the OneRoster export is a delta (academicSessions.csv, classes.csv, ")
    assert "Ask the district (its SIS or ClassLink Roster Server) for a bulk export" in refused.value.message


def test_the_same_12_files_under_a_bulk_manifest_read_to_their_students_roles_from_roles_csv(reference_dir):
    folder = reference_dir / "oneroster"
    delta = (folder / "catalyst_v1p2__manifest.csv").read_text()
    bulk = delta.replace(",delta", ",bulk")
    export = read_export(_files(reference_dir, "catalyst_v1p2__", manifest=bulk))
    roles = {r["userSourcedId"]: r for r in _rows(folder / "catalyst_v1p2__roles.csv") if r["role"] == "student"}
    users = {u["sourcedId"]: u for u in _rows(folder / "catalyst_v1p2__users.csv")}
    births = {d["sourcedId"]: d["birthDate"] for d in _rows(folder / "catalyst_v1p2__demographics.csv")}
    assert "role" not in users[next(iter(users))]  # 1.2: the role is only in roles.csv
    assert export.version == "1.2" and export.students.height == len(roles) == 1
    row = export.students.row(0, named=True)
    user = users[row["sourced_id"]]
    assert (row["student_number"], row["first_name"], row["last_name"], row["dob"]) == (
        user["identifier"], user["givenName"], user["familyName"], births[user["sourcedId"]])
    assert row["school_id"] == roles[user["sourcedId"]]["orgSourcedId"]  # no identifier in orgs.csv: its sourcedId
    # a role other than student makes no student
    files = _files(reference_dir, "catalyst_v1p2__", manifest=bulk)
    files["roles.csv"] = files["roles.csv"].with_columns(pl.lit("teacher").alias("role"))
    assert read_export(files).students.is_empty()


def test_a_file_the_manifest_lists_as_bulk_but_the_drop_lacks_is_refused_naming_it(reference_dir):
    files = _files(reference_dir, "catalyst_v1p1_full__")
    del files["enrollments.csv"]
    with pytest.raises(ExportRefused) as refused:
        read_export(files)
    assert (refused.value.reason, refused.value.message) == (
        "missing_listed_file", "manifest.csv lists enrollments.csv as bulk, but the drop has no such file: ask the "
                               "district to send the whole export")


def test_the_messy_vendor_fixture_reads_its_students_and_its_metadata_numbers(reference_dir):
    # oat-sa's sample: non-conformant column order, `metadata.*` columns in orgs.csv, orgs without a district;
    # its manifest lists files it does not ship, so they are given here as absent
    files = _files(reference_dir, "oatsa_v1p1__")
    files["manifest.csv"] = files["manifest.csv"].with_columns(
        pl.when(pl.col("propertyName").is_in([f"file.{n}" for n in ("academicSessions", "courses", "classes",
                                                                     "enrollments", "demographics")]))
        .then(pl.lit("absent")).otherwise(pl.col("value")).alias("value"))
    export = read_export(files, number="username")
    assert sorted(export.students["student_number"]) == ["ionut", "ionut2"]
    assert sorted(export.students["school_id"]) == ["my identifier", "my identifier 2"]  # orgs' identifiers


def test_a_oneroster_users_file_is_never_read_as_a_powerschool_export(reference_dir, tmp_path, capsys,
                                                                      monkeypatch):
    """The issue's finding: onboarding took users.csv for a PowerSchool export and a run loaded its teachers as
    students. A OneRoster file is now refused by the PowerSchool reader, and onboarding never takes it for one:
    without its manifest.csv it is no roster at all."""
    import shutil

    from belleville_mtss.cli import main
    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
    from belleville_mtss.lib.read.ingest import ingest_file, validate_file
    from belleville_mtss.lib.sample import SampleSpec, generate_drop, load_databases
    from ...conftest import make_settings

    users = reference_dir / "oneroster" / "catalyst_v1p1_full__users.csv"
    district = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    validated, _ = validate_file(ingest_file("powerschool_students", users, district), district)
    assert validated.halted.reason == "wrong_file" and "is a OneRoster file" in validated.halted.message

    home = tmp_path / "home"
    monkeypatch.setenv("MTSS_HOME", str(home))
    sample = tmp_path / "sample"
    tables = generate_drop(sample, SampleSpec(students=200, seed=5))
    settings = make_settings(home)
    load_databases(settings.prod_db_url, settings.warehouse_url, tables["classlink_users"])
    (sample / "students.csv").unlink()  # the district sends OneRoster, no PowerSchool export, and no manifest
    for p in (reference_dir / "oneroster").glob("catalyst_v1p1_full__*.csv"):
        if not p.name.endswith("manifest.csv"):
            shutil.copy(p, sample / p.name.removeprefix("catalyst_v1p1_full__"))
    assert main(["districts", "onboard", str(sample), "--state", "NJ", "--key", "x"]) == 2
    said = capsys.readouterr().err
    assert "no roster found" in said and "or a OneRoster export: its manifest.csv" in said


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_a_generated_export_reads_to_exactly_the_districts_students_and_never_its_teachers(tmp_path, version):
    """lib/sources/oneroster/sample.py, written and read back as a drop's files are."""
    import numpy as np

    from belleville_mtss.lib.sample import SampleSpec, _students
    from belleville_mtss.lib.sources.oneroster.sample import export

    students = _students(SampleSpec(students=120), np.random.default_rng(3))
    files = {}
    for name, frame in export(students, "Pecan Valley ISD", version).items():
        frame.write_csv(tmp_path / name)
        files[name] = read_text_csv(tmp_path / name)
    got = read_export(files, number="userIds:SIS")
    assert got.version == version and got.rejected.is_empty()
    assert got.districts.rows() == [("Pecan Valley ISD", None)]
    expected = students.select(
        "student_number", "first_name", "last_name", "school_id", "email",
        pl.col("dob").str.to_date("%m/%d/%Y").dt.to_string("%Y-%m-%d").alias("dob")).sort("student_number")
    assert got.students.select(expected.columns).sort("student_number").equals(expected)  # 120, no teacher
    delta = export(students, "Pecan Valley ISD", version, mode="delta")
    with pytest.raises(ExportRefused, match="the OneRoster export is a delta"):
        read_export(delta)


def test_a_manifest_is_the_senders_text_and_its_names_are_shown_escaped():
    from belleville_mtss.lib.sources.oneroster.export import check_manifest

    hostile = "users\nDROP: jane.doe@example.org " + "x" * 200
    with pytest.raises(ExportRefused) as refused:
        check_manifest({"oneroster.version": "1.1", f"file.{hostile}": "delta", "file.users": "delta"}, set())
    message = refused.value.message
    assert "\n" not in message and "@" not in message and "x" * 100 not in message
    assert message.startswith("the OneRoster export is a delta (users.csv, 'users\\\\nDROP: <account> xxx")
    with pytest.raises(ExportRefused) as refused:
        check_manifest({"oneroster.version": "9\nx@y"}, set())
    assert "\n" not in refused.value.message and "@" not in refused.value.message


_H, _T = "sourcedId,status,dateLastModified", "active,2025-01-01T00:00:00Z"
_USERS = (f"{_H},enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,"
          "sms,phone,agentSourcedIds,grades,password\n")
_MANIFEST = ("propertyName,value\nmanifest.version,1.0\noneroster.version,{0}\nfile.users,bulk\nfile.orgs,bulk\n"
             "{1}")


def _export(tmp_path: Path, version: str, texts: dict[str, str]):
    listed = "".join(f"file.{name.removesuffix('.csv')},bulk\n" for name in texts if name not in ("users.csv",
                                                                                                    "orgs.csv"))
    out = {"manifest.csv": read_text_csv(Path("manifest.csv"), data=_MANIFEST.format(version, listed).encode())}
    for name, text in texts.items():
        out[name] = read_text_csv(tmp_path / name, data=text.encode())
    return read_export(out)


def test_users_of_one_sourcedid_are_refused_never_both_loaded(tmp_path):
    """OneRoster 1.2 makes a student by a role on a sourcedId: a teacher's users.csv row carrying a student's
    sourcedId loaded as a second student. Both rows are refused now, each once, with why."""
    orgs = (f"{_H},name,type,identifier,parentSourcedId\nd1,{_T},Test District,district,3400001,\n"
            f"s1,{_T},S,school,S1,d1\n")
    users = _USERS + (f"u1,{_T},true,s1,,ann,,Ann,A,,1001,ann@x.example,,,,05,\n"
                      f"u1,{_T},true,s1,,bob,,Bob,B,,T77,bob@x.example,,,,,\n"
                      f"u2,{_T},true,s1,,cid,,Cid,C,,1002,cid@x.example,,,,06,\n")
    roles = (f"{_H},userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId\n"
             f"r1,{_T},u1,primary,student,,,s1,\nr2,{_T},u2,primary,student,,,s1,\n")
    export = _export(tmp_path, "1.2", {"users.csv": users, "orgs.csv": orgs, "roles.csv": roles})
    assert export.students["student_number"].to_list() == ["1002"]
    assert export.rejected.rows() == [(2, "a sourcedId two users of the export carry"),
                                      (3, "a sourcedId two users of the export carry")]


def test_a_student_listed_again_as_they_were_is_one_student(tmp_path):
    """An export joined from schools' exports lists a student twice, or once more under the district org: both rows
    were refused, the student marked as gone and their tests left unloaded. Repeats that agree are one student."""
    orgs = (f"{_H},name,type,identifier,parentSourcedId\nd1,{_T},Test District,district,3400001,\n"
            f"s1,{_T},S,school,S1,d1\n")
    ann = f"u1,{_T},true,s1,student,ann,,Ann,A,,1001,ann@x.example,,,,05,\n"
    users = _USERS + ann + ann.replace(",s1,", ",d1,") + (
        f"u2,{_T},true,s1,student,cid,,Cid,C,,1002,cid@x.example,,,,06,\n"
        f"u2,{_T},true,s1,student,cid,,Cid,C,,1003,cid@x.example,,,,06,\n"  # two numbers: which is not guessed
        f"u3,{_T},true,s1,student,dee,,Dee,D,,1004,dee@x.example,,,,06,\n"
        f"u3,{_T},true,s2,student,dee,,Dee,D,,1004,dee@x.example,,,,06,\n")  # two schools: which is not guessed
    export = _export(tmp_path, "1.1", {"users.csv": users, "orgs.csv": orgs + f"s2,{_T},T,school,S2,d1\n"})
    assert export.students.select("student_number", "school_id", "source_row").rows() == [("1001", "S1", 2)]
    assert export.rejected.rows() == [(n, "a sourcedId two users of the export carry") for n in (4, 5, 6, 7)]


def test_a_student_whose_classes_are_not_in_effect_is_at_the_school_the_sis_now_gives_them(tmp_path):
    """A student moved (or going up a school) before their new classes begin kept the school they left: the one
    whose enrolment ended last was taken over the school users.csv now gives them, with or without a future
    enrolment there. And an export without the date columns took the first enrolment listed, not the student's
    own school's."""
    import datetime as dt
    day = lambda n: (dt.date.today() + dt.timedelta(days=n)).isoformat()  # noqa: E731
    orgs = (f"{_H},name,type,identifier,parentSourcedId\nd1,{_T},Test District,district,3400001,\n"
            f"s1,{_T},Middle,school,060,d1\ns2,{_T},High,school,050,d1\n")
    users = _USERS + "".join(f"u{i},{_T},true,s2,student,x{i},,X,Y,,100{i},x{i}@x.example,,,,09,\n" for i in (1, 2))
    header = f"{_H},classSourcedId,schoolSourcedId,userSourcedId,role,primary"
    enrolments = (f"{header},beginDate,endDate\ne1,{_T},c1,s1,u1,student,,{day(-200)},{day(-7)}\n"
                  f"e2,{_T},c1,s1,u2,student,,{day(-200)},{day(-7)}\ne3,{_T},c2,s2,u2,student,,{day(7)},{day(200)}\n")
    export = _export(tmp_path, "1.1", {"users.csv": users, "orgs.csv": orgs, "enrollments.csv": enrolments})
    assert export.students.select("student_number", "school_id").rows() == [("1001", "050"), ("1002", "050")]
    undated = f"{header}\ne1,{_T},c1,s1,u1,student,\ne2,{_T},c2,s2,u1,student,\n"
    export = _export(tmp_path, "1.1", {"users.csv": users, "orgs.csv": orgs, "enrollments.csv": undated})
    assert export.students.select("student_number", "school_id").rows() == [("1001", "050"), ("1002", "050")]


def test_a_school_below_a_local_org_is_its_districts_and_one_under_no_district_is_refused(tmp_path):
    """Two district orgs in one export (a vendor's, say, holding Belleville NJ's and Belleville WI's): a school under a
    `local` org under a district was given no district, and its students passed the district check unseen. Its
    district is found however many levels up; a student whose school reaches none is refused."""
    orgs = (f"{_H},name,type,identifier,parentSourcedId\n"
            f"dA,{_T},Belleville Public Schools,district,3401350,\n"
            f"dB,{_T},Belleville School District,district,5500990,\n"
            f"sA,{_T},School A,school,SA,dA\nlB,{_T},North Region,local,LB,dB\nsB,{_T},School B,school,SB,lB\n"
            f"sC,{_T},School C,school,SC,\n")
    users = _USERS + (f"u1,{_T},true,sA,student,ann,,Ann,A,,1001,ann@x.example,,,,05,\n"
                      f"u2,{_T},true,sB,student,ben,,Ben,B,,2001,ben@y.example,,,,06,\n"
                      f"u3,{_T},true,sC,student,cid,,Cid,C,,3001,cid@z.example,,,,07,\n")
    export = _export(tmp_path, "1.1", {"users.csv": users, "orgs.csv": orgs})
    assert export.students.select("student_number", "district_name", "district_id").rows() == [
        ("1001", "Belleville Public Schools", "3401350"), ("2001", "Belleville School District", "5500990")]
    assert export.rejected.rows() == [(4, "their school is under none of the export's district orgs")]


def test_a_school_whose_parent_is_another_districts_or_deleted_is_under_no_district_and_its_students_refused(
        tmp_path):
    """A school whose chain of parents is given but leads to an org the export does not hold live (another
    district's, left out of orgs.csv, or one marked tobedeleted) was taken for the export's one district: its
    students loaded under ours, verified by our name. Only a chain not given falls back to the one district."""
    orgs = (f"{_H},name,type,identifier,parentSourcedId\n"
            f"dA,{_T},Belleville Public Schools,district,3401350,\n"
            "dB,tobedeleted,2026-01-01,Old District,district,5500990,\n"
            f"sA,{_T},School A,school,SA,dA\nsN,{_T},School N,school,SN,\n"
            f"sX,{_T},School X,school,SX,dOther\nsD,{_T},School D,school,SD,dB\n")
    users = _USERS + (f"u1,{_T},true,sA,student,ann,,Ann,A,,1001,ann@x.example,,,,05,\n"
                      f"u2,{_T},true,sN,student,ben,,Ben,B,,1002,ben@x.example,,,,06,\n"
                      f"u3,{_T},true,sX,student,cid,,Cid,C,,2001,cid@z.example,,,,07,\n"
                      f"u4,{_T},true,sD,student,dee,,Dee,D,,2002,dee@z.example,,,,07,\n")
    export = _export(tmp_path, "1.1", {"users.csv": users, "orgs.csv": orgs})
    assert export.students.select("student_number", "district_name").rows() == [
        ("1001", "Belleville Public Schools"), ("1002", "Belleville Public Schools")]
    assert export.rejected.rows() == [(4, "their school is under none of the export's district orgs"),
                                      (5, "their school is under none of the export's district orgs")]


def test_a_student_who_moved_is_at_the_school_they_moved_to_and_a_school_without_an_identifier_loses_no_one(tmp_path):
    """The school was the first student enrolment in the file, one that had ended included: a student who moved got
    the school they left (and, ordered by which ends last, a student scheduled for next year got next year's school
    now). And a school without an identifier (optional) was coded by its sourcedId, a GUID longer than
    dm.StudentRoster.SchoolId: every student of it was refused as value_too_long."""
    import datetime as dt
    day = lambda n, us=False: (dt.date.today() + dt.timedelta(days=n)).strftime(  # noqa: E731
        "%m/%d/%Y" if us else "%Y-%m-%d")
    guid = "5e0d2f9a-3c1b-4f7e-9a6d-2b8c1e4f7a90"
    orgs = (f"{_H},name,type,identifier,parentSourcedId\nd1,{_T},Test District,district,3400001,\n"
            f"s1,{_T},Middle,school,060,d1\ns2,{_T},High,school,050,d1\n{guid},{_T},Annex,school,,d1\n")
    users = _USERS + (f"u1,{_T},true,s2,student,ann,,Ann,A,,1001,ann@x.example,,,,09,\n"
                      f"u2,{_T},true,s1,student,ben,,Ben,B,,1002,ben@x.example,,,,09,\n"
                      f"u3,{_T},true,{guid},student,cid,,Cid,C,,1003,cid@x.example,,,,09,\n"
                      f"u4,{_T},true,s1,student,dee,,Dee,D,,1004,dee@x.example,,,,08,\n"
                      f"u5,{_T},true,s1,student,eve,,Eve,E,,1005,eve@x.example,,,,08,\n"
                      f"u6,{_T},true,s1,student,fay,,Fay,F,,1006,fay@x.example,,,,08,\n")
    enrolments = (f"{_H},classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n"
                  f"e1,{_T},c1,s1,u1,student,,{day(-90)},{day(-30)}\ne2,{_T},c2,s2,u1,student,,{day(-29)},\n"
                  f"e3,{_T},c1,s1,u2,student,,{day(-90, True)},{day(-30, True)}\n"
                  f"e4,{_T},c2,s2,u2,student,,{day(-29, True)},{day(200, True)}\n"
                  f"e5,{_T},c2,s2,u4,student,,{day(60)}T00:00:00Z,{day(400)}T00:00:00Z\n"  # next year's, first
                  f"e6,{_T},c1,s1,u4,student,,{day(-300)},{day(30)}\n"
                  # a summer (no enrolment today): the school moved to, its session over, as a US SIS writes dates
                  f"e7,{_T},c1,s1,u5,student,,{day(-200, True)} 12:00:00 AM,{day(-60, True)} 12:00:00 AM\n"
                  f"e8,{_T},c2,s2,u5,student,,{day(-59, True)} 12:00:00 AM,{day(-5, True)} 12:00:00 AM\n"
                  # one class at another school, begun later, beside the year at the student's own (users.csv)
                  f"e9,{_T},c2,s2,u6,student,,{day(-20)},{day(150)}\n"
                  f"e10,{_T},c1,s1,u6,student,,{day(-90)},{day(200)}\n")
    export = _export(tmp_path, "1.1", {"users.csv": users, "orgs.csv": orgs, "enrollments.csv": enrolments})
    assert export.rejected.is_empty()
    assert export.students.select("student_number", "school_id").rows() == [
        ("1001", "050"), ("1002", "050"), ("1003", None), ("1004", "060"), ("1005", "050"), ("1006", "060")]


@pytest.mark.parametrize("empty", ["demographics.csv", "users.csv"])
def test_a_roster_file_of_no_records_reads_as_none_users_csv_alone_is_refused(empty):
    """A bulk demographics.csv (or enrollments, roles) with a header and no records is a file of nothing: it halted
    the whole export as header_only. Now it reads as no rows; a users.csv of no students is still refused."""
    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
    from belleville_mtss.lib.read.ingest import ingest_file
    from belleville_mtss.lib.sources.oneroster import OneRosterSection
    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    district = entry.model_copy(update={"sources": {**entry.sources, "oneroster": OneRosterSection()}})
    texts = {"users.csv": _USERS + f"u1,{_T},true,s1,student,ann,,Ann,A,,1001,ann@x.example,,,,05,\n",
             "orgs.csv": f"{_H},name,type,identifier,parentSourcedId\nd1,{_T},Test District,district,3400001,\n"
                         f"s1,{_T},S,school,S1,d1\n",
             "demographics.csv": f"{_H},birthDate,sex\nu1,{_T},2015-03-02,F\n"}
    texts[empty] = texts[empty].split("\n", 1)[0] + "\n"
    manifest = _MANIFEST.format("1.1", "file.demographics,bulk\n").encode()
    read = ingest_file("oneroster_export", Path("manifest.csv"), district, manifest,
                       companions={n: (Path(n), t.encode()) for n, t in texts.items()})
    if empty == "users.csv":
        assert read.frame is None and read.halted.reason == "header_only"
    else:
        assert read.halted is None and read.frame["student_number"].to_list() == ["1001"]
        assert read.frame["dob"].to_list() == [None]


def test_a_column_an_export_lacks_is_refused_naming_it_and_an_org_listed_twice_is_one(tmp_path):
    """users.csv without givenName, enrollments.csv without role, a registry number of userIds:SIS where the export
    has no userIds: each crashed the drop's read (every file of it, Star's too) with polars' error, naming nothing.
    An org listed twice in orgs.csv made each of its students two users, all of them refused."""
    orgs = (f"{_H},name,type,identifier,parentSourcedId\nd1,{_T},Test District,district,3400001,\n"
            f"s1,{_T},S,school,S1,d1\ns1,{_T},S,school,S1,d1\n")
    users = _USERS + (f"u1,{_T},true,s1,student,ann,,Ann,A,,1001,ann@x.example,,,,05,\n"
                      f"u2,{_T},true,s1,student,cid,,Cid,C,,1002,cid@x.example,,,,06,\n")
    twice = _export(tmp_path, "1.1", {"users.csv": users, "orgs.csv": orgs})
    assert twice.students["student_number"].to_list() == ["1001", "1002"] and twice.rejected.is_empty()
    no_name = users.replace(",givenName,", ",firstName,")
    enrolments = f"{_H},classSourcedId,schoolSourcedId,userSourcedId,primary,beginDate,endDate\ne1,{_T},c1,s1,u1,,,\n"
    for texts, said in (({"users.csv": no_name, "orgs.csv": orgs}, "users.csv: no column givenName"),
                        ({"users.csv": users, "orgs.csv": orgs, "enrollments.csv": enrolments},
                         "enrollments.csv: no column role")):
        with pytest.raises(ExportRefused) as refused:
            _export(tmp_path, "1.1", texts)
        assert (refused.value.reason, str(refused.value)) == ("missing_columns", said)
    from belleville_mtss.lib.sources.oneroster.export import number_expr
    with pytest.raises(ExportRefused, match="no column userIds"):
        number_expr(twice.students.drop("userIds", strict=False), "userIds:SIS")
