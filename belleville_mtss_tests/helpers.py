"""Shared test set-up: a small sample drop with its databases."""
import hashlib
import os
import re
from pathlib import Path

import polars as pl

from belleville_mtss.lib.config import Settings
from belleville_mtss.lib.sample import SampleSpec, generate_drop, load_databases
from belleville_mtss.lib.load.warehouse import assessment_results, ingestion_errors, make_engine, read_table, student_roster


def numbers_in(text: str) -> set[str]:
    """Every run of digits in printed text that stands alone: a student number printed, but not the digits inside a
    hex run id or version (where a 6-digit number turns up by chance now and then)."""
    return set(re.findall(r"(?<![0-9A-Za-z])[0-9]+(?![0-9A-Za-z])", text))

SMALL = SampleSpec(students=300, missing_from_classlink=5, without_tests=7, unknown_star_rows=3)


def prepare_drop(settings: Settings, spec: SampleSpec = SMALL) -> Path:
    drop = settings.drop_dir / "belleville" / spec.drop_name
    tables = generate_drop(drop, spec)
    load_databases(settings.prod_db_url, settings.warehouse_url, tables["classlink_users"])
    return drop


def set_column(path: Path, column: str, value: str, rows: slice | None = None) -> None:
    """Rewrite one column of a CSV file (all rows, or a slice of them)."""
    frame = pl.read_csv(path, infer_schema=False)
    series = frame[column].to_list()
    for i in range(*(rows or slice(None)).indices(len(series))):
        series[i] = value
    frame.with_columns(pl.Series(column, series)).write_csv(path)


def warehouse_counts(settings: Settings) -> dict[str, int]:
    engine = make_engine(settings.warehouse_url)
    try:
        return {
            "roster": read_table(engine, student_roster).height,
            "results": read_table(engine, assessment_results).height,
        }
    finally:
        engine.dispose()


def held_rows(settings: Settings) -> dict[str, pl.DataFrame]:
    """What the warehouse holds (roster and results), without the load times, in key order."""
    engine = make_engine(settings.warehouse_url)
    try:
        return {"roster": read_table(engine, student_roster).drop("LoadedAt").sort("StudentNumber"),
                "results": read_table(engine, assessment_results).drop("LoadedAt").sort("Subject", "TestKey")}
    finally:
        engine.dispose()


def errors(settings: Settings) -> pl.DataFrame:
    engine = make_engine(settings.warehouse_url)
    try:
        return read_table(engine, ingestion_errors)
    finally:
        engine.dispose()


FIXTURE_DISTRICTS = Path(__file__).resolve().parent / "fixtures" / "districts"
RIVERTON_ACCOUNT = {"AccountInfoId": 555001, "NcesId": "4199999", "DistrictName": "RIVERTON UNIFIED SCHOOL DISTRICT",
                    "State": "OR", "County": None}
RIVERTON = SampleSpec(
    students=250, seed=7, drop_name="2026-11-15", district_name_in_files="Riverton Unified Schools",
    classlink_tenant="Riverton USD", classlink_tenant_id=9001, missing_from_classlink=4, without_tests=5,
    unknown_star_rows=3, excel_mangled_dates=0, first_student_number=880001, email_domain="riverton.example.org",
    powerschool_headers=(
        ("student_number", "[Students]Student_Number"), ("first_name", "[Students]First_Name"),
        ("last_name", "[Students]Last_Name"), ("grade_level", "[Students]Grade_Level"),
        ("school_id", "[Students]SchoolID"), ("email", "U_StudentsUserFields.EMAILSTUDENT"),
    ),
    powerschool_delimiter="\t", powerschool_file="riverton_students_export.txt",
)


def two_district_registry(tmp: Path) -> Path:
    """The packaged registry plus the made-up Riverton entry."""
    import shutil

    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
    registry = tmp / "districts"
    shutil.copytree(PACKAGED_DISTRICTS_DIR, registry)
    shutil.copy(FIXTURE_DISTRICTS / "riverton.yaml", registry / "riverton.yaml")
    return registry


