"""A district that sends a OneRoster export as its roster, with Star files, as a person brings it in: `districts
onboard` on its sample drop, sign-off, then runs, on SQLite (OneRoster 1.1) and PostgreSQL (1.2); a delta export, a
file the manifest lists but the drop lacks, and a drop that holds a PowerSchool export too, refused through a run.
Every expected figure is computed from the files with the csv module."""
import csv
import dataclasses
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from belleville_mtss.cli import main
from belleville_mtss.lib.load.warehouse import (assessment_results, ingestion_files, make_engine, read_table,
                                                student_roster)
from belleville_mtss.lib.sample import PECAN_VALLEY, SampleSpec
from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import errors, new_district, sign_off

# Pecan Valley (lib/sample.py) with Star, its roster a OneRoster bulk export: 300 students and 25 teachers
SPEC = dataclasses.replace(PECAN_VALLEY, students=300, without_tests=6, unknown_star_rows=3, sources=("star",),
                           missing_from_classlink=5, oneroster="1.1")
STAR = ("SR.csv", "SM.csv", "SEL.csv")


def rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def students_of(drop: Path) -> dict[str, str]:
    """users.csv's students (1.1: by role; 1.2: by roles.csv): identifier -> sourcedId."""
    users = rows(drop / "users.csv")
    if (drop / "roles.csv").exists():
        pupils = {r["userSourcedId"] for r in rows(drop / "roles.csv") if r["role"] == "student"}
        return {u["identifier"]: u["sourcedId"] for u in users if u["sourcedId"] in pupils}
    return {u["identifier"]: u["sourcedId"] for u in users if u["role"] == "student"}


def warehouse(settings) -> dict[str, pl.DataFrame]:
    engine = make_engine(settings.warehouse_url)
    try:
        return {t.name: read_table(engine, t) for t in (student_roster, assessment_results, ingestion_files)}
    finally:
        engine.dispose()


def prepared(backend, tmp_path: Path, monkeypatch, spec: SampleSpec, other_emails: bool = False):
    """Pecan Valley's sample drop and its ClassLink users (`other_emails`: ClassLink holds other addresses than the
    district's SIS, so only their sourcedIds link them)."""
    edit = (lambda users: users.with_columns(pl.col("Email").str.replace("@", "@classlink."))) if other_emails \
        else (lambda users: users)
    return (*new_district(backend, tmp_path, monkeypatch, spec, edit), spec)


@pytest.fixture
def district(backend, tmp_path, monkeypatch):
    """OneRoster 1.1 on SQLite, linked to ClassLink by email; 1.2 on PostgreSQL, by sourcedId (ClassLink holds other
    addresses)."""
    if backend.warehouse_url.startswith("sqlite"):
        return prepared(backend, tmp_path, monkeypatch, SPEC)
    return prepared(backend, tmp_path, monkeypatch, dataclasses.replace(SPEC, oneroster="1.2"), other_emails=True)


def onboarded(settings, registry: Path, drop: Path, capsys) -> dict:
    out = registry / "pecan.yaml"
    assert main(["districts", "onboard", str(drop), "--state", "TX", "--key", "pecan", "--out", str(out)]) == 0, \
        capsys.readouterr().err
    return yaml.safe_load(out.read_text())


