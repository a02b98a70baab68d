"""FastBridge files for a generated drop: the aReading and aMath screening exports (every header of FastBridge's in
its order, its blank-headed column as the public sample writes it), one row per student K-12, the fall 2026-2027
group filled for each and the winter group (with its growth from fall) for about half of them."""
from __future__ import annotations

import numpy as np
import polars as pl

_FIRST = ("Assessment", "Assessment Language", "State", "District", "School", "Local ID", "State ID", "FAST ID",
          "First Name", "Last Name", "Gender", "DOB", "Race", "Special Ed. Status", "Grade",
          "Unnamed: 15")  # a column with a blank header, as a pandas re-save names it (the public sample's)
_GROUP = ("Test Theta", "Percentile at School", "Percentile at LEA", "Percentile at Nation", "Risk Level",
          "Final Date")
_GROWTH = ("Growth Score", "School Growth Percentile", "District Growth Percentile", "National Growth Percentile",
           "Growth Percentile by Start Score")
GRADES = range(0, 13)
_GRADE_WORDS = np.array(["Kindergarten", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine",
                         "Ten", "Eleven", "Twelve"])
# Per subject: its measure, the fall Test Theta at kindergarten, its rise a grade (to grade 9), its spread, the
# winter's growth, and theta -> Lexile or Quantile (a line through the public samples' pairs; below 0 BR or EM).
_SUBJECTS = {"aReading": ("Lexile", 410, 15, 35, 10, (15.2, -7030), "BR", "L"),
             "aMath": ("Quantile", 180, 5, 12, 4, (33.0, -6540), "EM", "Q")}


def headers(subject: str) -> tuple[str, ...]:
    from . import PERIODS

    out = list(_FIRST)
    for i, period in enumerate(PERIODS):
        out += [f"{period} {subject} {c}" for c in _GROUP]
        out += [f"{g} from {before} to {period}" for before in PERIODS[:i] for g in _GROWTH]
    return (*out, *(f"{period} {_SUBJECTS[subject][0]}" for period in PERIODS))


def screening(subject: str, tested: pl.DataFrame, spec, rng: np.random.Generator) -> pl.DataFrame:
    from ...sample import SCHOOLS, percentile, sample_events

    measure, base, step, spread, growth, (slope, offset), below, unit = _SUBJECTS[subject]
    events = sample_events(tested, GRADES, rng)
    m, window, grade = events.height, events["window"].to_numpy(), events["grade"].to_numpy()
    expected = base + step * np.minimum(grade, 9) + growth * window
    theta = expected + spread * events["ability"].to_numpy() + rng.normal(0, spread / 5, m)
    pr = percentile((theta - expected) / spread)
    level = np.round(theta * slope + offset).astype(int)
    per_test = {  # each test's group, by column
        f"{subject} Test Theta": np.char.mod("%.4f", theta),
        f"{subject} Percentile at School": np.char.mod("%.1f", np.clip(pr + rng.integers(-8, 9, m), 1, 99)),
        f"{subject} Percentile at LEA": np.char.mod("%.1f", np.clip(pr + rng.integers(-5, 6, m), 1, 99)),
        f"{subject} Percentile at Nation": np.char.mod("%.1f", pr),
        f"{subject} Risk Level": np.where(pr < 15, "highRisk", np.where(pr < 40, "someRisk", "lowRisk")),
        f"{subject} Final Date": events["taken"].dt.to_string("%-m/%-d/%Y").to_numpy(),
        measure: np.char.add(np.where(level < 0, np.char.add(below, np.abs(level).astype(str)), level.astype(str)),
                             unit),
    }
    # One row per student: the fall test's row, and the winter test (the next row) where the student took one.
    fall = np.flatnonzero(window == 0)
    winter = fall + 1
    took = events["tests"].to_numpy()[fall] == 2
    winter = np.where(took, winter, fall)  # a placeholder where there is no winter test: blanked below
    students = events[fall]
    values = {
        "Assessment": [subject] * fall.size, "Assessment Language": ["English"] * fall.size,
        "State": ["NJ"] * fall.size, "District": [spec.district_name_in_files] * fall.size,
        "School": students["school_id"].replace_strict({sid: name for sid, name, _g in SCHOOLS}),
        "Local ID": students["student_number"], "First Name": students["first_name"],
        "Last Name": students["last_name"], "DOB": students["dob"].str.to_date("%m/%d/%Y").dt.to_string("%Y-%m-%d"),
        "Grade": _GRADE_WORDS[grade[fall]],
        **{f"Fall {c}": v[fall] for c, v in per_test.items()},
        **{f"Winter {c}": np.where(took, v[winter], "") for c, v in per_test.items()},
        "Growth Score from Fall to Winter": np.where(took, np.char.mod("%.4f", theta[winter] - theta[fall]), ""),
        "National Growth Percentile from Fall to Winter": np.where(took, rng.integers(1, 100, fall.size).astype(str),
                                                                   ""),
    }
    return pl.DataFrame(values).select([pl.col(c) if c in values else pl.lit("").alias(c) for c in headers(subject)])


def sample(tested: pl.DataFrame, spec, rng: np.random.Generator, files) -> dict[str, pl.DataFrame]:
    """Each FastBridge export of `files`, named by its pattern (FastBridge_aReading.csv, ...), with the spec's
    refused rows (their fall Test Theta not a number) and rows of students the roster lacks."""
    from ...sample import extra_rows

    return {kind.example: extra_rows(screening(kind.subject, tested, spec, rng), spec,
                                                      ("Local ID",), f"Fall {kind.subject} Test Theta")
            for kind in files}
