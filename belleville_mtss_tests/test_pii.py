"""FERPA: run drops full of known student values (and of bad rows, so every error path speaks) and scan every
log line, every metadata entry, every check result and the error table for those values."""
import logging
import re
from dataclasses import replace

import pytest
import polars as pl

from belleville_mtss.lib.load.warehouse import (ingestion_errors, ingestion_files, link_suggestions, make_engine,
                                               read_table)
from belleville_mtss.run import run_drop
from .helpers import SMALL, prepare_drop, set_column

TOKEN = re.compile(r"[A-Za-z0-9@._'-]+")


def _pii(drop) -> dict[str, set[str]]:
    ps = pl.read_csv(drop / "students.csv", infer_schema=False)
    first, last = ps["STUDENTS.FIRST_NAME"].to_list(), ps["STUDENTS.LAST_NAME"].to_list()
    return {
        "student numbers": set(ps["STUDENTS.STUDENT_NUMBER"]),
        "emails": {e.strip().lower() for e in ps["U_STUDENTSUSERFIELDS.custom_student_email"]},
        "birth dates": set(ps["STUDENTS.DOB"]),
        "names": {f"{f} {l}" for f, l in zip(first, last)} | {f"{l}, {f}" for f, l in zip(first, last)},
        "last names": set(last),
    }


def _leaks(text: str, pii: dict[str, set[str]]) -> list[str]:
    found = []
    tokens = set(TOKEN.findall(text))
    lowered = text.lower()
    found += [f"student number {t}" for t in tokens & pii["student numbers"]]
    found += [f"last name {t}" for t in tokens & pii["last names"]]
    found += [f"email {e}" for e in pii["emails"] if e in lowered]
    found += [f"birth date {d}" for d in pii["birth dates"] if d in text]
    found += [f"name {n}" for n in pii["names"] if n in text]
    return found


def _make_trouble(drop) -> None:
    """Rows and files that take every error path: duplicates, shared emails, lost zeros, bad dates, a cut file."""
    ps = pl.read_csv(drop / "students.csv", infer_schema=False)
    nums = ps["STUDENTS.STUDENT_NUMBER"].to_list()
    emails = ps["U_STUDENTSUSERFIELDS.custom_student_email"].to_list()
    nums[1] = nums[0]  # duplicate student number
    emails[3] = emails[2]  # two students, one email
    tested = pl.read_csv(drop / "SR.csv", infer_schema=False)["StudentIdentifier"][20]
    nums[nums.index(tested)] = "00" + tested  # leading zeros lost on the Star side
    ps.with_columns(pl.Series("STUDENTS.STUDENT_NUMBER", nums),
                    pl.Series("U_STUDENTSUSERFIELDS.custom_student_email", emails)).write_csv(drop / "students.csv")
    set_column(drop / "SR.csv", "CompletedDate", "00:00.0", rows=slice(0, 4))
    set_column(drop / "SR.csv", "ScaledScore", "lots", rows=slice(4, 6))
    set_column(drop / "SR.csv", "StudentIdentifier", "", rows=slice(6, 7))
    sel = drop / "SEL.csv"
    sel.write_bytes(sel.read_bytes()[:-200])  # cut short


