"""`run --dry-run`: every stage and check of a drop, and what it would load, on real SQLite and PostgreSQL; every
warehouse table (rows, audit, error log) byte-identical afterwards, and no Dagster run made."""
import sqlalchemy as sa

from belleville_mtss.cli import main
from belleville_mtss.lib.load.warehouse import assessment_results, make_engine
from belleville_mtss.run import instance_for, run_drop
from .conftest import one_backend
from .helpers import SMALL, prepare_drop, set_column


def tables(settings) -> dict[str, list[tuple]]:
    """Every table of the warehouse, every row, in a fixed order (values as text: byte for byte)."""
    engine = make_engine(settings.warehouse_url)
    try:
        meta = sa.MetaData()
        schemas = [None] if engine.dialect.name == "sqlite" else ["dm"]
        for schema in schemas:
            meta.reflect(engine, schema=schema)
        with engine.connect() as conn:
            return {t.fullname: sorted(tuple(map(repr, row)) for row in conn.execute(sa.select(t)))
                    for t in meta.sorted_tables}
    finally:
        engine.dispose()


def dry(settings, monkeypatch, capsys, key: str) -> tuple[int, list[str]]:
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    for name in ("MTSS_WAREHOUSE_URL", "MTSS_PROD_DB_URL"):
        monkeypatch.setenv(name, getattr(settings, name.removeprefix("MTSS_").lower()))
    code = main(["run", key, "--dry-run"])
    return code, capsys.readouterr().out.splitlines()


def test_a_dry_run_prints_what_would_load_and_changes_nothing(backend, monkeypatch, capsys):
    settings = backend
    drop = prepare_drop(settings)
    assert run_drop(settings).outcome == "loaded"
    (drop.parent / "2026-11-08").mkdir()
    for f in drop.iterdir():  # a week later: the same students, one grade up for the first 30
        (drop.parent / "2026-11-08" / f.name).write_bytes(f.read_bytes())
    set_column(drop.parent / "2026-11-08" / "students.csv", "STUDENTS.GRADE_LEVEL", "5", slice(0, 30))
    before = tables(settings)
    runs = len(instance_for(settings).get_runs())
    code, lines = dry(settings, monkeypatch, capsys, "belleville/2026-11-08")
    assert code == 0, lines
    assert f"powerschool_students         {SMALL.students:,} rows" in "\n".join(lines)
    assert any(line.startswith("  passed  drop_is_newest") for line in lines)
    assert any(line.startswith("Links: ") for line in lines)
    assert tables(settings) == before  # roster, results, audit, error log: byte for byte
    assert len(instance_for(settings).get_runs()) == runs  # no Dagster run either
    # what it said it would load is what the real run loads
    report = run_drop(settings, "belleville/2026-11-08")
    assert report.outcome == "loaded"
    assert lines[-1] == (f"DRY RUN: belleville/2026-11-08: would load {SMALL.students:,} roster rows and "
                         f"{report.written['dm_assessment_results']:,} results; nothing written")


def test_a_dry_run_of_an_older_drop_shows_the_failed_check_and_writes_no_error_row(backend, monkeypatch, capsys):
    settings = backend
    drop = prepare_drop(settings)
    newer = drop.parent / "2026-11-15"
    newer.mkdir()
    for f in drop.iterdir():
        (newer / f.name).write_bytes(f.read_bytes())
    assert run_drop(settings, "belleville/2026-11-15").outcome == "loaded"
    before = tables(settings)
    code, lines = dry(settings, monkeypatch, capsys, "belleville/2026-11-01")
    assert tables(settings) == before
    assert code == 4 == run_drop(settings, "belleville/2026-11-01").exit_code  # superseded, as the run says
    assert any(line.startswith("  FAILED  drop_is_newest") for line in lines), lines
    assert "Would write: dm.StudentRoster 0 rows, dm.AssessmentResults 0 rows" in lines  # it said the rows before
    assert lines[-1].startswith("DRY RUN: belleville/2026-11-01: would load nothing: drop_is_newest: ")


