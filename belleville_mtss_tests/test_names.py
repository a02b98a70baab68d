"""District name normalisation and resolution: it resolves what it should and never guesses."""
import polars as pl
import pytest
from rapidfuzz import fuzz

from belleville_mtss.lib.district.crosswalk import account_reference
from belleville_mtss.lib.district.names import Reference, normalise
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
    # two letters swapped are one typo, in generic words too
    ("Belleville Public Shcools", "BELLEVILLE"),
    ("Belleville Schol Distrcit", "BELLEVILLE"),
    ("Belleville Pubilc Schools", "BELLEVILLE"),
    ("Boonton Twp Board of Eduaction", "BOONTON TOWNSHIP"),
    ("Jefferson Co School Dits", "JEFFERSON COUNTY"),  # a short generic word, swapped
    ("ERIE UCSD 1", "ERIE COMMUNITY UNIT 1"),  # an abbreviation, swapped, still expands
    ("WEBB ICSD", "WEBB CONSOLIDATED INDEPENDENT"),
    # but a place name that is a swapped abbreviation of three letters stays itself (ISD -> SID)
    ("SID", "SID"),
    # "&" is the word AND; an apostrophe joins the letters around it
    ("Arts & Sciences Academy", "ARTS AND SCIENCES ACADEMY"),
    ("O'Fallon Township", "OFALLON TOWNSHIP"),
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
    # two letters swapped, among the real districts of the state
    for name, state, key in [("Belleville Public Shcools", "NJ", "3401350"),
                             ("Belleville Schol Distrcit", "NJ", "3401350"),
                             ("Bellevlile Public Schools", "NJ", "3401350"),
                             ("Jacskon Public School District", "MS", "2802190")]:
        res = ref.resolve(name, state=state)
        assert res.decision == "resolved" and res.best.key == key, name


def _state_reference(names: list[str], state: str = "MS") -> Reference:
    return Reference(pl.DataFrame({"key": [f"k{i}" for i in range(len(names))], "name": names,
                                   "state": [state] * len(names)}))


JACKSONS = _state_reference(["JACKSON PUBLIC SCHOOL DIST", "JACKSON CO SCHOOL DIST", "ALCORN SCHOOL DIST",
                             "KOSCIUSKO SCHOOL DISTRICT", "MADISON CO SCHOOL DIST"])


@pytest.mark.parametrize("name", ["Jacskon", "Jacskon Public Schools", "Jackosn School Distrcit", "Jackdon"])
def test_a_name_one_typo_from_one_district_resolves_by_typo(name):
    # "JACSKON" scores 85.7 against "JACKSON" (two letters swapped cost the fuzzy score two edits), below the
    # 88 needed: only the typo rule, counting the swap as one edit, resolves it.
    res = JACKSONS.resolve(name, state="MS")
    assert res.best.score < Reference.MIN_SCORE
    assert (res.decision, res.method, res.best.name) == ("resolved", "typo", "JACKSON PUBLIC SCHOOL DIST")


@pytest.mark.parametrize("name", ["Jaksn",  # two edits in a name under 12 letters: more than one slip
                                  "Jacksonville"])  # one district's name inside another's is not a typo
def test_a_short_name_two_edits_away_is_not_a_typo(name):
    assert JACKSONS.resolve(name, state="MS").decision != "resolved"


def test_a_name_under_five_letters_is_too_short_for_the_typo_rule():
    ref = _state_reference(["BOYD SCHOOL", "ALCORN SCHOOL DIST", "MADISON CO SCHOOL DIST"], "TX")
    assert ref.resolve("Byod School", state="TX").decision != "resolved"  # BYOD: one swap, but 4 letters


@pytest.mark.parametrize(("name", "decision"), [
    ("Wetsmoreladn", "resolved"),  # 12 letters, two swaps: two slips are allowed from 12 letters
    ("Wetsmorelnd", "unmatched"),  # 11 letters, a swap and a letter missing: one slip only under 12
    ("Ewstmoerladn", "unmatched"),  # 12 letters, three swaps: more than two slips
])
def test_a_long_name_may_be_two_slips_from_its_district_never_three(name, decision):
    ref = _state_reference(["WESTMORELAND", "ALCORN SCHOOL DIST", "MADISON CO SCHOOL DIST"])
    res = ref.resolve(name, state="MS")
    assert res.best.name == "WESTMORELAND" and res.best.score < Reference.MIN_SCORE
    assert res.decision == decision and res.method == ("typo" if decision == "resolved" else "fuzzy")


