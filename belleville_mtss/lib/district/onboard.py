"""Onboarding a district from a sample drop: the machine finds and measures, a person decides.

`onboard` reads the sample's files (a folder or a zip), recognises the roster (a PowerSchool export, or a OneRoster
export by its manifest.csv) and each assessment source's files by their header (lib/sources: each source's `recognise`), finds every district identifier they carry, measures
every candidate student link of each source, and drafts a registry entry whose
`verification.checked` lists exactly what was measured. The draft has no `verified_by`: the registry refuses its
drops until a person has checked it and signed it off. Nothing here writes to a database, and nothing it reports
holds a student's value (headers, counts, rates, district names and ids only).
"""
from __future__ import annotations

import csv
import datetime as dt
import re
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import polars as pl

from ..sources import ASSESSMENTS, BY_NAME, Source
from ..sources.oneroster.export import MANIFEST, ExportRefused, candidates, district_orgs, is_oneroster
from ..sources.powerschool.reader import email_key
from ..receive.drops import DropRefused, Limits, name_matches, zip_entries
from ..load.warehouse import student_roster
from ..receive.untrusted import escape
from ..read.csvfile import FileRejected, read_text_csv
from .crosswalk import account_reference, carried_widely
from ..sources.powerschool.section import POWERSCHOOL_FIELDS, POWERSCHOOL_LINK_FIELDS

# A proposed student link must match at least this share of a source's identifiers; the gates decide later.
LINK_FLOOR = 0.5
HEADER_MAX = 64 * 1024  # a first row longer than this is no header (as a received file's, lib/read/csvfile.py)
# Pairs within this of the best rate differ by a few new or mistyped students, not by what they carry: among them
# a source's identifier columns are preferred in its section's order (Star: the mapping spec's StudentIdentifier).
LINK_TIE = 0.02
EMAIL_FLOOR = 0.5
DELIMITERS = (",", "\t", "|", ";")
# Our field -> header spellings (lower case, table prefix and punctuation removed) seen in PowerSchool exports.
SYNONYMS = {
    "student_number": {"studentnumber", "stunum", "studentno"},
    "email": {"email", "emailstudent", "customstudentemail", "studentemail", "emailaddress"},
    "first_name": {"firstname", "givenname"},
    "last_name": {"lastname", "familyname", "surname"},
    "grade_level": {"gradelevel", "grade"},
    "school_id": {"schoolid", "schoolnumber"},
    "dob": {"dob", "birthdate", "dateofbirth"},
    "enroll_status": {"enrollstatus"},
    "state_studentnumber": {"statestudentnumber", "statestudentid", "stateid"},
    "dcid": {"dcid"},
    "id": {"id"},
}
assert set(SYNONYMS) == set(POWERSCHOOL_FIELDS)


class OnboardError(ValueError):
    """A sample that cannot be onboarded from (no file, no export, unreadable); the message says why."""


@dataclass(frozen=True)
class SampleFile:
    name: str
    data: bytes


# A sample is read into memory whole: at most this many bytes, so that a hostile one cannot take the machine down
SAMPLE_MAX_BYTES = 512 * 1024 ** 2
TEXT_SUFFIXES = (".csv", ".txt", ".tsv")  # a file so named claims to be a table: unreadable, it stops onboarding


def sample_files(path: Path, limits: Limits = Limits()) -> list[SampleFile]:
    """The files of a sample drop, a folder (any depth) or a zip; hidden files and macOS forks skipped. A zip is
    checked as a received drop's is (its entries' names, kinds, sizes and expansion ratio, the declared sizes held
    to while reading), and the whole sample to SAMPLE_MAX_BYTES. Refusals are OnboardError naming the file."""
    if path.is_file() and zipfile.is_zipfile(path):
        return _zip_members(path, replace(limits, max_drop_bytes=min(limits.max_drop_bytes, SAMPLE_MAX_BYTES)))
    if not path.is_dir():
        raise OnboardError(f"{path}: not a folder or a zip file")
    # a symlink could point anywhere on the machine: only the sample's own files are read
    paths = [p for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink()
             and not any(part.startswith(".") for part in p.relative_to(path).parts)]
    total = 0
    for p in paths:
        total += p.stat().st_size
        if total > SAMPLE_MAX_BYTES:
            raise OnboardError(f"{p.name}: the sample is larger than {SAMPLE_MAX_BYTES // 1024 ** 2} MiB at this "
                               "file; onboard from a smaller sample (a few thousand students is plenty)")
    return [SampleFile(p.name, p.read_bytes()) for p in paths]


