"""Evaluate district-name resolution on the 17,178 real US districts of ../shared/reference/districts.

Each real name gets variant spellings (generic words added, dropped or swapped, abbreviations, case, a cut at
25 characters, a typo, two adjacent letters swapped in a generic word or in a word of the name); every variant is
resolved, with its state, against the whole list. Prints, overall and for each kind of variant, precision of
`resolved` decisions, share resolved (of all names and of names unique in their state), share ambiguous,
resolutions to another state; then the targets, met or not, and the time taken.

    python benchmarks/district_resolution.py [--reference DIR] [--limit N] [--seed S]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import polars as pl

from belleville_mtss.lib.district.names import Reference, normalise

DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "districts"
GENERIC_SUFFIXES = ["Public Schools", "School District", "Schools", "Board of Education", "SD", "PS", "Public School District"]
ABBREVIATIONS = {"TOWNSHIP": "TWP", "REGIONAL": "REG", "COUNTY": "CO", "CONSOLIDATED": "CONS", "MOUNT": "MT",
                 "INDEPENDENT SCHOOL DISTRICT": "ISD", "UNIFIED SCHOOL DISTRICT": "USD", "SAINT": "ST"}
GENERIC_WORDS = {"SCHOOL", "SCHOOLS", "DISTRICT", "PUBLIC", "SD", "PS", "BOARD", "EDUCATION", "OF", "THE"}
# The generic words long enough for normalisation to recognise them mistyped (names._LONG_GENERIC).
LONG_GENERIC_WORDS = {"SCHOOL", "SCHOOLS", "DISTRICT", "PUBLIC", "EDUCATION"}
# Targets for realistic variants of real districts, resolved with their state.
TARGET_PRECISION = 0.999
TARGET_RESOLVED_UNIQUE = 0.97  # of the variants of names unique in their state, all kinds together
TARGET_RESOLVED_TRANSPOSED = 0.90  # of the names unique in their state with one transposed pair, each family
TRANSPOSED = ("transposed_generic", "transposed_place")
# Real name drift (issue 24): later official NCES names of NJ districts against the older names of the list.
DRIFT_FILE = "wapo_tidytuesday_nj_excerpt.csv"
TARGET_DRIFT_RESOLVED = 55


def _transpose(word: str, rng: random.Random) -> str | None:
    """The word with two adjacent, different letters swapped ("DISTRICT" -> "DISTRCIT"); None if it has none."""
    pairs = [i for i in range(len(word) - 1)
             if word[i].isalpha() and word[i + 1].isalpha() and word[i] != word[i + 1]]
    if not pairs:
        return None
    i = rng.choice(pairs)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def transposed(name: str, rng: random.Random) -> dict[str, str]:
    """One transposed pair of letters: in a generic word added to the name, or in a word of the name itself."""
    out = {}
    words = name.split()
    core = [w for w in words if w.upper() not in GENERIC_WORDS] or words
    suffix = rng.choice([s for s in GENERIC_SUFFIXES if any(w.upper() in LONG_GENERIC_WORDS for w in s.split())])
    suffix_words = suffix.split()
    j = rng.choice([k for k, w in enumerate(suffix_words) if w.upper() in LONG_GENERIC_WORDS])
    suffix_words[j] = _transpose(suffix_words[j], rng)  # e.g. "Belleville Public Shcools"
    out["transposed_generic"] = f"{' '.join(core).title()} {' '.join(suffix_words)}"
    # a word of the name that is not generic and has 4 letters or more: mostly place names ("JACSKON COUNTY")
    place = [k for k, w in enumerate(words) if w.upper() not in GENERIC_WORDS and len(w) >= 4 and w.isalpha()]
    if place:
        k = rng.choice(place)
        swapped = _transpose(words[k], rng)
        if swapped is not None:
            out["transposed_place"] = " ".join(words[:k] + [swapped] + words[k + 1:])
    return out


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


def _drift(reference: Reference, districts: pl.DataFrame, path: Path) -> dict | None:
    """The later official names whose LEA id is in the list, resolved with their state: right, wrong, unresolved
    (each unresolved one printed, with the list's name)."""
    if not path.exists():
        print(f"name drift: {path} not found, not measured")
        return None
    later = pl.read_csv(path, infer_schema=False).filter(pl.col("leaid").is_in(districts["key"].to_list()))
    names = dict(zip(districts["key"], districts["name"]))
    results = reference.resolve_many([(n, "NJ", None) for n in later["lea_name_as_published"]])
    right = wrong = 0
    print(f"name drift ({path.name}): {later.height} later names whose LEA id is in the list")
    for leaid, name, r in zip(later["leaid"], later["lea_name_as_published"], results):
        if r.decision == "resolved" and r.best.key == leaid:
            right += 1
        elif r.decision == "resolved":
            wrong += 1
            print(f"  WRONG {name!r} -> {r.best.name!r} (the list: {names[leaid]!r})")
        else:
            print(f"  {r.decision} {name!r} (the list: {names[leaid]!r})")
    methods = {}
    for r in results:
        methods[r.method] = methods.get(r.method, 0) + (r.decision == "resolved")
    print(f"  resolved right {right}, wrong {wrong}, not resolved {later.height - right - wrong}; by method: "
          + ", ".join(f"{m} {n}" for m, n in sorted(methods.items()) if n))
    return {"listed": later.height, "right": right, "wrong": wrong}


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
    # its own generator, so that the older kinds of variant keep the spellings they had before it was added
    transposing = random.Random(args.seed + 1)
    sample = districts.head(args.limit) if args.limit else districts

    # Names unique in their state: no other district of the state has the same name after normalisation.
    # For the others "ambiguous" is the right answer.
    normalised = districts.with_columns(pl.col("name").map_elements(normalise, return_dtype=pl.Utf8).alias("norm"))
    counts = normalised.group_by("state", "norm").len()
    unique_keys = set(normalised.join(counts, on=["state", "norm"]).filter(pl.col("len") == 1)["key"])

    # 1. The real names themselves, all 17,178 at once, with their state: the timing target.
    originals = [(n, s, None) for n, s in zip(sample["name"], sample["state"])]
    t0 = time.perf_counter()
    resolved_originals = reference.resolve_many(originals)
    originals_s = time.perf_counter() - t0

    # 2. Variant spellings, with state.
    queries, truth, kinds = [], [], []
    for key, name, state in zip(sample["key"], sample["name"], sample["state"]):
        spellings = variants(name, rng)
        spellings.update(transposed(name, transposing))
        for kind, text in spellings.items():
            queries.append((text, state, None))
            truth.append((key, state))
            kinds.append(kind)
    t0 = time.perf_counter()
    results = reference.resolve_many(queries)
    variants_s = time.perf_counter() - t0

    shared = districts.group_by("state", "name").len().filter(pl.col("len") > 1)
    shared_in_state = int(shared["len"].sum())
    shared_normalised = len(districts) - len(unique_keys)

    def score(res_list, truth_list):
        resolved = correct = ambiguous = other_state = unique = unique_resolved = 0
        for res, (key, state) in zip(res_list, truth_list):
            is_unique = key in unique_keys
            unique += is_unique
            if res.decision == "resolved":
                resolved += 1
                unique_resolved += is_unique
                correct += res.best.key == key
                other_state += res.best.state != state
            elif res.decision == "ambiguous":
                ambiguous += 1
        n = len(res_list)
        return {"queries": n, "resolved": resolved, "precision": correct / resolved if resolved else 1.0,
                "share_resolved": resolved / n if n else 0.0, "share_ambiguous": ambiguous / n if n else 0.0,
                "other_state": other_state, "unique_resolved": unique_resolved / unique if unique else 1.0}

    def row(label: str, m: dict) -> str:
        return (f"{label:<28} {m['queries']:>8} {m['precision']:>10.4f} {m['share_resolved']:>9.2%} "
                f"{m['share_ambiguous']:>10.2%} {m['unique_resolved']:>15.2%} {m['other_state']:>12}")

    orig = score(resolved_originals, list(zip(sample["key"], sample["state"])))
    var = score(results, truth)
    print(f"reference: {len(districts)} districts, index built in {build_s:.2f} s; {shared_in_state} of them share "
          "their name with another district of the same state (for those, 'ambiguous' is the right answer); "
          f"{shared_normalised} once names are normalised")
    # "unique resolved": the share resolved of the names unique in their state. "other state" stays last.
    print(f"{'set':<28} {'queries':>8} {'precision':>10} {'resolved':>9} {'ambiguous':>10} {'unique resolved':>15} "
          f"{'other state':>12}")
    print(row("real names, with state", orig))
    print(row("variants, with state", var))
    print("by kind of variant:")
    by_kind = {}
    for kind in sorted(set(kinds)):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        by_kind[kind] = score([results[i] for i in idx], [truth[i] for i in idx])
        print(row(f"  {kind}", by_kind[kind]))

    # Targets: realistic variants of real districts, with their state.
    targets = [
        (f"precision >= {TARGET_PRECISION} (all variants)", var["precision"], var["precision"] >= TARGET_PRECISION),
        (f"resolved >= {TARGET_RESOLVED_UNIQUE:.0%} of variants of names unique in their state",
         var["unique_resolved"], var["unique_resolved"] >= TARGET_RESOLVED_UNIQUE),
    ]
    for kind in TRANSPOSED:
        m = by_kind.get(kind)
        if m is None:
            continue
        targets.append((f"{kind}: resolved >= {TARGET_RESOLVED_TRANSPOSED:.0%} of names unique in their state",
                        m["unique_resolved"], m["unique_resolved"] >= TARGET_RESOLVED_TRANSPOSED))
        targets.append((f"{kind}: precision >= {TARGET_PRECISION}", m["precision"],
                        m["precision"] >= TARGET_PRECISION))
    drift = _drift(reference, districts, args.reference / DRIFT_FILE)
    if drift is not None:
        targets.append((f"real NJ name drift: >= {TARGET_DRIFT_RESOLVED} of {drift['listed']} resolved",
                        drift["right"], drift["right"] >= TARGET_DRIFT_RESOLVED))
        targets.append(("real NJ name drift: 0 wrong", drift["wrong"], drift["wrong"] == 0))
    other = var["other_state"] + orig["other_state"]
    targets.append(("0 resolutions to another state (real names and variants)", other, other == 0))
    print("targets:")
    for label, value, met in targets:
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"  {'met' if met else 'NOT MET':<8} {label}: {shown}")

    print(f"time: {len(originals)} real names resolved in {originals_s:.2f} s; "
          f"{len(queries)} variants in {variants_s:.2f} s")
    wrong: dict[str, list[str]] = {}
    for q, r, t, kind in zip(queries, results, truth, kinds):
        if r.decision == "resolved" and r.best.key != t[0]:
            wrong.setdefault(kind, []).append(f"{q[0]!r} ({q[1]}) -> {r.best.name!r} [{r.method}]")
    for kind, lines in sorted(wrong.items()):
        print(f"  wrong ({kind}): {len(lines)}, for example")
        for line in lines[:4]:
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