def test_a_oneroster_district_onboarded_signed_off_and_run_loads_its_students_and_their_tests(district, capsys):
    settings, registry, drop, spec = district
    entry = onboarded(settings, registry, drop, capsys)
    assert entry["account_info_id"] == 666001 and "powerschool" not in entry and "files" not in entry
    assert entry["sources"]["oneroster"] == {"files": {"oneroster_export": "manifest.csv"}, "number": "identifier",
                                             "names": [spec.district_name_in_files]}
    assert entry["sources"]["star"]["link"] == "StudentIdentifier"
    by_id = spec.oneroster == "1.2"  # ClassLink holds other addresses: only the sourcedIds link
    assert entry["student_link"] == {"classlink": "sourced_id" if by_id else "email"}
    checked = "\n".join(entry["verification"]["checked"])
    emails, ids = ("0 of 300 (0.0%)", "295 of 300 (98.3%)") if by_id else ("295 of 300 (98.3%)", "295 of 300 (98.3%)")
    assert f"ClassLink link measured both ways: by email {emails}, by OneRoster sourcedId {ids}" in checked
    assert f"OneRoster {spec.oneroster} export (manifest.csv: every file bulk or absent): 300 students among 325 " \
           "users.csv rows" in checked
    assert "Star StudentIdentifier = identifier" in checked and "@" not in checked and "510001" not in checked

    assert run_drop(settings, f"pecan/{spec.drop_name}").outcome == "failed"  # unsigned: nothing loads
    sign_off(registry / "pecan.yaml", "OneRoster test")
    report = run_drop(settings, f"pecan/{spec.drop_name}")
    assert report.outcome == "loaded", report.render()
    held = warehouse(settings)
    students = students_of(drop)
    roster = held["StudentRoster"]
    assert sorted(roster["StudentNumber"]) == sorted(students) and set(roster["AccountInfoId"]) == {666001}
    assert not any(n.startswith("T") for n in roster["StudentNumber"])  # never a teacher
    assert roster["ClassLinkUserId"].drop_nulls().len() == spec.students - spec.missing_from_classlink
    tests = [r for name in STAR if (drop / name).exists() for r in rows(drop / name)]
    assert held["AssessmentResults"].height == sum(r["StudentIdentifier"] in students for r in tests) > 0
    # every file of the export audited as loaded with the roster
    audit = dict(held["IngestionFiles"].select("FileName", "Outcome").iter_rows())
    export = {p.name for p in drop.glob("*.csv") if p.name not in STAR}
    assert {audit[name] for name in export} == {"loaded"} and "manifest.csv" in export
    logged = errors(settings)
    assert logged.filter(pl.col("Reason") == "unknown_student")["RowCount"].sum() > 0
    for column in ("Message", "FileName"):  # no student's value in the error log
        assert not logged[column].drop_nulls().str.contains("@|stu-").any()


