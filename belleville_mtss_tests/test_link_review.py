"""Unmatched students reviewed by a person: a drop with known truth gives the expected suggestions; an accepted link
is applied by a replay and by the next drop (the results load under the right student number); a rejected pair
never comes back; nothing links without a decision. Real SQLite databases, the CLI as a person runs it."""
import datetime as dt
import shutil
import threading

import polars as pl
import pytest
import sqlalchemy as sa
from hypothesis import given, settings as examples, strategies as st
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from belleville_mtss.cli import main
from belleville_mtss.lib.load.warehouse import assessment_results, make_engine, read_table
from belleville_mtss.lib.students import review
from belleville_mtss.lib.students.suggest import (MIN_SCORE, NO_CLASSLINK, TOP, apply_accepted, date_similarity,
                                                  name_similarity, number_similarity, score_pair, slips_within,
                                                  suggest, unknown_cause, unknown_ids)
from belleville_mtss.run import run_drop
from .helpers import prepare_drop

BELLEVILLE = 107873


def results_of(settings, student: str) -> set[str]:
    engine = make_engine(settings.warehouse_url)
    try:
        frame = read_table(engine, assessment_results)
    finally:
        engine.dispose()
    return set(frame.filter(pl.col("StudentNumber") == student)["TestKey"])


def unknown_rows(drop) -> pl.DataFrame:
    """The Star rows the generator gave identifiers PowerSchool does not have: '9' before a real student's number."""
    frames = [pl.read_csv(drop / f, infer_schema=False).with_columns(pl.lit(f[:-4]).alias("file"))
              for f in ("SR.csv", "SM.csv", "SEL.csv")]
    numbers = set(pl.read_csv(drop / "students.csv", infer_schema=False)["STUDENTS.STUDENT_NUMBER"])
    rows = pl.concat([f.select("StudentIdentifier", "AssessmentID", "file") for f in frames])
    return rows.filter(~pl.col("StudentIdentifier").is_in(list(numbers)))


def test_suggestions_are_the_known_truth_and_decisions_apply_to_replays_and_later_drops(settings, monkeypatch,
                                                                                          capsys):
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    drop = prepare_drop(settings)
    unknown = unknown_rows(drop)
    truth = {sid: sid[1:] for sid in unknown["StudentIdentifier"]}  # the generator's: "9" + the real number
    assert len(truth) >= 2
    report = run_drop(settings)
    assert report.outcome == "loaded"
    assert f"Link suggestions waiting for a person: {len(truth)} ({len(truth)} new with this drop)" in report.render()
    engine = make_engine(settings.warehouse_url)
    open_ = review.listing(engine, BELLEVILLE)
    assert set(zip(open_["FromId"], open_["ToId"])) == set(truth.items())  # each one, right, and nothing else
    assert (open_["Cause"] == unknown_cause("star")).all() and (open_["Score"] >= 0.8).all()
    accepted_from, rejected_from = sorted(truth)[:2]
    ids = dict(zip(open_["FromId"], open_["SuggestionId"]))
    # nothing is linked before a person decides
    assert not results_of(settings, truth[accepted_from]) & set(
        unknown.filter(pl.col("StudentIdentifier") == accepted_from)["AssessmentID"])

    assert main(["links", "accept", str(ids[accepted_from]), "--reason", "same name and birth date; typo'd id"]) == 0
    assert main(["links", "reject", str(ids[rejected_from]), "--reason", "checked with the school: not them"]) == 0
    assert main(["links", "accept", str(ids[rejected_from]), "--reason", "changed my mind"]) == 2  # decided already
    capsys.readouterr()
    decided = review.listing(engine, BELLEVILLE, None)
    assert dict(zip(decided["SuggestionId"], decided["Status"]))[ids[accepted_from]] == "accepted"

    # a replay of the drop applies the accepted link: that student's tests load under the right number
    tests = set(unknown.filter(pl.col("StudentIdentifier") == accepted_from)["AssessmentID"])
    assert run_drop(settings).outcome == "loaded"
    assert tests <= results_of(settings, truth[accepted_from])
    # the next drop too; the rejected pair is not suggested again, and no suggestion is made twice
    later = drop.parent / "2026-11-08"
    shutil.copytree(drop, later)
    report = run_drop(settings, "belleville/2026-11-08")
    assert report.outcome == "loaded"
    assert tests <= results_of(settings, truth[accepted_from])
    after = review.listing(engine, BELLEVILLE, None)
    assert after.height == len(truth)  # the same pairs, each once
    assert set(after.filter(pl.col("Status") == "open")["FromId"]) == set(truth) - {accepted_from, rejected_from}
    assert not results_of(settings, truth[rejected_from]) & set(
        unknown.filter(pl.col("StudentIdentifier") == rejected_from)["AssessmentID"])
    with engine.connect() as conn:
        who = conn.execute(sa.text('SELECT "DecidedBy", "Reason" FROM "LinkDecisions" ORDER BY "DecisionId"')).all()
    engine.dispose()
    assert [r[1] for r in who] == ["same name and birth date; typo'd id", "checked with the school: not them"]


def test_review_lists_open_suggestions_with_their_evidence(settings, monkeypatch, capsys):
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    prepare_drop(settings)
    run_drop(settings)
    capsys.readouterr()
    assert main(["links", "review", "belleville"]) == 0
    out = capsys.readouterr().out
    assert "open suggestion(s) for belleville" in out
    assert "number: one digit apart (mistyped or two swapped); name: 100% alike; birth date: same" in out


