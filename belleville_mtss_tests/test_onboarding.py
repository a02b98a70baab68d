"""`districts onboard`: a registry entry drafted from a sample drop alone (real SQLite databases, the CLI as a person
runs it), blocked until a person signs it off, and then loading the drop with every count right."""
import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from belleville_mtss.cli import main
from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry
from belleville_mtss.lib.load.warehouse import account_info, class_link_users, make_engine
from belleville_mtss.lib.sample import SampleSpec, generate_drop
from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import RIVERTON, add_riverton, prepare_drop, warehouse_counts

MAPLE = SampleSpec(
    students=240, seed=11, drop_name="2026-11-20", district_name_in_files="Maple Falls Regional Schools",
    classlink_tenant="MFR Cloud Tenant 2", classlink_tenant_id=9100, missing_from_classlink=6, without_tests=4,
    unknown_star_rows=3, excel_mangled_dates=0, first_student_number=40001, email_domain="maplefalls.example.org",
    powerschool_headers=(
        ("student_number", "[Students]Student_Number"), ("first_name", "[Students]First_Name"),
        ("last_name", "[Students]Last_Name"), ("grade_level", "[Students]Grade_Level"),
        ("school_id", "[Students]SchoolID"), ("email", "[Students]Email_Addr"),
    ),
    powerschool_delimiter="\t", powerschool_file="maple_export.txt",
)
MAPLE_ACCOUNT = {"AccountInfoId": 777001, "NcesId": "3499901", "DistrictName": "MAPLE FALLS REGIONAL SCHOOL DISTRICT",
                 "State": "NJ", "County": "MORRIS"}


def star_rows(drop: Path) -> int:
    return sum(pl.read_csv(drop / f, infer_schema=False).height for f in ("SR.csv", "SM.csv", "SEL.csv"))


def maple_drop(settings) -> Path:
    """A district unlike the others: a tab-delimited windows-1252 Quick Export with a state student number, Star
    files whose StudentIdentifier is empty and whose StudentStateID carries that number, and a ClassLink tenant
    named unlike the district."""
    scratch = settings.home / "scratch" / "maple"
    tables = generate_drop(scratch, MAPLE)
    export = pl.read_csv(scratch / MAPLE.powerschool_file, separator="\t", infer_schema=False)
    export = export.with_columns(
        ("S" + pl.col("[Students]Student_Number")).alias("[Students]State_StudentNumber"),
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("José")).otherwise(pl.col("[Students]First_Name"))
        .alias("[Students]First_Name"))
    (scratch / MAPLE.powerschool_file).write_bytes(export.write_csv(separator="\t").encode("cp1252"))
    for name in ("SR.csv", "SM.csv", "SEL.csv"):
        star = pl.read_csv(scratch / name, infer_schema=False)
        star.with_columns(("S" + pl.col("StudentIdentifier")).alias("StudentStateID"),
                          pl.lit("").alias("StudentIdentifier"), pl.lit("").alias("StudentSourcedID")
                          ).write_csv(scratch / name)
    prod = make_engine(settings.prod_db_url)
    with prod.begin() as conn:
        conn.execute(class_link_users.insert(), tables["classlink_users"].filter(
            pl.col("TenantName") == MAPLE.classlink_tenant).to_dicts())
    prod.dispose()
    warehouse = make_engine(settings.warehouse_url)
    with warehouse.begin() as conn:
        conn.execute(account_info.insert(), [MAPLE_ACCOUNT])
    warehouse.dispose()
    return scratch


@pytest.fixture
def world(tmp_path, monkeypatch):
    registry = tmp_path / "districts"
    shutil.copytree(PACKAGED_DISTRICTS_DIR, registry)
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "mtss"))  # for the CLI
    monkeypatch.setenv("MTSS_DISTRICTS_DIR", str(registry))
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(registry))
    prepare_drop(settings)
    return settings, registry