def test_an_export_sent_in_a_zip_loads_as_from_a_folder(tmp_path, monkeypatch, capsys):
    """OneRoster exports often travel zipped: the archive's files (here in a sub-folder of it) are the export."""
    import zipfile

    settings, registry, drop, spec = prepared(make_settings(tmp_path / "mtss"), tmp_path, monkeypatch,
                                              dataclasses.replace(SPEC, students=120))
    onboarded(settings, registry, drop, capsys)
    sign_off(registry / "pecan.yaml", "OneRoster test")
    sent = sorted(p.name for p in drop.glob("*.csv"))
    with zipfile.ZipFile(drop.parent / "2026-11-21.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sent:
            archive.write(drop / name, f"export/{name}")
    (drop.parent / "2026-11-21.zip.done").write_text("")
    assert run_drop(settings, "pecan/2026-11-21").outcome == "loaded"
    held = warehouse(settings)
    audit = dict(held["IngestionFiles"].filter(pl.col("DropId") == "pecan/2026-11-21")
                 .select("FileName", "Outcome").iter_rows())
    assert audit == {name: "loaded" for name in sent}  # the export's files and the Star files, each loaded
    assert sorted(held["StudentRoster"]["StudentNumber"]) == sorted(students_of(drop))


@pytest.mark.parametrize("fault", ["delta", "missing_listed_file", "powerschool_too"])
def test_a_delta_a_missing_listed_file_or_a_second_roster_is_refused_through_a_run(fault, tmp_path, monkeypatch,
                                                                                   capsys):
    settings, registry, drop, spec = prepared(make_settings(tmp_path / "mtss"), tmp_path, monkeypatch,
                                              dataclasses.replace(SPEC, students=120))
    onboarded(settings, registry, drop, capsys)
    sign_off(registry / "pecan.yaml", "OneRoster test")
    later = drop.parent / "2026-11-21"
    shutil.copytree(drop, later)
    if fault == "delta":
        manifest = (later / "manifest.csv").read_text()
        (later / "manifest.csv").write_text(manifest.replace(",bulk", ",delta"))
    elif fault == "missing_listed_file":
        (later / "enrollments.csv").unlink()
    else:  # a PowerSchool export beside the OneRoster one, and the registry does not say which is the roster
        (later / "students.csv").write_text("STUDENTS.STUDENT_NUMBER,U_STUDENTSUSERFIELDS.custom_student_email\n")
    report = run_drop(settings, "pecan/2026-11-21")
    assert report.outcome == "failed"
    held = warehouse(settings)
    assert held["StudentRoster"].is_empty() and held["AssessmentResults"].is_empty()  # nothing loaded
    logged = errors(settings).filter(pl.col("DropId") == "pecan/2026-11-21")
    reasons = dict(logged.select("Reason", "Message").iter_rows())
    expected = {"delta": ("delta_export", "manifest.csv: the OneRoster export is a delta (demographics.csv, "
                                          "enrollments.csv, orgs.csv, users.csv listed as delta in manifest.csv)"),
                "missing_listed_file": ("missing_listed_file", "manifest.csv: manifest.csv lists enrollments.csv as "
                                                               "bulk, but the drop has no such file"),
                "powerschool_too": ("ambiguous_roster", "the drop holds both a OneRoster export (manifest.csv) and "
                                                        "a PowerSchool export (students.csv), and pecan's registry "
                                                        "entry does not say which is its roster")}[fault]
    assert reasons[expected[0]].startswith(expected[1]), reasons
    if fault == "delta":
        assert "Ask the district (its SIS or ClassLink Roster Server) for a bulk export" in reasons["delta_export"]
    if fault != "powerschool_too":  # the export's files halted, the Star files not loaded
        audit = dict(held["IngestionFiles"].filter(pl.col("DropId") == "pecan/2026-11-21")
                     .select("FileName", "Outcome").iter_rows())
        assert audit["manifest.csv"] == audit["users.csv"] == "halted" and audit["SR.csv"] != "loaded"
    else:  # once the registry names the roster, the same drop loads, its PowerSchool file not expected
        entry = yaml.safe_load((registry / "pecan.yaml").read_text())
        (registry / "pecan.yaml").write_text(yaml.safe_dump({**entry, "roster": "oneroster"}, sort_keys=False))
        assert run_drop(settings, "pecan/2026-11-21").outcome == "loaded"
        audit = dict(warehouse(settings)["IngestionFiles"].filter(pl.col("DropId") == "pecan/2026-11-21")
                     .select("FileName", "Outcome").iter_rows())
        assert audit["students.csv"] == "not_expected" and audit["users.csv"] == "loaded"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_a_demographics_file_without_birth_dates_reads_them_as_unknown(version):
    """birthDate is optional in OneRoster: an export without the column crashed the roster read (a polars error,
    no halted file, no error row)."""
    from belleville_mtss.lib.sources.oneroster.export import read_export
    from belleville_mtss.lib.sources.oneroster.sample import export
    students = pl.DataFrame({"student_number": ["1001", "1002"], "school_id": ["01", "02"],
                             "email": ["a@x.org", "b@x.org"], "first_name": ["A", "B"], "last_name": ["L", "M"],
                             "grade": [3, 4], "dob": ["01/02/2015"] * 2})
    files = {k: v.cast(pl.Utf8) for k, v in export(students, "Demo District", version, teachers=1).items()}
    read = read_export({**files, "demographics.csv": files["demographics.csv"].drop("birthDate")})
    assert read.students["student_number"].to_list() == ["1001", "1002"]
    assert read.students["dob"].to_list() == [None, None]