def test_a_name_of_five_letters_is_long_enough_for_the_typo_rule():
    ref = _state_reference(["ALAMO", "ALCORN SCHOOL DIST", "MADISON CO SCHOOL DIST"], "TX")
    res = ref.resolve("Alamp", state="TX")  # one letter wrong: ALAMO scores 80, below 88
    assert (res.decision, res.method, res.best.name) == ("resolved", "typo", "ALAMO")


def test_an_empty_reference_resolves_nothing():
    empty = Reference(pl.DataFrame(schema={"key": pl.Utf8, "name": pl.Utf8, "state": pl.Utf8}))
    assert empty.states == frozenset()
    res = empty.resolve("Belleville Public Schools")
    assert (res.decision, res.method, res.candidates) == ("unmatched", "none", ())


def test_a_typo_between_two_districts_of_the_same_name_stays_ambiguous():
    ref = Reference(pl.DataFrame({"key": ["a", "b", "c"], "name": ["JACKSON", "JACKSON SD", "MADISON"],
                                  "state": ["MS", "MS", "MS"]}))
    assert ref.resolve("Jacskon", state="MS").decision == "ambiguous"


def test_a_typo_never_resolves_to_another_state():
    ref = Reference(pl.DataFrame({"key": ["ms", "al"], "name": ["JACKSON", "HOOVER CITY"], "state": ["MS", "AL"]}))
    assert ref.resolve("Jacskon", state="MS").best.key == "ms"
    assert ref.resolve("Jacskon", state="AL").decision == "unmatched"


def test_a_typo_resolves_only_when_every_other_district_is_two_edits_farther():
    # RECOTR is one swap from RECTOR, and HECTOR is only one edit farther: too close to call.
    ref = _state_reference(["RECTOR SCHOOL DISTRICT", "HECTOR SCHOOL DISTRICT", "PRESCOTT SCHOOL DISTRICT"], "AR")
    res = ref.resolve("Recotr School District", state="AR")
    assert res.best.name == "RECTOR SCHOOL DISTRICT" and res.decision != "resolved"
    alone = _state_reference(["RECTOR SCHOOL DISTRICT", "PRESCOTT SCHOOL DISTRICT"], "AR")
    res = alone.resolve("Recotr School District", state="AR")
    assert (res.decision, res.method, res.best.name) == ("resolved", "typo", "RECTOR SCHOOL DISTRICT")


def test_a_best_score_with_another_district_as_few_typos_away_is_ambiguous():
    # ALMAR is a letter added to ALMA and two letters swapped in LAMAR: one edit from each. The fuzzy score
    # prefers ALMA (88.9, margin 8.9 over LAMAR), but either could be meant.
    ref = _state_reference(["ALMA SCHOOL DISTRICT", "LAMAR SCHOOL DISTRICT", "SALEM SCHOOL DISTRICT"], "AR")
    res = ref.resolve("Almar School District", state="AR")
    assert res.best.name == "ALMA SCHOOL DISTRICT" and res.best.score >= Reference.MIN_SCORE
    assert res.margin >= Reference.MIN_MARGIN
    assert res.decision == "ambiguous"


def test_two_letters_swapped_at_the_start_of_a_word_still_resolve():
    # Sorting the words puts "STPEPING" after "STONES": the names are also compared in the order they are written.
    ref = _state_reference(["STEPPING STONES ACADEMY", "DESERT SPRINGS ACADEMY", "STARSHINE ACADEMY"], "AZ")
    res = ref.resolve("Stpeping Stones Academy", state="AZ")
    assert (res.decision, res.best.name) == ("resolved", "STEPPING STONES ACADEMY")


PLACES = ["ASHLAND", "BRADFORD", "CLEARFIELD", "DERRY", "ELIZABETH", "FRANKLIN", "GREENWOOD", "HAMPTON",
          "INDIANA", "JUNIATA", "KANE", "LEBANON", "MILTON", "NORWIN", "OXFORD", "PENNS", "QUAKERTOWN",
          "RIDLEY", "SHALER", "TYRONE"]