def test_no_student_pii_in_logs_metadata_checks_or_error_table(settings, caplog, capsys, new_instance):
    good = prepare_drop(settings, replace(SMALL, drop_name="troubled"))
    _make_trouble(good)
    foreign = prepare_drop(settings, replace(SMALL, drop_name="foreign"))
    set_column(foreign / "SM.csv", "DistrictName", "Nutley Public Schools")
    # a student's name, and another's email, in one row's DistrictName each: the error rows of these values were
    # written with them quoted, and the email's was refused, its ValueError failing the run with no district row
    ps = pl.read_csv(foreign / "students.csv", infer_schema=False)
    set_column(foreign / "SR.csv", "DistrictName", f"{ps['STUDENTS.FIRST_NAME'][0]} {ps['STUDENTS.LAST_NAME'][0]}",
               rows=slice(0, 1))
    set_column(foreign / "SR.csv", "DistrictName", ps["U_STUDENTSUSERFIELDS.custom_student_email"][1],
               rows=slice(1, 2))
    pii = {kind: values | _pii(foreign)[kind] for kind, values in _pii(good).items()}
    assert _leaks((good / "students.csv").read_text(), pii)  # the scanner does find what it looks for

    texts = []
    caplog.set_level(logging.DEBUG)
    with new_instance() as instance:
        for key in ("belleville/troubled", "belleville/foreign"):
            run_drop(settings, key, instance=instance, log_level="DEBUG")
        for run in instance.get_runs():
            for event in instance.all_logs(run.run_id):
                texts.append(event.message or "")
                texts.append(repr(event.dagster_event) if event.dagster_event else "")
                texts.append(repr(event.error_info) if getattr(event, "error_info", None) else "")
    engine = make_engine(settings.warehouse_url)
    errors = read_table(engine, ingestion_errors)
    files = read_table(engine, ingestion_files)
    suggested = read_table(engine, link_suggestions)
    engine.dispose()
    assert suggested.height > 0  # the drops had unlinked students: their suggestions were made, and scanned for
    reasons = set(errors["Reason"])
    assert {"row_rejected", "ambiguous_email", "probable_leading_zeros", "truncated", "district_mismatch"} <= reasons
    strays = errors.filter(pl.col("Message").str.contains("<a value of 1 row(s), not shown>", literal=True))
    assert strays.height == 2 and set(strays["FileName"]) == {"SR.csv"}  # logged, as counts
    texts += [repr(r) for r in errors.iter_rows()] + [repr(r) for r in files.iter_rows()]
    texts += [r.getMessage() for r in caplog.records]
    out = capsys.readouterr()
    texts += [out.out, out.err]
    leaks = sorted({leak for t in texts for leak in _leaks(t, pii)})
    assert leaks == [], leaks[:20]
    assert sum(len(t) for t in texts) > 50_000  # there was a lot to scan


@pytest.mark.persistent_instance  # the event log scanned is the one the CLI's runs write
def test_a_unique_key_collision_on_postgresql_quotes_no_key_in_the_event_log_or_the_cli(tmp_path, pg_database,
                                                                                      monkeypatch, capsys):
    """A unique index a DBA added (one test a student and subject, say) that the load's insert collides with:
    PostgreSQL's DETAIL quotes the key, a student number among it. (Until 8fabfbd a test held under another school
    year collided with the key itself; a load now takes such tests from their year.)"""
    import sqlalchemy as sa
    from belleville_mtss.cli import main
    from belleville_mtss.lib.load.warehouse import assessment_results
    from belleville_mtss.run import instance_for
    from .conftest import make_settings
    settings = make_settings(tmp_path / "home", MTSS_WAREHOUSE_URL=pg_database, MTSS_PROD_DB_URL=pg_database)
    drop = prepare_drop(settings)
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    monkeypatch.setenv("MTSS_WAREHOUSE_URL", pg_database)
    monkeypatch.setenv("MTSS_PROD_DB_URL", pg_database)
    assert main(["run", "belleville/2026-11-01"]) == 0
    capsys.readouterr()
    engine = make_engine(pg_database)
    c = assessment_results.c
    with engine.begin() as conn:
        key, number = conn.execute(sa.select(c.TestKey, c.StudentNumber).where(c.Subject == "SR").limit(1)).one()
        conn.execute(assessment_results.delete())  # the index is made on an empty table; the reload collides
        conn.execute(sa.text('CREATE UNIQUE INDEX "UX_OneTestEach" ON dm."AssessmentResults" '
                             '("AccountInfoId", "Subject", "StudentNumber")'))
    engine.dispose()
    assert main(["run", "belleville/2026-11-01"]) == 1
    out = capsys.readouterr()
    assert "loading the drop failed and was rolled back (UniqueViolation)" in out.out, out.out
    texts = [out.out, out.err]
    with instance_for(settings) as instance:
        for run in instance.get_runs():
            for event in instance.all_logs(run.run_id):
                texts += [event.message or "", repr(event.dagster_event), repr(getattr(event, "error_info", None))]
    assert any("UniqueViolation" in t for t in texts)  # the collision is in the event log, without its key
    pii = _pii(drop)
    assert number in pii["student numbers"]
    leaks = sorted({leak for t in texts for leak in _leaks(t, pii)} | {f"TestKey {key}" for t in texts if key in t})
    assert leaks == [], leaks[:20]


