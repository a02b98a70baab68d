"""The README's "Adding a source", done literally, on a copy of the package in a child process: a made-up
assessment vendor is one new folder under lib/sources/ and its line in the list of sources; its district's
registry entry names it. Then a real run reads its file, checks its district, links and gates it, loads it under
its own Assessment, and shows it in the run report, the lineage and the audit; a fourth Star subject is one more
FileKind in Star's files.py."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import belleville_mtss

PACKAGE = Path(belleville_mtss.__file__).parent
IGNORED = shutil.ignore_patterns("__pycache__")

# A screener no real vendor sends in this layout: one file per drop, a row per test event, its own column names.
ACME = '''"""Acme Screener (made up for a test): acme_*.csv, one row per test event."""
from pathlib import Path

import numpy as np
import pandera.polars as pa
import polars as pl
from pydantic import Field

from ...read.csvfile import FileRejected, read_text_csv
from ..base import AssessmentSection, FileKind, Source

FILES = (FileKind("acme_screener", "acme_*.csv", "Acme Screener results of the drop"),)
HEADERS = {"district_name": "District", "student_link": "Pupil", "test_key": "EventId", "completed_at": "Taken",
           "subject": "Area", "scaled_score": "Score", "growth": "Growth"}


class AcmeResults(pa.DataFrameModel):
    district_name: str = pa.Field(description="District as Acme names it", metadata={"header": "District"})
    student_link: str = pa.Field(str_length={"min_value": 1}, description="Pupil id", metadata={"header": "Pupil"})
    test_key: str = pa.Field(unique=True, description="Acme event id", metadata={"header": "EventId"})
    completed_at: pl.Datetime = pa.Field(description="When the test was taken", metadata={"header": "Taken"})
    subject: str = pa.Field(description="Area tested", metadata={"header": "Area"})
    school_year: str = pa.Field(description="School year of the date")
    scaled_score: pl.Int32 = pa.Field(ge=0, le=999, description="Acme score", metadata={"header": "Score"})
    growth: pl.Int32 = pa.Field(nullable=True, description="Acme growth index", metadata={"header": "Growth"})

    class Config:
        strict = True


class AcmeSection(AssessmentSection):
    files: dict[str, str] = Field(default_factory=lambda: {"acme_screener": "acme_*.csv"})
    link: str = "Pupil"


def read(path: Path, data, district, max_rows: int) -> pl.DataFrame:
    return read_text_csv(path, data=data, max_rows=max_rows)


def validate(raw: pl.DataFrame, kind, district, file_name: str):
    missing = [h for h in HEADERS.values() if h not in raw.columns]
    if missing:
        raise FileRejected("missing_columns", f"{file_name}: missing required column(s) {', '.join(missing)}")
    frame = raw.select(pl.col(h).alias(ours) for ours, h in HEADERS.items()).with_row_index("row", offset=2)
    frame = frame.with_columns(pl.col("completed_at").str.to_datetime("%Y-%m-%d", strict=False),
                               pl.col("scaled_score").cast(pl.Int32, strict=False),
                               pl.col("growth").cast(pl.Int32, strict=False))
    bad = pl.col("completed_at").is_null() | pl.col("scaled_score").is_null()
    rejected = frame.filter(bad).select(pl.col("row").alias("source_row"),
                                        pl.lit("unreadable Taken or Score").alias("reject_reason"))
    year = pl.col("completed_at").dt.year() - (pl.col("completed_at").dt.month() < 7).cast(pl.Int32)
    typed = frame.filter(~bad).with_columns(
        pl.format("{}-{}", year, year + 1).alias("school_year")).select(list(AcmeResults.to_schema().columns))
    return typed, rejected, {}


def sample(tested: pl.DataFrame, spec, rng, files) -> dict[str, pl.DataFrame]:
    n = tested.height
    return {"acme_2026.csv": pl.DataFrame({
        "District": ["Belleville Public Schools"] * n, "Pupil": tested["student_number"],
        "EventId": [f"acme-{i}" for i in range(n)], "Taken": ["2026-10-05"] * n, "Area": ["Reading"] * n,
        "Score": rng.integers(100, 900, n).astype(str), "Growth": ["12"] * n})}


SOURCE = Source("acme", "assessment", "Acme", FILES, AcmeResults, read, validate, AcmeSection,
                district_column="district_name", sample=sample,
                results_from={"subject": "subject", "test_key": "test_key", "student_link": "student_link",
                              "school_year": "school_year", "completed_at": "completed_at",
                              "scaled_score": "scaled_score"},
                scores=("growth",))
'''
REGISTRY_SECTION = """  acme:
    names: ["Belleville Public Schools"]
    min_link_rate: 0.95
