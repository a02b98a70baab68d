"""The identity chain on a small fixture whose answers were worked out by hand."""
import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from belleville_mtss.lib.students.identity import RESULTS_SCHEMA, build_results, build_roster, link_problems, link_students
from belleville_mtss.lib.sources.powerschool.reader import email_key
from belleville_mtss.lib.sources import common_results, star
from belleville_mtss.lib.sources.star.frame import STAR_SCHEMA

STUDENTS = [  # student_number, email as typed in PowerSchool
    ("00123", " Ana.Lopez@X.org "),
    ("124", "BEN@x.org"),
    ("125", "same@x.org"),   # two PowerSchool students share an address: neither may link
    ("126", "Same@x.org "),
    ("127", "carl@x.org"),   # not in ClassLink
    ("128", "dora@x.org"),   # two ClassLink users have this address: no link
]
CLASSLINK = [("CL1", "ana.lopez@x.org"), ("CL2", "ben@x.org"), ("CL3", "same@x.org"), ("CL4", "dora@x.org"),
             ("CL5", "DORA@x.org"), ("CL6", "zed@x.org")]
STAR_IDS = ["00123", "123", "124", "124", "999"]  # "123" lost its leading zeros; "999" is nobody


def _frames():
    students = pl.DataFrame(STUDENTS, schema=["student_number", "email"], orient="row").with_columns(
        pl.col("student_number").alias("student_link"),  # the default link: StudentIdentifier = STUDENT_NUMBER
        email_key(pl.col("email")).alias("email_key"),
        pl.lit("First").alias("first_name"), pl.lit("Last").alias("last_name"),
        pl.lit("5").alias("grade_level"), pl.lit("03").alias("school_id"),
    )
    classlink = pl.DataFrame(CLASSLINK, schema=["classlink_user_id", "email"], orient="row").select(
        "classlink_user_id", pl.lit("Belleville PD").alias("tenant_name"), email_key(pl.col("email")).alias("email_key")
    )
    n = len(STAR_IDS)
    star = pl.DataFrame({
        "subject": ["SR", "SR", "SR", "SM", "SM"], "test_key": [f"t{i}" for i in range(n)],
        "student_link": STAR_IDS, "district_name": ["Belleville Public Schools"] * n,
        "school_name": ["School No. 3"] * n, "school_year": ["2026-2027"] * n,
        "completed_at": [dt.datetime(2026, 10, 1 + i) for i in range(n)], "grade": ["5"] * n,
        "scaled_score": [500 + i for i in range(n)], "percentile_rank": [50] * n, "unified_score": [900] * n,
        "benchmark_category": ["On Watch"] * n, "screening_window": ["Fall"] * n, "assessment_status": ["Active"] * n,
        "deactivation_reason": [None] * n, "source_row": list(range(2, n + 2)),
    }, schema=STAR_SCHEMA)
    return students, classlink, star


def test_links_by_email_and_student_number():
    students, classlink, star = _frames()
    identity = link_students(students, classlink, _by_subject(star))
    stats = identity.stats
    got = {r["student_number"]: (r["classlink_user_id"], r["classlink_link"], r["test_count"])
           for r in identity.frame.iter_rows(named=True)}
    assert got == {
        "00123": ("CL1", "linked", 1),
        "124": ("CL2", "linked", 2),
        "125": (None, "ambiguous", 0),
        "126": (None, "ambiguous", 0),
        "127": (None, "not_in_classlink", 0),
        "128": (None, "ambiguous", 0),
    }
    assert stats["classlink_email"] == {
        "powerschool_students": 6, "linked": 2, "not_in_classlink": 1, "ambiguous_email": 3, "no_email": 0,
        "classlink_students_unmatched": 4, "match_rate": round(2 / 6, 4),
    }
    assert stats["assessment_link"] == {
        "rows": 5, "linked_rows": 3, "unknown_student_rows": 2, "ambiguous_link_rows": 0,
        "probable_leading_zero_rows": 1, "students_with_tests": 2, "students_without_tests": 4, "match_rate": 0.6,
    }
    # per Star file: SR holds 00123, 123 (lost zeros), 124; SM holds 124 and 999 (nobody)
    assert identity.by_file == {
        "SR": {"rows": 3, "linked": 2, "ambiguous_link": 0, "unknown_student": 1, "probable_leading_zeros": 1},
        "SM": {"rows": 2, "linked": 1, "ambiguous_link": 0, "unknown_student": 1, "probable_leading_zeros": 0},
    }