def _zip_members(path: Path, limits: Limits) -> list[SampleFile]:
    files, total = [], 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info, base in zip_entries(zf, path.name, limits):
                budget = min(int(limits.max_zip_ratio * max(info.compress_size, 1)), limits.max_drop_bytes - total)
                with zf.open(info) as member:
                    data = member.read(budget + 1)
                if len(data) > budget:
                    raise OnboardError(f"{path.name}: entry {escape(info.filename)} expands past the sizes it "
                                       f"declared or past {SAMPLE_MAX_BYTES // 1024 ** 2} MiB")
                total += len(data)
                files.append(SampleFile(base, data))
    except DropRefused as exc:
        raise OnboardError(exc.message) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise OnboardError(f"{path.name}: not a readable zip archive ({type(exc).__name__})") from None
    return files


# ---- reading any text table -------------------------------------------------------------------------------------

@dataclass
class Table:
    name: str
    encoding: str
    delimiter: str
    has_header: bool
    columns: list[str]  # the header, or column_1, column_2, ... without one
    frame: pl.DataFrame  # every value as text


def _decoded(name: str, data: bytes) -> tuple[str, str]:
    """(encoding, text): UTF-8, else windows-1252 (PowerSchool's Windows exports); OnboardError for neither."""
    try:
        return "utf-8", data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return "windows-1252", data.decode("windows-1252")
    except UnicodeDecodeError:
        raise OnboardError(f"{name}: neither UTF-8 nor windows-1252 text") from None


def _delimiter(lines: list[str]) -> str:
    """The delimiter that splits the first lines into the same number of fields, the most of them."""
    best, best_width = ",", 1
    for d in DELIMITERS:
        widths = {len(row) for row in csv.reader(lines, delimiter=d)}
        if len(widths) == 1 and (width := widths.pop()) > best_width:
            best, best_width = d, width
    return best


def _looks_like_header(row: list[str]) -> bool:
    """A header names columns: no address or number among its cells, each distinct and mostly letters."""
    cells = [c.strip() for c in row]
    if len(set(cells)) != len(cells) or any("@" in c for c in cells):
        return False
    # vendors' headers carry punctuation ("Growth (%)", "Unnamed: 15", "Primary ID - Student ID (State ID)")
    return all(re.fullmatch(r"[\[\]A-Za-z_][\[\]\w .\-/#():%&+,'?]*", c) for c in cells if c)


def read_table(file: SampleFile, limits: Limits = Limits()) -> Table:
    """The file as a table of text; OnboardError, naming the file, for one that is not a text table (binary
    content, a first row longer than a header can be, an encoding neither UTF-8 nor windows-1252, broken CSV)."""
    data = file.data.removeprefix(b"\xef\xbb\xbf")
    head = data[:HEADER_MAX + 1]
    if b"\x00" in head:
        raise OnboardError(f"{file.name}: binary content, not a text table")
    if b"\n" not in head and len(data) > HEADER_MAX:
        raise OnboardError(f"{file.name}: the first row is longer than {HEADER_MAX // 1024} KiB; not a table")
    encoding, text = _decoded(file.name, data)
    lines = text.splitlines()[:20]
    if not lines:
        raise OnboardError(f"{file.name} is empty")
    try:
        delimiter = _delimiter(lines)
        first = next(csv.reader(lines[:1], delimiter=delimiter))
    except (csv.Error, StopIteration) as exc:
        raise OnboardError(f"{file.name}: not readable as a table ({type(exc).__name__})") from None
    has_header = _looks_like_header(first)
    columns = [c.strip() for c in first] if has_header else [f"column_{i + 1}" for i in range(len(first))]
    try:  # read as a drop's file is (lib/read/csvfile.py): the same checks of every row, the same row limit
        frame = read_text_csv(Path(file.name), data=data, delimiter=delimiter, encoding=encoding,
                              has_header=has_header, column_names=None if has_header else columns,
                              max_rows=limits.max_file_rows)
    except FileRejected as exc:
        raise OnboardError(exc.message) from None
    return Table(file.name, encoding, delimiter, has_header, list(frame.columns), frame)


def _distinct(frame: pl.DataFrame, column: str) -> set[str]:
    series = frame[column].drop_nulls().str.strip_chars()
    return set(series.filter(series != "").unique().to_list())


# ---- the PowerSchool export -------------------------------------------------------------------------------------

def header_style(columns: list[str]) -> str:
    if sum(bool(re.match(r"^\[\w+\]", c)) for c in columns) > len(columns) / 2:
        return "Quick Export ([Table]Field)"
    if sum(bool(re.match(r"^\w+\.\w+", c)) for c in columns) > len(columns) / 2:
        return "Data Export Manager (TABLE.FIELD)"
    return "plain field names"


def _spelling(header: str) -> str:
    bare = re.sub(r"^\[\w+\]", "", header.strip())
    bare = bare.rsplit(".", 1)[-1] if re.match(r"^\w+\.\w+", bare) else bare
    return re.sub(r"[^a-z0-9]", "", bare.lower())


