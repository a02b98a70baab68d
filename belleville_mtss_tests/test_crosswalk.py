"""The district crosswalk as plain functions: which files of a drop verifiably name the registry's district, the
registry entry checked against dm.AccountInfo (`districts check`), and the FERPA review's age."""
import datetime as dt

import polars as pl
import pytest

from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
from belleville_mtss.lib.district.crosswalk import (
    account_info_problems, account_reference, build_crosswalk, check_entry, ferpa_review_problem, resolve_names,
    to_frame,
)
from belleville_mtss.lib.read.ingest import ValidatedFile
from belleville_mtss.lib.district.registry import load_district
from belleville_mtss.lib.sample import account_info_rows

BELLEVILLE = load_district(PACKAGED_DISTRICTS_DIR / "belleville.yaml")
ACCOUNTS = pl.DataFrame(account_info_rows())
REFERENCE = account_reference(ACCOUNTS)


def star(source: str, file_name: str, *names: str) -> ValidatedFile:
    return ValidatedFile(source, file_name, pl.DataFrame({"district_name": list(names)}))


def classlink(*tenants: str) -> ValidatedFile:
    return ValidatedFile("classlink_users", "dbo.ClassLinkUsers", pl.DataFrame({"tenant_name": list(tenants)}))


POWERSCHOOL = ValidatedFile("powerschool_students", "students.csv", pl.DataFrame({"student_number": ["1"]}))


def crosswalk(stars, tenants: ValidatedFile, powerschool: ValidatedFile = POWERSCHOOL) -> list[tuple]:
    frame = build_crosswalk(BELLEVILLE, ACCOUNTS, [powerschool, *stars, tenants])
    return frame.select("source", "file_name", "name_seen", "method", "decision", "candidate_account_info_id",
                        "verified").rows()


def test_a_drop_that_names_belleville_everywhere_is_verified():
    rows = crosswalk([star("star_reading", "SR.csv", "Belleville Public Schools", "Belleville Public Schools"),
                      star("star_math", "SM.csv", "Belleville Board of Education")], classlink("Belleville PD"))
    assert rows == [
        ("powerschool_students", "students.csv", None, "drop", "bundled", None, True),
        ("star_reading", "SR.csv", "Belleville Public Schools", "registry", "resolved", 107873, True),
        ("star_math", "SM.csv", "Belleville Board of Education", "exact", "resolved", 107873, True),
        ("classlink_users", "dbo.ClassLinkUsers", "Belleville PD", "registry", "resolved", 107873, True),
    ]


def test_a_classlink_tenant_naming_another_district_is_not_verified():
    # Nutley's tenant among the users read for Belleville: the drop must not load.
    rows = crosswalk([star("star_reading", "SR.csv", "Belleville Public Schools")],
                     classlink("Belleville PD", "Nutley PD", "Belleville PD"))
    assert rows[-2:] == [
        ("classlink_users", "dbo.ClassLinkUsers", "Belleville PD", "registry", "resolved", 107873, True),
        ("classlink_users", "dbo.ClassLinkUsers", "Nutley PD", "exact", "resolved", 200015, False),
    ]


def test_each_name_a_star_file_carries_is_resolved_and_one_foreign_name_fails_it():
    rows = crosswalk([star("star_reading", "SR.csv", "Nutley Public Schools", "Belleville Public Schools")],
                     classlink("Belleville PD"))
    assert [r[2:] for r in rows if r[0] == "star_reading"] == [
        ("Belleville Public Schools", "registry", "resolved", 107873, True),
        ("Nutley Public Schools", "exact", "resolved", 200015, False),
    ]


def test_a_value_only_a_few_students_rows_carry_is_never_shown_as_read():
    """A student's own name in one row's DistrictName was quoted in the error table, the check's metadata and the
    run's summary: a district column's value is shown only where it is evidently a district's."""
    names = ["Belleville Public Schools"] * 8 + ["Chloe White"] * 2 + ["Township of Belleville Board of Ed"] * 6 + [
        "Nutley Public Schools"]
    file = ValidatedFile("star_reading", "SR.csv", pl.DataFrame({
        "district_name": names, "student_link": [str(i) for i in range(8)] + ["9", "9"] + [str(i) for i in range(7)]}))
    rows = crosswalk([file], classlink("Belleville PD"))
    assert [r[2:5] for r in rows if r[0] == "star_reading"] == [
        ("Belleville Public Schools", "registry", "resolved"),
        ("<a value of 2 row(s), not shown>", "fuzzy", "unmatched"),  # one student's rows
        ("Nutley Public Schools", "exact", "resolved"),  # one student's row, but a district's name
        ("Township of Belleville Board of Ed", "fuzzy", "unmatched"),  # six students': a renamed district's
    ]