def test_roster_and_results_are_stamped_and_joined():
    students, classlink, star = _frames()
    identity = link_students(students, classlink, _by_subject(star)).frame
    when = dt.datetime(2026, 11, 28)
    roster = build_roster(students, identity, 107873, "belleville/d1", when)
    assert roster.height == 6 and set(roster["AccountInfoId"]) == {107873}
    assert roster.filter(pl.col("StudentNumber") == "00123")["ClassLinkUserId"].item() == "CL1"
    results, dupes = build_results(_by_subject(star), identity, 107873, "belleville/d1", when)
    assert dupes == 0
    assert sorted(zip(results["StudentNumber"], results["Subject"])) == [("00123", "SR"), ("124", "SM"), ("124", "SR")]
    assert set(results["AccountInfoId"]) == {107873}


def _by_subject(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """A validated Star frame's files, as the stages take them: common results (lib/sources/base.py)."""
    return {s: common_results(star.SOURCE, frame.filter(pl.col("subject") == s))
            for s in frame["subject"].unique(maintain_order=True)}


def _students(rows: list[tuple[str, str | None]], link: list[str | None] | None = None) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=["student_number", "email"], orient="row")
    return frame.with_columns(
        pl.Series("student_link", link if link is not None else frame["student_number"].to_list(), dtype=pl.Utf8),
        email_key(pl.col("email")).alias("email_key"),
        pl.lit("First").alias("first_name"), pl.lit("Last").alias("last_name"),
        pl.lit("5").alias("grade_level"), pl.lit("03").alias("school_id"),
    )


def _star(subject: str, links: list[str], keys: list[str] | None = None) -> pl.DataFrame:
    n = len(links)
    return common_results(star.SOURCE, pl.DataFrame({
        "subject": [subject] * n, "test_key": keys or [f"{subject}{i}" for i in range(n)], "student_link": links,
        "district_name": ["Belleville Public Schools"] * n, "school_name": ["School No. 3"] * n,
        "school_year": ["2026-2027"] * n, "completed_at": [dt.datetime(2026, 10, 1 + i) for i in range(n)],
        "grade": ["5"] * n, "scaled_score": [500 + i for i in range(n)], "percentile_rank": [50] * n,
        "unified_score": [900] * n, "benchmark_category": ["On Watch"] * n, "screening_window": ["Fall"] * n,
        "assessment_status": ["Active"] * n, "deactivation_reason": [None] * n, "source_row": list(range(2, n + 2)),
    }, schema=STAR_SCHEMA))


def test_a_student_without_an_email_is_counted_and_never_linked():
    students = _students([("1", None), ("2", "  "), ("3", "c@x.org")])
    classlink = pl.DataFrame({"classlink_user_id": ["CL1", "CL2"], "tenant_name": ["Belleville PD"] * 2,
                              "email_key": [None, "c@x.org"]})
    identity = link_students(students, classlink, {})
    assert identity.frame.select("student_number", "classlink_link", "classlink_user_id").rows() == [
        ("1", "no_email", None), ("2", "no_email", None), ("3", "linked", "CL2")]
    assert identity.stats["classlink_email"] == {
        "powerschool_students": 3, "linked": 1, "not_in_classlink": 0, "ambiguous_email": 0, "no_email": 2,
        "classlink_students_unmatched": 1, "match_rate": 0.3333}
    # no Star file at all: nothing to link, and no rate to divide by zero
    assert identity.stats["assessment_link"] == {
        "rows": 0, "linked_rows": 0, "unknown_student_rows": 0, "ambiguous_link_rows": 0,
        "probable_leading_zero_rows": 0, "students_with_tests": 0, "students_without_tests": 3, "match_rate": 0.0}
    assert identity.frame["test_count"].to_list() == [0, 0, 0]


def test_a_drop_where_no_student_links_counts_none_linked():
    students = _students([("1", "a@x.org"), ("2", "b@x.org")])
    classlink = pl.DataFrame({"classlink_user_id": ["CL9"], "tenant_name": ["Belleville PD"], "email_key": ["z@x.org"]})
    stats = link_students(students, classlink, {}).stats["classlink_email"]
    assert (stats["linked"], stats["not_in_classlink"], stats["classlink_students_unmatched"], stats["match_rate"]) == (
        0, 2, 1, 0.0)