def email_like(table: Table) -> list[str]:
    """Columns whose values are mostly addresses."""
    out = []
    for c in table.columns:
        values = table.frame[c].drop_nulls()
        if values.len() and values.str.contains("@").mean() >= 0.5:
            out.append(c)
    return out


def map_fields(table: Table) -> dict[str, list[str]]:
    """Our field -> the export's columns that could be it, most likely first (by header; for the email, also by
    values, the column with the most addresses first)."""
    found: dict[str, list[str]] = {}
    if table.has_header:
        for c in table.columns:
            for ours, spellings in SYNONYMS.items():
                if _spelling(c) in spellings:
                    found.setdefault(ours, []).append(c)
    emails = email_like(table)
    counts = {c: int(table.frame[c].str.contains("@").sum()) for c in emails}
    found["email"] = sorted(dict.fromkeys(emails + found.get("email", [])), key=lambda c: -counts.get(c, 0))
    if not found["email"]:
        del found["email"]
    return found


# ---- measuring --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pair:
    column: str  # the assessment files' identifier column
    export_column: str
    matched: int
    of: int

    @property
    def rate(self) -> float:
        return self.matched / self.of if self.of else 0.0


@dataclass
class Assessed:
    """One assessment source's files in the sample, and its identifier columns measured against the export."""
    source: Source
    tables: list[Table]
    pairs: list[Pair] = field(default_factory=list)  # best first
    empty: dict[str, str] = field(default_factory=dict)  # identifier column -> why it measured nothing
    link: Pair | None = None
    note: str = ""  # why no link was proposed


def link_pairs(found: Assessed, export: Table, export_values: dict[str, set[str]]) -> None:
    """Each of the source's identifier columns against each export column: the share of its files' distinct
    identifiers the column holds, best first (ties: the source's preferred column, then the export's order)."""
    preferred = found.source.link_columns()
    for column in preferred:
        ids = set().union(*(_distinct(t.frame, column) for t in found.tables if column in t.columns))
        if not ids:
            if any(column in t.columns for t in found.tables):
                found.empty[column] = f"present but empty in every {found.source.title} file"
            continue
        for c, values in export_values.items():
            if matched := len(ids & values):
                found.pairs.append(Pair(column, c, matched, len(ids)))
    found.pairs.sort(key=lambda p: (-p.rate, preferred.index(p.column), export.columns.index(p.export_column)))


def _best(pairs: list[Pair], preferred: tuple[str, ...]) -> Pair | None:
    """The pair to propose: above the floor, and among those within LINK_TIE of the best, the preferred column."""
    usable = [p for p in pairs if p.rate >= LINK_FLOOR]
    if not usable:
        return None
    return min((p for p in usable if p.rate >= usable[0].rate - LINK_TIE), key=lambda p: preferred.index(p.column))


@dataclass(frozen=True)
class TenantOverlap:
    tenant_name: str
    tenant_id: int | None
    matched: int  # export emails that are this tenant's student users


def email_keys(export: Table, column: str) -> list[str]:
    return export.frame.select(email_key(pl.col(column)).alias("k")).drop_nulls().unique()["k"].to_list()


@dataclass
class Evidence:
    source: str  # where the identifier was read
    value: str
    rows: int
    account_info_id: int | None
    how: str
    shown: bool = True  # False: a value of few students' rows, counted (`value` says so), never proposed


@dataclass(frozen=True)
class OneRosterSample:
    """A OneRoster export in the sample: its manifest's file name, version, students (users.csv rows of the
    student role, as `candidates`: every column that could be their number, and their email) and district orgs."""
    manifest: str
    version: str
    students: Table
    users: int  # users.csv rows, every role
    districts: pl.DataFrame  # name, identifier


@dataclass
class Onboarding:
    key: str
    state: str
    sample: str
    export: Table | None  # the roster's columns measured: the PowerSchool export, or OneRoster's student columns
    assessed: dict[str, Assessed]  # source name -> its files in the sample, in the list's order
    other_files: list[str]
    fields: dict[str, list[str]]
    chosen: dict[str, str]
    email_column: str | None
    email_rates: dict[str, tuple[int, int]]  # export column -> (matched by the best tenant, export emails)
    tenants: list[TenantOverlap]
    evidence: list[Evidence]
    account_info_id: int | None
    identity_note: str
    account_row: dict | None
    entry: dict = field(default_factory=dict)
    oneroster: OneRosterSample | None = None  # the roster, when it is a OneRoster export
    classlink_on: str = "email"  # how students link to ClassLink users: email, or (OneRoster) sourced_id
    by_sourced_id: tuple[int, int] | None = None  # OneRoster: (sourcedIds the best tenant holds, sourcedIds)

    @property
    def complete(self) -> bool:
        """An AccountInfoId found and a link proposed for every assessment source the sample held."""
        return self.account_info_id is not None and bool(self.assessed) and all(
            a.link for a in self.assessed.values())


