"""`districts onboard` on a large sample drop (issue 24): a generated drop of N students (the demo's generator),
its ClassLink users in the embedded SQLite prod db beside another tenant's, the sample dm.AccountInfo; the command
as a person runs it, in its own process, timed (target: under a minute at 100,000 students on 2 cores).

    python benchmarks/onboarding.py [--students 100000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from belleville_mtss.lib.config import load_settings  # noqa: E402
from belleville_mtss.lib.sample import SampleSpec, generate_drop, load_databases  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mtss-onboard-") as tmp:
        home = Path(tmp) / "mtss"
        settings = load_settings({"MTSS_HOME": str(home)})
        sample = Path(tmp) / "sample"
        tables = generate_drop(sample, SampleSpec(students=args.students))
        load_databases(settings.prod_db_url, settings.warehouse_url, tables["classlink_users"])
        size = sum(f.stat().st_size for f in sample.iterdir()) / 1e6
        env = {k: v for k, v in os.environ.items() if not k.startswith("MTSS_")} | {"MTSS_HOME": str(home)}
        times = []
        for i in range(args.repeat):
            out = Path(tmp) / f"draft{i}.yaml"
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "belleville_mtss.cli", "districts", "onboard", str(sample),
                                   "--state", "NJ", "--key", "belleville", "--out", str(out)],
                                  env=env, cwd=REPO, capture_output=True, text=True)
            times.append(time.perf_counter() - started)
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
                return 1
        entry = yaml.safe_load(out.read_text())
        print(f"{'students':>10}{'sample MB':>11}{'runs':>6}{'median s':>10}{'max s':>8}  draft")
        print(f"{args.students:>10,}{size:>11,.1f}{len(times):>6}{statistics.median(times):>10.1f}{max(times):>8.1f}  "
              f"AccountInfoId {entry['account_info_id']}, link {entry['student_link']['renaissance']} = "
              f"{entry['student_link']['powerschool']}, tenant {entry['source_names']['classlink']}")
        target = statistics.median(times) < 60
        print(f"target: under 60 s at 100,000 students: {'met' if target else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