def onboard(capsys, sample: Path, state: str, key: str, out: Path) -> dict:
    code = main(["districts", "onboard", str(sample), "--state", state, "--key", key, "--out", str(out), "--json"])
    printed = capsys.readouterr()
    assert code == 0, printed
    return json.loads(printed.out)


def sign_off(path: Path) -> None:
    entry = yaml.safe_load(path.read_text())
    entry["verification"] |= {"verified_by": "Onboarding test", "verified_on": dt.date(2026, 12, 3),
                              "ferpa_review_on": dt.date.today()}
    path.write_text(yaml.safe_dump(entry, sort_keys=False))


def test_riverton_from_its_sample_drop_alone(world, capsys):
    settings, registry = world
    sample = add_riverton(settings)
    out = registry / "riverton-draft.yaml"
    found = onboard(capsys, sample, "OR", "riverton", out)
    entry = yaml.safe_load(out.read_text())
    hand_written = yaml.safe_load((Path(__file__).parent / "fixtures" / "districts" / "riverton.yaml").read_text())
    assert found["account_info_id"] == entry["account_info_id"] == 555001
    assert entry["nces_id"] == "4199999" and entry["state"] == "OR"
    # the hand-written entry is in the shape before `sources:`: the draft holds the same names where they now live
    assert entry["source_names"] == {k: v for k, v in hand_written["source_names"].items() if k != "renaissance"}
    assert entry["sources"]["star"]["names"] == hand_written["source_names"]["renaissance"]
    assert entry["classlink_tenant_ids"] == [9001]
    assert entry["powerschool"]["delimiter"] == "\t" and entry["powerschool"]["encoding"] == "utf-8"
    assert entry["powerschool"]["columns"] == hand_written["powerschool"]["columns"]
    assert entry["student_link"] == {"classlink": "email", "powerschool": "student_number"}
    assert entry["sources"]["star"]["link"] == "StudentIdentifier"
    assert entry["sources"]["star"]["files"] == {"star_reading": "SR.csv", "star_math": "SM.csv",
                                                 "star_early_literacy": "SEL.csv"}  # the Star files it held
    checked = entry["verification"]["checked"]
    assert any("246 of 250 (98.4%) export emails" in line for line in checked)
    assert any(line.startswith("student link: Star StudentIdentifier = [Students]Student_Number for 245 of 247")
               for line in checked)
    # Unsigned, the draft blocks its district's drops, saying so; the other districts are untouched.
    assert load_registry(registry).problems["riverton"].message.startswith("riverton-draft.yaml: a draft, not signed")
    assert "riverton" not in load_registry(registry) and "belleville" in load_registry(registry)
    report = run_drop(settings, "riverton/2026-11-15")
    assert report.outcome == "failed" and "a draft, not signed off" in report.verdict()
    assert warehouse_counts(settings) == {"roster": 0, "results": 0}
    sign_off(out)
    assert run_drop(settings, "riverton/2026-11-15").outcome == "loaded"
    assert warehouse_counts(settings) == {"roster": RIVERTON.students,
                                          "results": star_rows(sample) - RIVERTON.unknown_star_rows}