def test_scores_tell_a_twin_from_her_sister_and_a_new_student_from_everyone():
    twins = [{"id": "1001", "number": "1001", "first_name": "Ava", "last_name": "Cruz", "birth_date": "01/02/2015",
              "school_id": "03", "email": "ava.cruz@x.org"},
             {"id": "1002", "number": "1002", "first_name": "Mia", "last_name": "Cruz", "birth_date": "01/02/2015",
              "school_id": "03", "email": "mia.cruz@x.org"}]
    star = [{"id": "1012", "number": "1012", "first_name": "Mia", "last_name": "Cruz", "birth_date": "01/02/2015",
             "school_id": "03", "email": "mia.cruz@x.org"},  # Mia, number typo'd
            {"id": "5555", "number": "5555", "first_name": "Noah", "last_name": "Kim", "birth_date": "09/09/2016",
             "school_id": "03", "email": "noah.kim@x.org"}]  # new: PowerSchool does not have him yet
    found = suggest(star, twins, unknown_cause("star"))
    assert found.rows() == [(unknown_cause("star"), "", "1012", "1002", found["score"][0], found["evidence"][0])]
    assert number_similarity("0012", "12")[0] == 1.0 and number_similarity("1234", "1243")[0] == 0.8
    assert name_similarity("Ava", "Cruz", "Mia", "Cruz")[0] < 0.8


def test_a_twins_near_number_is_not_offered_for_the_child_whose_name_and_birth_date_are_her_sisters():
    """Ava's Star identifier mistyped twice, one digit from her twin Eva's number: Eva outscored Ava on the number
    and was the only suggestion; accepted, Ava's tests loaded under Eva."""
    twins = [{"id": "210100", "number": "210100", "first_name": "Ava", "last_name": "Smith",
              "birth_date": "03/14/2016", "school_id": "04", "email": "ava.smith.210100@x.org"},
             {"id": "210101", "number": "210101", "first_name": "Eva", "last_name": "Smith",
              "birth_date": "03/14/2016", "school_id": "04", "email": "eva.smith.210101@x.org"}]
    ava = {"id": "210111", "number": "210111", "first_name": "Ava", "last_name": "Smith", "birth_date": "2016-03-14",
           "school_id": "04", "email": "ava.smith.210100@x.org"}
    assert score_pair(ava, twins[1])[0] >= MIN_SCORE > score_pair(ava, twins[0])[0]  # the number outweighs
    assert suggest([ava], twins, unknown_cause("star")).is_empty()
    # the twin is offered where her sister is not among the candidates (nobody fits the name better)
    assert suggest([ava], twins[1:], unknown_cause("star"))["to_id"].to_list() == ["210101"]
    # and a nickname beside an unrelated sibling's name is still offered: Dan is more like Daniel than Sarah
    dan = {**ava, "first_name": "Dan", "id": "210112", "number": "210112"}
    family = [{**twins[0], "first_name": "Sarah", "number": "210300", "id": "210300"},
              {**twins[1], "first_name": "Daniel", "number": "210102", "id": "210102"}]
    assert suggest([dan], family, unknown_cause("star"))["to_id"].to_list() == ["210102"]


def _scored_by_hand(person: dict, candidates: list[dict], min_score: float) -> list[tuple[str, float]]:
    """Every candidate of the person's block (the same school, or any when the person names none, and a shared
    birth date, last or first name; or the number within one slip once leading zeros are dropped) scored."""
    def in_block(c: dict) -> bool:
        shared = any(person.get(f) and c.get(f) and c[f].lower() == person[f].lower()
                     for f in ("birth_date", "last_name", "first_name"))
        school = not person.get("school_id") or c.get("school_id") == person["school_id"]
        number = (person.get("number") or "").lstrip("0")
        near = bool(number) and OSA.distance(number, (c.get("number") or "").lstrip("0")) <= 1
        return (shared and school) or near

    def first(c: dict) -> float:  # the first names' likeness, by rapidfuzz's ratio of the names in lower case
        return fuzz.ratio((person.get("first_name") or "").lower(), (c.get("first_name") or "").lower())

    def twin(c: dict) -> bool:  # the person's last name and birth date, and a first name another fits better
        def day(text: str | None) -> str | None:  # the generator's two layouts
            return dt.datetime.strptime(text, "%Y-%m-%d" if "-" in text else "%m/%d/%Y").date().isoformat() \
                if text else None

        def family(o: dict) -> bool:
            return bool(person.get("birth_date")) and day(o.get("birth_date")) == day(person["birth_date"]) \
                and bool(person.get("last_name")) and (o.get("last_name") or "").lower() == person["last_name"].lower()
        return family(c) and any(o is not c and family(o) and first(o) > first(c) for o in candidates)
    scored = sorted((-score, c["id"]) for c in candidates if in_block(c) and not twin(c)
                    for score in [score_pair(person, c)[0]] if score >= min_score)
    return [(cid, -score) for score, cid in scored[:TOP]]


PEOPLE = st.fixed_dictionaries({
    "number": st.text("0129", max_size=4), "first_name": st.sampled_from(["Ava", "Ana", "Mia", "", "Noah"]),
    "last_name": st.sampled_from(["Cruz", "Kruz", "Kim", ""]), "school_id": st.sampled_from(["01", "02", None]),
    "birth_date": st.sampled_from(["01/02/2015", "2015-01-02", "09/09/2016", None]),
    "email": st.sampled_from(["ava.cruz@x.org", "mia.cruz@x.org", None])})


@examples(max_examples=300, deadline=None)
@given(people=st.lists(PEOPLE, max_size=4), candidates=st.lists(PEOPLE, max_size=12),
       min_score=st.sampled_from([0.5, 0.7, 0.76, MIN_SCORE, 0.95]))