def test_an_address_in_an_error_message_is_written_as_account_and_the_row_kept(tmp_path):
    """A registry entry whose drop_folder held an '@' (`../it@district.org`): the error table refused the message
    with a ValueError, and the sensor's tick failed for every district, its row unwritten."""
    from belleville_mtss.lib.load.errors import ErrorRecord, record_errors
    from belleville_mtss.lib.sample import migrate_sample_warehouse
    engine = make_engine(f"sqlite:///{tmp_path}/w.db")
    migrate_sample_warehouse(engine)
    record_errors(engine, [ErrorRecord("registry", "registry_entry", "other.yaml: drop_folder: '../it@district.org' "
                                       "is outside the drop root", "other.yaml")],
                  district_id=None, drop_id="other/", run_id=None)
    (message,) = read_table(engine, ingestion_errors)["Message"].to_list()
    engine.dispose()
    assert message == "other.yaml: drop_folder: '../<account>' is outside the drop root"


def test_a_message_is_cut_to_what_sql_servers_nvarchar_holds_counting_a_character_above_ffff_twice(tmp_path):
    """`Message[:1000]` counted characters; NVARCHAR(1000) counts UTF-16 units: a long message of such characters
    (a file name with an emoji, say) was longer than SQL Server's column, and its row refused."""
    from belleville_mtss.lib.load.errors import ErrorRecord, record_errors
    from belleville_mtss.lib.sample import migrate_sample_warehouse
    engine = make_engine(f"sqlite:///{tmp_path}/w.db")
    migrate_sample_warehouse(engine)
    record_errors(engine, [ErrorRecord("ingest", "encoding", "x" + "\N{GRINNING FACE}" * 600)], district_id=None,
                  drop_id="belleville/x", run_id=None)
    (message,) = read_table(engine, ingestion_errors)["Message"].to_list()
    engine.dispose()
    assert message == "x" + "\N{GRINNING FACE}" * 499  # 999 units: the next one would take two more


def test_a_gate_acceptances_reason_is_cut_as_nvarchar_counts_too(tmp_path):
    """`Reason[:1000]` in gates.accept counted characters: a reason of 1,000 with one emoji is 1,001 UTF-16 units,
    which SQL Server refuses, failing the load a person was letting through."""
    from belleville_mtss.lib.load.warehouse import gate_acceptances
    from belleville_mtss.lib.sample import migrate_sample_warehouse
    from belleville_mtss.lib.students.gates import accept
    engine = make_engine(f"sqlite:///{tmp_path}/w.db")
    migrate_sample_warehouse(engine)
    accept(engine, "belleville/x", "v1", "min_link_rate", "\N{GRINNING FACE}" + "r" * 1200, "Ms. Rivera" * 30,
           "\N{GRINNING FACE}" * 300, None)
    row = read_table(engine, gate_acceptances).row(0, named=True)
    engine.dispose()
    units = {c: len(row[c].encode("utf-16-le")) // 2 for c in ("Reason", "AcceptedBy", "Figure")}
    assert units == {"Reason": 1000, "AcceptedBy": 200, "Figure": 500}
    assert row["Reason"] == "\N{GRINNING FACE}" + "r" * 998