KINDS = ["AREA", "VALLEY", "REGIONAL", "CITY", "BOROUGH", "UNION", "CENTRAL", "HIGHLANDS", "MANOR", "HEIGHTS",
         "HILLS", "COUNTY", "JOINT", "RIVERSIDE", "LAKES", "FORGE", "SPRINGS", "WOODS", "CROSSING", "GROVE"]
MANY = _state_reference([f"{p} {k}" for p in PLACES for k in KINDS], "PA")  # 400 districts


@pytest.mark.parametrize(("query", "expected"), [
    ("Milton Heigths", "MILTON HEIGHTS"), ("Hampton Manr", "HAMPTON MANOR"), ("Shaler Valey", "SHALER VALLEY"),
])
@pytest.mark.parametrize("limit", [5, 400])
def test_candidates_come_best_first_and_the_decision_uses_the_best(query, expected, limit):
    # Many candidates asked for: the top ones are picked, then ranked; the decision compares the best with the
    # runner-up, not with whichever candidate came first.
    res = MANY.resolve(query, state="PA", limit=limit)
    scores = [c.score for c in res.candidates]
    assert len(scores) > 1 and scores == sorted(scores, reverse=True)
    assert (res.decision, res.method, res.best.name) == ("resolved", "fuzzy", expected)
    assert res.margin == pytest.approx(scores[0] - scores[1], abs=0.01) and res.margin >= Reference.MIN_MARGIN


def _score(query: str, name: str) -> float:
    """The fuzzy score of two names that normalisation leaves as they are (the same scorers as names.py)."""
    query = query.upper()
    assert normalise(query) == query and normalise(name) == name
    return round(max(fuzz.token_sort_ratio(query, name), fuzz.ratio(query, name)), 2)


@pytest.mark.parametrize(("query", "name", "score", "decision"), [
    # 24 + 26 letters, 2 missing and 2 wrong: 1 - 6/50 = 88.00, exactly the minimum
    ("Laurel Higlands Acadamys", "LAUREL HIGHLANDS ACADEMIES", 88.0, "resolved"),
    # 32 + 34 letters, 2 missing and 3 wrong: 1 - 8/66 = 87.88, just below it
    ("Susquehana Valey Chartar Acadami", "SUSQUEHANNA VALLEY CHARTER ACADEMY", 87.88, "unmatched"),
])
def test_min_score_boundary(query, name, score, decision):
    assert Reference.MIN_SCORE == 88.0
    assert _score(query, name) == score
    res = _state_reference([name, "ALLEGHENY VALLEY"], "PA").resolve(query, state="PA")
    # four or five edits: no typo rule, the fuzzy score alone decides
    assert (res.best.name, res.best.score, res.decision, res.method) == (name, score, decision, "fuzzy")


QUERY = "SUSQUEHANNA VALLEY PERFORMING ARTS CHARTER ACADEMY"  # 50 letters and spaces
SIX_WRONG = "SUSKUEHANNA BALLEY PERFORNING ARTZ CHARTEP ACADEMI"  # 1 - 12/100 = 88.00


@pytest.mark.parametrize(("other", "other_score", "decision"), [
    ("SUSQUEHANNA VALLEY PERFORMINC ARTZ CHARTER ACADEMI", 94.0, "resolved"),  # 3 wrong: 1 - 6/100, margin 6.00
    ("SUSQUEHANNA VALLEY PERFORMIN ART CHARTEP ACADEMI", 93.88, "ambiguous"),  # 2 missing, 2 wrong: margin 5.88
])
def test_min_margin_boundary(other, other_score, decision):
    # Both districts score 88 or more and are three edits or more from the query (no typo rule): the margin
    # between them alone decides.
    assert Reference.MIN_MARGIN == 6.0
    assert (_score(QUERY, other), _score(QUERY, SIX_WRONG)) == (other_score, 88.0)
    res = _state_reference([SIX_WRONG, other, "ALLEGHENY VALLEY"], "PA").resolve(QUERY.title(), state="PA")
    assert [(c.name, c.score) for c in res.candidates[:2]] == [(other, other_score), (SIX_WRONG, 88.0)]
    assert res.margin == pytest.approx(other_score - 88.0)
    assert (res.decision, res.method) == (decision, "fuzzy")


