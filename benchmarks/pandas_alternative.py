"""The usual alternative a team would write: pandas plus pandera's pandas backend, for the same core steps
(ingest, validate, crosswalk, identity map, roster, assessment results), reading only the columns it needs.
Used by benchmarks/scale.py for comparison only; nothing in the product imports it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from belleville_mtss.lib.district.names import Reference
from belleville_mtss.lib.district.registry import District
from belleville_mtss.lib.sources.powerschool.reader import match_headers
from belleville_mtss.lib.sources.star.reader import star_columns

SUBJECT_FILES = {"SR": "SR.csv", "SM": "SM.csv", "SEL": "SEL.csv"}

STAR_SCHEMA = pa.DataFrameSchema({
    "subject": pa.Column(str, pa.Check.isin(["SR", "SM", "SEL"])),
    "test_key": pa.Column(str),
    "student_link": pa.Column(str, pa.Check.str_length(min_value=1)),
    "district_name": pa.Column(str),
    "school_year": pa.Column(str, pa.Check.str_matches(r"^\d{4}-\d{4}$")),
    "completed_at": pa.Column("datetime64[ns]"),
    "scaled_score": pa.Column("Int32", pa.Check.in_range(0, 1400), nullable=True),
    "percentile_rank": pa.Column("Int32", pa.Check.in_range(0, 100), nullable=True),
}, strict=False)
STUDENT_SCHEMA = pa.DataFrameSchema({
    "student_number": pa.Column(str, unique=True),
    "email_key": pa.Column(str, nullable=True),
}, strict=False)


def _star(path: Path, subject: str, link: str) -> pd.DataFrame:
    columns = star_columns(link)
    df = pd.read_csv(path, usecols=list(columns.values()), dtype=str, keep_default_na=False)
    df = df.rename(columns={v: k for k, v in columns.items()})
    df["subject"] = subject
    df["student_link"] = df["student_link"].str.strip()
    df["completed_at"] = pd.to_datetime(df["completed_date"], format="mixed", errors="coerce")
    for col in ("scaled_score", "percentile_rank", "unified_score"):
        df[col] = pd.to_numeric(df[col].replace({"NA": None, "": None}), errors="coerce").astype("Int32")
    df["school_year"] = df["school_year"].str.extract(r"(\d{4}\s*-\s*\d{4})", expand=False).str.replace(" ", "")
    bad = (df["student_link"] == "") | df["completed_at"].isna() | df["school_year"].isna()
    df = df[~bad].copy()
    key = subject + ":" + df["student_link"] + ":" + df["completed_at"].dt.strftime("%Y%m%d%H%M%S%f")
    df["test_key"] = df["assessment_id"].where(df["assessment_id"] != "", key)
    return STAR_SCHEMA.validate(df, lazy=True)


def _students(path: Path, district: District) -> pd.DataFrame:
    # the first of the registry's accepted headers present in the file, as the core reads them
    header = pd.read_csv(path, nrows=0).columns.tolist()
    cols = {ours: theirs for ours, theirs in match_headers(header, district.powerschool).items() if theirs}
    df = pd.read_csv(path, usecols=list(cols.values()), dtype=str, keep_default_na=False)
    df = df.rename(columns={v: k for k, v in cols.items()})
    df["student_number"] = df["student_number"].str.strip()
    df = df[~df["student_number"].duplicated(keep=False)].copy()
    key = df["email"].str.strip().str.lower()
    df["email_key"] = key.where(key != "", None)
    return STUDENT_SCHEMA.validate(df, lazy=True)


def process_drop(folder: Path, district: District, classlink_users: pd.DataFrame, account_info: pd.DataFrame):
    link = district.sources["star"].link
    star = pd.concat([_star(folder / f, s, link) for s, f in SUBJECT_FILES.items()], ignore_index=True)
    students = _students(next(folder.glob("students*.csv")), district)
    cl = classlink_users[(classlink_users["Role"].str.lower() == "student")
                         & classlink_users["TenantName"].isin(district.source_names.classlink)].copy()
    cl["email_key"] = cl["Email"].str.strip().str.lower()
    # crosswalk: the same resolver, on the distinct names
    import polars as pl
    ref = Reference(pl.DataFrame({
        "key": account_info["NcesId"].fillna(account_info["AccountInfoId"].astype(str)).astype(str).tolist(),
        "name": account_info["DistrictName"].tolist(), "state": account_info["State"].tolist(),
        "account_info_id": account_info["AccountInfoId"].tolist()}))
    names = list(star["district_name"].unique()) + list(cl["TenantName"].unique())
    verified = all(r.decision == "resolved" and r.best.account_info_id == district.account_info_id
                   for r in ref.resolve_many([(n, district.state, district.county) for n in names]))
    # identity: emails shared on either side link nobody
    cl_unique = cl[~cl["email_key"].duplicated(keep=False)][["email_key", "UserId"]]
    ps_unique = students[~students["email_key"].duplicated(keep=False) & students["email_key"].notna()]
    links = ps_unique.merge(cl_unique, on="email_key", how="left")[["student_number", "UserId"]]
    counts = star.groupby("student_link").size().rename("star_test_count")
    roster = students.merge(links, on="student_number", how="left").merge(
        counts, left_on="student_number", right_index=True, how="left")
    roster["star_test_count"] = roster["star_test_count"].fillna(0).astype(np.int32)
    roster["AccountInfoId"] = district.account_info_id
    results = star[star["student_link"].isin(roster["student_number"])]
    results = results.drop_duplicates(subset=["subject", "test_key"]).copy()
    results["AccountInfoId"] = district.account_info_id
    return verified, roster, results
