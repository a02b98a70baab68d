"""The scale benchmark runs end to end at a tiny size, so the script cannot rot (timings are not asserted)."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_scale_benchmark_runs_every_stage_at_a_tiny_size(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "scale.py"), "--students", "2000", "--sizes", "1000",
         "--work", str(tmp_path), "--timeout", "240"],
        capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "Results at N = 2,000 students" in out
    table = {line.split()[0]: line for line in out.splitlines() if line.split()[:1] and line.split()[0] in (
        "floor", "core", "pandas", "load_sqlite", "load_postgres", "dagster")}
    for stage in ("floor", "core", "pandas", "load_sqlite", "dagster"):
        assert "exit" not in table[stage] and "over" not in table[stage], table[stage]
    if os.environ.get("MTSS_TEST_PG_URL"):
        assert "skipped" not in table["load_postgres"]
    for ratio in ("core / floor", "pandas / core", "core peak RSS / input size", "core time N=1,000 -> 2,000"):
        assert ratio in out, ratio


def test_big_roster_benchmark_runs_at_a_tiny_size(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "big_roster.py"), "--rows", "5000",
                           "--work", str(tmp_path)], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "students.csv: 5,000 rows" in done.stdout and "peak RSS < 3 GB: met" in done.stdout