@pytest.mark.parametrize("name", ["Mount Olive Township School District", "Mount Olive Township Schools"])
def test_a_reference_name_cut_at_25_characters_is_matched_by_the_whole_name(name):
    # Older NCES names stop at 25 characters, mid-word: the query is compared cut the same way.
    cut = Reference(pl.DataFrame({"key": ["a", "b", "c"], "state": ["NJ"] * 3,
                                  "name": ["MOUNT OLIVE TOWNSHIP SCHO", "MOUNT ARLINGTON BORO", "OLIVE BRANCH TOWNSHIP"]}))
    res = cut.resolve(name, state="NJ")
    assert (res.decision, res.method, res.best.name, res.best.score) == (
        "resolved", "fuzzy", "MOUNT OLIVE TOWNSHIP SCHO", 100.0)


@pytest.mark.parametrize("name", ["Mount Olive Township Scho", " Mount  Olive Township Scho "])
def test_a_name_cut_at_25_characters_is_read_without_its_half_word(name):
    ref = _state_reference(["MOUNT OLIVE TOWNSHIP", "MOUNT ARLINGTON BORO"], "NJ")
    res = ref.resolve(name, state="NJ")
    assert (res.decision, res.method, res.best.name) == ("resolved", "exact", "MOUNT OLIVE TOWNSHIP")
    # 24 or 26 characters: not cut, the last word is kept
    for longer_or_shorter in ["Mount Olive Township Sco", "Mount Olive Township Nortt"]:
        assert ref.resolve(longer_or_shorter, state="NJ").method == "fuzzy"


def test_state_and_county_are_compared_whatever_their_case_and_spaces():
    ref = Reference(pl.DataFrame({"key": ["a", "b", "c"], "state": [" nj", "NJ ", "nj"],
                                  "name": ["WASHINGTON TOWNSHIP", "WASHINGTON TOWNSHIP", "NUTLEY"],
                                  "county": [" morris", "MERCER", None], "account_info_id": [1, 2, 3]}))
    assert ref.states == frozenset({"NJ"})
    res = ref.resolve("Washington Township", state=" nj ", county="Morris ")
    assert (res.decision, res.best.key, res.best.state, res.best.account_info_id) == ("resolved", "a", "NJ", 1)
    # a county the reference does not know for the state: the whole state, where the name is shared
    assert ref.resolve("Washington Township", state="NJ", county="Hudson").decision == "ambiguous"
    assert ref.resolve("Washington Township", state="NJ").decision == "ambiguous"
    # a district without a county is found from its state's pool only
    assert ref.resolve("Nutley", state="NJ", county="Essex").best.key == "c"


def test_a_name_of_generic_words_only_is_unmatched_without_candidates():
    for name in ["Public School District", "The Board of Education", "", "  -  "]:
        res = JACKSONS.resolve(name, state="MS")
        assert (res.decision, res.method, res.candidates, res.best, res.margin) == ("unmatched", "none", (), None,
                                                                                    None)


def test_at_most_limit_candidates_and_the_decision_counts_every_exact_hit():
    ref = _state_reference(["WASHINGTON TOWNSHIP"] * 3 + ["NUTLEY"], "NJ")
    res = ref.resolve("Washington Twp", state="NJ", limit=2)
    assert (res.decision, res.method, [c.key for c in res.candidates]) == ("ambiguous", "exact", ["k0", "k1"])
    assert res.margin == 0.0
    one = ref.resolve("Washington Twp", state="NJ", limit=1)
    assert one.decision == "ambiguous" and len(one.candidates) == 1 and one.margin == 100.0
    fuzzy = MANY.resolve("Milton Heigths", state="PA", limit=3)
    assert len(fuzzy.candidates) == 3 and fuzzy.best.name == "MILTON HEIGHTS"


def test_a_candidate_scoring_under_50_is_not_listed():
    res = JACKSONS.resolve("Zzyzx Unified", state="MS")
    assert (res.decision, res.method) == ("unmatched", "none") and res.candidates == ()
    assert all(c.score >= 50 for c in JACKSONS.resolve("Jackson Central", state="MS").candidates)


