"""MAP Growth files for a generated drop: the Comprehensive Data File's AssessmentResults.csv in its combined
layout (district and school columns), every header of NWEA's export in its order. Mathematics and Reading, K-12,
each student tested in the fall of 2026-2027 and about half of them in the winter too."""
from __future__ import annotations

import numpy as np
import polars as pl

_PAIRS = ("FallToFall", "FallToWinter", "FallToSpring", "WinterToWinter", "WinterToSpring", "SpringToSpring")
HEADERS = (
    "TermName", "DistrictName", "District_StateID", "SchoolName", "School_StateID", "StudentID", "Student_StateID",
    "Subject", "Course", "GrowthMeasureYN", "NormsReferenceData", "WISelectedAYFall", "WISelectedAYWinter",
    "WISelectedAYSpring", "WIPreviousAYFall", "WIPreviousAYWinter", "WIPreviousAYSpring", "TestType", "TestName",
    "TestID", "TestStartDate", "TestStartTime", "TestDurationMinutes", "TestRITScore", "TestStandardError",
    "TestPercentile", "AchievementQuintile", "PercentCorrect", "RapidGuessingPercentage",
    *(f"{pair}{m}" for pair in _PAIRS for m in ("ProjectedGrowth", "ObservedGrowth", "ObservedGrowthSE",
                                                "MetProjectedGrowth", "ConditionalGrowthIndex",
                                                "ConditionalGrowthPercentile", "GrowthQuintile")),
    "LexileScore", "LexileMin", "LexileMax", "QuantileScore", "QuantileMin", "QuantileMax",
    *(f"Goal{i}{m}" for i in range(1, 9) for m in ("Name", "RitScore", "StdErr", "Range", "Adjective")),
    *(f"Typical{pair}Growth" for pair in _PAIRS),
    *(f"ProjectedProficiency{m}{i}" for i in range(1, 11) for m in ("Study", "Level")),
)
GRADES = range(0, 13)
# Subject, course, its goals, and the fall mean RIT by grade (K-12, about NWEA's 2020 norms); the spread is 14.
_SUBJECTS = (
    ("Mathematics", "Math K-12", ("Operations and Algebraic Thinking", "Number and Operations",
                                  "Measurement and Data", "Geometry"),
     (140, 162, 176, 190, 200, 209, 214, 220, 224, 226, 229, 231, 233)),
    ("Reading", "Reading", ("Literature and Informational Text", "Vocabulary: Acquisition and Use",
                            "Foundational Skills and Vocabulary"),
     (137, 156, 171, 185, 197, 205, 210, 214, 217, 219, 221, 223, 224)),
)
_QUINTILES = np.array(["Low", "LoAvg", "Avg", "HiAvg", "High"])


def _band(grade: pl.Expr) -> pl.Expr:
    return pl.when(grade < 2).then(pl.lit("K-2")).when(grade < 6).then(pl.lit("2-5")).otherwise(pl.lit("6+"))


def _subject_rows(tested: pl.DataFrame, spec, rng: np.random.Generator, subject: str, course: str,
                  goals: tuple[str, ...], means: tuple[int, ...]) -> pl.DataFrame:
    from ...sample import SCHOOLS, percentile, sample_events

    events = sample_events(tested, GRADES, rng)
    m, window = events.height, events["window"].to_numpy()
    expected = np.array(means)[events["grade"].to_numpy()] + 5 * window  # a little growth by winter
    rit = np.clip(np.round(expected + 14 * events["ability"].to_numpy() + rng.normal(0, 3, m)), 100, 350)
    rit = rit.astype(int)
    pr = percentile((rit - expected) / 14)
    quintile = _QUINTILES[np.minimum((pr - 1) // 20, 4)]
    started = rng.integers(8 * 3600, 15 * 3600, m)  # seconds after midnight: during the school day
    values = {
        "TermName": np.array(["Fall 2026-2027", "Winter 2026-2027"])[window],
        "DistrictName": [spec.district_name_in_files] * m,
        "SchoolName": events["school_id"].replace_strict({sid: name for sid, name, _g in SCHOOLS}),
        "StudentID": events["student_number"], "Subject": [subject] * m, "Course": [course] * m,
        "GrowthMeasureYN": ["TRUE"] * m, "NormsReferenceData": ["2020"] * m,
        "WISelectedAYFall": np.where(window == 0, "1", ""), "WISelectedAYWinter": np.where(window == 1, "1", ""),
        "TestType": ["Survey With Goals"] * m,
        "TestName": events.select(pl.format(f"Growth: {subject.replace('ematics', '')} {{}} NJ 2016",
                                            _band(pl.col("grade")))).to_series(),
        "TestStartDate": events["taken"].dt.to_string("%m/%d/%Y"),
        "TestStartTime": pl.Series(started * 10**9).cast(pl.Time).dt.to_string("%H:%M:%S"),
        "TestDurationMinutes": rng.integers(20, 70, m).astype(str), "TestRITScore": rit.astype(str),
        "TestStandardError": np.char.mod("%.2f", rng.uniform(2.9, 3.6, m)), "TestPercentile": pr.astype(str),
        "AchievementQuintile": quintile, "PercentCorrect": rng.integers(40, 75, m).astype(str),
        "RapidGuessingPercentage": ["0.0000"] * m,
    }
    if subject == "Reading":  # a Lexile measure goes with Reading, a Quantile with Mathematics
        lexile = np.maximum(rit * 10 - 1500, 0)
        values |= {"LexileScore": np.char.add(lexile.astype(str), "L"),
                   "LexileMin": np.maximum(lexile - 100, 0).astype(str), "LexileMax": (lexile + 50).astype(str)}
    else:
        quantile = np.maximum(rit * 10 - 1450, 0)
        values |= {"QuantileScore": np.char.add(quantile.astype(str), "Q"),
                   "QuantileMin": np.maximum(quantile - 50, 0).astype(str), "QuantileMax": (quantile + 50).astype(str)}
    for i, goal in enumerate(goals, start=1):
        score = rit + rng.integers(-8, 9, m)
        values |= {f"Goal{i}Name": [goal] * m, f"Goal{i}RitScore": score.astype(str), f"Goal{i}StdErr": ["6.5"] * m,
                   f"Goal{i}Range": np.char.add(np.char.add((score - 6).astype(str), "-"), (score + 6).astype(str)),
                   f"Goal{i}Adjective": quintile}
    return pl.DataFrame(values).select([pl.col(c) if c in values else pl.lit("").alias(c) for c in HEADERS])


def sample(tested: pl.DataFrame, spec, rng: np.random.Generator, files) -> dict[str, pl.DataFrame]:
    """AssessmentResults.csv: both subjects' tests, each with its own TestID, and the spec's refused rows and
    tests of students the roster lacks."""
    from ...sample import extra_rows

    (kind,) = files
    frame = pl.concat([_subject_rows(tested, spec, rng, *subject) for subject in _SUBJECTS])
    frame = frame.with_columns(pl.format("7{}", pl.int_range(pl.len()) + 10_000_000).alias("TestID"))
    return {kind.example: extra_rows(frame, spec, ("StudentID", "TestID"), "TestRITScore")}