def _assessment_evidence(found: Assessed, reference, state: str) -> list[Evidence]:
    """The district names (resolved within the state), state district ids and other district ids a source's
    files carry, with their row counts. A value no district resolves from and few students' rows carry (a stray
    cell, a shifted column: a student's name, email or number) is counted, never shown nor proposed."""
    source, out = found.source, []
    name, state_id = source.header_of(source.district_column), source.header_of(source.state_id_column)
    for column in (c for c in (name, state_id, *source.district_ids) if c):
        carried = [t.frame.select(pl.col(column).str.strip_chars().alias("value"), _student_of(t, source))
                   for t in found.tables if column in t.columns]
        if not carried:
            continue
        pairs = pl.concat(carried).filter(pl.col("value").is_not_null() & (pl.col("value") != ""))
        of = pairs["student"].n_unique()
        counts = pairs.group_by("value").agg(pl.len().alias("rows"), pl.col("student").n_unique().alias("students"))
        for value, n, students in counts.sort(["rows", "value"], descending=[True, False]).rows():
            where = f"{source.title} {column}"
            e = (_name_evidence(where, value, n, reference, state) if column == name
                 else _state_id_evidence(where, value, n, source) if column == state_id
                 else Evidence(where, value, n, None, "not an id dm.AccountInfo holds"))
            resolved = e.account_info_id is not None or e.how.startswith("ambiguous")
            if not resolved and not carried_widely(students, of, value):
                e = Evidence(where, f"<a value of {n:,} row(s), not shown>", n, None,
                             f"carried by {students} student(s) only: not a district's; not proposed", shown=False)
            out.append(e)
    return out


def _student_of(table: Table, source: Source) -> pl.Expr:
    """Who a row's student is: by the source's first link column the table fills (a Star file may leave
    StudentIdentifier empty and carry StudentStateID), a row whose cell is empty its own; else each row its own."""
    row = pl.format("row {}", pl.int_range(pl.len()))
    for column in (c for c in source.link_columns() if c in table.columns):
        text = pl.col(column).str.strip_chars()
        values = pl.when(text != "").then(text)
        if table.frame.select(values.drop_nulls().n_unique()).item() > 1:
            return pl.coalesce(values, row).alias("student")
    return row.alias("student")


def _name_evidence(where: str, value: str, n: int, reference, state: str) -> Evidence:
    """A district name a file carries, resolved within the state."""
    res = reference.resolve(value, state=state)
    aid = res.best.account_info_id if res.decision == "resolved" else None
    how = (f"{res.decision} by {res.method} in {state}"
           + (f" to {res.best.name} (score {res.best.score:g}, margin {res.margin:g})" if res.best else ""))
    return Evidence(where, value, n, aid, how)


def _state_id_evidence(where: str, value: str, n: int, source: Source) -> Evidence:
    return Evidence(where, value, n, None, f"a state district id: proposed as sources.{source.name}.state_ids; "
                                           "check it is the district's own")


def _oneroster_evidence(sample: OneRosterSample, reference, state: str, account_info: pl.DataFrame
                        ) -> list[Evidence]:
    """The district orgs of a OneRoster export: each name resolved within the state, each identifier an NCES LEA
    id of dm.AccountInfo or a state district id to list."""
    by_nces = {n: a for n, a in zip(account_info["NcesId"], account_info["AccountInfoId"]) if n}
    source, out = BY_NAME["oneroster"], []
    for name, identifier in sample.districts.rows():
        out.append(_name_evidence("OneRoster orgs.csv name", name, sample.students.frame.height, reference, state))
        if identifier in by_nces:
            out.append(Evidence("OneRoster orgs.csv identifier", identifier, 1, by_nces[identifier],
                                "an NCES LEA id of dm.AccountInfo (proposed as sources.oneroster.state_ids)"))
        elif identifier:
            out.append(_state_id_evidence("OneRoster orgs.csv identifier", identifier, 1, source))
    return out


def _oneroster_sample(tables: list[Table]) -> OneRosterSample | None:
    """The sample's OneRoster export, read as a drop's would be (its manifest decides); None without a manifest."""
    manifest = next((t for t in tables if t.name.lower().endswith(MANIFEST)), None)
    if manifest is None:
        return None
    prefix = BY_NAME["oneroster"].files[0].prefix(manifest.name)
    files = {t.name.lower().removeprefix(prefix): t.frame for t in tables if t.name.lower().startswith(prefix)}
    try:
        version, students = candidates(files)
    except ExportRefused as exc:
        raise OnboardError(f"{manifest.name}: {exc.message}") from None
    return OneRosterSample(manifest.name, version, Table("users.csv", "utf-8", ",", True, students.columns,
                                                         students), files["users.csv"].height, district_orgs(files))