def test_suggestions_are_every_candidate_of_a_block_scored_however_many_are_left_unscored(people, candidates,
                                                                                          min_score):
    # suggest() leaves unscored the candidates whose number is too far for the pair to reach min_score; what it
    # finds must be what scoring every candidate of the block finds
    people = [p | {"id": f"p{i}"} for i, p in enumerate(people)]
    candidates = [c | {"id": f"c{i}"} for i, c in enumerate(candidates)]
    found = suggest(people, candidates, "cause", min_score=min_score)
    for p in people:
        mine = found.filter(pl.col("from_id") == p["id"])
        assert list(zip(mine["to_id"], mine["score"])) == _scored_by_hand(p, candidates, min_score)


def test_a_number_too_many_slips_away_leaves_a_pair_below_the_least_score():
    # the bound suggest() prunes by: at MIN_SCORE, a number two slips away cannot score enough with every other
    # field the same; one slip can
    assert slips_within(MIN_SCORE) == 1 and slips_within(0.5) is None
    same = {"first_name": "Ava", "last_name": "Cruz", "birth_date": "01/02/2015", "email": "ava.cruz@x.org"}
    assert score_pair(same | {"number": "1234"}, same | {"number": "1243"})[0] >= MIN_SCORE
    assert score_pair(same | {"number": "1234"}, same | {"number": "2143"})[0] < MIN_SCORE


def test_each_vendor_s_unknown_identifiers_are_its_own_and_an_accepted_link_changes_only_its_rows():
    # one identifier, "77", unknown to the roster in both Star and i-Ready: two causes, the vendor named in each
    tests = {"star_reading": pl.DataFrame({"student_link": ["77", "1"], "subject": ["SR", "SR"]}),
             "iready_ela": pl.DataFrame({"student_link": ["77", "2"], "subject": ["ELA", "ELA"]}),
             "iready_math": pl.DataFrame({"student_link": ["77"], "subject": ["Math"]})}
    assert unknown_ids(tests, {"1", "2"}) == {"star": {"77": "SR"}, "iready": {"77": "ELA,Math"}}
    many = {"star_reading": pl.DataFrame({"student_link": [str(n) for n in range(5000, 0, -1)], "subject": "SR"})}
    in_file_order = [str(n) for n in range(5000, 0, -1) if n % 7]
    assert list(unknown_ids(many, pl.Series([str(n) for n in range(0, 5001, 7)]))["star"]) == in_file_order
    students = pl.DataFrame({"student_number": ["210077"], "student_link": ["210077"], "email_key": [None]})
    accepted = pl.DataFrame({"cause": [unknown_cause("iready")], "from_id": ["77"], "to_id": ["210077"]})
    linked, _ = apply_accepted(tests, students, pl.DataFrame(), accepted)
    assert linked["iready_ela"]["student_link"].to_list() == ["210077", "2"]
    assert linked["iready_math"]["student_link"].to_list() == ["210077"]
    assert linked["star_reading"]["student_link"].to_list() == ["77", "1"]  # Star's 77 is not the one accepted


def test_an_accepted_identifier_that_is_now_a_students_own_links_its_rows_to_no_one():
    """A person accepted Star's 210078 (a slip) as 210077's; the district has since handed 210078 to a new student.
    Its rows are claimed twice (by the accepted link and by the new student's own number): neither gets them until a
    person reviews that link, and the error log counts them. Before, the new student's tests loaded under 210077."""
    from belleville_mtss.lib.students.identity import link_problems, link_students
    from belleville_mtss.lib.students.suggest import claimed_twice
    students = pl.DataFrame({"student_number": ["210077", "210078"], "student_link": ["210077", "210078"],
                             "email_key": [None, None]}, schema_overrides={"email_key": pl.Utf8})
    tests = {"star_reading": pl.DataFrame({"student_link": ["210077", "210078", "55"], "subject": ["SR"] * 3})}
    accepted = pl.DataFrame({"cause": [unknown_cause("star")] * 2, "from_id": ["210078", "55"],
                             "to_id": ["210077", "210078"]})
    linked, _ = apply_accepted(tests, students, pl.DataFrame(), accepted)
    assert linked["star_reading"]["student_link"].to_list() == ["210077", None, "210078"]  # 55 as accepted
    assert claimed_twice(tests, students, accepted) == {"star_reading": 1}
    users = pl.DataFrame(schema={"classlink_user_id": pl.Utf8, "email_key": pl.Utf8})
    identity = link_students(students, users, linked)
    identity.by_file["star_reading"]["accepted_link_now_a_student"] = 1  # as lib/pipeline.py link sets it
    records = link_problems(identity, "students.csv", {"star_reading": "SR.csv"},
                            {"star_reading": ("Star", "StudentIdentifier")})
    assert [(r.reason, r.row_count) for r in records] == [("accepted_link_now_a_student", 1)]
    assert records[0].message.startswith("SR.csv: 1 Star row(s) whose StudentIdentifier a person linked to another")


def test_an_accepted_classlink_user_another_student_links_to_by_address_stays_that_students():
    """Accepted for 210180 while 210294 was out of the roster, ClassLink user CL-259 went to 210180 at the next drop
    too, where 210294 is back and carries its address: the two shared the key, and neither linked."""
    from belleville_mtss.lib.students.identity import link_students
    students = pl.DataFrame({"student_number": ["210180", "210294", "210300"], "student_link": ["210180", "210294",
                             "210300"], "email_key": [None, "k294@x.example", None]})
    users = pl.DataFrame({"classlink_user_id": ["CL-259", "CL-300"], "email_key": ["k294@x.example", "k300@x.example"]})
    accepted = pl.DataFrame({"cause": [NO_CLASSLINK] * 2, "from_id": ["210180", "210300"], "to_id": ["CL-259",
                                                                                                    "CL-300"]})
    _, linked = apply_accepted({}, students, users, accepted)
    assert linked["email_key"].to_list() == [None, "k294@x.example", "k300@x.example"]  # the free user: applied
    identity = link_students(linked, users, {})
    assert identity.frame.select("student_number", "classlink_user_id").rows() == [
        ("210180", None), ("210294", "CL-259"), ("210300", "CL-300")]


