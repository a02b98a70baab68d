"""Evaluate district-name resolution on the 17,178 real US districts of ../shared/reference/districts.

Each real name gets variant spellings (generic words added, dropped or swapped, abbreviations, case, a cut at
25 characters, a typo); every variant is resolved, with its state, against the whole list. Prints precision of
`resolved` decisions, share resolved, share ambiguous, resolutions to another state, and the time taken.

    python benchmarks/district_resolution.py [--reference DIR] [--limit N] [--seed S]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import polars as pl

from belleville_mtss.lib.names import Reference

DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "districts"
GENERIC_SUFFIXES = ["Public Schools", "School District", "Schools", "Board of Education", "SD", "PS", "Public School District"]
ABBREVIATIONS = {"TOWNSHIP": "TWP", "REGIONAL": "REG", "COUNTY": "CO", "CONSOLIDATED": "CONS", "MOUNT": "MT",
                 "INDEPENDENT SCHOOL DISTRICT": "ISD", "UNIFIED SCHOOL DISTRICT": "USD", "SAINT": "ST"}
GENERIC_WORDS = {"SCHOOL", "SCHOOLS", "DISTRICT", "PUBLIC", "SD", "PS", "BOARD", "EDUCATION", "OF", "THE"}


def variants(name: str, rng: random.Random) -> dict[str, str]:
    """Kinds of variant -> the variant spelling of a real name."""
    words = name.split()
    core = [w for w in words if w.upper() not in GENERIC_WORDS] or words
    out = {
        "case": name.title(),
        "generic_added": f"{' '.join(core).title()} {rng.choice(GENERIC_SUFFIXES)}",
        "generic_dropped": " ".join(core),
        "generic_swapped": f"{' '.join(core)} {rng.choice(GENERIC_SUFFIXES)}".upper(),
        "cut_at_25": f"{name} {rng.choice(GENERIC_SUFFIXES)}"[:25],
    }
    abbreviated = name.upper()
    for long, short in ABBREVIATIONS.items():
        abbreviated = abbreviated.replace(long, short)
    if abbreviated != name.upper():
        out["abbreviated"] = abbreviated
    letters = [i for i, c in enumerate(name) if c.isalpha()]
    if len(letters) > 6:  # one letter replaced, as a person types it
        i = rng.choice(letters[1:])
        out["typo"] = name[:i] + rng.choice("aeioulnrst").upper() + name[i + 1:]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N districts (0: all)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    path = args.reference / "us_districts_leaid_name_state.csv"
    if not path.exists():
        print(f"reference not found: {path}", file=sys.stderr)
        return 2
    districts = pl.read_csv(path, infer_schema=False).select(
        pl.col("leaid").alias("key"), pl.col("nces_agency_name").fill_null(pl.col("ocd_name")).alias("name"),
        "state", "county",
    )
    t0 = time.perf_counter()
    reference = Reference(districts)
    build_s = time.perf_counter() - t0
    rng = random.Random(args.seed)
    sample = districts.head(args.limit) if args.limit else districts

    # 1. The real names themselves, all 17,178 at once, with their state: the timing target.
    originals = [(n, s, None) for n, s in zip(sample["name"], sample["state"])]
    t0 = time.perf_counter()
    resolved_originals = reference.resolve_many(originals)
    originals_s = time.perf_counter() - t0

    # 2. Variant spellings, with state.
    queries, truth, kinds = [], [], []
    for key, name, state in zip(sample["key"], sample["name"], sample["state"]):
        for kind, text in variants(name, rng).items():
            queries.append((text, state, None))
            truth.append((key, state))
            kinds.append(kind)
    t0 = time.perf_counter()
    results = reference.resolve_many(queries)
    variants_s = time.perf_counter() - t0

    # The correct answer for a name that several districts of the state share is "ambiguous".
    shared = districts.group_by("state", "name").len().filter(pl.col("len") > 1)
    shared_in_state = int(shared["len"].sum())
    def score(res_list, truth_list, names):
        resolved = correct = ambiguous = other_state = 0
        for res, (key, state), name in zip(res_list, truth_list, names):
            if res.decision == "resolved":
                resolved += 1
                correct += res.best.key == key
                other_state += res.best.state != state
            elif res.decision == "ambiguous":
                ambiguous += 1
        n = len(res_list)
        return {"queries": n, "resolved": resolved, "precision": correct / resolved if resolved else 1.0,
                "share_resolved": resolved / n, "share_ambiguous": ambiguous / n, "other_state": other_state}

    orig = score(resolved_originals, list(zip(sample["key"], sample["state"])), list(sample["name"]))
    var = score(results, truth, [q[0] for q in queries])
    print(f"reference: {len(districts)} districts, index built in {build_s:.2f} s; {shared_in_state} of them share "
          "their name with another district of the same state (for those, 'ambiguous' is the right answer)")
    print(f"{'set':<28} {'queries':>8} {'precision':>10} {'resolved':>9} {'ambiguous':>10} {'other state':>12}")
    for label, m in (("real names, with state", orig), ("variants, with state", var)):
        print(f"{label:<28} {m['queries']:>8} {m['precision']:>10.4f} {m['share_resolved']:>9.2%} "
              f"{m['share_ambiguous']:>10.2%} {m['other_state']:>12}")
    print("by kind of variant:")
    for kind in sorted(set(kinds)):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        m = score([results[i] for i in idx], [truth[i] for i in idx], [queries[i][0] for i in idx])
        print(f"  {kind:<26} {m['queries']:>8} {m['precision']:>10.4f} {m['share_resolved']:>9.2%} "
              f"{m['share_ambiguous']:>10.2%} {m['other_state']:>12}")
    print(f"time: {len(originals)} real names resolved in {originals_s:.2f} s; "
          f"{len(queries)} variants in {variants_s:.2f} s")
    wrong = [(q[0], q[1], r.best.name) for q, r, t in zip(queries, results, truth)
             if r.decision == "resolved" and r.best.key != t[0]]
    for q, s, got in wrong[:15]:
        print(f"  wrong: {q!r} ({s}) -> {got!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