def test_many_names_at_once_resolve_as_each_alone():
    # More queries than one score block, from two pools: each answer stays with its query.
    queries = [(f"{p} {k}" if i % 3 else f"{p} {k[:-1]}", "PA", None) for i, (p, k) in
               enumerate((p, k) for p in PLACES for k in KINDS)] * 2
    queries += [("Jacskon", "MS", None), ("Almar School District", "MS", None)]
    both = Reference(pl.concat([MANY.frame, JACKSONS.frame]))
    together = both.resolve_many(queries)
    assert len(together) == len(queries) > Reference.BLOCK
    alone = {q: both.resolve(*q) for q in set(queries)}
    assert together == [alone[q] for q in queries]
    assert together[1].best.name == f"{PLACES[0]} {KINDS[1]}"


def test_a_name_with_its_words_in_another_order_resolves():
    ref = _state_reference(["MOUNT OLIVE TOWNSHIP", "MOUNT ARLINGTON BORO", "OLIVE BRANCH"], "NJ")
    res = ref.resolve("Township Mount Olive", state="NJ")
    assert (res.decision, res.method, res.best.name, res.best.score) == ("resolved", "fuzzy", "MOUNT OLIVE TOWNSHIP",
                                                                         100.0)


def test_a_name_cut_at_25_characters_with_a_typo_is_scored_without_its_half_word():
    ref = _state_reference(["MOUNT OLIVE TOWNSHIP", "MOUNT ARLINGTON BORO", "OLIVE BRANCH"], "NJ")
    res = ref.resolve("Mount Olyve Township Scho", state="NJ")  # 25 characters: SCHO is half a word
    assert (res.decision, res.method, res.best.name, res.best.score) == ("resolved", "fuzzy", "MOUNT OLIVE TOWNSHIP",
                                                                         95.0)


@pytest.mark.parametrize("query", ["Milton Heigths", "Hampton Manr", "Shaler Valey", "Oxford Vally"])
def test_the_best_candidate_is_the_same_whatever_the_limit(query):
    best = MANY.resolve(query, state="PA", limit=5)
    one = MANY.resolve(query, state="PA", limit=1)
    assert [(c.name, c.score) for c in one.candidates] == [(best.best.name, best.best.score)]
    assert [c.score for c in best.candidates] == sorted((c.score for c in MANY.resolve(query, state="PA",
                                                         limit=400).candidates), reverse=True)[:5]


def test_a_candidate_scoring_exactly_50_is_listed():
    res = _state_reference(["ABEF", "ZZZZ QQQQ"], "PA").resolve("Abcd", state="PA")
    assert (res.decision, [(c.name, c.score) for c in res.candidates]) == ("unmatched", [("ABEF", 50.0)])


def test_a_runner_up_one_slip_farther_than_the_best_leaves_the_score_to_decide():
    # WESTMORELANE is one slip from WESTMORELAND and two from WESTMOREPINE: no tie; the fuzzy margin decides.
    ref = _state_reference(["WESTMORELAND", "WESTMOREPINE", "ALCORN SCHOOL DIST"], "PA")
    res = ref.resolve("Westmorelane", state="PA")
    assert [(c.name, c.score) for c in res.candidates[:2]] == [("WESTMORELAND", 91.67), ("WESTMOREPINE", 83.33)]
    assert (res.decision, res.method) == ("resolved", "fuzzy")


def test_a_query_equal_to_a_cut_reference_name_is_an_exact_match():
    ref = _state_reference(["MOUNT OLIVE TOWNSHIP SCHO", "MOUNT ARLINGTON BORO"], "NJ")
    res = ref.resolve("Mount Olive Township Scho", state="NJ")
    assert (res.query, res.decision, res.method, res.best.name) == (
        "Mount Olive Township Scho", "resolved", "exact", "MOUNT OLIVE TOWNSHIP SCHO")


def test_each_resolution_carries_its_query():
    ref = _state_reference(["JACKSON PUBLIC SCHOOL DIST", "ALCORN SCHOOL DIST"])
    names = ["Jackson Public Schools", "Public School District", "Jacskon", "Zzyzx"]
    assert [r.query for r in ref.resolve_many([(n, "MS", None) for n in names])] == names


