"""The README's "Adding a source", done literally: one more FileSource in lib/read/catalog.py, and a fourth Star subject
is received, validated, loaded and traced like the others (on a copy of the package, in a child process)."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import belleville_mtss

PACKAGE = Path(belleville_mtss.__file__).parent
LAST_ENTRY = '''"SEL"),\n)'''
NEW_ENTRY = '''"SEL"),\n    FileSource("star_cbm", "SC.csv", "star", "Renaissance Star CBM export (SC.csv) of the drop", "SC"),\n)'''


def test_a_fourth_star_subject_is_one_catalog_entry(tmp_path):
    copy = tmp_path / "src" / "belleville_mtss"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    catalog = copy / "lib" / "read" / "catalog.py"
    text = catalog.read_text()
    assert text.count(LAST_ENTRY) == 1  # the catalog's last entry, where the README's line goes
    catalog.write_text(text.replace(LAST_ENTRY, NEW_ENTRY))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src"), "MTSS_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "belleville_mtss.cli", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    demo = cli("demo", "--students", "300")
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "every file" in demo.stdout.splitlines()[-1]
    assert (tmp_path / "home" / "drops" / "belleville" / "2026-11-01" / "SC.csv").exists()
    with sqlite3.connect(tmp_path / "home" / "warehouse.db") as db:
        subjects = dict(db.execute("select Subject, count(*) from AssessmentResults group by Subject").fetchall())
    assert set(subjects) == {"SR", "SM", "SEL", "SC"}
    assert subjects["SC"] > 0

    lineage = cli("lineage", "dm.AssessmentResults.ScaledScore")
    assert lineage.returncode == 0, lineage.stderr
    assert 'star_cbm: SC.csv, column "ScaledScore"' in lineage.stdout
