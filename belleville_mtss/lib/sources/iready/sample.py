"""i-Ready files for a generated drop: Diagnostic Results, ELA and math, each in Curriculum Associates' layout (every
header of its export in its order, a UTF-8 byte-order mark first). K-8, each student's diagnostic in the fall of
2026-2027 and about half of them again in the winter."""
from __future__ import annotations

import numpy as np
import polars as pl

_FIRST = (
    "Last Name", "First Name", "Student ID", "Student Grade", "Academic Year", "School", "Enrolled",
    "District State ID", "Account State ID", "School State ID", "Student State ID", "User Name", "Sex",
    "Hispanic or Latino", "Race", "English Language Learner", "Special Education", "Economically Disadvantaged",
    "Migrant", "Class(es)", "Class Teacher(s)", "Report Group(s)", "Start Date", "Completion Date", "Norming Window",
    "Baseline Diagnostic (Y/N)", "Most Recent Diagnostic YTD (Y/N)", "Duration (min)", "Rush Flag", "Read Aloud",
    "Overall Scale Score", "Overall Placement", "Overall Relative Placement", "Percentile", "Grouping",
)
_GROWTH = ("Diagnostic Gain", "Annual Typical Growth Measure", "Annual Stretch Growth Measure",
           "Percent Progress to Annual Typical Growth (%)", "Percent Progress to Annual Stretch Growth (%)",
           "Mid On Grade Level Scale Score")
# Per subject: its measure (Lexile or Quantile), its domains, its last columns, and the mid-on-grade-level scale
# score and annual typical growth by grade (K-8, about i-Ready's published values).
_SUBJECTS = {
    "ELA": ("Lexile", "L", 4.3, 1600, ("Phonological Awareness", "Phonics", "High-Frequency Words", "Vocabulary",
                                       "Comprehension: Overall", "Comprehension: Literature",
                                       "Comprehension: Informational Text"),
            ("Reading Difficulty Indicator (Y/N)",),
            (420, 480, 520, 545, 570, 590, 616, 630, 645), (46, 46, 38, 33, 24, 18, 12, 10, 8)),
    "Math": ("Quantile", "Q", 6.2, 2230, ("Number and Operations", "Algebra and Algebraic Thinking",
                                         "Measurement and Data", "Geometry"),
             ("Proficiency if Student Shows No Additional Growth", "Projection if Student Achieves Typical Growth",
              "Projection if Student Achieves Stretch Growth"),
             (385, 415, 440, 464, 484, 500, 514, 526, 536), (29, 29, 28, 27, 22, 18, 13, 11, 9)),
}
GRADES = range(0, 9)
SPREAD = 35  # scale points, one standard deviation of a grade's scores
_WINDOWS = np.array(["Fall (Beginning of Year - November 15)", "Winter (November 16 - March 1)"])
# The relative placements, from 3 or more grade levels below up: where the score stands against mid-on-grade.
_RELATIVE = np.array(["3 or More Grade Levels Below", "2 Grade Levels Below", "1 Grade Level Below",
                      "Early On Grade Level", "Mid or Above Grade Level"])
_BELOW = np.array([-100, -60, -25, 0])  # lower edges (score - mid) of the last four relative placements


def headers(subject: str) -> tuple[str, ...]:
    measure, _unit, _slope, _offset, domains, last, _mid, _growth = _SUBJECTS[subject]
    return (*_FIRST, f"{measure} Measure", f"{measure} Range",
            *(f"{d} {m}" for d in domains for m in ("Scale Score", "Placement", "Relative Placement")),
            *_GROWTH, *last)


def _grade(level: np.ndarray) -> np.ndarray:
    return np.where(level <= 0, "K", level.astype(str))


