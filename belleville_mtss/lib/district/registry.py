"""The district registry: one YAML file per district, the record of what a person verified.

Nothing here is guessed: a malformed or incomplete entry is refused with a message naming the field.
"""
from __future__ import annotations

import copy
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..load.order import check_format
from ..sources import BY_NAME, ROSTERS, SOURCES, FileKind, Source, star
from ..sources.powerschool.section import PowerSchoolFormat

POWERSCHOOL = BY_NAME["powerschool"]
POWERSCHOOL_PATTERNS = {k.asset: k.pattern for k in POWERSCHOOL.files}

PACKAGED = "packaged"  # in MTSS_DISTRICTS_DIR: the registry shipped with the package
PACKAGED_DISTRICTS_DIR = Path(__file__).resolve().parents[2] / "districts"
DEMO_DISTRICTS_DIR = PACKAGED_DISTRICTS_DIR.parent / "demo_districts"  # made-up districts `demo` also loads


class RegistryError(ValueError):
    """A registry entry that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceNames(_Strict):
    account_info: list[str] = Field(min_length=1)
    classlink: list[str] = Field(min_length=1)


class StudentLink(_Strict):
    # ClassLink users link by email (dbo.ClassLinkUsers.Email = the roster's email), or, for a OneRoster roster
    # whose ClassLink tenant is rostered from the same export, by sourcedId (dbo.ClassLinkUsers.SourcedId).
    classlink: Literal["email", "sourced_id"] = "email"
    # The PowerSchool field assessment identifiers carry (each source's column: sources.<source>.link).
    powerschool: Literal["student_number", "state_studentnumber", "dcid", "id"] = "student_number"


class Gates(_Strict):
    """What a drop must show before it may replace the district's data in the warehouse (blocking checks)."""
    min_classlink_link_rate: float = Field(0.80, ge=0, le=1)  # share of students linked to a ClassLink user
    max_roster_change: float = Field(0.25, ge=0)  # the new roster within this share of the current one
    max_student_number_churn: float = Field(0.50, ge=0, le=1)  # current students absent from the new roster
    max_results_shrink: float = Field(0.25, ge=0, le=1)  # tests a subject's school year may lose


class Verification(_Strict):
    # Both empty in a draft (`districts onboard` writes one): the registry refuses its drops until a person has
    # checked it and signed it off here.
    verified_by: str | None = Field(None, min_length=1)
    verified_on: dt.date | None = None
    # What was actually checked, and against what: a record people can trust, never more than was done.
    checked: list[str] = Field(default_factory=list)
    # Left empty until the FERPA review of the identifiers used is done: the district's drops are then
    # blocked by the ferpa_review_current check before anything is written.
    ferpa_review_on: dt.date | None = None


STAR_FILE_ASSETS = tuple(k.asset for k in star.FILES)
WRITTEN_AS = "_written_as"  # a moved field's name in the entry as written: errors name what the person wrote


def upgraded(raw, mark: bool = False):
    """An entry written before `sources:` in today's shape, and what changed (`districts migrate` prints it). Such
    an entry keeps its meaning: its Star keys (source_names.renaissance, student_link.renaissance,
    gates.min_star_link_rate, Star patterns in `files:`) become `sources.star`, which sends every Star file, as
    such an entry always did. An entry with `sources:` is returned as it is. `mark`: note each moved field's old
    name in the section, for errors that name what the person wrote."""
    if not isinstance(raw, dict) or "sources" in raw:
        return raw, []
    raw, section, changes = copy.deepcopy(raw), {}, []
    moves = (("source_names", "renaissance", "names"), ("student_link", "renaissance", "link"),
             ("gates", "min_star_link_rate", "min_link_rate"))
    for parent, old, new in moves:
        if isinstance(raw.get(parent), dict) and old in raw[parent]:
            section[new] = raw[parent].pop(old)
            if mark:
                section.setdefault(WRITTEN_AS, {})[new] = f"{parent}.{old}"
            changes.append(f"{parent}.{old} -> sources.star.{new}")
    files = raw.get("files") if isinstance(raw.get("files"), dict) else {}
    moved = {k: files.pop(k) for k in list(files) if k in STAR_FILE_ASSETS}
    section["files"] = {**{k.asset: k.pattern for k in star.FILES}, **moved}
    changes.append("files." + ", files.".join(moved) + " -> sources.star.files" if moved else
                   "sources.star.files: every Star file, as the entry's defaults meant")
    raw["sources"] = {"star": section}
    return raw, changes


