"""Star files for a generated drop (the demo, tests, benchmarks): SR, SM and SEL in their v2 layouts."""
from __future__ import annotations

import numpy as np
import polars as pl

from .layouts import LAYOUTS

# Who takes each subject (grades, K = 0) and the span of its scaled scores in the sample.
_SAMPLE_SUBJECTS = {"SR": (range(1, 13), (50, 1300)), "SM": (range(1, 13), (100, 1100)),
                    "SEL": (range(0, 4), (300, 900))}


def star_file(subject: str, students: pl.DataFrame, spec, rng: np.random.Generator) -> pl.DataFrame:
    from ...sample import SCHOOLS  # the sample district's schools, shared by every source's sample

    like = subject if subject in _SAMPLE_SUBJECTS else "SR"  # a subject added to the catalog: sampled like Reading
    grades, (lo, hi) = _SAMPLE_SUBJECTS[like]
    takers = students.filter(pl.col("grade").is_in(list(grades)))
    n = takers.height
    tests = rng.integers(1, 3, n)  # fall, and for half the students winter too
    idx = np.repeat(np.arange(n), tests)
    window = np.concatenate([np.arange(t) for t in tests])
    rows = takers[idx]
    m = rows.height
    start = np.array([np.datetime64("2026-09-15T13:00"), np.datetime64("2027-01-12T13:00"),
                      np.datetime64("2027-05-04T13:00")])[window]
    completed = start + rng.integers(0, 14 * 24 * 60, m).astype("timedelta64[m]")
    score = rng.integers(lo, hi, m)
    pr = rng.integers(1, 100, m)
    category = np.where(pr < 10, "Urgent Intervention", np.where(pr < 25, "Intervention",
                        np.where(pr < 40, "On Watch", "At/Above Benchmark")))
    school_names = dict((sid, name) for sid, name, _g in SCHOOLS)
    grade_txt = rows["grade"].cast(pl.Utf8).replace("0", "K")
    raw = rng.bytes(16 * m)
    assessment_ids = pl.Series([raw[i:i + 16].hex() for i in range(0, 16 * m, 16)]).str.replace(
        r"^(.{8})(.{4})(.{4})(.{4})(.{12})$", "$1-$2-$3-$4-$5")  # GUID-shaped, as Renaissance sends
    values = {
        "RenaissanceClientID": ["7340"] * m, "SchoolYear": ["2026-2027"] * m,
        "SchoolYearStartDate": ["2026-07-01 00:00:00.000"] * m, "SchoolYearEndDate": ["2027-06-30 00:00:00.000"] * m,
        "StudentRenaissanceID": "00000000-0000-0000-0000-" + rows["student_number"].str.zfill(12),  # a GUID
        "StudentIdentifier": rows["student_number"], "StudentSourcedID": rows["student_number"],
        "StudentEmail": rows["email"], "StudentFirstName": rows["first_name"], "StudentLastName": rows["last_name"],
        "BirthDate": rows["dob"], "CurrentGrade": grade_txt, "Grade": grade_txt, "EnrollmentStatus": ["Enrolled"] * m,
        "DistrictName": [spec.district_name_in_files] * m, "SchoolIdentifier": rows["school_id"],
        "SchoolName": rows["school_id"].replace_strict(school_names),
        "AssessmentID": assessment_ids,
        "CompletedDate": pl.Series(completed.astype("datetime64[ms]")).dt.to_string("%Y-%m-%d %H:%M:%S%.3f"),
        "CompletedDateLocal": pl.Series((completed - np.timedelta64(5, "h")).astype("datetime64[ms]")).dt.to_string(
            "%Y-%m-%d %H:%M:%S%.3f"),
        "AssessmentType": ["Enterprise"] * m, "AssessmentStatus": ["Active"] * m,
        "ScaledScore": score.astype(str), "PercentileRank": pr.astype(str),
        "UnifiedScore": (score // 2 + 500).astype(str),
        "ScreeningPeriodWindowName": np.array(["Fall", "Winter", "Spring"])[window],
        "RenaissanceBenchmarkCategoryName": category,
    }
    filled = pl.DataFrame(values)
    return filled.select([pl.col(c) if c in values else pl.lit("").alias(c) for c in LAYOUTS[like]])


def sample(tested: pl.DataFrame, spec, rng: np.random.Generator, files) -> dict[str, pl.DataFrame]:
    """Each Star file of `files` (FileKind), with the spec's tests of unknown students and Excel-mangled dates."""
    out = {}
    for kind in files:
        star = star_file(kind.subject, tested, spec, rng)
        if spec.unknown_star_rows:  # tests of students PowerSchool does not know (moved in, typo'd ids)
            extra = star.head(spec.unknown_star_rows // 3 or 1).with_columns(
                (pl.lit("9") + pl.col("StudentIdentifier")).alias("StudentIdentifier"),
                # an id of its own: "g" is no hex digit, so it never equals a known student's test's GUID
                pl.col("AssessmentID").str.replace(r"^.", "g"),
            )
            star = pl.concat([star, extra])
        if kind.subject == "SR" and spec.excel_mangled_dates:
            mangled = pl.int_range(pl.len()) % (star.height // spec.excel_mangled_dates) == 7
            star = star.with_columns(
                pl.when(mangled).then(pl.lit("00:00.0")).otherwise(pl.col("CompletedDate")).alias("CompletedDate"))
        out[kind.pattern] = star
    return out
