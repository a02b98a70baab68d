"""A realistic, deterministic sample district drop, and the databases around it.

Belleville-shaped by default (about 4,500 students, K-12, 10 schools); the same code scales to a million
students for benchmarks. Everything is generated: nothing here reads ../shared.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import sqlalchemy as sa

from .load import migrations
from .sources import ASSESSMENTS
from .load.warehouse import account_info, class_link_users, make_engine, theirs

FIRST = ["Ava", "Liam", "Sofia", "Noah", "Isabella", "Mateo", "Mia", "Ethan", "Camila", "Lucas", "Aaliyah", "Jayden",
         "Emily", "Daniel", "Valentina", "Kevin", "Priya", "Omar", "Grace", "Luis", "Maya", "Adrian", "Zoe", "Jose",
         "Chloe", "Samuel", "Nia", "Gabriel", "Leah", "Diego", "Hana", "Elijah"]
LAST = ["Garcia", "Smith", "Rodriguez", "Johnson", "Martinez", "Williams", "Lopez", "Brown", "Gonzalez", "Jones",
        "Perez", "Patel", "Rivera", "Davis", "Torres", "Nguyen", "Ramirez", "Kim", "Flores", "Wilson", "Cruz",
        "Moore", "Reyes", "Taylor", "Ortiz", "Anderson", "Morales", "Thomas", "Diaz", "Jackson", "Santos", "White"]
SCHOOLS = [("01", "Belleville High School", range(9, 13)), ("02", "Belleville Middle School", range(6, 9)),
           ("03", "School No. 3", range(0, 6)), ("04", "School No. 4", range(0, 6)), ("05", "School No. 5", range(0, 6)),
           ("07", "School No. 7", range(0, 6)), ("08", "School No. 8", range(0, 6)), ("09", "School No. 9", range(0, 6)),
           ("10", "School No. 10", range(0, 6)), ("11", "Belleville Early Learning Center", range(0, 1))]
BELLEVILLE = {"AccountInfoId": 107873, "NcesId": "3401350", "DistrictName": "BELLEVILLE SCHOOL DISTRICT",
              "State": "NJ", "County": "ESSEX"}
# Real districts whose names collide with or resemble Belleville's (NCES LEA ids), the traps resolution must avoid.
LOOKALIKES = [
    ("5500990", "BELLEVILLE SCHOOL DISTRICT", "WI", "DANE"), ("1705610", "BELLEVILLE SD 118", "IL", "ST CLAIR"),
    ("1705640", "BELLEVILLE TWP HSD 201", "IL", "ST CLAIR"),
    ("1743963", "BELLEVILLE AREA SPECIAL SERVICES", "IL", "ST CLAIR"),
    ("3604370", "BELLEVILLE HENDERSON CENTRAL SCHOOL DISTRICT", "NY", "JEFFERSON"),
    ("4809810", "BELLVILLE ISD", "TX", "AUSTIN"), ("0604380", "BELLEVUE UNION ELEMENTARY", "CA", "SONOMA"),
    ("1904650", "BELLEVUE COMM SCHOOL DISTRICT", "IA", "JACKSON"), ("2100420", "BELLEVUE IND", "KY", "CAMPBELL"),
    ("2604650", "BELLEVUE COMMUNITY SCHOOLS", "MI", "EATON"), ("3103810", "BELLEVUE PUBLIC SCHOOLS", "NE", "SARPY"),
    ("3904359", "BELLEVUE CITY", "OH", "HURON"), ("4809750", "BELLEVUE ISD", "TX", "CLAY"),
    ("5300390", "BELLEVUE SCHOOL DISTRICT", "WA", "KING"),
    ("3401830", "BLOOMFIELD TOWNSHIP", "NJ", "ESSEX"), ("3411880", "NUTLEY", "NJ", "ESSEX"),
    ("3411340", "NEWARK", "NJ", "ESSEX"), ("3410560", "MONTCLAIR", "NJ", "ESSEX"),
    ("3404200", "EAST NEWARK", "NJ", "HUDSON"), ("3401950", "BOONTON TOWN", "NJ", "MORRIS"),
    ("3401980", "BOONTON TOWNSHIP", "NJ", "MORRIS"), ("3417040", "WASHINGTON TOWNSHIP", "NJ", "ATLANTIC"),
    ("3417070", "WASHINGTON TOWNSHIP", "NJ", "GLOUCESTER"), ("3417100", "WASHINGTON TOWNSHIP", "NJ", "MERCER"),
    ("3417130", "WASHINGTON TOWNSHIP", "NJ", "MORRIS"), ("3417160", "WASHINGTON TOWNSHIP", "NJ", "WARREN"),
]
_PLACES = ["Lincoln", "Franklin", "Springfield", "Greenville", "Madison", "Clinton", "Fairview", "Salem", "Georgetown",
           "Riverside", "Oakland", "Ashland", "Milton", "Centerville", "Dayton", "Jackson", "Marion", "Oxford",
           "Union", "Lakeview", "Hamilton", "Chester", "Dover", "Kingston", "Monroe", "Auburn", "Burlington",
           "Cleveland", "Columbia", "Hudson", "Lebanon", "Lexington", "Manchester", "Newport", "Plymouth", "Richmond"]
_SUFFIXES = ["SCHOOL DISTRICT", "PUBLIC SCHOOLS", "CITY SCHOOLS", "COUNTY SCHOOLS", "UNIFIED", "COMMUNITY SCHOOLS"]
_STATES = ["NJ", "NY", "PA", "OH", "IL", "WI", "TX", "CA", "MI", "IA", "KY", "NE", "WA", "GA", "NC", "VA"]


@dataclass(frozen=True)
class SampleSpec:
    students: int = 4_500
    seed: int = 20261128
    drop_name: str = "2026-11-01"
    district_name_in_files: str = "Belleville Public Schools"  # as the vendors' files spell it (Star DistrictName ...)
    classlink_tenant: str = "Belleville PD"
    missing_from_classlink: int = 35
    without_tests: int = 60
    unknown_star_rows: int = 12
    excel_mangled_dates: int = 3  # SR rows whose CompletedDate an Excel re-save reduced to "mm:ss.0"
    refused_rows: int = 0  # in each file of the other vendors (not Star): rows whose score is not a number
    sources: tuple[str, ...] = ("star",)  # the assessment sources whose files the drop holds (lib/sources/)
    # How the district's PowerSchool export names our columns, and how it is delimited (Belleville: DEM style).
    powerschool_headers: tuple[tuple[str, str], ...] = (
        ("student_number", "STUDENTS.STUDENT_NUMBER"), ("last_name", "STUDENTS.LAST_NAME"),
        ("first_name", "STUDENTS.FIRST_NAME"), ("grade_level", "STUDENTS.GRADE_LEVEL"),
        ("school_id", "STUDENTS.SCHOOLID"), ("dob", "STUDENTS.DOB"), ("enroll_status", "STUDENTS.ENROLL_STATUS"),
        ("email", "U_STUDENTSUSERFIELDS.custom_student_email"),
    )
    powerschool_delimiter: str = ","
    powerschool_file: str = "students.csv"
    oneroster: str | None = None  # a OneRoster version (1.1, 1.2): its bulk export is the roster, no PowerSchool file
    first_student_number: int = 210001
    email_domain: str = "bellevilleschools.org"
    classlink_tenant_id: int = 4417


# The fewest students `demo` and `generate` take: a sample's anomalies are counts, not shares (the default spec's 35
# students missing from ClassLink, 60 without tests), so a smaller drop fails its own gates (at least 80% of students
# linked to ClassLink: 175 students) or, below about 70, cannot be drawn at all.
MIN_STUDENTS = 200

# The demo's second district, made up: a Texas district that screens with MAP Growth, i-Ready and DIBELS 8 and sends
# no Star files (its registry entry: belleville_mtss/demo_districts/pecan-valley.yaml, drafted by `districts onboard`).
PECAN_VALLEY = SampleSpec(
    students=1_500, seed=36, drop_name="2026-11-20", district_name_in_files="Pecan Valley Independent School District",
    classlink_tenant="Pecan Valley ISD", classlink_tenant_id=4836, missing_from_classlink=10, without_tests=20,
    unknown_star_rows=6, excel_mangled_dates=0, first_student_number=510001, email_domain="pecanvalley.example.org",
    sources=("map_growth", "iready", "dibels8"))
PECAN_VALLEY_ACCOUNT = {"AccountInfoId": 666001, "NcesId": "4899901", "DistrictName": "PECAN VALLEY ISD",
                        "State": "TX", "County": None}


def account_info_rows() -> list[dict]:
    """Belleville among several hundred districts, the real look-alikes included."""
    rows = [dict(BELLEVILLE), dict(PECAN_VALLEY_ACCOUNT)]
    rows += [{"AccountInfoId": 200000 + i, "NcesId": n, "DistrictName": name, "State": st, "County": c}
             for i, (n, name, st, c) in enumerate(LOOKALIKES)]
    aid = 300000
    for s_i, state in enumerate(_STATES):
        for p_i, place in enumerate(_PLACES):
            if (s_i + p_i) % 2:
                continue
            suffix = _SUFFIXES[(s_i * 7 + p_i) % len(_SUFFIXES)]
            rows.append({"AccountInfoId": aid, "NcesId": None, "DistrictName": f"{place.upper()} {suffix}",
                         "State": state, "County": None})
            aid += 1
    return rows


def _students(spec: SampleSpec, rng: np.random.Generator) -> pl.DataFrame:
    n = spec.students
    grade = rng.integers(0, 13, n)
    first = np.array(FIRST)[rng.integers(0, len(FIRST), n)]
    last = np.array(LAST)[rng.integers(0, len(LAST), n)]
    number = (np.arange(n) + spec.first_student_number).astype(str)
    school = np.empty(n, dtype=object)
    for g in range(13):
        ids = [sid for sid, _name, grades in SCHOOLS if g in grades]
        mask = grade == g
        school[mask] = np.array(ids)[rng.integers(0, len(ids), mask.sum())]
    birth_year = 2026 - 5 - grade - (rng.random(n) < 0.3)
    dob = pl.select(pl.format(
        "{}/{}/{}", pl.lit(pl.Series(rng.integers(1, 13, n))).cast(pl.Utf8).str.zfill(2),
        pl.lit(pl.Series(rng.integers(1, 29, n))).cast(pl.Utf8).str.zfill(2), pl.lit(pl.Series(birth_year)),
    )).to_series()
    email = np.char.add(np.char.add(np.char.lower(np.char.add(np.char.add(first, "."), last)), "."),
                        np.char.add(number, f"@{spec.email_domain}"))
    return pl.DataFrame({
        "student_number": number, "first_name": first, "last_name": last, "grade": grade.astype(np.int32),
        "school_id": school.astype(str), "dob": dob, "email": email,
    })


def _powerschool_file(students: pl.DataFrame, spec: SampleSpec, rng: np.random.Generator) -> pl.DataFrame:
    n = students.height
    # Emails typed by hand in PowerSchool: some differ from ClassLink in case or surrounding spaces.
    style = rng.random(n)
    email = students["email"].to_numpy()
    email = np.where(style < 0.06, np.char.upper(email.astype(str)), email)
    email = np.where((style >= 0.06) & (style < 0.10), np.char.add(" ", np.char.add(email.astype(str), " ")), email)
    ours = {
        "student_number": students["student_number"], "last_name": students["last_name"],
        "first_name": students["first_name"], "grade_level": students["grade"].cast(pl.Utf8),
        "school_id": students["school_id"], "dob": students["dob"], "enroll_status": ["0"] * n, "email": email,
    }
    return pl.DataFrame({header: ours[col] for col, header in spec.powerschool_headers})


def _classlink_users(students: pl.DataFrame, spec: SampleSpec, rng: np.random.Generator) -> pl.DataFrame:
    keep = np.ones(students.height, dtype=bool)
    keep[rng.choice(students.height, spec.missing_from_classlink, replace=False)] = False
    kept = students.filter(pl.Series(keep))
    own = pl.DataFrame({
        "UserId": [f"CL{spec.classlink_tenant_id}-{i:07d}" for i in range(kept.height)], "TenantId": [spec.classlink_tenant_id] * kept.height,
        "TenantName": [spec.classlink_tenant] * kept.height, "Role": ["student"] * kept.height,
        "Email": kept["email"], "GivenName": kept["first_name"], "FamilyName": kept["last_name"],
        "SourcedId": "stu-" + kept["student_number"],  # as the OneRoster sample names them (sources/oneroster)
    })
    # Other tenants share the prod table; their users must never link to this district's students.
    k = max(50, students.height // 10)
    other = pl.DataFrame({
        "UserId": [f"CX{spec.classlink_tenant_id}-{i:07d}" for i in range(k)], "TenantId": [5120] * k,
        "TenantName": ["Bloomfield PD"] * k,
        "Role": ["student"] * k, "Email": [f"s{i}@bloomfield.example.org" for i in range(k)],
        "GivenName": ["Sam"] * k, "FamilyName": ["Other"] * k,
    })
    teachers = pl.DataFrame({
        "UserId": [f"CT{spec.classlink_tenant_id}-{i:06d}" for i in range(300)],
        "TenantId": [spec.classlink_tenant_id] * 300,
        "TenantName": [spec.classlink_tenant] * 300, "Role": ["teacher"] * 300,
        "Email": [f"teacher{i}@{spec.email_domain}" for i in range(300)],
        "GivenName": ["Pat"] * 300, "FamilyName": ["Teacher"] * 300,
    })
    return pl.concat([own, other, teachers], how="diagonal")


def generate_drop(drop_dir: Path, spec: SampleSpec = SampleSpec()) -> dict[str, pl.DataFrame]:
    """Write the roster (the PowerSchool export, or the spec's OneRoster export) and the sample files of each of the spec's assessment sources (Star: SR.csv,
    SM.csv, SEL.csv) into drop_dir; return the ClassLink users to load. The sources draw in their order of
    lib/sources/__init__.py NAMES, so a spec always gives the same drop."""
    unknown = sorted(set(spec.sources) - {s.name for s in ASSESSMENTS if s.sample is not None})
    if unknown:
        raise ValueError(f"no sample generator for source(s) {', '.join(unknown)}")
    rng = np.random.default_rng(spec.seed)
    students = _students(spec, rng)
    drop_dir.mkdir(parents=True, exist_ok=True)
    if spec.oneroster:
        from .sources.oneroster.sample import export

        for name, frame in export(students, spec.district_name_in_files, spec.oneroster).items():
            frame.write_csv(drop_dir / name)
    else:
        _powerschool_file(students, spec, rng).write_csv(drop_dir / spec.powerschool_file,
                                                         separator=spec.powerschool_delimiter)
    untested = set(rng.choice(students["student_number"].to_numpy(), spec.without_tests, replace=False).tolist())
    tested = students.filter(~pl.col("student_number").is_in(list(untested)))
    for source in (s for s in ASSESSMENTS if s.name in spec.sources):
        for name, frame in source.sample(tested, spec, rng, source.files).items():
            frame.write_csv(drop_dir / name)
    (drop_dir / "drop.done").write_text("")  # completion marker, written last
    return {"classlink_users": _classlink_users(students, spec, rng)}


# ---- what the assessment sources' samples share (lib/sources/<source>/sample.py) ----------------------------

# The first day of the 2026-2027 fall and winter screening windows; a test falls within three weeks of it.
WINDOW_STARTS = np.array(["2026-09-14", "2027-01-11"], dtype="datetime64[D]")
REFUSED_SCORE = "n/a"  # the score of a refused row (SampleSpec.refused_rows): a vendor's validator refuses it


def sample_events(tested: pl.DataFrame, grades: range, rng: np.random.Generator) -> pl.DataFrame:
    """One row per test of the students in `grades`: each tested in the fall, about half in the winter too, a
    student's tests one after another. Adds `window` (0 fall, 1 winter), `tests` (the student's count of tests),
    `taken` (the day) and `ability` (the student's distance from the grade's mean, in standard deviations: the
    same in both windows, so a student's scores hang together)."""
    takers = tested.filter(pl.col("grade").is_in(list(grades)))
    tests = rng.integers(1, 3, takers.height)
    ability = rng.normal(0, 1, takers.height)
    idx = np.repeat(np.arange(takers.height), tests)
    window = np.arange(idx.size) - np.repeat(np.cumsum(tests) - tests, tests)  # 0, 1 within each student
    taken = WINDOW_STARTS[window] + rng.integers(0, 21, idx.size)
    return takers[idx].with_columns(pl.Series("window", window), pl.Series("tests", tests[idx]),
                                    pl.Series("taken", taken), pl.Series("ability", ability[idx]))


def percentile(z: np.ndarray) -> np.ndarray:
    """A national percentile (1-99) for a distance from the mean in standard deviations (logistic: close enough
    to the normal curve for a sample)."""
    return np.clip(np.round(100 / (1 + np.exp(-1.702 * z))), 1, 99).astype(int)


def extra_rows(frame: pl.DataFrame, spec: SampleSpec, ids: tuple[str, ...], score: str) -> pl.DataFrame:
    """A vendor file with the spec's awkward rows: `refused_rows` of its rows (spread through it) with a score
    that is not a number, and `unknown_star_rows // 3` (at least one) copies of its first rows for students the
    roster lacks, each of `ids` (the student's identifier, and a test id) prefixed with 9 so keys stay unique."""
    out = frame
    if spec.refused_rows:
        n = min(spec.refused_rows, frame.height)
        at = np.linspace(0, frame.height - 1, n).round().astype(int)  # distinct: n never exceeds the rows
        out = out.with_columns(pl.when(pl.int_range(pl.len()).is_in(at.tolist())).then(pl.lit(REFUSED_SCORE))
                               .otherwise(pl.col(score)).alias(score))
    if spec.unknown_star_rows:  # tests of students the district's roster does not know (moved in, typo'd ids)
        unknown = frame.head(spec.unknown_star_rows // 3 or 1).with_columns(
            [(pl.lit("9") + pl.col(c)).alias(c) for c in ids])
        out = pl.concat([out, unknown])
    return out


def write_tables(out: Path, classlink_users: pl.DataFrame) -> None:
    """The prod db and warehouse tables of a generated sample, as CSV files (for loading elsewhere)."""
    out.mkdir(parents=True, exist_ok=True)
    classlink_users.write_csv(out / "ClassLinkUsers.csv")
    pl.DataFrame(account_info_rows()).write_csv(out / "AccountInfo.csv")


def _schema(conn, name: str) -> None:
    if conn.dialect.name == "postgresql":  # the warehouse and product teams' schemas, as they would have them
        conn.execute(sa.schema.CreateSchema(name, if_not_exists=True))


def create_their_table(engine, table) -> None:
    """Create one of the other teams' tables as its owner would (demo and tests only: we never own these)."""
    with engine.begin() as conn:
        _schema(conn, table.schema)
        theirs.create_all(conn, tables=[table])


def migrate_sample_warehouse(engine) -> None:
    """Our tables at head in a sample warehouse (demo, tests, benchmarks)."""
    with engine.begin() as conn:
        _schema(conn, "dm")
    migrations.upgrade(engine)


def load_databases(prod_url: str, warehouse_url: str, classlink_users: pl.DataFrame) -> None:
    """The databases around a sample: the other teams' tables created and filled as their owners would, and ours
    migrated to head. For the embedded demo and for tests only: `demo` and `generate --load` refuse any database
    that is not the embedded default under MTSS_HOME."""
    prod = make_engine(prod_url)
    create_their_table(prod, class_link_users)
    with prod.begin() as conn:
        conn.execute(class_link_users.delete())
        if classlink_users.height:
            conn.execute(class_link_users.insert(), classlink_users.to_dicts())
    prod.dispose()
    warehouse = make_engine(warehouse_url)
    create_their_table(warehouse, account_info)
    with warehouse.begin() as conn:
        conn.execute(account_info.delete())
        conn.execute(account_info.insert(), account_info_rows())
    migrate_sample_warehouse(warehouse)
    warehouse.dispose()