def _nces_evidence(tables: list[Table], account_info: pl.DataFrame) -> list[Evidence]:
    """Any column of few distinct values (a district-level column) whose values are NCES LEA ids of dm.AccountInfo."""
    by_nces = {n: a for n, a in zip(account_info["NcesId"], account_info["AccountInfoId"]) if n}
    out = []
    for t in tables:
        for c in t.columns:
            counts = t.frame[c].str.strip_chars().value_counts()
            if counts.height > 20:
                continue
            for value, n in counts.rows():
                if value and re.fullmatch(r"\d{7}", value) and value in by_nces:
                    out.append(Evidence(f"{t.name} column {c}", value, n, by_nces[value],
                                        "an NCES LEA id of dm.AccountInfo"))
    return out


def _reconcile(evidence: list[Evidence]) -> tuple[int | None, str]:
    ids: dict[int, list[Evidence]] = {}
    for e in evidence:
        if e.account_info_id is not None:
            ids.setdefault(e.account_info_id, []).append(e)
    if len(ids) == 1:
        (aid, agreeing), = ids.items()
        return aid, f"AccountInfoId {aid}: {len(agreeing)} identifier(s) resolve to it and none elsewhere"
    if not ids:
        return None, "no identifier in the sample resolves to a dm.AccountInfo row: find it with `districts suggest`"
    return None, "the evidence disagrees: " + "; ".join(
        f"AccountInfoId {aid} from " + ", ".join(f"{e.source} {e.value!r}" for e in es) for aid, es in ids.items())


def _pattern(name: str) -> str:
    """A file-name pattern for the district's later exports: digit runs (dates, counters) as *."""
    return re.sub(r"\d+", "*", name)


def _propose_links(assessed: dict[str, Assessed], export: Table, fields: dict[str, list[str]],
                   chosen: dict[str, str]) -> None:
    """Each source's student link. Every source links to one export field (the registry's
    student_link.powerschool): the first source, in the list's order, with a usable pair decides which; the others'
    pairs must be on that column."""
    export_values = {c: _distinct(export.frame, c) for c in export.columns}
    by_column = {c: f for f, c in chosen.items()}
    roster_column = None
    for found in assessed.values():
        link_pairs(found, export, export_values)
        on = found.pairs if roster_column is None else [p for p in found.pairs if p.export_column == roster_column]
        best = _best(on, found.source.link_columns())
        if best is None:
            top = on[0] if on else None
            found.note = (f"no pair reaches {LINK_FLOOR:.0%} (best: {top.column} = {top.export_column}, "
                          f"{top.rate:.1%})" if top else f"no {found.source.title} identifier matches any "
                          + ("export column" if roster_column is None else f"value of the export's {roster_column}"))
            continue
        if roster_column is None:
            ours = by_column.get(best.export_column)
            if ours not in POWERSCHOOL_LINK_FIELDS:
                free = next((f for f in POWERSCHOOL_LINK_FIELDS if f not in chosen), None)
                if ours is not None or free is None:
                    found.note = (f"the best pair, {best.column} = {best.export_column}, is the export's {ours}, "
                                  "which no assessment identifier may link to")
                    continue
                chosen[free] = best.export_column
                fields.setdefault(free, []).insert(0, best.export_column)
                by_column[best.export_column] = free
            roster_column = best.export_column
        found.link = best


