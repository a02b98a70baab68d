"""A small drop as users run it: `belleville-mtss run` on the demo's 600-student drop, wall time with the
command's startup (imports, definitions, ephemeral instance) included, against issue 14's bound of 2.5 s.

    python benchmarks/small_drop.py [--students 600] [--repeat 5] [--work DIR] [--here]

The command timed is the project as it is installed for use: a new virtual environment under the work folder with
`pip install <this checkout>`, as the Dockerfile installs it (the project's own dependencies only; pip compiles
the bytecode at install). `--here` times this environment's `belleville-mtss` instead: a developer's install,
where the test extras bring pandas, which pandera imports whenever it is importable (about 0.2 s of each start),
and where an editable install whose bytecode is never written (PYTHONDONTWRITEBYTECODE set) compiles our modules
at every start (about 0.1 s).

The drop and its databases are laid out once with `belleville-mtss demo` in a fresh MTSS_HOME (not timed); then
`belleville-mtss run belleville/2026-11-01` runs `--repeat` times, each in its own process, and the median, the
fastest and the slowest wall times are reported. The median is the figure judged. Then what bounds it: one more
process runs the same drop the way the command does, timing its phases (the imports, the definitions, the instance,
the run, the steps' own time within it) against the time the process was started.

    python benchmarks/small_drop.py --against OTHER_CHECKOUT [--repeat 15]

compares this checkout's command with another checkout's (a worktree of the commit before a change), each installed
for use with its own drop and home, run in turn (this, other, this, ...): this machine's pace drifts by a quarter
within minutes, more than most changes move a run, so each pair's ratio is taken and their median is the figure.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BOUND_SECONDS = 2.5
DROP = "belleville/2026-11-01"  # the demo's drop (lib/sample.py SampleSpec.drop_name)


REPO = Path(__file__).resolve().parent.parent


def install(work: Path, repo: Path = REPO) -> Path:
    """A new virtual environment in `work` with the checkout `repo` installed as for use; its interpreter."""
    venv, source = work / "installed", work / "source"
    for folder in (venv, source):
        shutil.rmtree(folder, ignore_errors=True)
    # built from a copy: pip builds in the tree it is given, and a checkout's own build/ may hold stale modules
    ours = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".mtss", "test-artifacts",
                                  "mutants", "results")
    work = work.resolve()  # a work folder inside the checkout is not copied into itself
    shutil.copytree(repo, source, ignore=lambda folder, names: set(ours(folder, names)) | {
        n for n in names if Path(folder, n).resolve() == work})
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
                   check=True, capture_output=True)
    return python


def _cli(python: Path) -> str:
    beside = python.parent / "belleville-mtss"  # the one installed with this interpreter
    return str(beside) if beside.exists() else shutil.which("belleville-mtss") or "belleville-mtss"


def _env(home: Path) -> dict[str, str]:
    # only the embedded defaults under MTSS_HOME: no configured database or drop server of the caller's
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTSS_")}
    return {**env, "MTSS_HOME": str(home)}


def _last_line(*outputs: str) -> str:
    """The last line of the first of `outputs` that says anything."""
    return next((text.strip().splitlines()[-1] for text in outputs if text.strip()), "no output")


def _laid_out(python: Path, home: Path, students: int) -> tuple[str, dict[str, str]]:
    """A fresh home with the demo's drop of `students`, laid out by `python`'s command: that command and its
    environment."""
    shutil.rmtree(home, ignore_errors=True)
    env, cli = _env(home), _cli(python)
    done = subprocess.run([cli, "demo", "--students", str(students)], env=env, capture_output=True, text=True)
    if done.returncode != 0:  # its own reason (too few students, a broken install), not a traceback of ours
        raise SystemExit(f"small_drop.py: `belleville-mtss demo --students {students}` exited {done.returncode}: "
                         f"{_last_line(done.stderr, done.stdout)}")
    return cli, env


def _run(cli: str, env: dict[str, str]) -> tuple[float, str, bool]:
    """One `belleville-mtss run` of the drop: its wall seconds, its last line, whether it succeeded."""
    started = time.perf_counter()
    done = subprocess.run([cli, "run", DROP], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    last = _last_line(done.stdout, done.stderr)
    return seconds, last if done.returncode == 0 else f"exit {done.returncode}: {last}", done.returncode == 0


def measure(students: int = 600, repeat: int = 5, work: Path | None = None, here: bool = False) -> dict:
    """Seconds of each `belleville-mtss run` of a demo drop of `students`, and their median, min and max; the
    command installed for use in a new environment, or (`here`) this interpreter's."""
    work = work or Path(tempfile.mkdtemp(prefix="mtss-small-drop-"))
    python = Path(sys.executable) if here else install(work)
    home = work / f"home-{students}"
    cli, env = _laid_out(python, home, students)
    seconds, verdicts = [], []
    for _ in range(repeat):
        took, verdict, ok = _run(cli, env)
        seconds.append(took)
        if not ok:
            return {"failed": verdict, "runs": seconds}
        verdicts.append(verdict)
    return {"students": students, "command": "this environment's" if here else "installed for use",
            "runs": seconds, "seconds": statistics.median(seconds), "min": min(seconds), "max": max(seconds),
            "verdict": verdicts[-1], "phases": phases(home, python)}