def test_a_tab_delimited_windows_1252_export_linked_by_state_id_and_a_tenant_named_unlike_the_district(
        world, capsys):
    settings, registry = world
    scratch = maple_drop(settings)
    # the math files under the district's short name, on every row: hidden as one student's (its StudentIdentifier
    # empty on every row, every row was taken for one student's), and left out of the draft's names
    sm = pl.read_csv(scratch / "SM.csv", infer_schema=False)
    sm.with_columns(pl.lit("MFRS").alias("DistrictName")).write_csv(scratch / "SM.csv")
    out = registry / "maple.yaml"
    onboard(capsys, scratch, "NJ", "maple", out)
    entry = yaml.safe_load(out.read_text())
    assert entry["account_info_id"] == 777001 and entry["nces_id"] == "3499901" and entry["county"] == "MORRIS"
    assert entry["source_names"] == {"account_info": ["MAPLE FALLS REGIONAL SCHOOL DISTRICT"],
                                     "classlink": ["MFR Cloud Tenant 2"]}
    assert sorted(entry["sources"]["star"]["names"]) == ["MFRS", "Maple Falls Regional Schools"]
    assert entry["classlink_tenant_ids"] == [9100]
    ps = entry["powerschool"]
    assert (ps["delimiter"], ps["encoding"], ps["has_header"]) == ("\t", "windows-1252", True)
    assert ps["columns"]["student_number"] == "[Students]Student_Number"
    assert ps["columns"]["state_studentnumber"] == "[Students]State_StudentNumber"
    assert ps["columns"]["email"] == "[Students]Email_Addr"
    assert entry["student_link"] == {"classlink": "email", "powerschool": "state_studentnumber"}
    assert entry["sources"]["star"]["link"] == "StudentStateID"
    assert entry["files"]["powerschool_students"] == "maple_export.txt"
    checked = "\n".join(entry["verification"]["checked"])
    assert "Star StudentIdentifier: present but empty in every Star file" in checked
    assert "Quick Export" in checked and "windows-1252" in checked
    assert "@" not in checked and "José" not in checked and "40001" not in checked  # figures, never a student's value
    drop = settings.drop_dir / "maple" / MAPLE.drop_name
    shutil.copytree(scratch, drop)
    assert run_drop(settings, f"maple/{MAPLE.drop_name}").outcome != "loaded"  # unsigned
    sign_off(out)
    assert run_drop(settings, f"maple/{MAPLE.drop_name}").outcome == "loaded"
    assert warehouse_counts(settings) == {"roster": MAPLE.students,
                                          "results": star_rows(drop) - MAPLE.unknown_star_rows}


