"""Suggestions for unmatched Star students against a generated district with known truth (issue 25): PowerSchool
students (the demo's names, so many share them; twins with one birth date and school), and Star students whose
identifier matches none, each for a known reason: a mistyped digit, two digits swapped, leading zeros dropped, a
name variant with a mistyped number, a twin's mistyped number, or a student PowerSchool does not have yet.

    python benchmarks/unmatched_students.py [--students 3000] [--cases 600] [--seed 25]

Prints, per kind and overall, how often the top suggestion is the right student (precision among the top
suggestions made, recall among the students who have a counterpart), and how often a student with no counterpart
got a suggestion; then the targets: precision >= 0.98 at recall >= 0.80, and <= 5% for those without one.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from belleville_mtss.lib.sample import FIRST, LAST  # noqa: E402
from belleville_mtss.lib.students.suggest import suggest, unknown_cause  # noqa: E402

NICKNAMES = {"Daniel": "Dan", "Samuel": "Sam", "Gabriel": "Gabe", "Isabella": "Bella", "Elijah": "Eli",
             "Valentina": "Vale", "Camila": "Cami", "Adrian": "Adi"}
KINDS = ("mistyped_digit", "swapped_digits", "leading_zeros", "name_variant", "twin", "new_student")


def students(n: int, rng: random.Random) -> list[dict]:
    out = []
    for i in range(n):
        number = f"{210001 + i}" if i % 10 else f"00{3000 + i}"  # one in ten kept with leading zeros
        out.append({"id": number, "number": number, "first_name": rng.choice(FIRST), "last_name": rng.choice(LAST),
                    "birth_date": f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(2008, 2020)}",
                    "school_id": f"{rng.randint(1, 10):02d}"})
    for s in out:
        s["email"] = f"{s['first_name']}.{s['last_name']}.{s['number']}@example.org".lower()
    # twins: every 20th student has a twin, same last name, birth date, school and email pattern, next number
    for i in range(0, n - 1, 20):
        a, b = out[i], out[i + 1]
        b.update(last_name=a["last_name"], birth_date=a["birth_date"], school_id=a["school_id"],
                 first_name=next(f for f in FIRST if f != a["first_name"]))
        b["email"] = f"{b['first_name']}.{b['last_name']}.{b['number']}@example.org".lower()
    return out


def _mistype(number: str, rng: random.Random) -> str:
    i = rng.randrange(len(number))
    return number[:i] + rng.choice([d for d in "0123456789" if d != number[i]]) + number[i + 1:]


def _swap(number: str, rng: random.Random) -> str:
    pairs = [i for i in range(len(number) - 1) if number[i] != number[i + 1]]
    i = rng.choice(pairs)
    return number[:i] + number[i + 1] + number[i] + number[i + 2:]


def cases(roster: list[dict], n: int, rng: random.Random) -> list[tuple[str, dict, str | None]]:
    """(kind, the Star student as Renaissance has it, the right PowerSchool student number or None)."""
    out, taken = [], set()
    used = {s["number"] for s in roster}  # a Star identifier equal to a student's number would have linked
    twins = [roster[i] for i in range(0, len(roster) - 1, 20)]
    for k in range(n):
        kind = KINDS[k % len(KINDS)]
        if kind == "new_student":
            used.add(f"{900000 + k}")
            person = {"number": f"{900000 + k}", "first_name": rng.choice(FIRST), "last_name": rng.choice(LAST),
                      "birth_date": f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(2008, 2020)}",
                      "school_id": f"{rng.randint(1, 10):02d}"}
            person["email"] = f"{person['first_name']}.{person['last_name']}.{person['number']}@example.org".lower()
            out.append((kind, {**person, "id": person["number"]}, None))
            continue
        pool = twins if kind == "twin" else [s for s in roster if kind != "leading_zeros" or s["number"][0] == "0"]
        while True:  # each Star identifier unmatched (equal to no student's number), and one student's only
            s = rng.choice([s for s in pool if s["number"] not in taken])
            person = dict(s)
            for _ in range(10):
                if kind in ("mistyped_digit", "twin", "name_variant"):
                    person["number"] = _mistype(s["number"].lstrip("0"), rng)
                elif kind == "swapped_digits":
                    person["number"] = _swap(s["number"], rng)
                else:  # leading_zeros
                    person["number"] = s["number"].lstrip("0")
                if person["number"] not in used:
                    break
            if person["number"] not in used:
                break
        taken.add(s["number"])
        used.add(person["number"])
        if kind == "name_variant":
            first = s["first_name"]
            person["first_name"] = NICKNAMES.get(first, first)
            person["last_name"] = s["last_name"] + ("-" + rng.choice(LAST) if k % 2 else "")
        person["id"] = person["number"]
        out.append((kind, person, s["number"]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", type=int, default=3000)
    p.add_argument("--cases", type=int, default=600)
    p.add_argument("--seed", type=int, default=25)
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    roster = students(args.students, rng)
    known = cases(roster, args.cases, rng)
    started = time.perf_counter()
    found = suggest([person for _k, person, _t in known], roster, unknown_cause("star"))
    seconds = time.perf_counter() - started
    top = {r["from_id"]: r["to_id"] for r in found.unique("from_id", keep="first", maintain_order=True).to_dicts()}
    print(f"{args.students:,} PowerSchool students, {len(known):,} unmatched Star students, suggestions in "
          f"{seconds:.2f} s ({found.height:,} kept)")
    print(f"{'kind':<16}{'cases':>7}{'suggested':>11}{'top right':>11}{'precision':>11}{'recall':>9}")
    totals = {"cases": 0, "suggested": 0, "right": 0, "with": 0, "without": 0, "without_suggested": 0}
    for kind in KINDS:
        rows = [(person, truth) for k, person, truth in known if k == kind]
        suggested = sum(person["id"] in top for person, _t in rows)
        right = sum(top.get(person["id"]) == truth for person, truth in rows if truth)
        with_truth = sum(truth is not None for _p, truth in rows)
        precision = right / suggested if suggested else 1.0
        recall = right / with_truth if with_truth else float("nan")
        print(f"{kind:<16}{len(rows):>7}{suggested:>11}{right:>11}{precision:>11.3f}{recall:>9.3f}")
        totals["cases"] += len(rows)
        totals["suggested"] += suggested if with_truth else 0
        totals["right"] += right
        totals["with"] += with_truth
        if not with_truth:
            totals["without"] += len(rows)
            totals["without_suggested"] += suggested
    precision = totals["right"] / totals["suggested"] if totals["suggested"] else 1.0
    recall = totals["right"] / totals["with"]
    false_rate = totals["without_suggested"] / totals["without"] if totals["without"] else 0.0
    print(f"{'all with one':<16}{totals['with']:>7}{totals['suggested']:>11}{totals['right']:>11}{precision:>11.3f}"
          f"{recall:>9.3f}")
    print("targets:")
    print(f"  {'met' if precision >= 0.98 else 'NOT met':<8} top suggestion precision >= 0.98: {precision:.3f}")
    print(f"  {'met' if recall >= 0.80 else 'NOT met':<8} top suggestion recall >= 0.80: {recall:.3f}")
    print(f"  {'met' if false_rate <= 0.05 else 'NOT met':<8} students with no counterpart given a suggestion "
          f"<= 5%: {false_rate:.3f} ({totals['without_suggested']} of {totals['without']})")
    return 0 if precision >= 0.98 and recall >= 0.80 and false_rate <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