def add_riverton(settings: Settings, spec: SampleSpec = RIVERTON) -> Path:
    """Riverton's drop, its ClassLink users (beside Belleville's) and its dm.AccountInfo row."""
    from belleville_mtss.lib.load.warehouse import account_info, class_link_users

    drop = settings.drop_dir / "riverton" / spec.drop_name
    tables = generate_drop(drop, spec)
    prod = make_engine(settings.prod_db_url)
    with prod.begin() as conn:
        conn.execute(class_link_users.insert(), tables["classlink_users"].filter(
            pl.col("TenantName") == spec.classlink_tenant).to_dicts())
    prod.dispose()
    warehouse = make_engine(settings.warehouse_url)
    with warehouse.begin() as conn:
        if not conn.execute(account_info.select().where(account_info.c.AccountInfoId == 555001)).first():
            conn.execute(account_info.insert(), [RIVERTON_ACCOUNT])
    warehouse.dispose()
    return drop


def tick(settings: Settings, instance, cursor: str | None = None):
    """One evaluation of sftp_drop_sensor with the settings' resource (a local folder or an SFTP server)."""
    import dagster as dg

    from belleville_mtss.defs.resources import resources
    from belleville_mtss.defs.sensors import sftp_drop_sensor
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources(settings)) as ctx:
        return sftp_drop_sensor(ctx)


def snapshot(*roots: Path, skip: tuple[str, ...] = ("warehouse.db", "sshd.log")) -> dict[str, tuple]:
    """Every file and link under the roots (never following a link): size, mtime and SHA-256, or the link target."""
    seen: dict[str, tuple] = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_symlink():
                seen[str(p)] = ("link", os.readlink(p))
            elif p.is_file() and p.name not in skip:
                st = p.stat()
                seen[str(p)] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return seen


def edited_registry(tmp: Path, edit, name: str = "districts") -> Path:
    """A copy of the packaged registry with the Belleville entry changed by `edit(entry: dict)`."""
    import shutil

    import yaml

    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
    registry = tmp / name
    shutil.copytree(PACKAGED_DISTRICTS_DIR, registry)
    path = registry / "belleville.yaml"
    entry = yaml.safe_load(path.read_text())
    edit(entry)
    path.write_text(yaml.safe_dump(entry, sort_keys=False))
    return registry


def start_group(argv: list[str], **popen):
    """A Dagster process (daemon, dagster dev) in its own process group: it starts code servers of its own."""
    import subprocess
    return subprocess.Popen(argv, start_new_session=True, **popen)


def stop_group(process, timeout: float = 60) -> None:
    """Stop the process and every process it started (a code server left behind would outlive the test): SIGTERM
    to the group, time for the leader to shut down, then SIGKILL to whatever of the group is left."""
    import os
    import signal
    import subprocess
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=timeout)


def compiling_for_sql_server(seen: list[str]):
    """A connection class that compiles each statement it is given for SQL Server into `seen`, running nothing
    (a query's first row is a row, so that what follows one is compiled too)."""
    from sqlalchemy.dialects import mssql

    class Recording:
        dialect = mssql.dialect()

        def execute(self, statement):
            seen.append(str(statement.compile(dialect=self.dialect)))
            return type("Result", (), {"rowcount": 0, "first": lambda _self: ("row",)})()
    return Recording


# ---- the screeners' sample generators (belleville_mtss_tests/sources/<vendor>/test_sample.py) -----------------

VENDOR_SPEC = SampleSpec(students=200, without_tests=3, unknown_star_rows=7, refused_rows=3)  # 7 // 3: 2 unknown rows


def students_with_tests(n: int = 130) -> pl.DataFrame:
    """Ten students in each grade K-12, in the schools that teach it."""
    import numpy as np

    grade = np.arange(n) % 13
    return pl.DataFrame({
        "student_number": [str(500001 + i) for i in range(n)], "first_name": ["Ann"] * n, "last_name": ["Lee"] * n,
        "grade": grade.astype(np.int32), "school_id": np.where(grade < 6, "03", np.where(grade < 9, "02", "01")),
        "dob": ["03/14/2015"] * n, "email": [f"s{i}@example.org" for i in range(n)],
    })


