"""The drop sensor's tick against many districts (issue 23): N registry districts, each with one drop already
received, in folders on a real OpenSSH server on 127.0.0.1 (the test suite's throwaway server), and the sensor
evaluated as the daemon does (its resources, an instance, the cursor carried from tick to tick).

    python benchmarks/many_districts.py --sizes 20,100,300,1000 --quiet-ticks 7

Per N it prints the ticks it took to plan every drop (run requests are capped per tick, the rest carried over),
then the median and maximum of the quiet ticks that follow (no new drop), which the target bounds: at 300
districts a median under 5 s and a maximum under 30 s on 2 cores.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from belleville_mtss.defs.resources import resources  # noqa: E402
from belleville_mtss.defs.sensors import sftp_drop_sensor  # noqa: E402
from belleville_mtss.lib.config import load_settings  # noqa: E402
from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR  # noqa: E402
from belleville_mtss.lib.sample import migrate_sample_warehouse  # noqa: E402
from belleville_mtss.lib.load.warehouse import make_engine  # noqa: E402
from belleville_mtss_tests.sshd_server import SshServer  # noqa: E402

FILES = ("students.csv", "SR.csv", "SM.csv", "SEL.csv")


def districts(root: Path, server: SshServer, n: int) -> Path:
    """N registry entries (Belleville's, under other keys and folders) and one complete drop in each folder."""
    registry = root / f"registry-{n}"
    registry.mkdir()
    base = yaml.safe_load((PACKAGED_DISTRICTS_DIR / "belleville.yaml").read_text())
    for i in range(n):
        key = f"district{i:05d}"
        (registry / f"{key}.yaml").write_text(yaml.safe_dump({**base, "district": key, "drop_folder": key,
                                                              "account_info_id": 900_000 + i}, sort_keys=False))
        drop = server.root / key / "2026-11-01"
        drop.mkdir(parents=True)
        for name in FILES:
            (drop / name).write_text("header\n")
        (drop / "drop.done").write_text("")
    return registry


def evaluate(instance, res: dict, cursor: str | None):
    started = time.perf_counter()
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=res) as ctx:
        result = sftp_drop_sensor(ctx)
    return time.perf_counter() - started, result


def measure(root: Path, server: SshServer, n: int, quiet_ticks: int) -> dict:
    home = root / f"home-{n}"
    settings = load_settings({"MTSS_HOME": str(home), "MTSS_DISTRICTS_DIR": str(districts(root, server, n)),
                              **server.env()})
    migrate_sample_warehouse(make_engine(settings.warehouse_url))
    res = resources(settings)
    cursor, planned, planning = None, 0, []
    with dg.DagsterInstance.ephemeral() as instance:
        while True:  # until every drop has been requested once
            seconds, result = evaluate(instance, res, cursor)
            cursor = result.cursor
            requested = len(result.run_requests or [])
            planning.append(seconds)
            planned += requested
            if not requested:
                break
        quiet = []
        for _ in range(quiet_ticks):
            seconds, result = evaluate(instance, res, cursor)
            cursor = result.cursor
            assert not result.run_requests, "a quiet tick planned a run"
            quiet.append(seconds)
    return {"n": n, "planned": planned, "planning_ticks": len(planning) - 1, "planning_s": sum(planning),
            "median_s": statistics.median(quiet), "max_s": max(quiet)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="20,100,300,1000")
    p.add_argument("--quiet-ticks", type=int, default=7)
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mtss-many-"))
    server = SshServer(root / "sshd").start()
    try:
        print(f"{'districts':>10}{'planned':>9}{'ticks to plan':>15}{'planning s':>12}{'quiet median s':>16}"
              f"{'quiet max s':>13}", flush=True)
        for n in (int(s) for s in args.sizes.split(",") if s):
            r = measure(root, server, n, args.quiet_ticks)
            print(f"{r['n']:>10,}{r['planned']:>9,}{r['planning_ticks']:>15}{r['planning_s']:>12.1f}"
                  f"{r['median_s']:>16.2f}{r['max_s']:>13.2f}", flush=True)
            for d in server.root.iterdir():
                shutil.rmtree(d)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
