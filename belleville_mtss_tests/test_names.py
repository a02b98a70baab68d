"""District name normalisation and resolution: it resolves what it should and never guesses."""
import polars as pl
import pytest

from belleville_mtss.lib.crosswalk import account_reference
from belleville_mtss.lib.names import Reference, normalise
from belleville_mtss.lib.sample import account_info_rows

BELLEVILLE_NAMES = ["Belleville Public Schools", "BELLEVILLE SCHOOL DISTRICT", "Belleville PD"]


@pytest.fixture(scope="module")
def accounts() -> Reference:
    return account_reference(pl.DataFrame(account_info_rows()))


@pytest.mark.parametrize(("raw", "expected"), [
    ("Belleville Public Schools", "BELLEVILLE"),
    ("BELLEVILLE SCHOOL DISTRICT", "BELLEVILLE"),
    ("Belleville PD", "BELLEVILLE"),
    ("Belleville Board of Education", "BELLEVILLE"),
    ("BOONTON TOWN", "BOONTON TOWN"),
    ("Boonton Twp. School District", "BOONTON TOWNSHIP"),
    ("BELLEVILLE TWP HSD 201", "BELLEVILLE TOWNSHIP HIGH 201"),
    ("BELLEVILLE SD 118", "BELLEVILLE 118"),
    ("Belleville Schoool District", "BELLEVILLE"),  # a typo in a generic word is still generic
])
def test_normalise(raw, expected):
    assert normalise(raw) == expected


@pytest.mark.parametrize("name", BELLEVILLE_NAMES)
def test_every_source_name_of_belleville_resolves_in_nj(accounts, name):
    res = accounts.resolve(name, state="NJ")
    assert res.decision == "resolved"
    assert (res.best.key, res.best.account_info_id, res.best.state) == ("3401350", 107873, "NJ")


@pytest.mark.parametrize("name", BELLEVILLE_NAMES)
def test_without_a_state_same_name_districts_stay_ambiguous(accounts, name):
    res = accounts.resolve(name)
    assert res.decision == "ambiguous"
    assert {c.state for c in res.candidates} >= {"NJ", "WI"}


def test_wisconsin_name_with_wisconsin_state_is_wisconsin(accounts):
    res = accounts.resolve("BELLEVILLE SCHOOL DISTRICT", state="WI")
    assert res.decision == "resolved" and res.best.key == "5500990"


def test_town_and_township_are_two_districts(accounts):
    town = accounts.resolve("Boonton Town Public Schools", state="NJ")
    township = accounts.resolve("Boonton Township School District", state="NJ")
    assert town.decision == township.decision == "resolved"
    assert (town.best.key, township.best.key) == ("3401950", "3401980")
    assert accounts.resolve("Boonton Schools", state="NJ").decision != "resolved"


def test_a_name_shared_within_a_state_needs_the_county(accounts):
    assert accounts.resolve("Washington Township", state="NJ").decision == "ambiguous"
    res = accounts.resolve("Washington Township Public Schools", state="NJ", county="Morris")
    assert res.decision == "resolved" and res.best.key == "3417130"


def test_another_district_of_the_state_is_not_belleville(accounts):
    res = accounts.resolve("Bloomfield Public Schools", state="NJ")
    assert res.best.account_info_id != 107873
    assert accounts.resolve("Bellevue Public Schools", state="NJ").decision == "unmatched"


def test_never_resolves_to_another_state(accounts):
    for name in ["Bellevue School District", "Belleville SD 118", "Bellville ISD", "Belleville Henderson CSD"]:
        res = accounts.resolve(name, state="NJ")
        assert all(c.state == "NJ" for c in res.candidates), name


def test_unknown_state_is_refused(accounts):
    with pytest.raises(ValueError, match="unknown state 'ZZ'"):
        accounts.resolve("Belleville", state="ZZ")


def test_ranked_candidates_carry_score_and_margin(accounts):
    res = accounts.resolve("Belleville Pub Schools District", state="NJ")
    assert res.decision == "resolved"
    scores = [c.score for c in res.candidates]
    assert scores == sorted(scores, reverse=True)
    assert res.margin == pytest.approx(scores[0] - (scores[1] if len(scores) > 1 else 0), abs=0.01)


def test_against_the_17178_real_districts(reference_dir):
    frame = pl.read_csv(reference_dir / "districts" / "us_districts_leaid_name_state.csv", infer_schema=False)
    ref = Reference(frame.select(pl.col("leaid").alias("key"), pl.col("nces_agency_name").alias("name"),
                                 "state", "county"))
    for name in BELLEVILLE_NAMES:
        res = ref.resolve(name, state="NJ")
        assert res.decision == "resolved" and res.best.key == "3401350", name
        # Name-only matching once picked Bellevue NE: without a state it must not pick at all.
        assert ref.resolve(name).decision == "ambiguous", name