def _copy_drop(drop, name: str):
    later = drop.parent / name
    later.mkdir()
    for f in drop.iterdir():
        (later / f.name).write_bytes(f.read_bytes())
    return later


@one_backend
def test_a_dry_run_and_the_run_agree_on_rows_held_under_another_account_info_id(backend, monkeypatch, capsys):
    from belleville_mtss.lib.load.warehouse import student_roster
    settings = backend
    drop = prepare_drop(settings)
    assert run_drop(settings).outcome == "loaded"
    engine = make_engine(settings.warehouse_url)
    with engine.begin() as conn:  # the registry's account_info_id corrected after that load
        for table in (student_roster, assessment_results):
            conn.execute(table.update().values(AccountInfoId=107000))
    engine.dispose()
    _copy_drop(drop, "2026-11-08")
    code, lines = dry(settings, monkeypatch, capsys, "belleville/2026-11-08")
    assert code == 1 and lines[-1].startswith(
        "DRY RUN: belleville/2026-11-08: would load nothing: account_info_id_unchanged: "), lines[-1]
    report = run_drop(settings, "belleville/2026-11-08")
    assert report.outcome == "blocked" and "account_info_id_unchanged" in report.verdict()


@one_backend
def test_a_dry_run_and_the_run_agree_on_a_student_linked_only_by_a_persons_decision(backend, monkeypatch, capsys):
    import polars as pl
    from belleville_mtss.lib.students import review
    from belleville_mtss.lib.students.suggest import unknown_cause
    settings = backend
    drop = prepare_drop(settings)
    sr = pl.read_csv(drop / "SR.csv", infer_schema=False)
    student = sr["StudentIdentifier"][0]
    tests = sr.filter(pl.col("StudentIdentifier") == student).height
    sr.with_columns(pl.when(pl.col("StudentIdentifier") == student).then(pl.lit("S-0001"))
                    .otherwise(pl.col("StudentIdentifier")).alias("StudentIdentifier")).write_csv(drop / "SR.csv")
    engine = make_engine(settings.warehouse_url)
    review.record(engine, 107873, "belleville/2026-10-01", pl.DataFrame({
        "cause": [unknown_cause("star")], "subjects": ["SR"], "from_id": ["S-0001"], "to_id": [student], "score": [0.9],
        "evidence": ["name and birth date agree"]}))
    [suggestion] = review.listing(engine, 107873)["SuggestionId"].to_list()
    review.decide(engine, suggestion, "accepted", "tester", "the district confirmed the number")
    engine.dispose()
    code, lines = dry(settings, monkeypatch, capsys, "belleville/2026-11-01")
    assert code == 0, lines
    report = run_drop(settings)
    assert report.outcome == "loaded"
    assert lines[-1] == (f"DRY RUN: belleville/2026-11-01: would load {SMALL.students:,} roster rows and "
                         f"{report.written['dm_assessment_results']:,} results; nothing written")
    engine = make_engine(settings.warehouse_url)
    a = assessment_results.c
    with engine.connect() as conn:  # the accepted link carried the student's tests, in both
        held = conn.execute(sa.select(sa.func.count()).where((a.StudentNumber == student) & (a.Subject == "SR"))
                            ).scalar()
    engine.dispose()
    assert held == tests