class District(_Strict):
    district: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    display_name: str
    nces_id: str = Field(pattern=r"^\d{7}$")
    account_info_id: int
    state: str = Field(pattern=r"^[A-Z]{2}$")
    county: str | None = None
    drop_folder: str = Field(min_length=1)
    source_names: SourceNames
    # ClassLink tenant ids, where known: they narrow the tenant names in source_names.classlink (a user must be of
    # a listed name AND, when ids are listed, of a listed id; the filter runs in the prod db). Needed where another
    # district's tenant has the same name.
    classlink_tenant_ids: list[int] = Field(default_factory=list)
    # The roster: a PowerSchool export (its format here, its file pattern in `files`) or a OneRoster export
    # (`sources.oneroster`); `roster` names which where a district could send both, else its drops are refused
    # when they hold both.
    roster: Literal["powerschool", "oneroster"] | None = None
    powerschool: PowerSchoolFormat | None = None
    files: dict[str, str] = Field(default_factory=lambda: dict(POWERSCHOOL_PATTERNS))  # the PowerSchool pattern
    # The sources the district sends besides PowerSchool, each with its section (lib/sources/<source>/): for an
    # assessment, the files it sends, the district names they carry, the column that links a student, its
    # link-rate gate; for OneRoster, its files, names and number column.
    sources: dict[str, Any] = Field(default_factory=lambda: {"star": star.StarSection()})
    student_link: StudentLink = StudentLink()
    gates: Gates = Gates()
    expected_every_days: float | None = Field(None, gt=0)  # a drop older than this makes the district overdue
    # How to read a drop's snapshot date from its name (strptime directives, anywhere in the name): the order of
    # the district's drops (lib/load/order.py). A name without one is dated by its first receipt.
    drop_date: str = "%Y-%m-%d"
    verification: Verification

    @field_validator("drop_date")
    @classmethod
    def _readable_date(cls, fmt: str) -> str:
        return check_format(fmt)

    @field_validator("drop_folder")
    @classmethod
    def _inside_the_drop_root(cls, folder: str) -> str:
        """A folder under MTSS_DROP_DIR (or MTSS_SFTP_ROOT): plain names joined by '/', never '..', '.', an absolute
        path or a backslash, so no entry can read from outside the drop root."""
        parts = folder.split("/")
        if folder.startswith("/") or "\\" in folder or any(p in ("", ".", "..") for p in parts) or \
                any(not p.isprintable() for p in parts):
            raise ValueError(f"{folder!r} must be a folder under the drop root: plain names joined by '/', no '..', "
                             "'.', leading '/' or '\\'")
        return folder

    @model_validator(mode="before")
    @classmethod
    def _sources_from_earlier_shape(cls, raw):
        return upgraded(raw, mark=True)[0]

    @field_validator("files")
    @classmethod
    def _known_files(cls, files: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(files) - set(POWERSCHOOL_PATTERNS))
        if unknown:
            raise ValueError(f"unknown source(s) {', '.join(unknown)}")
        return {**POWERSCHOOL_PATTERNS, **files}

    @field_validator("sources")
    @classmethod
    def _sections(cls, sources: dict[str, Any]) -> dict[str, Any]:
        """Each section validated by its source's own model; a source without a section is refused."""
        known = {s.name: s for s in SOURCES if s.section}
        unknown = sorted(set(sources) - set(known))
        if unknown:
            raise ValueError(f"unknown source(s) {', '.join(unknown)} (known: {', '.join(known)})")
        out = {}
        for name, section in sources.items():
            if isinstance(section, known[name].section):
                out[name] = section
                continue
            section = dict(section or {})
            written = section.pop(WRITTEN_AS, {})
            try:
                out[name] = known[name].section.model_validate(section)
            except ValidationError as exc:
                first = exc.errors()[0]
                field = ".".join(str(p) for p in first["loc"])
                where = written.get(str(first["loc"][0]) if first["loc"] else "", f"sources.{name}.{field}")
                # named as the person wrote it (lib/district/registry.py describe() prints it without "sources")
                raise PydanticCustomError("source_section", "{where}: {why}", {
                    "where": where, "why": first["msg"].removeprefix("Value error, ")}) from None
        return out

    @property
    def roster_source(self) -> Source:
        """The district's roster: the one `roster` names, else OneRoster where its section is listed, else
        PowerSchool."""
        listed = [s for s in ROSTERS if s.name in self.sources]
        return BY_NAME[self.roster] if self.roster else listed[0] if listed else POWERSCHOOL

    @property
    def roster_kind(self) -> FileKind:
        """The kind of file the district's roster comes as (every roster source comes as one)."""
        return self.roster_source.files[0]

    @property
    def assessments(self) -> dict[str, Any]:
        """The assessment sources' sections, by source."""
        return {name: section for name, section in self.sources.items() if BY_NAME[name].role == "assessment"}

    @property
    def file_patterns(self) -> dict[str, str]:
        """Each file asset the district sends -> its file-name pattern (its roster's and every assessment's)."""
        roster = self.roster_source
        sent = self.files if roster is POWERSCHOOL else self.sources[roster.name].files
        return {**sent, **{a: p for section in self.assessments.values() for a, p in section.files.items()}}

    @model_validator(mode="after")
    def _roster_is_described(self) -> "District":
        roster = self.roster_source
        if self.roster is None and self.powerschool is not None and roster is not POWERSCHOOL:
            raise ValueError(f"both a powerschool section and sources.{roster.name}: say which is the roster, "
                             f"`roster: powerschool` or `roster: {roster.name}`")
        if roster is POWERSCHOOL and self.powerschool is None:
            raise ValueError("powerschool: required where the roster is a PowerSchool export (a OneRoster "
                             "district lists sources.oneroster instead)")
        if roster is not POWERSCHOOL and roster.name not in self.sources:
            raise ValueError(f"roster: {roster.name} needs its section, sources.{roster.name}")
        return self

    @model_validator(mode="after")
    def _links_are_mapped(self) -> "District":
        if self.roster_source is not POWERSCHOOL:
            return self
        if self.student_link.classlink == "sourced_id":
            raise ValueError("student_link.classlink: sourced_id needs a OneRoster roster (a PowerSchool export "
                             "carries no sourcedId)")
        wanted = [self.student_link.powerschool] + (["email"] if self.student_link.classlink == "email" else [])
        missing = [f for f in wanted if f not in self.powerschool.columns]
        if missing:
            raise ValueError(f"student_link uses PowerSchool field(s) {', '.join(missing)}: map them in "
                             "powerschool.columns")
        return self

    @property
    def required_fields(self) -> tuple[str, ...]:
        """The PowerSchool fields a file must have: the student number and those the links use."""
        fields = ["student_number", self.student_link.powerschool]
        if self.student_link.classlink == "email":
            fields.append("email")
        return tuple(dict.fromkeys(fields))