def test_a_surname_that_several_students_share_is_not_shown_where_a_shifted_column_holds_surnames():
    """A DistrictName column holding the students' last names (a shifted or mislabelled column): every surname five
    students shared was quoted in the error table, the check's metadata, the summary and the blocked drop's alert."""
    surnames = ["Garcia", "Smith", "Nguyen", "Brown", "Patel", "Cohen", "Rossi", "Kim", "Silva", "Novak"]
    file = ValidatedFile("star_reading", "SR.csv", pl.DataFrame({
        "district_name": [surnames[i % 10] for i in range(100)], "student_link": [str(i) for i in range(100)]}))
    rows = crosswalk([file], classlink("Belleville PD"))
    shown = {r[2] for r in rows if r[0] == "star_reading"}
    assert shown == {"<a value of 10 row(s), not shown>"}, shown  # ten surnames, each a tenth of the students
    # a school still under an old district name, as few students: it names itself a district's, and is shown, so
    # that the operator can list it (hidden, the blocked drop named nothing to add)
    legacy = file.frame.with_columns(pl.when(pl.int_range(pl.len()) < 10).then(pl.lit("Belleville Schools - Legacy"))
                                     .otherwise(pl.lit("Belleville Public Schools")).alias("district_name"))
    rows = crosswalk([ValidatedFile("star_reading", "SR.csv", legacy)], classlink("Belleville PD"))
    assert {r[2] for r in rows if r[0] == "star_reading"} == {"Belleville Public Schools",
                                                             "Belleville Schools - Legacy"}


def test_halted_files_are_listed_as_halted():
    halted = ValidatedFile("star_math", "SM.csv")
    rows = crosswalk([halted], ValidatedFile("classlink_users", "dbo.ClassLinkUsers"),
                     ValidatedFile("powerschool_students", "students.csv"))
    assert rows == [
        ("powerschool_students", "students.csv", None, "halted", "halted", None, True),
        ("star_math", "SM.csv", None, "halted", "halted", None, True),
        ("classlink_users", "dbo.ClassLinkUsers", None, "halted", "halted", None, True),
    ]


def test_a_star_file_after_a_halted_one_is_still_resolved():
    # The halted reading file does not end the check: the math file naming Nutley still fails the drop.
    rows = crosswalk([ValidatedFile("star_reading", "SR.csv"), star("star_math", "SM.csv", "Nutley Public Schools")],
                     classlink("Belleville PD"))
    assert rows[1:3] == [
        ("star_reading", "SR.csv", None, "halted", "halted", None, True),
        ("star_math", "SM.csv", "Nutley Public Schools", "exact", "resolved", 200015, False),
    ]


def test_a_listed_name_verifies_whatever_its_case_spacing_and_punctuation():
    (entry,) = resolve_names(BELLEVILLE, REFERENCE, "star_reading", "SR.csv", ["BELLEVILLE  public-schools!"],
                             ["Belleville Public Schools"])
    assert (entry.method, entry.decision, entry.candidate, entry.candidate_account_info_id, entry.verified,
            entry.suggest_listing, entry.score, entry.margin) == (
        "registry", "resolved", "Belleville Public Schools", 107873, True, False, None, None)


def test_a_name_verified_by_score_is_worth_listing():
    (entry,) = resolve_names(BELLEVILLE, REFERENCE, "star_reading", "SR.csv", ["Bellevile Public Schools"],
                             ["Belleville Public Schools"])
    assert (entry.method, entry.decision, entry.candidate, entry.candidate_account_info_id, entry.verified,
            entry.suggest_listing) == ("fuzzy", "resolved", "BELLEVILLE SCHOOL DISTRICT", 107873, True, True)
    assert entry.score == 94.74 and entry.margin == 94.74


@pytest.mark.parametrize("placeholder", ["District", "Default District", "N/A", "", "test"])
def test_a_placeholder_never_verifies_by_score_but_does_when_listed(placeholder):
    (entry,) = resolve_names(BELLEVILLE, REFERENCE, "star_reading", "SR.csv", [placeholder], ["Belleville"])
    assert (entry.method, entry.decision, entry.candidate, entry.verified) == ("none", "unmatched", None, False)
    assert (entry.source, entry.file_name, entry.name_seen) == ("star_reading", "SR.csv", placeholder)
    (listed,) = resolve_names(BELLEVILLE, REFERENCE, "star_reading", "SR.csv", [placeholder], [placeholder])
    assert listed.verified and listed.method == "registry"