def test_a_link_value_two_students_share_links_neither_and_is_reported():
    # STATE ID "77" carried by two students (the registry links Star StudentStateID to it): its tests go nowhere.
    students = _students([("1", "a@x.org"), ("2", "b@x.org"), ("3", "c@x.org")], link=["77", "77", "78"])
    stars = {"SR": _star("SR", ["77", "77", "78", "79"])}
    identity = link_students(students, pl.DataFrame(schema={"classlink_user_id": pl.Utf8, "tenant_name": pl.Utf8,
                                                            "email_key": pl.Utf8}), stars)
    assert identity.frame["test_count"].to_list() == [0, 0, 1]
    assert identity.by_file == {"SR": {"rows": 4, "linked": 1, "ambiguous_link": 2, "unknown_student": 1,
                                          "probable_leading_zeros": 0}}
    results, _ = build_results(stars, identity.frame, 107873, "belleville/d1", dt.datetime(2026, 11, 28))
    assert results["StudentNumber"].to_list() == ["3"]
    records = link_problems(identity, "students.csv", {"SR": "SR.csv"}, {"SR": ("Star", "StudentStateID")})
    assert [(r.stage, r.reason, r.file_name, r.row_count, r.message) for r in records] == [
        ("identity", "ambiguous_link", "SR.csv", 2,
         "SR.csv: 2 Star row(s) whose StudentStateID two PowerSchool students share: not loaded"),
        ("identity", "unknown_student", "SR.csv", 1,
         "SR.csv: 1 Star row(s) for a StudentStateID not in the PowerSchool export: not loaded"),
    ]
    # a OneRoster district's log names its own roster, not a PowerSchool export it never sends
    records = link_problems(identity, "manifest.csv", {"SR": "SR.csv"}, {"SR": ("Star", "StudentStateID")},
                            "OneRoster")
    assert [r.message for r in records] == [
        "SR.csv: 2 Star row(s) whose StudentStateID two OneRoster students share: not loaded",
        "SR.csv: 1 Star row(s) for a StudentStateID not in the OneRoster export: not loaded"]


def test_an_identifier_that_lost_its_zeros_is_reported_only_when_one_student_fits():
    # "7" fits 007 only; "8" fits both 008 and 0008: not even a probable match.
    students = _students([("007", "a@x.org"), ("008", "b@x.org"), ("0008", "c@x.org")])
    stars = {"SM": _star("SM", ["7", "7", "8", "007"])}
    identity = link_students(students, _frames()[1], stars)
    assert identity.by_file["SM"] == {"rows": 4, "linked": 1, "ambiguous_link": 0, "unknown_student": 3,
                                         "probable_leading_zeros": 2}
    records = link_problems(identity, "students.csv", {}, {"SM": ("Star", "StudentIdentifier")})
    assert [(r.reason, r.file_name, r.row_count, r.message) for r in records] == [
        ("probable_leading_zeros", "SM", 2, "SM: 2 Star row(s) whose StudentIdentifier matches a student only "
                                            "without leading zeros: not joined"),
        ("unknown_student", "SM", 1, "SM: 1 Star row(s) for a StudentIdentifier not in the PowerSchool export: "
                                     "not loaded"),
    ]


def test_only_leading_zeros_make_a_probable_match_not_a_leading_letter():
    # "X4567" is another identifier than 4567: unknown, never reported as the student's lost zeros.
    students = _students([("4567", "a@x.org"), ("0089", "b@x.org")])
    identity = link_students(students, _frames()[1], {"SR": _star("SR", ["X4567", "89"])})
    assert identity.by_file["SR"] == {"rows": 2, "linked": 0, "ambiguous_link": 0, "unknown_student": 2,
                                         "probable_leading_zeros": 1}


def test_a_large_districts_identity_map_keeps_the_exports_order():
    # The roster is placed beside the map without a join: the map lists the students as the export does, also
    # when there are far too many for the joins to keep their order by chance.
    n = 20_000
    numbers = [f"{(i * 7919) % n:06d}" for i in range(n)]
    students = _students([(s, f"s{s}@x.org") for s in numbers])
    classlink = pl.DataFrame({"classlink_user_id": [f"CL{i}" for i in range(0, n, 3)],
                              "email_key": [f"s{i:06d}@x.org" for i in range(0, n, 3)]}).with_columns(
        pl.lit("Belleville PD").alias("tenant_name"))
    links = [f"{i:06d}" for i in range(0, n, 2)]
    star = pl.DataFrame({"student_link": links, "test_key": [f"t{i}" for i in range(len(links))]}).with_columns(
        pl.lit("SR").alias("subject"), pl.lit(dt.datetime(2026, 10, 1)).alias("completed_at"),
        pl.int_range(2, len(links) + 2, dtype=pl.UInt32).alias("source_row"),
    ).select(pl.col(c).cast(t) if c in ("student_link", "test_key", "subject", "completed_at", "source_row")
             else pl.lit(None, dtype=t).alias(c) for c, t in STAR_SCHEMA.items())
    identity = link_students(students, classlink, {"SR": star})
    assert identity.frame["student_number"].to_list() == numbers
    assert identity.stats["classlink_email"]["linked"] == len(range(0, n, 3))
    assert identity.by_file["SR"]["linked"] == len(links)