def describe(err: ValidationError) -> str:
    """A refused entry's problems, each as `field: what is wrong` (never the values it holds)."""
    parts = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(entry)"
        parts.append(e["msg"] if e["type"] == "source_section" else f"{field}: {e['msg']}")
    return "; ".join(parts)


def load_district(path: Path) -> District:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path.name}: not valid YAML ({exc.__class__.__name__})") from None
    except (OSError, UnicodeDecodeError) as exc:  # unreadable to this account: this entry's problem, no one else's
        raise RegistryError(f"{path.name}: cannot be read ({exc.__class__.__name__}: "
                            f"{getattr(exc, 'strerror', None) or exc.reason})") from None
    if not isinstance(raw, dict):
        raise RegistryError(f"{path.name}: expected a mapping of fields at the top level")
    try:
        entry = District.model_validate(raw)
    except ValidationError as exc:
        raise RegistryError(f"{path.name}: {describe(exc)}") from None
    if entry.verification.verified_by is None or entry.verification.verified_on is None:
        raise RegistryError(f"{path.name}: a draft, not signed off: its drops are blocked until a person has checked "
                            "each value against verification.checked and set verification.verified_by and "
                            "verified_on (and ferpa_review_on once the FERPA review is done)")
    return entry


@dataclass(frozen=True)
class EntryProblem:
    """A registry file that cannot be used: only its own district's drops are refused, with this message."""
    file: str
    district: str  # the key its file declares, or the file's stem
    message: str
    drop_folder: str | None = None  # where its drops arrive, when the file says so readably
    account_info_id: int | None = None


class Registry(dict):
    """The usable entries by district key, and `problems`: the entries that could not be used."""

    def __init__(self, entries: dict[str, District], problems: dict[str, EntryProblem], folders: tuple[Path, ...]):
        super().__init__(entries)
        self.problems = problems
        self.folders = folders

    def entry(self, district: str) -> District:
        """The district's entry; RegistryError naming the file and field when it is broken or absent."""
        if district in self:
            return self[district]
        if district in self.problems:
            raise RegistryError(self.problems[district].message)
        raise RegistryError(f"district '{district}' is not in the registry ({', '.join(sorted(self)) or 'empty'})")


