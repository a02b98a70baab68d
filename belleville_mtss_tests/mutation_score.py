"""The mutation score per module, from mutmut's results in mutants/ (docs/testing.md).

    python belleville_mtss_tests/mutation_score.py [--survivors] [--equivalents]

Killed (a timeout counts as killed: the tests noticed) over all mutants but the equivalent ones, which are listed
with a one-line reason in mutation_equivalents.txt beside this file. A mutant not yet run counts against the score.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EQUIVALENTS = Path(__file__).with_name("mutation_equivalents.txt")
MODULES = ("names", "crosswalk", "identity", "star", "csvfile", "registry", "powerschool", "warehouse")
STAGE = {"names": "district", "crosswalk": "district", "registry": "district", "identity": "students", "star": "read",
         "csvfile": "read", "powerschool": "read", "warehouse": "load"}  # lib/<stage>/<module>.py
# Of warehouse.py, the write paths only: the table declarations and read helpers are exercised everywhere.
WRITE_PATHS = ("_insert", "_copy", "stage", "unstage", "_from_staging", "apply_roster", "apply_results", "replace_roster", "results_scopes", "_in_scope", "replace_results",
               "record_received", "mark_files", "load_figures")
KILLED = {1, 3, 36, 24, -24, 152, 255}
TIMEOUT = {36, 24, -24, 152, 255}


def _function(mutant: str) -> str:
    name = mutant.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[1]
    return name.split("ǁ")[-1] if "ǁ" in name else name[2:]  # x_name, or xǁClassǁmethod


def equivalents() -> dict[str, str]:
    out = {}
    for line in EQUIVALENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition(":")
            out[name.strip()] = reason.strip()
    return out


def results(module: str) -> dict[str, int | None]:
    meta = REPO / "mutants" / "belleville_mtss" / "lib" / STAGE[module] / f"{module}.py.meta"
    codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    if module == "warehouse":
        codes = {k: v for k, v in codes.items() if _function(k) in WRITE_PATHS}
    return codes


def main(argv: list[str]) -> int:
    eq = equivalents()
    seen: set[str] = set()
    rows, survivors = [], []
    for module in MODULES:
        codes = results(module)
        seen |= codes.keys() & eq.keys()
        counted = {k: v for k, v in codes.items() if k not in eq}
        killed = sum(v in KILLED for v in counted.values())
        timeouts = sum(v in TIMEOUT for v in counted.values())
        not_run = sum(v is None for v in counted.values())
        survivors += [k for k, v in counted.items() if v not in KILLED]
        score = 100 * killed / len(counted) if counted else 0.0
        label = "warehouse (write paths)" if module == "warehouse" else module
        rows.append(f"| {label} | {len(codes)} | {len(codes) - len(counted)} | {killed} ({timeouts} by timeout) "
                    f"| {len(counted) - killed - not_run} | {not_run} | {killed}/{len(counted)} = {score:.1f}% |")
    print("| module | mutants | equivalent | killed | not killed | not run | score |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    stale = sorted(set(eq) - seen)
    if stale:
        print(f"\n{len(stale)} listed equivalent(s) no longer among the mutants (the code changed?):", *stale,
              sep="\n  ")
    if "--survivors" in argv:
        print("\nNot killed:", *survivors, sep="\n  ")
    if "--equivalents" in argv:
        print("\n| mutant | why it is equivalent |\n|---|---|")
        print("\n".join(f"| `{k.removeprefix('belleville_mtss.lib.')}` | {v} |" for k, v in eq.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