def test_shared_emails_are_one_error_record_for_the_powerschool_file():
    students, classlink, star = _frames()
    identity = link_students(students, classlink, _by_subject(star))
    records = link_problems(identity, "students.csv", {"SR": "SR.csv", "SM": "SM.csv"},
                            {s: ("Star", "StudentIdentifier") for s in ("SR", "SM")})
    assert [(r.stage, r.reason, r.file_name, r.row_count) for r in records] == [
        ("identity", "ambiguous_email", "students.csv", 3), ("identity", "probable_leading_zeros", "SR.csv", 1),
        ("identity", "unknown_student", "SM.csv", 1)]
    assert records[0].message == ("students.csv: 3 student(s) not linked to ClassLink: their email is shared by two "
                                  "students or two ClassLink users")


def test_a_test_key_repeated_in_a_file_is_loaded_once_and_counted():
    students = _students([("1", "a@x.org"), ("2", "b@x.org")])
    stars = {"SR": _star("SR", ["1", "1", "2"], keys=["K1", "K1", "K2"]),
             "SM": _star("SM", ["1", "2"], keys=["K1", "K9"])}  # the same key in another subject is another test
    identity = link_students(students, _frames()[1], stars).frame
    results, dropped = build_results(stars, identity, 107873, "belleville/d1", dt.datetime(2026, 11, 28))
    assert dropped == 1
    assert results.select("Subject", "TestKey", "StudentNumber", "ScaledScore").rows() == [
        ("SR", "K1", "1", 500), ("SR", "K2", "2", 502), ("SM", "K1", "1", 500), ("SM", "K9", "2", 501)]


def test_a_test_id_on_two_students_rows_is_refused_for_both_whatever_their_order():
    """One Star AssessmentID on rows of two students: whose test it is is not guessed (the results kept the row the
    file gave first, under its student, and dropped the other as a repeat, in no error row). Both are refused, and
    counted; one student's test twice is still kept once."""
    from belleville_mtss.lib.load.errors import row_rejections
    from belleville_mtss.lib.sources.star.reader import bind_columns, type_rows
    raw = pl.DataFrame({"StudentIdentifier": ["1", "2", "1", "1"], "DistrictName": ["D"] * 4,
                        "SchoolYear": ["2026-2027"] * 4, "AssessmentID": ["A", "A", "B", "B"],
                        "CompletedDate": ["2026-10-01"] * 4, "ScaledScore": ["500", "510", "520", "520"]})
    for order in (raw, raw.reverse()):
        good, rejected = type_rows(bind_columns(order, "SR.csv"), "SR")
        assert good["test_key"].to_list() == ["B", "B"]
        assert rejected["reject_reason"].to_list() == ["AssessmentID on rows of two students"] * 2
        assert [r.message for r in row_rejections(rejected, "validation", "SR.csv")] == [
            "SR.csv: 2 row(s) rejected: AssessmentID on rows of two students"]


def test_results_carry_the_stamps_and_every_star_column():
    students = _students([("00123", "a@x.org")])
    when = dt.datetime(2026, 11, 28, 9, 30)
    stars = {"SEL": _star("SEL", ["00123"])}
    identity = link_students(students, _frames()[1], stars).frame
    results, dropped = build_results(stars, identity, 107873, "belleville/d1", when)
    assert dropped == 0
    assert results.rows(named=True) == [{
        "AccountInfoId": 107873, "Assessment": "star", "StudentNumber": "00123", "Subject": "SEL", "TestKey": "SEL0",
        "SchoolYear": "2026-2027", "CompletedAt": dt.datetime(2026, 10, 1), "Grade": "5", "ScaledScore": 500,
        "PercentileRank": 50, "UnifiedScore": 900, "BenchmarkCategory": "On Watch", "ScreeningWindow": "Fall",
        "AssessmentStatus": "Active", "DeactivationReason": None, "DropId": "belleville/d1", "LoadedAt": when}]
    assert results.schema == RESULTS_SCHEMA


def test_without_star_files_there_are_no_results():
    students = _students([("1", "a@x.org")])
    identity = link_students(students, _frames()[1], {}).frame
    results, dropped = build_results({}, identity, 107873, "belleville/d1", dt.datetime(2026, 11, 28))
    assert (results.height, dropped, results.schema) == (0, 0, RESULTS_SCHEMA)