def onboard(sample: Path, state: str, key: str, account_info: pl.DataFrame,
            tenants_of: Callable[..., list[TenantOverlap]], today: dt.date | None = None,
            limits: Limits = Limits()) -> Onboarding:
    """Everything `districts onboard` measures and the draft entry. `tenants_of(email keys)` answers, from the prod
    db, which ClassLink tenants those addresses are student users of; `tenants_of(sourcedIds, "SourcedId")` the same
    for a OneRoster roster's sourcedIds."""
    today = today or dt.date.today()
    files = sample_files(sample, limits)
    if not files:
        raise OnboardError(f"{sample}: no files")
    assessed: dict[str, Assessed] = {}
    tables, other, oneroster = [], [], []  # oneroster: a OneRoster export's files
    for f in files:
        try:
            t = read_table(f, limits)
        except OnboardError:
            if f.name.lower().endswith(TEXT_SUFFIXES):
                raise  # a file named as a table that is not one: said, never guessed around
            other.append(f.name)
            continue
        source = next((s for s in ASSESSMENTS if t.has_header and s.recognise and s.recognise(t.columns)), None)
        if source is not None:
            assessed.setdefault(source.name, Assessed(source, [])).tables.append(t)
        elif t.has_header and is_oneroster(t.columns):
            oneroster.append(t)  # its users.csv lists teachers and parents too: read only as OneRoster
        else:
            tables.append(t)
    assessed = {s.name: assessed[s.name] for s in ASSESSMENTS if s.name in assessed}
    mapped = {id(t): map_fields(t) for t in tables}  # scans every column's values: once per table
    exports = [t for t in tables if mapped[id(t)]]
    roster = _oneroster_sample(oneroster) if oneroster else None
    if roster is not None:
        if exports:
            raise OnboardError(f"{sample}: both a OneRoster export ({roster.manifest}) and a PowerSchool export "
                               f"({', '.join(t.name for t in exports)}): onboard from a sample of the one the "
                               "district will send as its roster")
        export, other = roster.students, other + [t.name for t in tables]
        fields = {"email": ["email"]} if "email" in export.columns else {}
    else:
        other += [t.name for t in oneroster]
        if not exports:
            raise OnboardError(f"{sample}: no roster found (a PowerSchool export: a table with student numbers or "
                               f"emails; or a OneRoster export: its {MANIFEST}) among "
                               f"{', '.join(f.name for f in files)}")
        export = max(exports, key=lambda t: (len(mapped[id(t)]), t.frame.height))
        other += [t.name for t in tables if t is not export]
        fields = mapped[id(export)]
    chosen = {f: cols[0] for f, cols in fields.items()}
    _propose_links(assessed, export, fields, chosen)
    if "student_number" not in chosen:
        if roster is None:
            raise OnboardError(f"{export.name}: no column is the student number (by header or by link)")
        chosen["student_number"] = "identifier"  # no assessment identifier measured: OneRoster's own id, checked

    email_rates, tenants, email_column = {}, [], None
    for column in fields.get("email", []):
        keys = email_keys(export, column)
        found = sorted(tenants_of(keys), key=lambda t: -t.matched)
        email_rates[column] = (found[0].matched if found else 0, len(keys))
        if email_column is None or email_rates[column][0] > email_rates[email_column][0]:
            email_column, tenants = column, found
    if email_column:
        chosen["email"] = email_column
        fields["email"] = [email_column] + [c for c in fields["email"] if c != email_column]
    best_tenant = tenants[0] if tenants and email_rates[email_column][0] >= EMAIL_FLOOR * max(
        email_rates[email_column][1], 1) else None
    classlink_on, by_sourced_id = "email", None  # a OneRoster roster: its sourcedIds measured as its emails are
    if roster is not None:
        ids = export.frame["sourcedId"].drop_nulls().unique().to_list()
        found = sorted(tenants_of(ids, "SourcedId"), key=lambda t: -t.matched)
        by_sourced_id = (found[0].matched if found else 0, len(ids))
        # an SIS's sourcedIds (often small numbers) repeat across tenants: they never name another tenant than
        # the one the export's emails name
        same = best_tenant is None or bool(found) and (found[0].tenant_name, found[0].tenant_id) == (
            best_tenant.tenant_name, best_tenant.tenant_id)  # no tenant holding its ids: the emails link it
        if by_sourced_id[0] >= EMAIL_FLOOR * max(len(ids), 1) and by_sourced_id[0] > (
                email_rates[email_column][0] if email_column else 0) and same:
            classlink_on, tenants, best_tenant = "sourced_id", found, found[0]

    reference = account_reference(account_info)
    evidence = [e for found in assessed.values() for e in _assessment_evidence(found, reference, state)]
    evidence += _nces_evidence([*([] if roster else [export]), *(t for found in assessed.values() for t in found.tables)],
                               account_info)
    if roster is not None:
        evidence += _oneroster_evidence(roster, reference, state, account_info)
    if best_tenant:
        res = reference.resolve(best_tenant.tenant_name, state=state)
        evidence.append(Evidence("ClassLink tenant name", best_tenant.tenant_name, best_tenant.matched, None,
                                 f"{res.decision} by name (not counted: tenants are found by their users' overlap with the roster)"))
    aid, identity_note = _reconcile(evidence)
    row = account_info.filter(pl.col("AccountInfoId") == aid).row(0, named=True) if aid is not None else None
    result = Onboarding(key, state, str(sample), export, assessed, other, fields, chosen, email_column, email_rates,
                        tenants, evidence, aid, identity_note, row, oneroster=roster, classlink_on=classlink_on,
                        by_sourced_id=by_sourced_id)
    result.entry = draft_entry(result, best_tenant, today)
    return result


def _pct(n: int, d: int) -> str:
    return f"{n:,} of {d:,} ({n / d:.1%})" if d else "0 of 0"


