"""Unmatched students reviewed by a person: a drop with known truth gives the expected suggestions; an accepted link
is applied by a replay and by the next drop (the results load under the right student number); a rejected pair
never comes back; nothing links without a decision. Real SQLite databases, the CLI as a person runs it."""
import shutil

import polars as pl
import sqlalchemy as sa

from belleville_mtss.cli import main
from belleville_mtss.lib.load.warehouse import assessment_results, make_engine, read_table
from belleville_mtss.lib.students import review
from belleville_mtss.lib.students.suggest import UNKNOWN_STAR, name_similarity, number_similarity, suggest
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
    assert (open_["Cause"] == UNKNOWN_STAR).all() and (open_["Score"] >= 0.8).all()
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
    found = suggest(star, twins, UNKNOWN_STAR)
    assert found.rows() == [(UNKNOWN_STAR, "", "1012", "1002", found["score"][0], found["evidence"][0])]
    assert number_similarity("0012", "12")[0] == 1.0 and number_similarity("1234", "1243")[0] == 0.8
    assert name_similarity("Ava", "Cruz", "Mia", "Cruz")[0] < 0.8