def test_the_roster_is_the_students_with_their_links_in_any_order():
    students, classlink, star = _frames()
    identity = link_students(students, classlink, _by_subject(star)).frame
    when = dt.datetime(2026, 11, 28)
    expected = build_roster(students, identity, 107873, "belleville/d1", when)
    # the identity map in another order is joined by student number, not placed side by side
    shuffled = build_roster(students, identity.reverse(), 107873, "belleville/d1", when)
    assert shuffled.rows() == expected.rows()
    assert expected.row(0, named=True) == {
        "AccountInfoId": 107873, "StudentNumber": "00123", "FirstName": "First", "LastName": "Last",
        "Email": " Ana.Lopez@X.org ", "GradeLevel": "5", "SchoolId": "03", "ClassLinkUserId": "CL1",
        "StarTestCount": 1, "DropId": "belleville/d1", "LoadedAt": when, "IsCurrent": True}


def _by_hand(students: list[tuple[str, str | None, str | None]], users: list[tuple[str, str | None]],
             files: dict[str, list[str]]) -> tuple[list[tuple], dict]:
    """The linking rules of the module docstring, one student and one row at a time: what link_students must give.
    `students`: (number, email key, link value); `users`: (ClassLink id, email key); `files`: identifiers by file."""
    keys = [k for _n, k, _l in students if k is not None]
    links = [v for _n, _k, v in students if v is not None]
    rows = []
    for number, key, value in students:
        mine = [uid for uid, k in users if k is not None and k == key]
        state = ("no_email" if key is None else "ambiguous" if keys.count(key) > 1 or len(mine) > 1
                 else "linked" if mine else "not_in_classlink")
        tests = 0 if value is None or links.count(value) > 1 else sum(ids.count(value) for ids in files.values())
        rows.append((number, mine[0] if state == "linked" else None, state, tests))
    by_file = {}
    for name, ids in files.items():
        linked = sum(links.count(i) == 1 for i in ids)
        shared = sum(links.count(i) > 1 for i in ids)
        unknown = [i for i in ids if i not in links]
        stripped = [v.lstrip("0") for v in links]
        zeros = sum(stripped.count(i.lstrip("0")) == 1 for i in unknown)
        by_file[name] = {"rows": len(ids), "linked": linked, "ambiguous_link": shared,
                         "unknown_student": len(ids) - linked - shared, "probable_leading_zeros": zeros}
    return rows, by_file


_IDS = st.sampled_from(["1", "01", "001", "2", "02", "3", "x3", "4"])
_KEYS = st.one_of(st.none(), st.sampled_from(["a@x.org", "b@x.org", "c@x.org"]))


@settings(max_examples=150, deadline=None)
@given(students=st.lists(st.tuples(_KEYS, st.one_of(st.none(), _IDS)), max_size=8),
       users=st.lists(_KEYS, max_size=5), files=st.lists(st.lists(_IDS, max_size=12), max_size=3))
def test_every_link_and_count_is_what_the_rules_give_one_student_at_a_time(students, users, files):
    # Emails and identifiers drawn from a few values, so that shared addresses, shared link values, unknown
    # identifiers and lost leading zeros all occur; up to three files linked at once.
    people = [(str(100 + i), key, value) for i, (key, value) in enumerate(students)]
    users = [(f"CL{i}", key) for i, key in enumerate(users)]
    named = {f"F{i}": ids for i, ids in enumerate(files)}
    text = pl.Utf8
    frame = pl.DataFrame(people, schema={"student_number": text, "email_key": text, "student_link": text}, orient="row")
    classlink = pl.DataFrame(users, schema={"classlink_user_id": text, "email_key": text}, orient="row")
    tests = {name: _star("SR", ids) for name, ids in named.items()}
    identity = link_students(frame, classlink, tests)
    rows, by_file = _by_hand(people, users, named)
    assert identity.frame.select("student_number", "classlink_user_id", pl.col("classlink_link").cast(pl.Utf8),
                                 "test_count").rows() == rows
    assert identity.by_file == by_file
    # each file's rows of a link value exactly one student carries, in the file's order, under that student
    only = {v: n for n, _k, v in people if v is not None and [w for *_, w in people].count(v) == 1}
    results, dropped = build_results(tests, identity.frame, 107873, "belleville/d1", dt.datetime(2026, 11, 28))
    assert results.select("StudentNumber", "TestKey").rows() == [
        (only[i], f"SR{j}") for ids in named.values() for j, i in enumerate(ids) if i in only]
    assert dropped == 0