def test_no_suggestion_is_offered_that_accepting_could_not_apply():
    """A student whose address two ClassLink users (or two students) share was offered those users at 1.0; accepted,
    one gave the student that same shared key, and nothing changed. A student with no link value (an empty state
    id) was offered as Star's counterpart; accepted, it linked nothing. Neither is offered now; a student whose
    address is its own, and a counterpart with a link value, still are."""
    from belleville_mtss.lib import pipeline
    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
    from belleville_mtss.lib.read.ingest import ValidatedFile
    from belleville_mtss.lib.students.identity import link_students
    from belleville_mtss.lib.students.suggest import powerschool_candidates
    students = pl.DataFrame({"student_number": ["128", "129", "500"], "student_link": ["128", "129", None],
                             "email": ["dora@x.org", "eli@x.org", None],
                             "email_key": ["dora@x.org", "eli@x.org", None]})
    users = pl.DataFrame({"classlink_user_id": ["CL4", "CL5", "CL6"], "tenant_name": ["T"] * 3,
                          "email_key": ["dora@x.org", "dora@x.org", "elii@x.org"]})  # CL6: eli's, mistyped
    identity = link_students(students, users, {})
    found = pipeline.suggestions(load_registry(PACKAGED_DISTRICTS_DIR)["belleville"], identity,
                                 ValidatedFile("powerschool_students", "students.csv", students),
                                 ValidatedFile("classlink_users", "ClassLinkUsers", users), [], lambda source: [])
    assert set(found["from_id"]) == {"129"}  # dora's address is two users': no pair could link her
    assert powerschool_candidates(students)["id"].to_list() == ["128", "129"]
    # a district that links ClassLink by sourcedId: a hand-made account with none was offered for eli (its address
    # is his); accepted, it could give him no sourcedId, and the review said "applied" on every drop
    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    by_sourced_id = entry.model_copy(update={"student_link": entry.student_link.model_copy(
        update={"classlink": "sourced_id"})})
    keyed = students.with_columns(pl.Series("sourced_id", ["s128", "s129", None]))
    accounts = pl.DataFrame({"classlink_user_id": ["CL7", "CL8"], "tenant_name": ["T"] * 2,
                             "email_key": ["eli@x.org", "dora@x.org"], "sourced_id": [None, "s999"]})
    identity = link_students(keyed, accounts, {}, on="sourced_id")
    found = pipeline.suggestions(by_sourced_id, identity, ValidatedFile("powerschool_students", "students.csv", keyed),
                                 ValidatedFile("classlink_users", "ClassLinkUsers", accounts), [], lambda source: [])
    assert found.select("from_id", "to_id").rows() == [("128", "CL8")]  # dora's, which carries a sourcedId


def test_a_birth_date_is_the_same_date_whatever_layout_each_side_writes_it_in():
    assert date_similarity("09/01/2018", "2018-09-01")[0] == 1.0
    assert date_similarity("09/01/2018", "2018-01-09")[0] == 0.0


# ---- two people deciding at once (issue 34 case 5) -------------------------------------------------------------

def _warehouse_at(backend_name: str, tmp_path, request, revision: str | None = None) -> sa.Engine:
    """An empty warehouse on the backend named, upgraded to `revision` (None: the head)."""
    from belleville_mtss.lib.load.migrations import upgrade
    url = f"sqlite:///{tmp_path}/w.db" if backend_name == "sqlite" else request.getfixturevalue("pg_database")
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.schema.CreateSchema("dm", if_not_exists=True))
    upgrade(engine, *([revision] if revision else []))
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def review_db(request, tmp_path):
    engine = _warehouse_at(request.param, tmp_path, request)
    review.record(engine, 107873, "belleville/2026-11-01", pl.DataFrame({
        "cause": [unknown_cause("star")] * 2, "subjects": ["SR"] * 2, "from_id": ["S-1"] * 2, "to_id": ["210001", "210002"],
        "score": [0.9, 0.85], "evidence": ["number one slip away"] * 2}))
    yield engine
    engine.dispose()