@pytest.mark.parametrize("name", ["Public School District", "Zzyzx Qwerty Academy"])
def test_a_name_with_no_candidate_at_all_is_unmatched(name):
    (entry,) = resolve_names(BELLEVILLE, REFERENCE, "star_reading", "SR.csv", [name], [])
    assert (entry.decision, entry.candidate, entry.candidate_account_info_id, entry.score, entry.margin,
            entry.verified) == ("unmatched", None, None, None, None, False)


def test_a_name_after_a_placeholder_is_still_resolved():
    entries = resolve_names(BELLEVILLE, REFERENCE, "star_reading", "SR.csv", ["District", "Nutley Public Schools"], [])
    assert [(e.name_seen, e.decision, e.candidate_account_info_id, e.verified) for e in entries] == [
        ("District", "unmatched", None, False), ("Nutley Public Schools", "resolved", 200015, False)]


def test_a_name_two_counties_of_the_state_share_resolves_within_the_registrys_county():
    # A BELLEVILLE SCHOOL DISTRICT in another NJ county: Belleville's entry (ESSEX) still resolves to its own.
    twin = {"AccountInfoId": 999002, "NcesId": "3499998", "DistrictName": "BELLEVILLE SCHOOL DISTRICT",
            "State": "NJ", "County": "PASSAIC"}
    reference = account_reference(pl.concat([ACCOUNTS, pl.DataFrame([twin], schema=ACCOUNTS.schema)]))
    (entry,) = resolve_names(BELLEVILLE, reference, "star_reading", "SR.csv", ["Belleville Schools"], [])
    assert (entry.decision, entry.candidate_account_info_id, entry.verified) == ("resolved", 107873, True)


def test_a_name_too_close_to_call_does_not_verify_even_when_belleville_is_the_best():
    # A second Belleville of the same county: the exact name is ambiguous, whichever comes first.
    twin = {"AccountInfoId": 999001, "NcesId": "3499999", "DistrictName": "BELLEVILLE SCHOOL DISTRICT",
            "State": "NJ", "County": "ESSEX"}
    reference = account_reference(pl.concat([ACCOUNTS, pl.DataFrame([twin], schema=ACCOUNTS.schema)]))
    (entry,) = resolve_names(BELLEVILLE, reference, "star_reading", "SR.csv", ["Belleville Schools"], [])
    assert entry.decision == "ambiguous" and entry.candidate_account_info_id == 107873
    assert not entry.verified and not entry.suggest_listing


def test_a_name_resolved_within_the_registrys_county_and_state_only():
    # Belleville WI is BELLEVILLE SCHOOL DISTRICT too: never a candidate for an NJ district.
    (entry,) = resolve_names(BELLEVILLE, REFERENCE, "star_reading", "SR.csv", ["BELLEVILLE SCHOOL DISTRICT"], [])
    assert entry.verified and entry.decision == "resolved" and entry.margin == 100.0
    wisconsin = BELLEVILLE.model_copy(update={"state": "WI", "county": None, "account_info_id": 200003})
    (entry,) = resolve_names(wisconsin, REFERENCE, "star_reading", "SR.csv", ["BELLEVILLE SCHOOL DISTRICT"], [])
    assert entry.candidate_account_info_id != 107873


def test_the_crosswalk_frame_has_its_columns_even_when_empty():
    assert to_frame([]).schema == pl.Schema({
        "source": pl.Utf8, "file_name": pl.Utf8, "name_seen": pl.Utf8, "method": pl.Utf8, "decision": pl.Utf8,
        "candidate": pl.Utf8, "candidate_account_info_id": pl.Int64, "score": pl.Float64, "margin": pl.Float64,
        "verified": pl.Boolean, "suggest_listing": pl.Boolean})


def test_an_account_without_nces_id_is_keyed_by_its_account_info_id():
    res = REFERENCE.resolve("Belleville School District", state="NJ")
    assert res.best.key == "3401350"
    without = account_reference(ACCOUNTS.with_columns(pl.lit(None, dtype=pl.Utf8).alias("NcesId")))
    best = without.resolve("Belleville School District", state="NJ").best
    assert (best.key, best.account_info_id, best.name, best.state) == ("107873", 107873, "BELLEVILLE SCHOOL DISTRICT",
                                                                       "NJ")


def _accounts_with(**changes) -> pl.DataFrame:
    return ACCOUNTS.with_columns(*[pl.when(pl.col("AccountInfoId") == 107873).then(pl.lit(v)).otherwise(pl.col(k))
                                   .alias(k) for k, v in changes.items()])