def diagnostics(subject: str, tested: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    from ...sample import SCHOOLS, percentile, sample_events

    measure, unit, slope, offset, domains, _last, mids, typical = _SUBJECTS[subject]
    events = sample_events(tested, GRADES, rng)
    m, window, grade = events.height, events["window"].to_numpy(), events["grade"].to_numpy()
    mid, growth = np.array(mids)[grade], np.array(typical)[grade]
    expected = mid - 30 + window * growth // 2  # below mid-on-grade in the fall, half a year's growth by winter
    score = np.clip(np.round(expected + SPREAD * events["ability"].to_numpy() + rng.normal(0, 10, m)), 100, 800)
    score = score.astype(int)
    student = np.cumsum(window == 0) - 1  # each row's student: a student's rows start with the fall one
    gain = score - score[window == 0][student]  # since the student's baseline (fall) diagnostic
    relative = np.searchsorted(_BELOW, score - mid, side="right")
    placement = np.select([relative == 4, relative == 3], [np.char.add("Mid ", _grade(grade)),
                                                          np.char.add("Early ", _grade(grade))],
                          np.char.add("Grade ", _grade(grade - (3 - relative))))
    level = np.round(score * slope - offset).astype(int)  # Lexile or Quantile: below zero, BR (or EM) and its size
    text = np.where(level < 0, np.char.add("BR" if unit == "L" else "EM", np.abs(level).astype(str)),
                    level.astype(str))
    low, high = np.maximum(level - 100, 0), np.maximum(level + 50, 50)
    day = events["taken"].dt.to_string("%-m/%-d/%Y")
    values = {
        "Last Name": events["last_name"], "First Name": events["first_name"],
        "Student ID": events["student_number"], "Student Grade": _grade(grade), "Academic Year": ["2026-2027"] * m,
        "School": events["school_id"].replace_strict({sid: name for sid, name, _g in SCHOOLS}),
        "Enrolled": ["Enrolled"] * m, "Start Date": day, "Completion Date": day, "Norming Window": _WINDOWS[window],
        "Baseline Diagnostic (Y/N)": np.where(window == 0, "Y", "N"),
        "Most Recent Diagnostic YTD (Y/N)": np.where(window == events["tests"].to_numpy() - 1, "Y", "N"),
        "Duration (min)": rng.integers(25, 95, m).astype(str), "Read Aloud": ["Off"] * m,
        "Overall Scale Score": score.astype(str), "Overall Placement": placement,
        "Overall Relative Placement": _RELATIVE[relative],
        "Percentile": percentile((score - expected) / SPREAD).astype(str), "Grouping": (relative // 2 + 1).astype(str),
        f"{measure} Measure": np.char.add(text, unit),
        f"{measure} Range": np.char.add(np.char.add(low.astype(str), f"{unit}-"), np.char.add(high.astype(str), unit)),
        "Diagnostic Gain": gain.astype(str), "Annual Typical Growth Measure": growth.astype(str),
        "Annual Stretch Growth Measure": (growth * 2).astype(str),
        "Percent Progress to Annual Typical Growth (%)": np.maximum(gain * 100 // growth, 0).astype(str),
        "Percent Progress to Annual Stretch Growth (%)": np.maximum(gain * 50 // growth, 0).astype(str),
        "Mid On Grade Level Scale Score": mid.astype(str),
    }
    for domain in domains:  # each domain near the overall score, placed as the overall is
        values |= {f"{domain} Scale Score": np.clip(score + rng.integers(-25, 26, m), 100, 800).astype(str),
                   f"{domain} Placement": placement, f"{domain} Relative Placement": _RELATIVE[relative]}
    return pl.DataFrame(values).select([pl.col(c) if c in values else pl.lit("").alias(c) for c in headers(subject)])


def sample(tested: pl.DataFrame, spec, rng: np.random.Generator, files) -> dict[str, pl.DataFrame]:
    """Each i-Ready file of `files`, named by its pattern (diagnostic_results_ela.csv, ...), with the spec's refused
    rows and diagnostics of students the roster lacks."""
    from ...sample import extra_rows

    out = {}
    for kind in files:
        frame = extra_rows(diagnostics(kind.subject, tested, rng), spec, ("Student ID",), "Overall Scale Score")
        # i-Ready's export starts with a byte-order mark: written as the first header's first character, since
        # the drop writes every frame alike
        out[kind.example] = frame.rename({"Last Name": "\ufeffLast Name"})
    return out