def _at_once(engine, monkeypatch, *decisions) -> list[str]:
    """Each decision in its own thread, every one past its reads before any writes (as two people at two terminals
    who both ran the command before either finished): what each said."""
    arrived = threading.Barrier(len(decisions), timeout=20)
    original = review._set

    def write_after_everyone_read(*args, **kwargs):
        try:
            arrived.wait()
        except threading.BrokenBarrierError:
            pass  # the other one wrote already: go on
        return original(*args, **kwargs)

    monkeypatch.setattr(review, "_set", write_after_everyone_read)
    said = [""] * len(decisions)

    def decide(i, suggestion, decision):
        try:
            review.decide(engine, suggestion, decision, f"person{i}", "checked the birth date")
            said[i] = "ok"
        except review.ReviewError as exc:
            said[i] = str(exc)

    threads = [threading.Thread(target=decide, args=(i, *d)) for i, d in enumerate(decisions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.setattr(review, "_set", original)
    return said


def test_a_decision_whose_reason_holds_an_address_is_refused_and_nothing_is_kept(review_db):
    # the reason is kept in dm.LinkDecisions: a student's address is never written there, as with a gate's acceptance
    first = review.listing(review_db, 107873)["SuggestionId"].to_list()[0]
    with pytest.raises(review.ReviewError, match="^a reason may not hold an email address"):
        review.decide(review_db, first, "accepted", "person", "same as ava.cruz@x.org in ClassLink")
    assert read_table(review_db, review.link_decisions).is_empty()
    assert review.decide(review_db, first, "accepted", "person", "same name and birth date")["decision"] == "accepted"


def test_suggestions_and_decisions_are_stamped_in_utc_on_a_machine_that_is_not(review_db, monkeypatch):
    """CreatedAt and DecidedAt were the machine's local time (`links accept` runs on a person's machine), beside
    every other time the warehouse holds in UTC."""
    import time
    monkeypatch.setenv("TZ", "America/Chicago")
    time.tzset()
    try:
        before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        review.record(review_db, 107873, "belleville/2026-11-02", pl.DataFrame({
            "cause": [unknown_cause("star")], "subjects": ["SM"], "from_id": ["S-9"], "to_id": ["210009"],
            "score": [0.9], "evidence": ["number one slip away"]}))
        first = review.listing(review_db, 107873)["SuggestionId"].to_list()[0]
        review.decide(review_db, first, "accepted", "person", "same name and birth date")
        stamps = (read_table(review_db, review.link_suggestions)["CreatedAt"].max(),
                  read_table(review_db, review.link_decisions)["DecidedAt"].max())
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert all(abs((at - before).total_seconds()) < 60 for at in stamps), (before, stamps)


@pytest.mark.parametrize("clashes", [1, 2])
def test_suggestions_recorded_by_two_runs_at_once_are_kept_once_and_no_key_is_quoted(pg_database, clashes):
    """Another run of the district commits the same pair between this one's read and its insert (forced here, once
    or at both tries). The clash on the pair's key made the step fail with the server's message, which quotes the
    key: a Star identifier and a student number, in the run's log. Now the pairs are read again and the rest kept;
    a second clash fails with a message of its own."""
    from belleville_mtss.lib.load.migrations import upgrade
    engine, other = make_engine(pg_database), make_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(sa.schema.CreateSchema("dm", if_not_exists=True))
    upgrade(engine)
    pairs = pl.DataFrame({"cause": [unknown_cause("star")] * 2, "subjects": ["SR"] * 2, "from_id": ["9210002"] * 2,
                          "to_id": ["210002", "210003"], "score": [0.9, 0.85],
                          "evidence": ["number one slip away"] * 2})
    forced = []

    def another_run_first(conn, cursor, statement, parameters, context, executemany):
        if conn.engine is engine and statement.lstrip().upper().startswith("INSERT INTO DM.\"LINKSUGGESTIONS\"") \
                and len(forced) < clashes:
            row = dict(parameters[len(forced)] if executemany else parameters)
            with other.begin() as theirs:
                theirs.exec_driver_sql(statement, row)
            forced.append(row["ToId"])

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", another_run_first)
    try:
        if clashes == 1:
            assert review.record(engine, 107873, "belleville/2026-11-01", pairs) == 1  # the other run kept one
        else:
            with pytest.raises(review.ReviewError) as refused:
                review.record(engine, 107873, "belleville/2026-11-01", pairs)
            assert str(refused.value) == ("link suggestions of this district were being recorded by another run at "
                                          "the same time, twice over; run the drop again")
            assert refused.value.__suppress_context__  # the clash's own message goes nowhere (Dagster honours it)
        assert sorted(review.listing(engine, 107873)["ToId"]) == ["210002", "210003"]  # each pair once
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", another_run_first)
        engine.dispose()
        other.dispose()


def test_an_accept_and_a_reject_at_once_record_exactly_one_decision(review_db, monkeypatch):
    ids = review.listing(review_db, 107873)["SuggestionId"].to_list()
    said = _at_once(review_db, monkeypatch, (ids[0], "accepted"), (ids[0], "rejected"))
    assert sorted(s == "ok" for s in said) == [False, True], said
    assert [s for s in said if s != "ok"][0].startswith(f"suggestion {ids[0]} was ")
    decisions = read_table(review_db, review.link_decisions)
    assert decisions.height == 1  # one decision stored, the one that said ok
    assert review.listing(review_db, 107873, None).filter(pl.col("SuggestionId") == ids[0])["Status"].to_list() == \
        decisions["Decision"].to_list()


def test_two_counterparts_accepted_at_once_for_one_star_student_leave_exactly_one(review_db, monkeypatch):
    ids = review.listing(review_db, 107873)["SuggestionId"].to_list()
    said = _at_once(review_db, monkeypatch, (ids[0], "accepted"), (ids[1], "accepted"))
    assert sorted(s == "ok" for s in said) == [False, True], said
    winner = ids[said.index("ok")]
    assert [s for s in said if s != "ok"] == [f"suggestion {winner} for the same student was accepted already: "
                                              "reject it first, or accept this one with --replace"]
    assert review.accepted(review_db, 107873)["to_id"].to_list() == [
        "210001" if winner == ids[0] else "210002"]  # one counterpart applies to the next drop
    loser = ids[1 - said.index("ok")]
    review.decide(review_db, loser, "accepted", "person3", "the other was wrong", replace=True)  # when asked
    listing = review.listing(review_db, 107873, None).sort("SuggestionId")
    assert dict(zip(listing["SuggestionId"], listing["Status"])) == {winner: "rejected", loser: "accepted"}


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_decisions_made_before_revision_0010_keep_their_meaning(backend_name, tmp_path, request):
    import datetime as dt
    from belleville_mtss.lib.load.migrations import upgrade
    from belleville_mtss.lib.load.warehouse import link_decisions, link_suggestions
    engine = _warehouse_at(backend_name, tmp_path, request, "0009")
    at = dt.datetime(2026, 11, 20)
    suggestions = sa.Table("LinkSuggestions", sa.MetaData(), *(sa.Column(c.name, c.type) for c in
                           link_suggestions.columns if c.name != "Status"), schema="dm")  # as at 0009
    with engine.begin() as conn:  # two accepted for S-1 (the old race), one accepted then rejected, one open
        conn.execute(suggestions.insert(), [
            {"SuggestionId": i, "AccountInfoId": 107873, "Cause": unknown_cause("star"), "FromId": f, "ToId": t,
             "Score": 0.9, "Evidence": "e", "DropId": "belleville/2026-11-01", "CreatedAt": at}
            for i, f, t in ((1, "S-1", "210001"), (2, "S-1", "210002"), (3, "S-3", "210003"), (4, "S-4", "210004"))])
        conn.execute(link_decisions.insert(), [
            {"SuggestionId": s, "Decision": d, "DecidedBy": "p", "Reason": "r", "DecidedAt": at}
            for s, d in ((1, "accepted"), (2, "accepted"), (3, "accepted"), (3, "rejected"))])
    upgrade(engine)
    listing = review.listing(engine, 107873, None).sort("SuggestionId")
    assert listing["Status"].to_list() == ["accepted", "conflict", "rejected", "open"]
    assert review.accepted(engine, 107873)["to_id"].to_list() == ["210001"]
    review.decide(engine, 2, "rejected", "p", "the first was right")  # a conflict is decided again
    assert review.listing(engine, 107873, None).sort("SuggestionId")["Status"][1] == "rejected"
    engine.dispose()


def test_a_staged_copy_gone_before_link_review_fails_that_step_with_an_error_row_and_loads_stand(settings,
                                                                                                  monkeypatch):
    # link_review reads the Star files' staged copies again, after the drop was read and loaded: one removed in
    # between (the purge, an operator) failed the step with an uncaught error and no error row.
    import belleville_mtss.defs.students as steps
    from .helpers import errors, warehouse_counts
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    prepare_drop(settings)
    real = steps.read_staged

    def removed_first(folder, file, key):
        (folder / file.name).unlink(missing_ok=True)
        return real(folder, file, key)

    monkeypatch.setattr(steps, "read_staged", removed_first)
    report = run_drop(settings)
    assert report.outcome == "failed" and set(report.failures) == {"link_review"}, report.failures
    assert "the staged copy of SR.csv is unusable" in report.failures["link_review"]
    logged = errors(settings).filter(pl.col("Reason") == "staged_copy_unusable")
    assert logged.select("Stage", "FileName").rows() == [("identity", "SR.csv")]
    assert warehouse_counts(settings)["results"] > 0  # the loads do not wait on the suggestions


def test_an_accepted_identifier_the_district_has_since_given_that_same_student_still_links_their_rows():
    """A person accepted Star's 7210002 (the district's typo) as student 210002's; the district then corrected the
    student's own identifier to 7210002. The accepted link and the student's own now agree: the rows are theirs.
    Before, they were taken for another student's and loaded for no one, on every later drop."""
    from belleville_mtss.lib.students.suggest import claimed_twice
    students = pl.DataFrame({"student_number": ["210002"], "student_link": ["7210002"], "email_key": [None]},
                            schema_overrides={"email_key": pl.Utf8})
    tests = {"star_reading": pl.DataFrame({"student_link": ["7210002", "7210002"], "subject": ["SR"] * 2})}
    accepted = pl.DataFrame({"cause": [unknown_cause("star")], "from_id": ["7210002"], "to_id": ["210002"]})
    linked, _ = apply_accepted(tests, students, pl.DataFrame(), accepted)
    assert linked["star_reading"]["student_link"].to_list() == ["7210002", "7210002"]
    assert claimed_twice(tests, students, accepted) == {}


def test_a_mistaken_accept_is_withdrawn_by_rejecting_it_and_another_counterpart_can_then_be_accepted(review_db):
    """An accepted suggestion could not be rejected ("accepted already"), and the refusal to accept another
    counterpart said "reject it first": a mistaken accept linked the identifier on every later drop and replay,
    with no way back but SQL."""
    first, second = review.listing(review_db, 107873)["SuggestionId"].to_list()
    review.decide(review_db, first, "accepted", "ana", "same name and birth date")
    with pytest.raises(review.ReviewError, match="reject it first"):
        review.decide(review_db, second, "accepted", "ana", "the other one")
    done = review.decide(review_db, first, "rejected", "ana", "the school says the birth dates differ")
    assert done["withdrawn"] and review.accepted(review_db, 107873).is_empty()
    review.decide(review_db, second, "accepted", "ana", "checked with the school")
    assert review.accepted(review_db, 107873)["to_id"].to_list() == ["210002"]
    with pytest.raises(review.ReviewError, match=f"suggestion {first} was rejected already"):
        review.decide(review_db, first, "rejected", "ana", "again")
    decisions = read_table(review_db, review.link_decisions).sort("DecisionId")
    assert decisions.select("SuggestionId", "Decision").rows() == [(first, "accepted"), (first, "rejected"),
                                                                    (second, "accepted")]


def test_one_classlink_user_is_accepted_for_one_student_only(review_db):
    """Offered for two students (m.anderson@ for Maya and for Mia), a ClassLink user was accepted for both: each
    accept said applied, and at the next drop the two shared the join key and neither linked."""
    review.record(review_db, 107873, "belleville/2026-11-01", pl.DataFrame({
        "cause": [NO_CLASSLINK] * 2, "subjects": [""] * 2, "from_id": ["210033", "210036"], "to_id": ["CL-9"] * 2,
        "score": [0.87, 0.91], "evidence": ["email: 87% alike", "email: 91% alike"]}))
    listing = review.listing(review_db, 107873).filter(pl.col("Cause") == NO_CLASSLINK).sort("FromId")
    maya, mia = listing["SuggestionId"].to_list()
    review.decide(review_db, mia, "accepted", "ana", "the school confirmed")
    with pytest.raises(review.ReviewError, match=f"suggestion {mia} gave this ClassLink user to another student"):
        review.decide(review_db, maya, "accepted", "ana", "looks alike too")
    review.decide(review_db, mia, "rejected", "ana", "it was Maya's after all")  # withdrawn: then the other may
    review.decide(review_db, maya, "accepted", "ana", "the school confirmed Maya")
    accepted = review.accepted(review_db, 107873)
    assert accepted.filter(pl.col("cause") == NO_CLASSLINK).select("from_id", "to_id").rows() == [("210033", "CL-9")]
    # a user a student of the current roster is linked to by address is refused at the accept, without saying whom
    from belleville_mtss.lib.load.warehouse import student_roster
    review.record(review_db, 107873, "belleville/2026-11-02", pl.DataFrame({
        "cause": [NO_CLASSLINK], "subjects": [""], "from_id": ["210040"], "to_id": ["CL-7"], "score": [0.9],
        "evidence": ["email: 90% alike"]}))
    with review_db.begin() as conn:
        conn.execute(student_roster.insert().values(
            AccountInfoId=107873, StudentNumber="210041", ClassLinkUserId="CL-7", StarTestCount=0,
            DropId="belleville/2026-11-02", LoadedAt=dt.datetime(2026, 11, 2), IsCurrent=True))
    late = review.listing(review_db, 107873).filter(pl.col("ToId") == "CL-7")["SuggestionId"][0]
    with pytest.raises(review.ReviewError, match="linked to this ClassLink user by address already") as refused:
        review.decide(review_db, late, "accepted", "ana", "looks alike")
    assert "210041" not in str(refused.value)
    # a student linked to a user by a pair a person accepted does not hold it once withdrawn: a mistake corrected
    review.record(review_db, 107873, "belleville/2026-11-02", pl.DataFrame({
        "cause": [NO_CLASSLINK] * 2, "subjects": [""] * 2, "from_id": ["210050", "210051"], "to_id": ["CL-5"] * 2,
        "score": [0.9, 0.88], "evidence": ["email: 90% alike", "email: 88% alike"]}))
    wrong, right = review.listing(review_db, 107873).filter(pl.col("ToId") == "CL-5").sort("FromId")["SuggestionId"]
    review.decide(review_db, wrong, "accepted", "ana", "looks alike")
    with review_db.begin() as conn:  # the next drop linked 210050 to CL-5 by that pair
        conn.execute(student_roster.insert().values(
            AccountInfoId=107873, StudentNumber="210050", ClassLinkUserId="CL-5", StarTestCount=0,
            DropId="belleville/2026-11-03", LoadedAt=dt.datetime(2026, 11, 3), IsCurrent=True))
    review.decide(review_db, wrong, "rejected", "ana", "the wrong child")
    review.decide(review_db, right, "accepted", "ana", "the school confirmed")


def test_one_classlink_user_accepted_at_once_for_two_students_is_given_to_one(review_db, monkeypatch):
    """Two people accepting one ClassLink user for two students at once both passed the check (a read): the two
    students then shared the join key, and neither linked. A unique index holds one student per user."""
    review.record(review_db, 107873, "belleville/2026-11-01", pl.DataFrame({
        "cause": [NO_CLASSLINK] * 2, "subjects": [""] * 2, "from_id": ["210033", "210036"], "to_id": ["CL-9"] * 2,
        "score": [0.87, 0.91], "evidence": ["email: 87% alike", "email: 91% alike"]}))
    ids = review.listing(review_db, 107873).filter(pl.col("Cause") == NO_CLASSLINK).sort("FromId")["SuggestionId"]
    said = _at_once(review_db, monkeypatch, (ids[0], "accepted"), (ids[1], "accepted"))
    assert sorted(s == "ok" for s in said) == [False, True], said
    winner = ids[said.index("ok")]
    assert [s for s in said if s != "ok"] == [f"suggestion {winner} gave this ClassLink user to another student "
                                              "already: reject it first if this student is the one"]
    accepted = review.accepted(review_db, 107873).filter(pl.col("cause") == NO_CLASSLINK)
    assert accepted.height == 1 and accepted["to_id"].to_list() == ["CL-9"]


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_one_classlink_user_accepted_for_two_students_before_revision_0012_is_kept_by_the_first(backend_name, tmp_path,
                                                                                               request):
    import datetime as dt
    from belleville_mtss.lib.load.migrations import upgrade
    from belleville_mtss.lib.load.warehouse import link_decisions, link_suggestions
    engine = _warehouse_at(backend_name, tmp_path, request, "0011")
    at = dt.datetime(2026, 11, 20)
    with engine.begin() as conn:  # CL-9 accepted for two students (the race), CL-8 for one, a Star pair apart
        conn.execute(link_suggestions.insert(), [
            {"SuggestionId": i, "AccountInfoId": 107873, "Cause": c, "FromId": f, "ToId": t, "Score": 0.9,
             "Evidence": "e", "DropId": "belleville/2026-11-01", "CreatedAt": at, "Status": "accepted"}
            for i, c, f, t in ((1, NO_CLASSLINK, "210033", "CL-9"), (2, NO_CLASSLINK, "210036", "CL-9"),
                               (3, NO_CLASSLINK, "210040", "CL-8"), (4, unknown_cause("star"), "S-1", "CL-9"))])
        conn.execute(link_decisions.insert(), [{"SuggestionId": s, "Decision": "accepted", "DecidedBy": "p",
                                                "Reason": "r", "DecidedAt": at} for s in (1, 2, 3, 4)])
    upgrade(engine)
    listing = review.listing(engine, 107873, None).sort("SuggestionId")
    assert listing["Status"].to_list() == ["accepted", "conflict", "accepted", "accepted"]
    review.decide(engine, 2, "rejected", "p", "the first was right")  # a conflict is decided again
    with pytest.raises(review.ReviewError, match="suggestion 1 gave this ClassLink user to another student"):
        review.decide(engine, 2, "accepted", "p", "no, this one")
    engine.dispose()


def test_a_rekey_takes_the_districts_link_decisions_to_its_new_account_info_id(review_db):
    """`warehouse rekey` moved the roster and results but left the suggestions under the old id, where no later
    drop looks: the students a person had linked lost their tests at the next load, and every decision came back
    as an open suggestion."""
    from belleville_mtss.lib.load.warehouse import rekey
    first, second = review.listing(review_db, 107873)["SuggestionId"].to_list()
    review.decide(review_db, first, "accepted", "ana", "same name and birth date")
    review.decide(review_db, second, "rejected", "bo", "another child")
    review.record(review_db, 107999, "belleville/2026-11-08", pl.DataFrame({  # the new id's own run suggested one
        "cause": [unknown_cause("star")], "subjects": ["SR"], "from_id": ["S-1"], "to_id": ["210002"],
        "score": [0.85], "evidence": ["number one slip away"]}))
    assert rekey(review_db, "belleville", 107873, 107999)["dm.LinkSuggestions"] == 2
    assert review.accepted(review_db, 107999).rows() == [(unknown_cause("star"), "S-1", "210001")]
    moved = review.listing(review_db, 107999, None).sort("ToId")
    assert moved.select("ToId", "Status", "DecidedBy", "Reason").rows() == [
        ("210001", "accepted", "ana", "same name and birth date"), ("210002", "rejected", "bo", "another child")]
    assert rekey(review_db, "belleville", 107873, 107999)["dm.LinkSuggestions"] == 0  # once

    # another district's suggestions under a mistyped --from are not belleville's: never copied, and a --from
    # under which the district holds nothing is refused (it copied pecan-valley's accepted links into belleville's)
    review.record(review_db, 666001, "pecan-valley/2026-11-08", pl.DataFrame({
        "cause": [unknown_cause("star")], "subjects": ["SR"], "from_id": ["P-1"], "to_id": ["950001"],
        "score": [0.9], "evidence": ["number one slip away"]}))
    (theirs,) = review.listing(review_db, 666001)["SuggestionId"].to_list()
    review.decide(review_db, theirs, "accepted", "cy", "checked")
    with pytest.raises(ValueError, match="no row of belleville is under AccountInfoId 666001: check --from"):
        rekey(review_db, "belleville", 666001, 107999)
    assert review.accepted(review_db, 107999).rows() == [(unknown_cause("star"), "S-1", "210001")]


def test_a_rekey_refuses_accepted_links_that_disagree_under_the_two_ids(review_db):
    from belleville_mtss.lib.load.warehouse import rekey
    first, _ = review.listing(review_db, 107873)["SuggestionId"].to_list()
    review.decide(review_db, first, "accepted", "ana", "same name and birth date")  # S-1 is 210001 under 107873
    review.record(review_db, 107999, "belleville/2026-11-08", pl.DataFrame({
        "cause": [unknown_cause("star")], "subjects": ["SR"], "from_id": ["S-1"], "to_id": ["210002"],
        "score": [0.85], "evidence": ["number one slip away"]}))
    (other,) = review.listing(review_db, 107999)["SuggestionId"].to_list()
    review.decide(review_db, other, "accepted", "bo", "checked")  # and 210002 under 107999
    with pytest.raises(ValueError, match="give an identifier two different students"):
        rekey(review_db, "belleville", 107873, 107999)
    assert review.accepted(review_db, 107999)["to_id"].to_list() == ["210002"]  # nothing half-done


def test_a_rekey_refuses_a_classlink_user_accepted_for_two_students_under_the_two_ids(review_db):
    """One user accepted for 210033 under the old id and for 210036 under the new: the copy broke migration 0012's
    index with an uncaught IntegrityError, and the district stayed blocked with no word of which pair to reject."""
    from belleville_mtss.lib.load.warehouse import rekey
    for account, student in ((107873, "210033"), (107999, "210036")):
        review.record(review_db, account, "belleville/2026-11-08", pl.DataFrame({
            "cause": [NO_CLASSLINK], "subjects": [""], "from_id": [student], "to_id": ["CL-9"], "score": [0.9],
            "evidence": ["email: 90% alike"]}))
        pair = review.listing(review_db, account).filter(pl.col("Cause") == NO_CLASSLINK)["SuggestionId"][0]
        review.decide(review_db, pair, "accepted", "ana", "checked")
    with pytest.raises(ValueError, match="or a ClassLink user to two students"):
        rekey(review_db, "belleville", 107873, 107999)
    assert review.accepted(review_db, 107999).filter(pl.col("cause") == NO_CLASSLINK)["from_id"].to_list() == [
        "210036"]  # nothing half-done