def test_districts_check_passes_for_belleville():
    assert account_info_problems(BELLEVILLE, ACCOUNTS) == []
    assert check_entry(BELLEVILLE, ACCOUNTS) == []
    # an account without an NcesId is not a disagreement
    assert account_info_problems(BELLEVILLE, _accounts_with(NcesId=None)) == []


def test_districts_check_reports_an_nces_id_or_state_that_disagrees():
    assert account_info_problems(BELLEVILLE, _accounts_with(NcesId="3401351")) == [
        "AccountInfoId 107873 has NcesId 3401351, registry says 3401350"]
    assert account_info_problems(BELLEVILLE, _accounts_with(State="NY")) == [
        "AccountInfoId 107873 is in NY, registry says NJ"]
    assert account_info_problems(BELLEVILLE, ACCOUNTS.filter(pl.col("AccountInfoId") != 107873)) == [
        "AccountInfoId 107873 is not in dm.AccountInfo"]


def test_an_account_without_nces_id_must_carry_the_name_the_registry_lists_for_it():
    """An account_info_id mistyped as another district of the state, one with no NcesId: every check passed (its
    state matched, the listed names verify whatever their score) and the drop loaded under that district."""
    lincoln = _accounts_with(NcesId=None, DistrictName="LINCOLN SCHOOL DISTRICT")
    assert account_info_problems(BELLEVILLE, lincoln) == [
        "AccountInfoId 107873 is named 'LINCOLN SCHOOL DISTRICT' in dm.AccountInfo, and has no NcesId; the "
        "registry's source_names.account_info lists 'BELLEVILLE SCHOOL DISTRICT'"]
    # written otherwise, the same name (case, punctuation): no problem; with its NcesId, the id holds it
    assert account_info_problems(BELLEVILLE, _accounts_with(NcesId=None, DistrictName="Belleville School Dist.")) \
        == []
    assert account_info_problems(BELLEVILLE, _accounts_with(DistrictName="LINCOLN SCHOOL DISTRICT")) == []


def test_districts_check_reports_each_listed_name_that_does_not_resolve_to_the_entry():
    entry = BELLEVILLE.model_copy(update={
        "source_names": BELLEVILLE.source_names.model_copy(update={"classlink": ["Belleville Heights"]}),
        "sources": {"star": BELLEVILLE.sources["star"].model_copy(update={
            "names": ["Belleville Public Schools", "Nutley Public Schools"]})}})
    assert check_entry(entry, ACCOUNTS) == [
        "star name 'Nutley Public Schools' is resolved: best candidate NUTLEY (AccountInfoId 200015, "
        "score 100.0, margin 100.0)",
        "classlink name 'Belleville Heights' is unmatched: best candidate BELLEVILLE SCHOOL DISTRICT "
        "(AccountInfoId 107873, score 71.43, margin 71.43)",
    ]
    # Belleville is a township: "Belleville Twp" is its name with a designator added, which drift accepts
    township = BELLEVILLE.model_copy(update={"source_names": BELLEVILLE.source_names.model_copy(update={
        "classlink": ["Belleville Twp"]})})
    assert check_entry(township, ACCOUNTS) == []
    nutley = BELLEVILLE.model_copy(update={"source_names": BELLEVILLE.source_names.model_copy(update={
        "account_info": ["NUTLEY"]})})
    assert check_entry(nutley, ACCOUNTS) == [
        "account_info name 'NUTLEY' is resolved: best candidate NUTLEY (AccountInfoId 200015, score 100.0, "
        "margin 100.0)"]


def test_the_ferpa_review_may_be_at_most_max_age_days_old():
    reviewed = BELLEVILLE.verification.ferpa_review_on
    assert reviewed == dt.date(2026, 11, 20)
    assert ferpa_review_problem(BELLEVILLE, reviewed + dt.timedelta(days=365), 365) is None
    assert ferpa_review_problem(BELLEVILLE, reviewed, 0) is None
    assert ferpa_review_problem(BELLEVILLE, reviewed + dt.timedelta(days=366), 365) == (
        "belleville: the FERPA review of 2026-11-20 is 366 days old (at most 365 allowed); review again and record "
        "the date in the registry")
    never = BELLEVILLE.model_copy(update={"verification": BELLEVILLE.verification.model_copy(
        update={"ferpa_review_on": None})})
    assert ferpa_review_problem(never, reviewed, 365) == (
        "belleville: no FERPA review of the identifiers used is recorded in the registry")
