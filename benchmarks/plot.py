"""Time and peak memory against N, per stage, from one or several result files of benchmarks/scale.py.

    python benchmarks/plot.py benchmarks/results/RUN.json [MORE.json ...] --out docs/performance.png

Several files are merged (a later file's figure for the same stage and N replaces an earlier one), so runs at
different sizes can be drawn together without running again. Needs matplotlib (`pip install -e '.[bench]'`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# drawn in this order, each stage with its own colour and marker across both panels
STAGE_LABELS = {
    "floor": "floor (polars, our columns only)",
    "core": "core (lib/pipeline.py)",
    "pandas": "pandas + pandera",
    "load_sqlite": "load into SQLite",
    "load_postgres": "load into PostgreSQL",
    "dagster_no_loads": "Dagster, without the loads",
    "dagster_sqlite": "Dagster, loads into SQLite",
    "dagster_postgres": "Dagster, loads into PostgreSQL",
}


def merge(paths: list[Path]) -> dict:
    """Points per stage ({N: (seconds, peak MB)}), input sizes per N, the small drop and the machine, from the
    result files in order."""
    points: dict[str, dict[int, tuple[float, float]]] = {}
    input_mb: dict[int, float] = {}
    small, machine = None, None
    for path in paths:
        run = json.loads(Path(path).read_text())
        machine = run["machine"]
        small = run["small_drop"] if "seconds" in (run.get("small_drop") or {}) else small
        for n, at_n in run["by_n"].items():
            input_mb[int(n)] = at_n["input_mb"]
            for stage, r in at_n["stages"].items():
                if "seconds" in r and "peak_rss_mb" in r:
                    points.setdefault(stage, {})[int(n)] = (r["seconds"], r["peak_rss_mb"])
    return {"points": points, "input_mb": input_mb, "small_drop": small, "machine": machine}


def draw(paths: list[Path], out: Path) -> Path | None:
    """The PNG at `out`; None (and a one-line note) when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        print("plot: matplotlib is not installed (pip install -e '.[bench]'); no PNG drawn")
        return None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    data = merge(paths)
    fig, (time_ax, mem_ax) = plt.subplots(1, 2, figsize=(13, 6.5))
    for stage, label in STAGE_LABELS.items():
        series = sorted(data["points"].get(stage, {}).items())
        if not series:
            continue
        ns = [n for n, _ in series]
        style = "--" if stage.startswith("load") else "-"  # the loads alone, apart from whole runs
        line, = time_ax.plot(ns, [s for _, (s, _m) in series], style, marker="o", label=label)
        mem_ax.plot(ns, [m for _, (_s, m) in series], style, marker="o", color=line.get_color(), label=label)
    _bounds(mem_ax, data["input_mb"])
    small = data["small_drop"]
    if small:
        time_ax.errorbar([small["students"]], [small["seconds"]], marker="s", color="black", capsize=4,
                         yerr=[[small["seconds"] - small["min"]], [small["max"] - small["seconds"]]],
                         label="small drop: `belleville-mtss run` (median, min-max)")
    for ax, what in ((time_ax, "wall time (s)"), (mem_ax, "peak RSS (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("students in the drop (N)")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    # one legend for both panels (a stage has the same colour in each), under them, where no line runs
    handles = {}
    for ax in (time_ax, mem_ax):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=3, fontsize=9, frameon=False)
    m = data["machine"]
    fig.suptitle(f"benchmarks/scale.py: {m['cores']} cores, Python {m['python']}, polars {m['polars']} "
                 f"({m['polars_threads']} threads), dagster {m['dagster']}")
    fig.tight_layout(rect=(0, 0.16, 1, 1))  # room for the legend
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _bounds(ax, input_mb: dict[int, float]) -> None:
    """The memory targets as lines: the input's size on disk (core) and 1.5x it (Dagster)."""
    ns = sorted(input_mb)
    if ns:
        ax.plot(ns, [input_mb[n] for n in ns], "k:", linewidth=1.5, label="input size on disk (core bound)")
        ax.plot(ns, [1.5 * input_mb[n] for n in ns], "k-.", linewidth=1, label="1.5x input (Dagster bound)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="result files written by benchmarks/scale.py")
    parser.add_argument("--out", type=Path, default=Path("docs/performance.png"))
    args = parser.parse_args(argv)
    drawn = draw(args.results, args.out)
    if drawn:
        print(f"plot: {drawn}")
    return 0 if drawn else 1


if __name__ == "__main__":
    sys.exit(main())