def test_a_dry_run_keeps_no_clear_text_on_disk_only_encrypted_staged_copies(settings, monkeypatch, capsys,
                                                                             tmp_path):
    import tempfile

    from belleville_mtss.lib.receive.vault import MAGIC

    drop = prepare_drop(settings)
    email = (drop / "students.csv").read_text().splitlines()[1].split(",")[-1].strip().encode()
    seen: list[tuple[str, bytes]] = []
    cleanup = tempfile.TemporaryDirectory.cleanup

    def look_then_clean(self):  # every file the dry run's temporary folder held, just before it goes
        seen.extend((p.relative_to(self.name).as_posix(), p.read_bytes())
                    for p in sorted(__import__("pathlib").Path(self.name).rglob("*")) if p.is_file())
        cleanup(self)

    monkeypatch.setattr(tempfile.TemporaryDirectory, "cleanup", look_then_clean)
    code, out = dry(settings, monkeypatch, capsys, "belleville/2026-11-01")
    assert code == 0, out
    data = [(name, body) for name, body in seen if not name.endswith(("manifest.json", ".lock"))]
    assert {name.rsplit("/", 1)[-1] for name, _ in data} >= {"students.csv", "SR.csv", "SM.csv", "SEL.csv"}
    for name, body in data:  # the staged copies, encrypted; nothing decrypted beside them
        assert name.startswith("staging/") and body.startswith(MAGIC) and email not in body, name


def test_a_dry_run_honours_a_recorded_acceptance_the_row_limit_and_an_unreachable_server_as_the_run_does(
        settings, monkeypatch, capsys):
    """The dry run said `blocked` for a drop version a person had accepted, which the run then loaded; it read
    files past MTSS_MAX_FILE_ROWS that the run halts; and with the drop server down it failed with a traceback
    where the run replays the staged copy."""
    import dataclasses

    import polars as pl
    from belleville_mtss.lib.receive.drops import Limits
    from .helpers import errors
    drop = prepare_drop(settings)
    assert run_drop(settings).outcome == "loaded"
    later = _copy_drop(drop, "2026-11-08")
    roster = pl.read_csv(later / "students.csv", infer_schema=False)
    roster.head(roster.height // 2).write_csv(later / "students.csv")  # half the students: roster_size fails
    key = "belleville/2026-11-08"
    code, lines = dry(settings, monkeypatch, capsys, key)
    assert code == 1 and any(line.startswith("  FAILED  roster_size") for line in lines), lines
    accept = {"mtss/accept": "roster_size,student_number_churn,assessment_link_rate,results_shrink",
              "mtss/accept_reason": "the district split", "mtss/accepted_by": "tester"}
    accepted = run_drop(settings, key, tags=accept)
    assert accepted.outcome == "loaded", accepted.render()
    code, lines = dry(settings, monkeypatch, capsys, key)
    assert code == 0, lines
    assert any(line.startswith("  passed  assessment_link_rate: accepted by tester") for line in lines), lines

    monkeypatch.setenv("MTSS_MAX_FILE_ROWS", "200")  # fewer than SR.csv's and SM.csv's rows: the run halts them
    code, lines = dry(settings, monkeypatch, capsys, key)
    report = run_drop(dataclasses.replace(settings, limits=Limits(max_file_rows=200)), key, tags=accept)
    assert code == report.exit_code == 3 and any("SR.csv: more than 200 rows" in line for line in lines), lines
    monkeypatch.delenv("MTSS_MAX_FILE_ROWS")

    monkeypatch.setenv("MTSS_SFTP_HOST", "127.0.0.1")  # a drop server nobody answers on: the staged copy is read
    monkeypatch.setenv("MTSS_SFTP_PORT", "1")
    monkeypatch.setenv("MTSS_SFTP_USER", "nobody")
    import paramiko
    # a key never offered (no one answers), in files that exist, as the SFTP settings require
    paramiko.RSAKey.generate(1024).write_private_key_file(str(settings.home / "id_rsa"))
    (settings.home / "known_hosts").write_text("")
    monkeypatch.setenv("MTSS_SFTP_KEY_PATH", str(settings.home / "id_rsa"))
    monkeypatch.setenv("MTSS_SFTP_KNOWN_HOSTS", str(settings.home / "known_hosts"))
    code, lines = dry(settings, monkeypatch, capsys, key)
    assert code == 0 and lines[0].startswith(f"Drop {key}, version ") and "its staged copy" in lines[0], lines

    before = errors(settings).height  # a refused drop key, dry: no error row either
    assert main(["run", "belleville", "--dry-run"]) == 2 and errors(settings).height == before