def test_a_sample_without_any_resolvable_identifier_says_so_and_proposes_no_account(world, capsys):
    settings, registry = world
    sample = add_riverton(settings)
    code = main(["districts", "onboard", str(sample), "--state", "NJ", "--key", "riverton", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 1 and printed["account_info_id"] is None
    assert printed["identity"].startswith("no identifier in the sample resolves")


def test_a_sample_reads_only_its_own_files_never_a_symlink_out_of_it(tmp_path):
    from belleville_mtss.lib.district.onboard import sample_files
    outside = tmp_path / "secret.csv"
    outside.write_text("a,b\n1,2\n")
    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "SR.csv").write_text("StudentIdentifier\n1\n")
    (sample / "students.csv").symlink_to(outside)
    (sample / ".hidden.csv").write_text("x\n")
    assert [f.name for f in sample_files(sample)] == ["SR.csv"]


# ---- hostile samples (issue 34 case 11): read as drops are, refused in one line ---------------------------------

def _hostile(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A sample drop and the file its refusal must name."""
    import os
    import zipfile
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "zip_bomb":  # one entry of 1 GiB of zeros, a few MB packed
        archive = tmp_path / "sample.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf, \
                zf.open("students.csv", "w", force_zip64=True) as entry:
            block = b"\0" * (16 * 1024 * 1024)
            for _ in range(64):
                entry.write(block)
        return archive, "students.csv"
    if kind == "long_line":  # a first line of 1 GiB (sparse: no disk used)
        with (folder / "students.csv").open("wb") as fh:
            fh.write(b"a" * (70 * 1024))
            fh.truncate(1024 ** 3 + 70 * 1024)
        return folder, "students.csv"
    if kind == "long_header":  # a first line of 2 MiB: no header row, whatever follows
        (folder / "students.csv").write_bytes(b"a" * (2 * 1024 ** 2) + b"\n1,2\n")
        return folder, "students.csv"
    if kind == "binary_students":
        (folder / "students.csv").write_bytes(os.urandom(200_000))
        return folder, "students.csv"
    # a PNG named SR.csv, beside a real export
    (folder / "SR.csv").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + os.urandom(50_000))
    return folder, "SR.csv"


@pytest.mark.parametrize("kind", ["zip_bomb", "long_line", "long_header", "binary_students", "png_named_sr"])
def test_a_hostile_sample_is_refused_in_one_line_naming_the_file_within_bounded_memory(world, tmp_path, kind):
    import os
    import subprocess
    import sys
    settings, registry = world
    (tmp_path / "hostile").mkdir()
    sample, named = _hostile(tmp_path / "hostile", kind)
    if kind == "png_named_sr":
        shutil.copy(settings.drop_dir / "belleville" / "2026-11-01" / "students.csv", sample / "students.csv")
    # the CLI in a process of its own, which reports its own peak resident memory as the kernel counted it
    measured = ("import resource, sys\nfrom belleville_mtss.cli import main\ncode = main(sys.argv[1:])\n"
                "print(f'PEAK_KIB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', file=sys.stderr)\n"
                "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", measured, "districts", "onboard", str(sample), "--state", "NJ",
                           "--key", "hostile"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MTSS_HOME": str(settings.home), "MTSS_DISTRICTS_DIR": str(registry)})
    said = [line for line in done.stderr.splitlines() if not line.startswith("PEAK_KIB ")]
    peak_kib = int(done.stderr.rsplit("PEAK_KIB ", 1)[1].split()[0])
    assert done.returncode != 0 and done.stdout == "", (done.stdout, done.stderr)
    assert len(said) == 1 and said[0].startswith("belleville-mtss: error: ") and named in said[0], said
    assert "Traceback" not in done.stderr
    assert peak_kib < 1024 * 1024, f"peak {peak_kib / 1024:.0f} MiB"
    print(f"{kind}: {said[0]} (peak {peak_kib / 1024:.0f} MiB)")


def _onboard_oneroster(tmp_path, users: list[dict]):
    """A ten-student OneRoster 1.1 sample of Belleville's onboarded against a prod db of `users`."""
    from belleville_mtss.lib.district.onboard import TenantOverlap, onboard
    from belleville_mtss.lib.read.theirs import tenants_of_emails
    from belleville_mtss.lib.sample import account_info_rows, load_databases
    head, at = "sourcedId,status,dateLastModified", "active,2025-01-01T00:00:00Z"
    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "manifest.csv").write_text("propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\n"
                                         "file.users,bulk\nfile.orgs,bulk\n")
    (sample / "orgs.csv").write_text(f"{head},name,type,identifier,parentSourcedId\n"
                                     f"d1,{at},Belleville Public Schools,district,3401350,\ns1,{at},One,school,S1,d1\n")
    (sample / "users.csv").write_text(
        f"{head},enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,"
        "sms,phone,agentSourcedIds,grades,password\n" + "".join(
            f"{i},{at},true,s1,student,u{i},,F,L,,{1000 + i},s{i}@belleville.example.org,,,,05,\n"
            for i in range(1, 11)))
    prod = f"sqlite:///{tmp_path}/prod.db"
    load_databases(prod, f"sqlite:///{tmp_path}/warehouse.db", pl.DataFrame(users))
    engine = make_engine(prod)
    try:
        found = onboard(sample, "NJ", "belleville2", pl.DataFrame(account_info_rows()),
                        lambda keys, column="Email": [TenantOverlap(*row) for row in tenants_of_emails(
                            engine, keys, column=column)], today=dt.date(2026, 12, 6))
    finally:
        engine.dispose()
    return found


def _tenant_users(tenant: int, name: str, emails: str, ids: str, n: int) -> list[dict]:
    return [{"UserId": f"{tenant}-{i}", "TenantId": tenant, "TenantName": name, "Role": "Student",
             "Email": emails.format(i=i), "GivenName": "F", "FamilyName": "L", "SourcedId": ids.format(i=i)}
            for i in range(1, n + 1)]


def test_a_oneroster_samples_sourcedids_never_name_another_tenant_than_its_emails(tmp_path):
    """SourcedIds are an SIS's own keys, often small numbers that repeat across ClassLink tenants. Here another,
    larger tenant holds all ten of the sample's ids and its emails none; the tenant its emails name holds nine of
    each. The draft named the other tenant and linked by sourcedId; it names the emails' tenant and links by email."""
    found = _onboard_oneroster(tmp_path, _tenant_users(111, "Belleville NJ Tenant", "s{i}@belleville.example.org",
                                                       "{i}", 9)
                               + _tenant_users(222, "Bellevue NE Tenant", "k{i}@bellevue.example.org", "{i}", 50))
    assert (found.entry["source_names"]["classlink"], found.entry["classlink_tenant_ids"]) == (
        ["Belleville NJ Tenant"], [111])
    assert found.entry["student_link"]["classlink"] == "email"
    assert found.by_sourced_id == (10, 10)  # measured, and shown: not taken, as its tenant is not the emails'


def test_a_oneroster_sample_whose_sourcedids_no_tenant_holds_links_by_its_emails(tmp_path):
    """A OneRoster 1.1 district linked to ClassLink by email (its SIS's sourcedIds are not ClassLink's): onboarding
    ended in an IndexError, no draft written."""
    found = _onboard_oneroster(tmp_path, _tenant_users(111, "Belleville NJ Tenant", "s{i}@belleville.example.org",
                                                       "sis-{i}", 10))
    assert found.entry["classlink_tenant_ids"] == [111] and found.entry["student_link"]["classlink"] == "email"
    assert found.by_sourced_id == (0, 10)


def test_a_students_value_in_a_district_column_is_counted_never_shown_nor_proposed(world, tmp_path, capsys):
    # One Star row's DistrictName held a student's email, another a student's name: onboarding printed both, and
    # wrote them into the draft's verification.checked and its sources.star.names (a listed name verifies a file).
    settings, registry = world
    sample = tmp_path / "sample"
    shutil.copytree(settings.drop_dir / "belleville" / "2026-11-01", sample)
    students = pl.read_csv(sample / "students.csv", infer_schema=False)
    planted = {"SR.csv": students["U_STUDENTSUSERFIELDS.custom_student_email"][5],
               "SM.csv": f"{students['STUDENTS.FIRST_NAME'][6]} {students['STUDENTS.LAST_NAME'][6]}"}
    for name, value in planted.items():
        star = pl.read_csv(sample / name, infer_schema=False)
        star.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(value)).otherwise(pl.col("DistrictName"))
                          .alias("DistrictName")).write_csv(sample / name)
    out = registry / "belleville2-draft.yaml"
    found = onboard(capsys, sample, "NJ", "belleville2", out)
    draft = out.read_text()
    for value in planted.values():
        assert value not in json.dumps(found) and value not in draft
    entry = yaml.safe_load(draft)
    assert entry["sources"]["star"]["names"] == ["Belleville Public Schools"]
    assert found["account_info_id"] == entry["account_info_id"] == 107873
    assert sum("<a value of 1 row(s), not shown>" in line for line in entry["verification"]["checked"]) == 2


def test_a_oneroster_number_too_long_for_the_roster_is_proposed_as_the_link_beside_a_number_that_fits():
    """A ClassLink-rostered district's Star carries the OneRoster sourcedId, often a 36-character GUID: proposed as
    sources.oneroster.number, it refused every student as value_too_long and blocked every drop."""
    from belleville_mtss.lib.district.onboard import _oneroster_number
    guids = ["5e0d2f9a-3c1b-4f7e-9a6d-2b8c1e4f7a90", "6f1e3a0b-4d2c-4a8f-8b7e-3c9d2f5a8b01"]
    students = pl.DataFrame({"identifier": ["1001", "1002"], "username": ["ann", "ann"], "sourcedId": guids,
                             "email": ["a@x.example", "b@x.example"]})
    assert _oneroster_number(students, "sourcedId") == {"number": "identifier", "link": "sourcedId"}
    assert _oneroster_number(students, "identifier") == {"number": "identifier"}
    # none fits (username repeats): as drafted before, the run then refuses the rows as value_too_long, saying so
    assert _oneroster_number(students.drop("identifier"), "sourcedId") == {"number": "sourcedId"}