def belleville_with(name: str, section):
    """The packaged Belleville entry, sending source `name` under `section` as well."""
    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, load_registry

    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    return entry.model_copy(update={"sources": {**entry.sources, name: section}})


def written_sample(tmp_path: Path, source, names: dict[str, str]) -> dict[str, tuple[Path, list[dict]]]:
    """The source's sample files for `students_with_tests()` written as generate_drop writes them (`names`: file asset
    -> the file name it must come as), each with its rows as the csv module reads them."""
    import csv

    import numpy as np

    from belleville_mtss.lib.receive.drops import name_matches

    frames = source.sample(students_with_tests(), VENDOR_SPEC, np.random.default_rng(5), source.files)
    assert list(frames) == list(names.values())
    out = {}
    for kind in source.files:
        path = tmp_path / names[kind.asset]
        assert name_matches(path.name, kind.pattern)
        frames[path.name].write_csv(path)
        with path.open(encoding="utf-8-sig", newline="") as f:
            out[kind.asset] = path, list(csv.DictReader(f))
    return out


def headers_and_bom(path: Path) -> tuple[list[str], bool]:
    """A CSV file's header row, and whether it starts with a UTF-8 byte-order mark."""
    import csv

    with path.open(encoding="utf-8-sig", newline="") as f:
        return next(csv.reader(f)), path.read_bytes()[:3] == b"\xef\xbb\xbf"


def drop_with_and_without(tmp_path: Path, source: str, names: list[str]) -> Path:
    """Two drops of VENDOR_SPEC, Star alone and Star with `source`: the second holds exactly `names` more, and every
    other file byte for byte as the first. Returns the second's folder."""
    from dataclasses import replace

    generate_drop(tmp_path / "star", VENDOR_SPEC)
    generate_drop(tmp_path / "both", replace(VENDOR_SPEC, sources=("star", source)))
    star = sorted(p.name for p in (tmp_path / "star").iterdir())
    assert not set(names) & set(star)
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == sorted(star + names)
    for name in star:  # listing another source changes none of the other files
        assert (tmp_path / "star" / name).read_bytes() == (tmp_path / "both" / name).read_bytes()
    return tmp_path / "both"


def new_district(backend, tmp_path: Path, monkeypatch, spec: SampleSpec, users=lambda frame: frame):
    """A district not yet in the registry (which holds Belleville only), as a person onboards one: its sample drop
    (`spec`) in the drop folder `pecan`, its ClassLink users (`users`: an edit of them) in the prod db, and the
    settings and environment pointing at `backend`. Returns (settings, registry folder, drop folder)."""
    import shutil

    from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
    from .conftest import make_settings

    registry = tmp_path / "districts"
    shutil.copytree(PACKAGED_DISTRICTS_DIR, registry)
    settings = make_settings(backend.home, MTSS_DISTRICTS_DIR=str(registry), MTSS_WAREHOUSE_URL=backend.warehouse_url,
                             MTSS_PROD_DB_URL=backend.prod_db_url)
    for name, value in (("MTSS_HOME", backend.home), ("MTSS_DISTRICTS_DIR", registry),
                        ("MTSS_WAREHOUSE_URL", backend.warehouse_url), ("MTSS_PROD_DB_URL", backend.prod_db_url)):
        monkeypatch.setenv(name, str(value))
    drop = settings.drop_dir / "pecan" / spec.drop_name
    tables = generate_drop(drop, spec)
    load_databases(settings.prod_db_url, settings.warehouse_url, users(tables["classlink_users"].filter(
        pl.col("TenantName") == spec.classlink_tenant)))
    return settings, registry, drop


def sign_off(path: Path, by: str) -> None:
    """A drafted registry entry signed off, its FERPA review recorded today."""
    import datetime as dt

    import yaml

    entry = yaml.safe_load(path.read_text())
    entry["verification"] |= {"verified_by": by, "verified_on": dt.date(2026, 12, 4), "ferpa_review_on": dt.date.today()}
    path.write_text(yaml.safe_dump(entry, sort_keys=False))
