"""mCLASS DIBELS 8 files for a generated drop: one benchmark export (every header of Amplify's in its order), K-8,
each student benchmarked at the beginning of 2026-2027 (BOY) and about half of them at the middle (MOY) too."""
from __future__ import annotations

import numpy as np
import polars as pl

_PARTS = ("Level", "Score", "National Norm Percentile", "Semester Growth", "Year Growth")
_FLUENCY = ("Letter Names (LNF)", "Phonemic Awareness (PSF)", "Letter Sounds (NWF-CLS)", "Decoding (NWF-WRC)",
            "Word Reading (WRF)", "Reading Accuracy (ORF-Accu)", "Reading Fluency (ORF)")
HEADERS = (
    "School Year", "State", "Account Name", "Municipality Name", "Municipality Primary ID", "District Name",
    "District Primary ID", "Internal Program", "External Program", "School Name", "Primary School ID",
    "Secondary School ID", "Student Last Name", "Student First Name", "Student Middle Name", "Enrollment Date",
    "Enrollment Grade", "Date of Birth", "Gender", "Race", "Special Education", "Disability", "Specific Disability",
    "Section 504", "Economically Disadvantaged", "Meal Status", "Title 1", "Migrant", "English Proficiency",
    "ELL Status", "Home Language", "Alternate Assessment", "Approved Accommodations", "Classed",
    "Reporting Class Name", "Reporting Class ID", "Official Teacher Name", "Official Teacher Staff ID",
    "Assessing Teacher Name", "Assessing Teacher Staff ID", "Assessment", "Assessment Edition", "Assessment Grade",
    "Benchmark Period", "Composite Level", "Composite Score", "Composite - National Norm Percentile",
    "Composite - Semester Growth", "Composite - Year Growth",
    *(f"{m} - {p}" for m in _FLUENCY for p in _PARTS), "Error Rate (ORF) - Score",
    *(f"Reading Comprehension (Maze) - {p}" for p in _PARTS),
    "Correct Responses (Maze) - Score", "Incorrect Responses (Maze) - Score", "Client Date", "Sync Date",
    "Student Primary ID", "Primary ID - Student ID (State ID)", "Administration Type", "Vocabulary - Level",
    "Vocabulary - Score", "Spelling - Level", "Spelling - Score", "RAN - Level", "RAN - Score",
    "Risk Indicator - Level", "DIBELS Composite Score - Lexile",
)
GRADES = range(0, 9)  # DIBELS 8 is normed from kindergarten through grade 8
# Which grades each measure is given in, and a middling score for it (at grade 1 where it grows by grade).
_MEASURES = {
    "Letter Names (LNF)": (range(0, 2), 30, 0), "Phonemic Awareness (PSF)": (range(0, 2), 25, 0),
    "Letter Sounds (NWF-CLS)": (range(0, 4), 40, 10), "Decoding (NWF-WRC)": (range(0, 4), 10, 5),
    "Word Reading (WRF)": (range(0, 4), 20, 8), "Reading Accuracy (ORF-Accu)": (range(1, 9), 94, 0),
    "Reading Fluency (ORF)": (range(1, 9), 50, 15), "Reading Comprehension (Maze)": (range(2, 9), 10, 2),
}
_COMPOSITE = (300, 350, 380, 400, 410, 420, 430, 440, 450)  # the BOY composite's mean by grade; spread 40
_LEVELS = np.array(["Well Below Benchmark", "Below Benchmark", "At Benchmark", "Above Benchmark"])


def _level(pr: np.ndarray) -> np.ndarray:
    return _LEVELS[np.searchsorted([20, 40, 80], pr, side="right")]


def benchmarks(tested: pl.DataFrame, spec, rng: np.random.Generator) -> pl.DataFrame:
    from ...sample import SCHOOLS, percentile, sample_events

    events = sample_events(tested, GRADES, rng)
    m, window, grade = events.height, events["window"].to_numpy(), events["grade"].to_numpy()
    ability = events["ability"].to_numpy()
    expected = np.array(_COMPOSITE)[grade] + 20 * window
    composite = np.clip(np.round(expected + 40 * ability + rng.normal(0, 8, m)), 0, 1000).astype(int)
    pr = percentile((composite - expected) / 40)
    lexile = (composite - 420) * 8  # below zero: BR (beginning reader) and its size
    lexile = np.char.add(np.where(lexile < 0, np.char.add("BR", np.abs(lexile).astype(str)), lexile.astype(str)), "L")
    grade_text = events["grade"].cast(pl.Utf8).replace("0", "K")
    day = events["taken"].dt.to_string("%Y-%m-%d")
    values = {
        "School Year": ["2026-2027"] * m, "State": ["NJ"] * m, "Account Name": [spec.district_name_in_files] * m,
        "District Name": [spec.district_name_in_files] * m,
        "School Name": events["school_id"].replace_strict({sid: name for sid, name, _g in SCHOOLS}),
        "Primary School ID": events["school_id"], "Student Last Name": events["last_name"],
        "Student First Name": events["first_name"], "Enrollment Grade": grade_text,
        "Date of Birth": events["dob"].str.to_date("%m/%d/%Y").dt.to_string("%Y-%m-%d"),
        "Assessment": ["mCLASS"] * m, "Assessment Edition": ["DIBELS 8th Edition"] * m,
        "Assessment Grade": grade_text, "Benchmark Period": np.array(["BOY", "MOY"])[window],
        "Composite Level": _level(pr), "Composite Score": composite.astype(str),
        "Composite - National Norm Percentile": pr.astype(str), "Client Date": day, "Sync Date": day,
        "Student Primary ID": events["student_number"], "Administration Type": ["Online"] * m,
        "DIBELS Composite Score - Lexile": lexile,
    }
    for measure, (given, middling, per_grade) in _MEASURES.items():  # blank where the grade does not take it
        took = np.isin(grade, given)
        mean = middling + per_grade * np.maximum(grade - 1, 0)
        score = np.maximum(np.round(mean * (1 + 0.3 * ability) + rng.normal(0, 2, m)), 0).astype(int)
        if measure == "Reading Accuracy (ORF-Accu)":  # a percent
            score = np.minimum(score, 100)
        part_pr = np.clip(pr + rng.integers(-10, 11, m), 1, 99)
        values |= {f"{measure} - Score": np.where(took, score.astype(str), ""),
                   f"{measure} - Level": np.where(took, _level(part_pr), ""),
                   f"{measure} - National Norm Percentile": np.where(took, part_pr.astype(str), "")}
    return pl.DataFrame(values).select([pl.col(c) if c in values else pl.lit("").alias(c) for c in HEADERS])


def sample(tested: pl.DataFrame, spec, rng: np.random.Generator, files) -> dict[str, pl.DataFrame]:
    """The benchmark export (dibels8_benchmark.csv), with the spec's refused rows and benchmarks of students the
    roster lacks."""
    from ...sample import extra_rows

    (kind,) = files
    frame = extra_rows(benchmarks(tested, spec, rng), spec, ("Student Primary ID",), "Composite Score")
    return {kind.pattern.replace("*", "_benchmark"): frame}