def checked_lines(o: Onboarding, tenant: TenantOverlap | None, today: dt.date) -> list[str]:
    """What was measured, in figures: the draft's `verification.checked`."""
    by = f"measured by `belleville-mtss districts onboard` on {today.isoformat()} from the sample {Path(o.sample).name}"
    lines = [by]
    for e in o.evidence:
        aid = f" -> AccountInfoId {e.account_info_id}" if e.account_info_id is not None else ""
        lines.append(f"{e.source} {e.value!r} ({e.rows:,} rows): {e.how}{aid}")
    lines.append(o.identity_note)
    if o.account_row:
        r = o.account_row
        lines.append(f"dm.AccountInfo row {r['AccountInfoId']}: {r['DistrictName']}, {r['State']}"
                     f"{', ' + r['County'] if r.get('County') else ''}, NcesId {r['NcesId'] or '(none)'}")
    if tenant:
        matched, of = o.by_sourced_id if o.classlink_on == "sourced_id" else o.email_rates[o.email_column]
        what = "OneRoster sourcedIds" if o.classlink_on == "sourced_id" else f"export emails ({o.email_column})"
        others = "; ".join(f"{t.tenant_name!r} ({t.tenant_id}) {t.matched:,}" for t in o.tenants[1:4]) or "none"
        lines.append(f"ClassLink tenant {tenant.tenant_name!r} (id {tenant.tenant_id}): {_pct(matched, of)} {what} "
                     f"are its student users; other tenants: {others}")
    else:
        lines.append("ClassLink: no tenant holds half of the export's emails as student users")
    if o.by_sourced_id is not None:
        emails = o.email_rates.get(o.email_column, (0, 0))
        lines.append(f"ClassLink link measured both ways: by email {_pct(*emails)}, by OneRoster sourcedId "
                     f"{_pct(*o.by_sourced_id)} (dbo.ClassLinkUsers.SourcedId); student_link.classlink: "
                     f"{o.classlink_on} proposed")
    e, r = o.export, o.oneroster
    if r is not None:
        lines.append(f"OneRoster {r.version} export ({r.manifest}: every file bulk or absent): "
                     f"{e.frame.height:,} students among {r.users:,} users.csv rows")
        lines.append(f"student number: users.csv {o.chosen['student_number']} (the column the assessments' "
                     f"identifiers were measured against; columns read: {', '.join(e.columns)})")
    else:
        lines.append(f"PowerSchool export {e.name}: {e.frame.height:,} rows, {e.encoding}, "
                     f"{'tab' if e.delimiter == chr(9) else repr(e.delimiter)}-delimited, "
                     f"{'a header row, ' + header_style(e.columns) if e.has_header else 'no header row'}")
    lines.append(("OneRoster " if r else "") + "fields: " + ", ".join(f"{f} = {c}" + (f" (also {', '.join(o.fields[f][1:])})"
                                                        if len(o.fields.get(f, [])) > 1 else "")
                                        for f, c in o.chosen.items()))
    for found in o.assessed.values():
        lines += _source_lines(found)
    return lines


def _source_lines(found: Assessed) -> list[str]:
    """What was measured of one assessment source's files: its link pair, empty identifier columns, its files."""
    title, p = found.source.title, found.link
    held = ", ".join(f"{t.name} ({t.frame.height:,} rows)" for t in found.tables)
    lines = [f"{title} files: {held}"]
    if p:
        runner = next((q for q in found.pairs if q != p), None)
        lines.append(f"student link: {title} {p.column} = {p.export_column} for {_pct(p.matched, p.of)} distinct "
                     f"{title} identifiers" + (f"; next {runner.column} = {runner.export_column} "
                                              f"{runner.rate:.1%}" if runner else "")
                     + (f" (within {LINK_TIE:.0%} of the best, the first of {', '.join(found.source.link_columns())})"
                        if runner and runner.rate > p.rate else ""))
    else:
        lines.append(f"student link: {title}: none proposed ({found.note})")
    lines += [f"{title} {c}: {why}" for c, why in found.empty.items()]
    named = _file_kinds(found)
    unnamed = [t.name for t in found.tables if t.name not in named]
    if unnamed:
        lines.append(f"{title} files not under their default names (set sources.{found.source.name}.files in the "
                     f"entry): {', '.join(unnamed)}")
    if not _district_evidence(found):
        lines.append(f"{title}: its files carry no district name and no state district id: bound_by_folder "
                     "proposed (the folder the district sends them to is the only evidence; check it)")
    return lines


def _file_kinds(found: Assessed) -> dict[str, tuple]:
    """File name -> (its file kind, the pattern to register): by the kind's default pattern, or, for a source that
    comes as one kind of file, the name with its digit runs as * (a subject only a name says cannot be guessed)."""
    kinds = found.source.files
    out = {}
    for t in found.tables:
        kind = next((k for k in kinds if name_matches(t.name, k.pattern)), None)
        if kind is not None:
            out[t.name] = (kind, kind.pattern)
        elif len(kinds) == 1:
            out[t.name] = (kinds[0], _pattern(t.name))
    return out