def test_every_one_of_more_misspelt_names_than_two_score_blocks_is_resolved():
    queries = [(f"{p} {k[:-1]}", "PA", None) for p in PLACES for k in KINDS] * 3  # 1,200 names, none exact
    together = MANY.resolve_many(queries)
    assert len(together) == len(queries) > 2 * Reference.BLOCK
    assert all(r is not None and r.method == "fuzzy" for r in together)
    assert together[-1] == MANY.resolve(*queries[-1])


# --- name drift: later official names of districts the reference knows by an older one -----------------------

DRIFTED = _state_reference(["ALPHA", "BRIDGETON", "BOONTON TOWN", "BOONTON TOWNSHIP", "DOVER TOWN", "EAST NEWARK",
                            "NEWARK", "ATLANTIC COUNTY VOCATIONA", "ATLANTIC CITY", "BERGEN COUNTY VOCATIONAL",
                            "YOUNG ELEMENTARY DISTRICT"], "NJ")


@pytest.mark.parametrize("later, older", [
    ("alpha borough school district", "ALPHA"),                # a designator added
    ("bridgeton city school district", "BRIDGETON"),
    ("east newark borough school district", "EAST NEWARK"),    # NEWARK's words are in it too: the wider wins
    ("atlantic co voc-tech", "ATLANTIC COUNTY VOCATIONA"),     # co for county, the reference cut at 25
    ("bergen county voc-tech", "BERGEN COUNTY VOCATIONAL"),    # voc-tech is vocational
    ("dover public school district", "DOVER TOWN"),
])
def test_a_later_official_name_resolves_to_its_older_name_by_drift(later, older):
    res = DRIFTED.resolve(later, state="NJ")
    assert (res.decision, res.method, res.best.name) == ("resolved", "drift", older)


@pytest.mark.parametrize("later", [
    "boonton school district",           # BOONTON TOWN and BOONTON TOWNSHIP: a tie is no decision
    "dover township school district",    # TOWNSHIP against TOWN: designators that disagree
    "young scholars academy",            # a word of its own that YOUNG ELEMENTARY DISTRICT lacks
    "atlantic co special services",      # the cut name's last word (VOCATIONA) is not in it
])
def test_drift_never_guesses(later):
    assert DRIFTED.resolve(later, state="NJ").decision != "resolved"


def test_the_real_nj_name_drift_resolves_at_least_55_of_58_and_none_wrongly(reference_dir):
    folder = reference_dir / "districts"
    frame = pl.read_csv(folder / "us_districts_leaid_name_state.csv", infer_schema=False)
    ref = Reference(frame.select(pl.col("leaid").alias("key"),
                                 pl.col("nces_agency_name").fill_null(pl.col("ocd_name")).alias("name"),
                                 "state", "county"))
    later = pl.read_csv(folder / "wapo_tidytuesday_nj_excerpt.csv", infer_schema=False).filter(
        pl.col("leaid").is_in(frame["leaid"].to_list()))
    results = ref.resolve_many([(n, "NJ", None) for n in later["lea_name_as_published"]])
    right = [r.best.key == k for r, k in zip(results, later["leaid"]) if r.decision == "resolved"]
    assert later.height == 58 and sum(right) >= 55 and all(right)


def test_a_county_never_hides_a_better_match_in_another_county():
    """The pool was the registry's county alone: a file naming HOWELL TOWNSHIP (Monmouth) verified as the
    registry's HOPEWELL TOWNSHIP (Cumberland), the only close name in its county. The county now only chooses among
    districts of the very same name."""
    ref = Reference(pl.DataFrame({
        "key": ["howell", "hopewell", "wt-morris", "wt-mercer"], "state": ["NJ"] * 4,
        "name": ["HOWELL TOWNSHIP", "HOPEWELL TOWNSHIP", "WASHINGTON TOWNSHIP", "WASHINGTON TOWNSHIP"],
        "county": ["MONMOUTH", "CUMBERLAND", "MORRIS", "MERCER"], "account_info_id": [1, 2, 3, 4]}))
    res = ref.resolve("Howell Township Public Schools", state="NJ", county="Cumberland")
    assert res.best.key == "howell" and res.best.account_info_id != 2
    assert ref.resolve("Washington Township Public Schools", state="NJ", county="Mercer").best.key == "wt-mercer"
    assert ref.resolve("Washington Township", state="NJ", county="Mercer").decision == "resolved"
    assert ref.resolve("Washington Township", state="NJ", county="Essex").decision == "ambiguous"
