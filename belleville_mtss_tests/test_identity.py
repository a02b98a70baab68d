"""The identity chain on a small fixture whose answers were worked out by hand."""
import datetime as dt

import polars as pl

from belleville_mtss.lib.identity import build_results, build_roster, link_students
from belleville_mtss.lib.powerschool import email_key
from belleville_mtss.lib.star import STAR_SCHEMA

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
        "benchmark_category": ["On Watch"] * n, "screening_window": ["Fall"] * n, "source_row": list(range(2, n + 2)),
    }, schema=STAR_SCHEMA)
    return students, classlink, star


def test_links_by_email_and_student_number():
    students, classlink, star = _frames()
    identity = link_students(students, classlink, _by_subject(star))
    stats = identity.stats
    got = {r["student_number"]: (r["classlink_user_id"], r["classlink_link"], r["star_test_count"])
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
    assert stats["renaissance_link"] == {
        "star_rows": 5, "linked_rows": 3, "unknown_student_rows": 2, "ambiguous_link_rows": 0,
        "probable_leading_zero_rows": 1, "students_with_tests": 2, "students_without_tests": 4, "match_rate": 0.6,
    }
    # per Star file: SR holds 00123, 123 (lost zeros), 124; SM holds 124 and 999 (nobody)
    assert identity.by_subject == {
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


def _by_subject(star: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return {s: star.filter(pl.col("subject") == s) for s in star["subject"].unique(maintain_order=True)}
