"""The same core job written in DuckDB SQL, the peer the core is compared with: the drop's files read (only the
columns the core uses), typed, bad rows refused, the district names resolved with the core's own resolver, students
linked to ClassLink by email (an address two share links nobody) and their Star tests by StudentIdentifier, and the
roster and results built. Used by benchmarks/scale.py for comparison only (`pip install -e '.[bench]'`); nothing
in the product imports it."""
from __future__ import annotations

from pathlib import Path

import polars as pl

from belleville_mtss.lib.district.names import Reference
from belleville_mtss.lib.district.registry import District
from belleville_mtss.lib.sources.powerschool.reader import match_headers
from belleville_mtss.lib.sources.star.reader import star_columns

SUBJECT_FILES = {"SR": "SR.csv", "SM": "SM.csv", "SEL": "SEL.csv"}
# The core's unambiguous CompletedDate layouts (lib/sources/star/reader.py), in DuckDB's spelling
FORMATS = str(["%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%m/%d/%y %H:%M", "%m/%d/%Y %H:%M",
               "%m/%d/%y %I:%M %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y", "%m/%d/%y"])


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _star_sql(path: Path, subject: str, link: str) -> str:
    """One Star file as typed rows: a row without an identifier, a readable completion time or a school year is
    refused; a test without an AssessmentID keyed by subject, student and time."""
    c = {ours: _q(theirs) for ours, theirs in star_columns(link).items()}
    num = "TRY_CAST(NULLIF(NULLIF(TRIM({}), ''), 'NA') AS INTEGER)"
    return f"""
        SELECT '{subject}' AS subject, TRIM({c['student_link']}) AS student_link, {c['district_name']} AS district_name,
               REPLACE(regexp_extract({c['school_year']}, '(\\d{{4}}\\s*-\\s*\\d{{4}})', 1), ' ', '') AS school_year,
               TRY_STRPTIME(TRIM({c['completed_date']}), {FORMATS}) AS completed_at,
               {num.format(c['scaled_score'])} AS scaled_score, {num.format(c['percentile_rank'])} AS percentile_rank,
               {num.format(c['unified_score'])} AS unified_score, NULLIF({c['assessment_id']}, '') AS assessment_id
        FROM read_csv('{path}', all_varchar = true, header = true)"""


def connect(users_csv: Path, district: District):
    """A DuckDB database holding the district's ClassLink student users, filtered as the prod db filters them (the
    core is handed them alike, untimed)."""
    import duckdb

    con = duckdb.connect()
    tenants = ", ".join("'" + t.replace("'", "''") + "'" for t in district.source_names.classlink)
    con.execute(f"""CREATE TABLE cl AS SELECT UserId, TenantName, NULLIF(LOWER(TRIM(Email)), '') AS email_key
                    FROM read_csv('{users_csv}', all_varchar = true, header = true)
                    WHERE TenantName IN ({tenants}) AND LOWER(Role) = 'student'""")
    return con


def process_drop(con, folder: Path, district: District, account_info: pl.DataFrame):
    """(verified, roster rows, result rows) of one drop, as the core computes them (`con`: from `connect`)."""
    link = district.sources["star"].link
    star = " UNION ALL ".join(_star_sql(folder / f, s, link) for s, f in SUBJECT_FILES.items())
    con.execute(f"""CREATE TABLE star AS
        SELECT *, COALESCE(assessment_id, subject || ':' || student_link || ':' ||
                           strftime(completed_at, '%Y%m%d%H%M%S%f')) AS test_key
        FROM ({star}) WHERE student_link <> '' AND completed_at IS NOT NULL AND school_year <> ''""")
    export = next(folder.glob("students*.csv"))
    header = [d[0] for d in con.execute(f"SELECT * FROM read_csv('{export}', all_varchar = true, header = true) "
                                        "LIMIT 0").description]
    cols = {ours: _q(theirs) for ours, theirs in match_headers(header, district.powerschool).items() if theirs}
    con.execute(f"""CREATE TABLE students AS
        SELECT *, NULLIF(LOWER(TRIM(email)), '') AS email_key FROM (
            SELECT TRIM({cols['student_number']}) AS student_number, {cols['email']} AS email,
                   COUNT(*) OVER (PARTITION BY TRIM({cols['student_number']})) AS n
            FROM read_csv('{export}', all_varchar = true, header = true)) WHERE n = 1""")
    # the crosswalk: the core's resolver, on the distinct names
    names = [r[0] for r in con.execute("SELECT DISTINCT district_name FROM star UNION SELECT DISTINCT TenantName "
                                       "FROM cl").fetchall() if r[0] is not None]
    ref = Reference(account_info.select(
        pl.col("NcesId").fill_null(pl.col("AccountInfoId").cast(pl.Utf8)).alias("key"),
        pl.col("DistrictName").alias("name"), pl.col("State").alias("state"), pl.col("County").alias("county"),
        pl.col("AccountInfoId").alias("account_info_id")))
    verified = all(r.decision == "resolved" and r.best.account_info_id == district.account_info_id
                   for r in ref.resolve_many([(n, district.state, district.county) for n in names]))
    roster = con.execute(f"""
        WITH one_cl AS (SELECT email_key, ANY_VALUE(UserId) AS UserId FROM cl WHERE email_key IS NOT NULL
                        GROUP BY email_key HAVING COUNT(*) = 1),
             one_ps AS (SELECT student_number, email_key FROM students WHERE email_key IS NOT NULL
                        QUALIFY COUNT(*) OVER (PARTITION BY email_key) = 1),
             tests AS (SELECT student_link, COUNT(*) AS n FROM star GROUP BY student_link)
        SELECT s.student_number, one_cl.UserId, COALESCE(tests.n, 0) AS star_test_count,
               {district.account_info_id} AS AccountInfoId
        FROM students s LEFT JOIN one_ps USING (student_number) LEFT JOIN one_cl ON one_cl.email_key = one_ps.email_key
        LEFT JOIN tests ON tests.student_link = s.student_number""").fetchall()
    results = con.execute(f"""
        SELECT DISTINCT ON (subject, test_key) *, {district.account_info_id} AS AccountInfoId FROM star
        WHERE student_link IN (SELECT student_number FROM students)""").fetchall()
    con.close()
    return verified, roster, results