def compare(sides: dict[str, tuple[str, dict[str, str]]], repeat: int = 15) -> dict:
    """Two commands, each with its environment (its own home, laid out by `_laid_out`), run in turn `repeat`
    times: each one's seconds, and the median of the pair ratios (the first named over the second)."""
    runs: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeat):
        for name, (cli, env) in sides.items():
            took, verdict, ok = _run(cli, env)
            if not ok:
                return {"failed": f"{name}: {verdict}", "runs": runs}
            runs[name].append(took)
    first, second = runs.values()
    return {"runs": runs, "ratio": statistics.median(a / b for a, b in zip(first, second))}


PHASES = """
import time, sys
started = float(sys.argv[1])
at = {"interpreter up": time.time() - started}
t = time.perf_counter()
from belleville_mtss.start import imported
imported("run")  # as the command imports its code
import belleville_mtss.run as run
from belleville_mtss.lib.config import load_settings
at["imports"] = time.perf_counter() - t; t = time.perf_counter()
settings = load_settings()
job = run.build_definitions(settings).resolve_job_def("drop_job")
entry = run.registry_entry(settings, sys.argv[2])
selection = run.drop_assets(entry)
at["definitions"] = time.perf_counter() - t; t = time.perf_counter()
instance = run.instance_for(settings)
instance.add_dynamic_partitions("drops", [sys.argv[2]])
at["instance"] = time.perf_counter() - t; t = time.perf_counter()
result = job.execute_in_process(instance=instance, partition_key=sys.argv[2], raise_on_error=False,
                                asset_selection=selection, tags=run.drop_tags(entry),
                                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
at["run"] = time.perf_counter() - t
steps = instance.get_run_step_stats(result.run_id)
at["of which steps"] = sum(s.end_time - s.start_time for s in steps)
print(repr({"seconds": at, "steps": len(steps), "events": len(result.all_events), "success": result.success}))
"""


def phases(home: Path, python: Path) -> dict:
    """Seconds of each phase of one run of the drop in a new process, as `belleville-mtss run` makes it."""
    done = subprocess.run([str(python), "-c", PHASES, repr(time.time()), DROP], env=_env(home),
                          capture_output=True, text=True, check=True)
    return eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - our own child's repr of a dict of numbers


def describe(result: dict) -> str:
    """One line for a report."""
    if "failed" in result:
        return f"small drop: FAILED ({result['failed']})"
    line = (f"small drop: {result['students']:,} students, `belleville-mtss run` "
            f"({result['command']}) x{len(result['runs'])}: "
            f"median {result['seconds']:.2f} s, min {result['min']:.2f} s, max {result['max']:.2f} s")
    if "phases" in result:
        p = result["phases"]
        line += ("\nwhat bounds it, one more run in a new process: " + ", ".join(
            f"{k} {v:.2f} s" for k, v in p["seconds"].items()) + f" ({p['steps']} steps, {p['events']} events)")
    return line


def describe_comparison(result: dict, students: int, other: Path) -> str:
    if "failed" in result:
        return f"small drop, compared: FAILED ({result['failed']})"
    (a, ra), (b, rb) = result["runs"].items()
    return (f"small drop: {students:,} students, `belleville-mtss run` of this checkout ({a}) and of "
            f"{other} ({b}), installed for use, run in turn x{len(ra)}: median {statistics.median(ra):.2f} s "
            f"({min(ra):.2f}-{max(ra):.2f}) against {statistics.median(rb):.2f} s ({min(rb):.2f}-{max(rb):.2f}); "
            f"median of the pair ratios {a}/{b}: {result['ratio']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--here", action="store_true", help="time this environment's command, not a new install")
    parser.add_argument("--against", type=Path, metavar="CHECKOUT",
                        help="another checkout: both installed for use, run in turn, the median pair ratio printed")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.against:
        if args.here:
            parser.error("--against installs both checkouts for use: it cannot time this environment's (--here)")
        if not (args.against / "pyproject.toml").is_file():
            parser.error(f"--against {args.against}: not a checkout of the project (no pyproject.toml)")
        work = args.work or Path(tempfile.mkdtemp(prefix="mtss-small-drop-"))
        sides = {name: _laid_out(install(work / name, repo), work / name / f"home-{args.students}", args.students)
                 for name, repo in (("this", REPO), ("other", args.against.resolve()))}
        result = compare(sides, args.repeat)
        print(describe_comparison(result, args.students, args.against))
        return 1 if "failed" in result else 0
    result = measure(args.students, args.repeat, args.work, args.here)
    print(describe(result))
    if "failed" not in result:
        print(f"verdict of the last run: {result['verdict']}")
        met = result["seconds"] <= BOUND_SECONDS
        print(f"median wall <= {BOUND_SECONDS} s: {'met' if met else 'NOT met'}")
    return 1 if "failed" in result else 0


if __name__ == "__main__":
    sys.exit(main())