def _district_evidence(found: Assessed) -> bool:
    """Whether any of the source's files names a district or carries a state district id."""
    source = found.source
    headers = [h for h in (source.header_of(source.district_column), source.header_of(source.state_id_column)) if h]
    return any(h in t.columns and bool(_distinct(t.frame, h)) for t in found.tables for h in headers)


def _section(o: Onboarding, found: Assessed) -> dict:
    """The draft's `sources.<source>` section: the files the sample held, the names and state ids found, the link."""
    source = found.source
    names = [e.value for e in o.evidence
             if e.shown and e.source == f"{source.title} {source.header_of(source.district_column)}"]
    state_ids = [e.value for e in o.evidence
                 if e.shown and e.source == f"{source.title} {source.header_of(source.state_id_column)}"]
    section = {"files": {k.asset: pattern for k, pattern in _file_kinds(found).values()}, "names": names}
    if found.link:
        section["link"] = found.link.column
    if state_ids:
        section["state_ids"] = state_ids
    if not _district_evidence(found):
        section["bound_by_folder"] = True
    return section


def _oneroster_number(students: pl.DataFrame, linked: str) -> dict[str, str]:
    """sources.oneroster's `number` (and `link`): the column the assessments link to, where its values fit
    dm.StudentRoster.StudentNumber; else the first column that fits, every student's own value, with `link` the
    linked column (a ClassLink-rostered district's assessments often carry the 36-character GUID sourcedId, which,
    stored as the number, refused every student)."""
    longest = student_roster.c.StudentNumber.type.length
    if linked not in students.columns or (students[linked].str.len_chars().fill_null(0) <= longest).all():
        return {"number": linked}

    def fits(column: str) -> bool:  # every student has one, their own, short enough
        values = students[column]
        return values.null_count() == 0 and values.is_unique().all() and bool(
            (values.str.len_chars() <= longest).all())
    number = next((c for c in students.columns if c not in (linked, "email") and fits(c)), None)
    return {"number": linked} if number is None else {"number": number, "link": linked}


def draft_entry(o: Onboarding, tenant: TenantOverlap | None, today: dt.date) -> dict:
    """A registry entry in today's schema: every chosen value, and what was measured; unsigned."""
    row = o.account_row or {}
    sections = {name: _section(o, found) for name, found in o.assessed.items()}
    if o.oneroster is not None:
        ids = [e.value for e in o.evidence if e.source == "OneRoster orgs.csv identifier"]
        sections = {"oneroster": {"files": {BY_NAME["oneroster"].files[0].asset: _pattern(o.oneroster.manifest)},
                                  **_oneroster_number(o.export.frame, o.chosen["student_number"]),
                                  "names": [e.value for e in o.evidence if e.source == "OneRoster orgs.csv name"],
                                  **({"state_ids": ids} if ids else {})}} | sections
    names = [n for section in sections.values() for n in section["names"]]
    e = o.export
    columns = {f: (cols if len(cols) > 1 else cols[0]) for f, cols in
               ((f, [o.chosen[f]] + [c for c in o.fields.get(f, []) if c != o.chosen[f]]) for f in o.chosen)}
    powerschool = {"delimiter": e.delimiter, "encoding": e.encoding, "has_header": e.has_header, "columns": columns}
    if not e.has_header:
        powerschool["column_order"] = e.columns
    files = {BY_NAME["powerschool"].files[0].asset: _pattern(e.name)}
    linked = next((f.link for f in o.assessed.values() if f.link), None)
    link = ({"classlink": "email",
             "powerschool": next(f for f, c in o.chosen.items() if c == linked.export_column and
                                 f in POWERSCHOOL_LINK_FIELDS)} if linked else None)
    if o.oneroster is not None:  # the number is the linked column itself (sources.oneroster.number)
        powerschool, files, link = None, None, {"classlink": o.classlink_on}
    entry = {
        "district": o.key,
        "display_name": names[0] if names else (row.get("DistrictName") or o.key).title(),
        "nces_id": row.get("NcesId"),
        "account_info_id": o.account_info_id,
        "state": o.state,
        "county": row.get("County"),
        "drop_folder": o.key,
        "source_names": {"account_info": [row["DistrictName"]] if row else [],
                         "classlink": [tenant.tenant_name] if tenant else []},
        "classlink_tenant_ids": [tenant.tenant_id] if tenant and tenant.tenant_id is not None else [],
        "powerschool": powerschool,
        "files": files,
        "student_link": link,
        "sources": sections,
        "verification": {"verified_by": None, "verified_on": None,
                         "checked": checked_lines(o, tenant, today), "ferpa_review_on": None},
    }
    return {k: v for k, v in entry.items() if v is not None or k in ("account_info_id", "nces_id")}