def registry_folders(setting: str | None) -> tuple[Path, ...]:
    """MTSS_DISTRICTS_DIR: one or several folders (os.pathsep between them); the word `packaged` stands for the
    registry shipped with the package. Unset: the packaged one alone."""
    parts = [p.strip() for p in (setting or PACKAGED).split(os.pathsep) if p.strip()]
    return tuple(PACKAGED_DISTRICTS_DIR if p == PACKAGED else Path(p).resolve() for p in parts)


def _what_it_says(path: Path) -> tuple[str, str | None, int | None]:
    """Whatever a broken file still says readably about itself: its key, drop folder and AccountInfoId."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        raw = None
    raw = raw if isinstance(raw, dict) else {}
    key = raw.get("district") if isinstance(raw.get("district"), str) and raw["district"].strip() else path.stem
    folder = raw.get("drop_folder") if isinstance(raw.get("drop_folder"), str) else None
    aid = raw.get("account_info_id") if isinstance(raw.get("account_info_id"), int) else None
    return key, folder, aid


# Each file parsed once while it is unchanged (same size, modification time and inode): a sensor tick or a run
# re-reads the folders, and only a new or edited entry costs a parse (about 3 ms an entry).
_PARSED: dict[Path, tuple[tuple[int, int, int], "District | EntryProblem"]] = {}


def _parsed(path: Path) -> "District | EntryProblem":
    try:
        st = path.stat()
    except OSError as exc:  # a link to nowhere: this entry's problem (not kept: it may be mended any moment)
        return EntryProblem(path.name, path.stem, f"{path.name}: cannot be read ({type(exc).__name__}: "
                                                  f"{exc.strerror})")
    stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
    cached = _PARSED.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    try:
        entry: District | EntryProblem = load_district(path)
    except RegistryError as exc:
        key, drop_folder, aid = _what_it_says(path)
        entry = EntryProblem(path.name, key, str(exc), drop_folder, aid)
    _PARSED[path] = (stamp, entry)
    return entry


def load_registry(folders: Path | tuple[Path, ...] | list[Path]) -> Registry:
    """Every entry of every folder. An entry that cannot be used (malformed, or a district defined in two files) is
    set aside with its problem: it stops only its own district's drops."""
    folders = (folders,) if isinstance(folders, Path) else tuple(folders)
    found: dict[str, list[tuple[Path, District | EntryProblem]]] = {}
    for folder in folders:
        if not folder.is_dir():
            raise RegistryError(f"{folder}: the registry folder does not exist (MTSS_DISTRICTS_DIR)")
        for path in sorted(folder.glob("*.yaml")):
            entry = _parsed(path)
            key = entry.district
            found.setdefault(key, []).append((path, entry))
    if not found:
        raise RegistryError(f"{', '.join(str(f) for f in folders)}: no district entries (*.yaml)")
    entries: dict[str, District] = {}
    problems: dict[str, EntryProblem] = {}
    for key, versions in found.items():
        (path, only), *others = versions
        if others:
            files = ", ".join(p.name for p, _v in versions)
            readable = next((v for _p, v in versions if isinstance(v, District)), None)
            problems[key] = EntryProblem(files, key, f"{files}: district '{key}' is defined twice",
                                         readable.drop_folder if readable else None,
                                         readable.account_info_id if readable else None)
        elif isinstance(only, EntryProblem):
            problems[key] = only
        else:
            entries[key] = only
    # Two districts reading one drop folder would each take the other's drops, and two under one AccountInfoId
    # would each replace the other's rows in the warehouse: all of them stop until it is fixed.
    owned = (("drop_folder", "a folder", lambda e: e.drop_folder.lower()),  # case aside: a typo
             ("account_info_id", "an AccountInfoId", lambda e: e.account_info_id))
    shared: dict[str, str] = {}
    for field, what, value in owned:
        sharing: dict[object, list[str]] = {}
        for key, entry in entries.items():
            sharing.setdefault(value(entry), []).append(key)
        for keys in sharing.values():
            for key in keys if len(keys) > 1 else ():
                others = ", ".join(k for k in keys if k != key)
                shared.setdefault(key, f"{key}: {field} '{getattr(entries[key], field)}' is also {others}'s: "
                                       f"each district needs {what} of its own")
    for key, message in shared.items():
        entry = entries.pop(key)
        problems[key] = EntryProblem(found[key][0][0].name, key, message, entry.drop_folder, entry.account_info_id)
    return Registry(entries, problems, folders)
