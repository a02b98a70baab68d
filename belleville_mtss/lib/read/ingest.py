"""From a drop's file to a validated frame, as plain functions, each file by its source (lib/sources/). A refused
file becomes a halted result (with its error record) instead of an exception, so the other files of the drop go
on. The validated frame is kept at rest as data (lib/persist.py); the file as read is recorded as its asset's
metadata, its rows being the staged copy's (defs/read.py): a later step never reads the file again."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from . import schemas
from ..receive.drops import DropRefused, Limits, StagedFile, files_matching, find_file, read_staged
from .csvfile import FileInfo, FileRejected, file_info
from ..load.errors import ErrorRecord, row_rejections
from ..district.registry import District
from ..sources import DIRECTORY, FILES, KIND, ROSTERS, SOURCE_OF, FileKind
from ..sources.classlink import TABLE as CLASSLINK_TABLE
from ..sources.powerschool.reader import email_key


@dataclass
class SourceFile:
    source: str  # the file asset (lib/sources: FileKind.asset)
    file_name: str | None
    info: FileInfo | None = None
    frame: pl.DataFrame | None = None
    halted: ErrorRecord | None = None
    sent: bool = True  # False: the district's registry entry does not send this file (never a halted file)
    parts: tuple[str, ...] = ()  # the other files it was read with (a OneRoster export's, beside its manifest)

    @property
    def rows(self) -> int:
        return 0 if self.frame is None else self.frame.height


def readers(jobs: int, name: str) -> ThreadPoolExecutor:
    """A pool for `jobs` files (or tables) read at the same time: a thread each, at most one a core (polars, the
    decryption and the database drivers release the GIL; more threads than cores would share them)."""
    return ThreadPoolExecutor(max(1, min(jobs, os.cpu_count() or 1)), thread_name_prefix=name)


def reading_order(sizes: dict) -> list:
    """The order to hand a drop's files (`sizes`: anything -> its bytes) to `readers`: the largest first, then the
    rest smallest first. A file being typed is in memory twice (as read and as typed): this way the two largest
    are seldom typed at the same time (docs/performance.md has the peak memory before and after)."""
    by_size = sorted(sizes, key=sizes.get)
    return by_size[-1:] + by_size[:-1]


def drop_files(district: District, files: tuple) -> dict[str, tuple]:
    """Each file asset the district sends -> the drop's files (anything with a .name) it is read from, () where the
    drop lacks it. A drop that holds another roster's export beside the district's own is refused when its registry
    entry does not name the roster: which of the two is the district's roster is never guessed. So is a drop with
    two files of one kind (this month's export beside last month's)."""
    patterns = district.file_patterns
    for asset, pattern in patterns.items():
        names = [f.name for f in files_matching(files, pattern)]
        if len(names) > 1:
            raise DropRefused("ambiguous_file", (
                f"{len(names)} files of the drop match the pattern '{pattern}' of {district.district}'s {asset} "
                f"({', '.join(names)}): which is the export is never guessed; ask the district to send one, or narrow "
                f"the pattern in its registry entry"), names[1])
    found = {k.asset: k.found_in(files, patterns[k.asset]) for k in FILES if k.asset in patterns}
    ours = district.roster_source
    mine = next((found[k.asset][0] for k in ours.files if found.get(k.asset)), None)
    if district.roster is None and mine is not None:
        for other in (s for s in ROSTERS if s is not ours):
            theirs = next((f for k in other.files if (f := find_file(files, k.pattern))), None)
            if theirs is not None:
                raise DropRefused("ambiguous_roster", (
                    f"the drop holds both a {ours.title} export ({mine.name}) and a {other.title} export "
                    f"({theirs.name}), and {district.district}'s registry entry does not say which is its roster: "
                    f"set `roster: {ours.name}` or `roster: {other.name}` there, or ask the district to send one"),
                    theirs.name)
    return found


def read_staged_file(key: bytes, kind: FileKind, folder: str, staged: tuple[StagedFile, ...], district: District,
                     max_rows: int = Limits.max_file_rows) -> SourceFile:
    """A file of the drop (and its companions: `staged` as `drop_files` found them), read from the encrypted staged copy
    (each checked against its SHA-256 by its decryption: lib/receive/drops.py read_staged)."""
    first, *rest = staged
    data = read_staged(Path(folder), first, key)
    info = FileInfo(first.name, first.name, first.size, first.sha256)
    companions = {f.name: (Path(f.name), read_staged(Path(folder), f, key)) for f in rest}
    return ingest_file(kind, Path(first.name), district, data, info, max_rows, companions)


@dataclass
class ValidatedFile:
    source: str
    file_name: str | None
    frame: pl.DataFrame | None = None
    rejected: dict[str, int] = field(default_factory=dict)
    halted: ErrorRecord | None = None
    headers: dict[str, str | None] = field(default_factory=dict)  # our field -> the header read (None: absent)
    warnings: list[str] = field(default_factory=list)  # what went on without: missing optional columns
    sent: bool = True  # False: a file the district does not send
    parts: tuple[str, ...] = ()  # the other files it was read with (SourceFile.parts)
    seconds: dict[str, float] = field(default_factory=dict)  # wall s to parse it and to type it (read_files)

    @property
    def rows(self) -> int:
        return 0 if self.frame is None else self.frame.height

    @property
    def to_link(self) -> int:
        """Its records, typed or refused: what it has to link. Rows an export lists with no test yet (a student
        not yet benchmarked: DIBELS 8, FastBridge) are neither: a file of only those has nothing to link."""
        return self.rows + sum(self.rejected.values())

    @property
    def usable(self) -> bool:
        return self.frame is not None


def _halt(source: str, name: str | None, stage: str, exc: FileRejected) -> ErrorRecord:
    return ErrorRecord(stage, exc.reason, f"{exc.message}; the file was halted, nothing from it is loaded", name)


def ingest_file(kind: FileKind | str, path: Path | None, district: District, data: bytes | None = None,
                info: FileInfo | None = None, max_rows: int = Limits.max_file_rows,
                companions: dict[str, tuple[Path, bytes | None]] | None = None) -> SourceFile:
    """Read one file of the drop (from `path`, or from `data`, its bytes, when staging is encrypted), with its
    source's reader. `info` (size and SHA-256) is computed here unless the caller knows it already (the staging
    manifest). A file of more than `max_rows` rows is refused before it is parsed. `companions`: the files read
    with it (file name -> path, bytes), for a kind that has them."""
    kind = KIND[kind] if isinstance(kind, str) else kind
    pattern = district.file_patterns.get(kind.asset)
    if pattern is None:
        return SourceFile(kind.asset, None, sent=False)
    if path is None:
        return SourceFile(kind.asset, None, halted=ErrorRecord(
            "ingest", "missing_file", f"no file matching '{pattern}' in the drop", pattern))
    companions = companions or {}
    parts = tuple(companions)
    try:
        info = info or file_info(path, data)
        if kind.companions:  # each by what it is (users.csv), whatever prefix the drop gives the export
            prefix = kind.prefix(path.name)
            found = {name.lower().removeprefix(prefix): file for name, file in companions.items()}
            frame = SOURCE_OF[kind.asset].read(path, data, district, max_rows, found)
        else:
            frame = SOURCE_OF[kind.asset].read(path, data, district, max_rows)
        return SourceFile(kind.asset, path.name, info, frame, parts=parts)
    except FileRejected as exc:
        return SourceFile(kind.asset, path.name, halted=_halt(kind.asset, path.name, "ingest", exc), parts=parts)


def _rejected_counts(rejected: pl.DataFrame) -> dict[str, int]:
    return dict(rejected.group_by("reject_reason").len().sort("reject_reason").iter_rows())


def validate_file(src: SourceFile, district: District) -> tuple[ValidatedFile, list[ErrorRecord]]:
    """Typed rows by the file's source, checked against its model, rejected rows counted by reason. A file halted
    upstream stays halted; a refusal halts it here (a roster's at "mapping": its headers are the registry's)."""
    if not src.sent:
        return ValidatedFile(src.source, None, sent=False), []
    if src.frame is None:
        return ValidatedFile(src.source, src.file_name, halted=src.halted, parts=src.parts), []
    source = SOURCE_OF[src.source]
    try:
        typed, rejected, headers = source.validate(src.frame, KIND[src.source], district, src.file_name)
        typed = schemas.validate(source.model, typed, src.file_name)
    except FileRejected as exc:
        halted = _halt(src.source, src.file_name, "mapping" if source.role == "roster" else "validation", exc)
        return ValidatedFile(src.source, src.file_name, halted=halted, parts=src.parts), [halted]
    warnings = [f"{src.file_name}: no column for optional field {name}; read as empty"
                for name, header in headers.items() if header is None]
    return (
        ValidatedFile(src.source, src.file_name, typed, _rejected_counts(rejected), headers=headers,
                      warnings=warnings, parts=src.parts),
        row_rejections(rejected, "validation", src.file_name),
    )


def validate_classlink(users: pl.DataFrame, district: District) -> tuple[ValidatedFile, list[ErrorRecord]]:
    """The student users of the district's tenant(s), as read from the prod db (filtered there, lib/read/theirs.py)."""
    tenants = set(district.source_names.classlink)
    frame = users.select(
        pl.col("UserId").cast(pl.Utf8).alias("classlink_user_id"),
        pl.col("TenantName").alias("tenant_name"),
        email_key(pl.col("Email")).alias("email_key"),
        pl.col("SourcedId").cast(pl.Utf8).str.strip_chars().alias("sourced_id"),
    )
    if frame.is_empty():
        halted = ErrorRecord(
            "validation", "no_rows", f"{CLASSLINK_TABLE}: no student users for tenant(s) "
            f"{', '.join(sorted(tenants))} named in the registry", CLASSLINK_TABLE)
        return ValidatedFile("classlink_users", CLASSLINK_TABLE, halted=halted), [halted]
    # Another team's table, or a view of it without a key: a user listed twice as the same is one user; a UserId
    # listed with other values is nobody's to link to (counted), not the drop's end
    found = []
    if frame["classlink_user_id"].is_duplicated().any():  # whole rows compared only where a UserId repeats
        frame = frame.unique(maintain_order=True)
        twice = frame["classlink_user_id"].is_duplicated()
        if twice.any():
            found.append(ErrorRecord("validation", "duplicate_user", f"{CLASSLINK_TABLE}: {twice.sum():,} row(s) "
                                     "of a UserId listed more than once with other values: none of them linked to",
                                     CLASSLINK_TABLE, int(twice.sum())))
            frame = frame.filter(~twice)
    try:
        frame = schemas.validate(DIRECTORY.model, frame, CLASSLINK_TABLE)
    except FileRejected as exc:  # halted as a file is, with its error row: the run says which table and why
        halted = ErrorRecord("validation", exc.reason, exc.message, CLASSLINK_TABLE)
        return ValidatedFile("classlink_users", CLASSLINK_TABLE, halted=halted), [*found, halted]
    return ValidatedFile("classlink_users", CLASSLINK_TABLE, frame), found
