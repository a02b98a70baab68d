"""A OneRoster bulk export of a generated district (tests, and the demo once OneRoster is a roster source): the
district and its schools in orgs.csv, its students and some teachers in users.csv (1.1: with their role; 1.2: the
roles in roles.csv), each student's enrolment at their school, their birth dates in demographics.csv. The student
number is each user's `identifier`, and also a `{SIS:...}` pair of `userIds`."""
from __future__ import annotations

import polars as pl

STATUS = ("active", "2026-11-01T00:00:00.000Z")  # status, dateLastModified of every record


def _records(frame: pl.DataFrame) -> pl.DataFrame:
    """Every OneRoster record starts with sourcedId, status, dateLastModified."""
    rest = [c for c in frame.columns if c != "sourcedId"]
    return frame.select("sourcedId", pl.lit(STATUS[0]).alias("status"), pl.lit(STATUS[1]).alias("dateLastModified"),
                        *rest)


def export(students: pl.DataFrame, district_name: str, version: str = "1.1", teachers: int = 25,
           mode: str = "bulk") -> dict[str, pl.DataFrame]:
    """The export's files by name (`students`: the sample's students, lib/sample.py); `mode` the manifest's word
    for each file it ships (`bulk`, or `delta` for an export that must be refused)."""
    from ...sample import SCHOOLS

    schools = pl.DataFrame({"sourcedId": [f"org-{sid}" for sid, _n, _g in SCHOOLS],
                            "name": [name for _s, name, _g in SCHOOLS], "type": ["school"] * len(SCHOOLS),
                            "identifier": [sid for sid, _n, _g in SCHOOLS],
                            "parentSourcedId": ["org-district"] * len(SCHOOLS)})
    orgs = _records(pl.concat([pl.DataFrame({"sourcedId": ["org-district"], "name": [district_name],
                                             "type": ["district"], "identifier": [""], "parentSourcedId": [""]}),
                               schools]))
    pupils = students.select(
        ("stu-" + pl.col("student_number")).alias("sourcedId"), pl.lit("TRUE").alias("enabledUser"),
        ("org-" + pl.col("school_id")).alias("orgSourcedIds"), pl.lit("student").alias("role"),
        pl.col("email").str.split("@").list.first().alias("username"),
        ("{SIS:" + pl.col("student_number") + "}").alias("userIds"),
        pl.col("first_name").alias("givenName"), pl.col("last_name").alias("familyName"),
        pl.col("student_number").alias("identifier"), pl.col("email"),
        pl.col("grade").cast(pl.Utf8).str.zfill(2).replace("00", "KG").alias("grades"))
    staff = pl.DataFrame({
        "sourcedId": [f"tch-{i:04d}" for i in range(teachers)], "enabledUser": ["TRUE"] * teachers,
        "orgSourcedIds": [f"org-{SCHOOLS[i % len(SCHOOLS)][0]}" for i in range(teachers)],
        "role": ["teacher"] * teachers, "username": [f"teacher{i}" for i in range(teachers)],
        "userIds": [""] * teachers, "givenName": ["Pat"] * teachers, "familyName": ["Teacher"] * teachers,
        "identifier": [f"T{i:04d}" for i in range(teachers)],
        "email": [f"teacher{i}@example.org" for i in range(teachers)], "grades": [""] * teachers})
    users = _records(pl.concat([pupils, staff]))
    enrollments = _records(pupils.select(
        ("enr-" + pl.col("sourcedId")).alias("sourcedId"), ("cls-" + pl.col("orgSourcedIds")).alias("classSourcedId"),
        pl.col("orgSourcedIds").alias("schoolSourcedId"), pl.col("sourcedId").alias("userSourcedId"),
        pl.lit("student").alias("role"), pl.lit("true").alias("primary")))
    births = students.select(("stu-" + pl.col("student_number")).alias("sourcedId"),
                             pl.col("dob").str.to_date("%m/%d/%Y").dt.to_string("%Y-%m-%d").alias("birthDate"))
    files = {"orgs.csv": orgs, "users.csv": users, "enrollments.csv": enrollments,
             "demographics.csv": _records(births)}
    if version == "1.2":  # the role moves to roles.csv
        files["roles.csv"] = _records(users.select(
            ("role-" + pl.col("sourcedId")).alias("sourcedId"), pl.col("sourcedId").alias("userSourcedId"),
            pl.lit("primary").alias("roleType"), "role", pl.col("orgSourcedIds").alias("orgSourcedId")))
        files["users.csv"] = users.drop("role")
    listed = [("manifest.version", "1.0"), ("oneroster.version", version),
              *((f"file.{name.removesuffix('.csv')}", mode) for name in files),
              ("file.classes", "absent"), ("file.courses", "absent"), ("file.academicSessions", "absent")]
    files["manifest.csv"] = pl.DataFrame(listed, schema=["propertyName", "value"], orient="row")
    return files