"""


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "src" / "belleville_mtss"
    shutil.copytree(PACKAGE, copy, ignore=IGNORED)
    return copy


def _changed(copy: Path) -> set[str]:
    """Files of the copy that differ from the package, or are new."""
    files = {p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    return {f for f in files if not (PACKAGE / f).is_file() or (PACKAGE / f).read_bytes() != (copy / f).read_bytes()}


def _cli(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src"), "MTSS_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)
    env.pop("MTSS_DISTRICTS_DIR", None)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "belleville_mtss.cli", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
    return cli


def test_a_new_assessment_vendor_is_one_folder_and_its_line_in_the_list(tmp_path):
    copy = _copy(tmp_path)
    (copy / "lib" / "sources" / "acme").mkdir()
    (copy / "lib" / "sources" / "acme" / "__init__.py").write_text(ACME)
    listing = copy / "lib" / "sources" / "__init__.py"
    text = listing.read_text()
    assert text.count('    "classlink",\n)') == 1  # the list's last line, where the new one goes
    listing.write_text(text.replace('    "classlink",\n)', '    "classlink",\n    "acme",\n)'))
    entry = copy / "districts" / "belleville.yaml"
    text = entry.read_text()
    assert text.count("\nsources:\n") == 1
    entry.write_text(text.replace("\nsources:\n", "\nsources:\n" + REGISTRY_SECTION))
    assert _changed(copy) == {"lib/sources/acme/__init__.py", "lib/sources/__init__.py", "districts/belleville.yaml"}

    cli = _cli(tmp_path)
    demo = cli("demo", "--students", "300")
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    assert any(line.startswith("OK: belleville/") and "every file" in line for line in out.splitlines())
    home = tmp_path / "home"
    acme_file = home / "drops" / "belleville" / "2026-11-01" / "acme_2026.csv"
    tested = acme_file.read_text().count("\n") - 1
    # read and reported: its rows in the run report; linked and gated: its own link figures and the gate
    assert f"acme_screener {tested:>{40 - len('acme_screener')}}" in out
    assert "acme_link" in out and "assessment_link_rate             PASSED" in out
    with sqlite3.connect(home / "warehouse.db") as db:
        by_assessment = dict(db.execute(
            "select Assessment, count(*) from AssessmentResults group by Assessment").fetchall())
        growth = db.execute("select count(*) from AssessmentScores where Assessment = 'acme' and "
                            "ScoreName = 'growth' and ScoreValue = '12'").fetchone()[0]
        audit = db.execute("select Outcome from IngestionFiles where FileName = 'acme_2026.csv'").fetchall()
        crosswalk_errors = db.execute("select count(*) from IngestionErrors where FileName = 'acme_2026.csv'"
                                      ).fetchone()[0]
    # every test of a rostered student loaded under its own Assessment; Star's as before
    assert by_assessment["acme"] == tested and by_assessment["star"] > 0
    assert growth == tested  # the score beyond the common columns, kept
    assert audit == [("loaded",)] and crosswalk_errors == 0

    lineage = cli("lineage", "dm.AssessmentResults.ScaledScore")
    assert lineage.returncode == 0, lineage.stderr
    assert 'acme_screener: acme_*.csv, column "Score"' in lineage.stdout
    assert 'star_reading: SR.csv, column "ScaledScore"' in lineage.stdout

    # district-checked: the same drop naming another district is blocked, naming the vendor's file
    acme_file.write_text(acme_file.read_text().replace("Belleville Public Schools", "Nutley Public Schools"))
    rerun = cli("run", "belleville/2026-11-01")
    assert rerun.returncode == 1, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert "district_names_match_registry" in rerun.stdout and "acme_2026.csv" in rerun.stdout


def test_a_fourth_star_subject_is_one_file_kind_in_stars_folder(tmp_path):
    copy = _copy(tmp_path)
    files = copy / "lib" / "sources" / "star" / "files.py"
    text = files.read_text()
    last = '"SEL"),\n)'
    assert text.count(last) == 1
    files.write_text(text.replace(last, '"SEL"),\n    FileKind("star_cbm", "SC.csv", "Renaissance Star CBM export (SC.csv) '
                                        'of the drop", "SC"),\n)'))
    entry = copy / "districts" / "belleville.yaml"  # Belleville sends it
    text = entry.read_text()
    assert text.count("star_early_literacy: SEL.csv}") == 1
    entry.write_text(text.replace("star_early_literacy: SEL.csv}", "star_early_literacy: SEL.csv, star_cbm: SC.csv}"))
    assert _changed(copy) == {"lib/sources/star/files.py", "districts/belleville.yaml"}
    cli = _cli(tmp_path)
    demo = cli("demo", "--students", "300")
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert any(line.startswith("OK: belleville/") and "every file" in line for line in demo.stdout.splitlines())
    with sqlite3.connect(tmp_path / "home" / "warehouse.db") as db:
        subjects = dict(db.execute("select Subject, count(*) from AssessmentResults where Assessment = 'star' "
                                   "group by Subject").fetchall())
    assert set(subjects) == {"SR", "SM", "SEL", "SC"} and subjects["SC"] > 0
    lineage = cli("lineage", "dm.AssessmentResults.ScaledScore")
    assert 'star_cbm: SC.csv, column "ScaledScore"' in lineage.stdout
