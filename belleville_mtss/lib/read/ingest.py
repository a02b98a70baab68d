"""From a drop's file to a validated frame, as plain functions. A refused file becomes a halted result
(with its error record) instead of an exception, so the other files of the drop go on."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from . import schemas
from ..receive.drops import Limits, StagedFile, read_staged
from .csvfile import FileInfo, FileRejected, file_info, read_text_csv
from ..load.errors import ErrorRecord, row_rejections
from .powerschool import email_key, map_columns, match_headers, read_powerschool, type_students
from ..district.registry import District
from .catalog import BY_NAME, FileSource
from .star import bind_columns, columns_to_read, type_rows


@dataclass
class SourceFile:
    source: str
    file_name: str | None
    info: FileInfo | None = None
    frame: pl.DataFrame | None = None
    halted: ErrorRecord | None = None
    origin: tuple | None = None  # (staging folder, StagedFile, District, max rows): how to read it again

    @property
    def rows(self) -> int:
        return 0 if self.frame is None else self.frame.height

    def rebuild_recipe(self):
        """Kept at rest as where it came from (lib/persist.py): its staged copy is encrypted already, and reading
        it again is cheaper than writing its frame a second time."""
        return (read_staged_file, (self.source, *self.origin)) if self.origin and self.frame is not None else None


def read_staged_file(key: bytes, source: str, folder: str, staged: StagedFile, district: District,
                     max_rows: int = Limits.max_file_rows) -> SourceFile:
    """A file of the drop, read from its encrypted staged copy (checked against its SHA-256 as it is decrypted)."""
    data = read_staged(Path(folder), staged, key)
    info = FileInfo(staged.name, staged.name, staged.size, staged.sha256)
    src = ingest_file(source, Path(staged.name), district, data, info, max_rows)
    src.origin = (folder, staged, district, max_rows)
    return src


@dataclass
class ValidatedFile:
    source: str
    file_name: str | None
    frame: pl.DataFrame | None = None
    rejected: dict[str, int] = field(default_factory=dict)
    halted: ErrorRecord | None = None
    rows_in_file: int = 0  # data rows the file held, rejected ones included
    headers: dict[str, str | None] = field(default_factory=dict)  # our field -> the header read (None: absent)
    warnings: list[str] = field(default_factory=list)  # what went on without: missing optional columns
    origin: tuple | None = None  # the staged file it was read from (SourceFile.origin)

    def rebuild_recipe(self):
        """Kept at rest as where it came from: read and validated again from its staged copy (lib/persist.py)."""
        return (revalidate_staged_file, (self.source, *self.origin)) if self.origin and self.frame is not None \
            else None

    @property
    def rows(self) -> int:
        return 0 if self.frame is None else self.frame.height

    @property
    def usable(self) -> bool:
        return self.frame is not None


def _halt(source: str, name: str | None, stage: str, exc: FileRejected) -> ErrorRecord:
    return ErrorRecord(stage, exc.reason, f"{exc.message}; the file was halted, nothing from it is loaded", name)


def _read_star(path: Path, district: District, data: bytes | None, max_rows: int) -> pl.DataFrame:
    # Renaissance writes these exports by machine, wide (up to 126 columns): read only ours.
    return read_text_csv(path, data=data, select=columns_to_read(district.student_link.renaissance), project=True,
                         max_rows=max_rows)


def _read_powerschool(path: Path, district: District, data: bytes | None, max_rows: int) -> pl.DataFrame:
    return read_powerschool(path, district.powerschool, data, max_rows)


def ingest_file(source: FileSource | str, path: Path | None, district: District, data: bytes | None = None,
                info: FileInfo | None = None, max_rows: int = Limits.max_file_rows) -> SourceFile:
    """Read one file of the drop (from `path`, or from `data`, its bytes, when staging is encrypted).
    `info` (size and SHA-256) is computed here unless the caller knows it already (the staging manifest).
    A file of more than `max_rows` rows is refused before it is parsed."""
    source = BY_NAME[source] if isinstance(source, str) else source
    if path is None:
        pattern = district.files[source.name]
        return SourceFile(source.name, None, halted=ErrorRecord(
            "ingest", "missing_file", f"no file matching '{pattern}' in the drop", pattern))
    try:
        info = info or file_info(path, data)
        frame = READERS[source.kind][0](path, district, data, max_rows)
        return SourceFile(source.name, path.name, info, frame)
    except FileRejected as exc:
        return SourceFile(source.name, path.name, halted=_halt(source.name, path.name, "ingest", exc))


def _rejected_counts(rejected: pl.DataFrame) -> dict[str, int]:
    return dict(rejected.group_by("reject_reason").len().sort("reject_reason").iter_rows())


def _validate(src: SourceFile, halt_stage: str, typed_and_rejected, schema,
              headers: dict[str, str | None] | None = None) -> tuple[ValidatedFile, list[ErrorRecord]]:
    """The shared skeleton: a file halted upstream stays halted; a refusal halts it here; else typed rows, and
    rejected rows counted by reason."""
    if src.frame is None:
        return ValidatedFile(src.source, src.file_name, halted=src.halted), []
    try:
        typed, rejected = typed_and_rejected(src.frame)
        typed = schemas.validate(schema, typed, src.file_name)
    except FileRejected as exc:
        halted = _halt(src.source, src.file_name, halt_stage, exc)
        return ValidatedFile(src.source, src.file_name, halted=halted, rows_in_file=src.rows), [halted]
    headers = headers or {}
    warnings = [f"{src.file_name}: no column for optional field {field}; read as empty"
                for field, header in headers.items() if header is None]
    return (
        ValidatedFile(src.source, src.file_name, typed, _rejected_counts(rejected), rows_in_file=src.rows,
                      headers=headers, warnings=warnings),
        row_rejections(rejected, "validation", src.file_name),
    )


def validate_star(src: SourceFile, district: District) -> tuple[ValidatedFile, list[ErrorRecord]]:
    link, subject = district.student_link.renaissance, BY_NAME[src.source].subject
    return _validate(src, "validation",
                     lambda raw: type_rows(bind_columns(raw, src.file_name, link), subject, link),
                     schemas.StarResults)


def validate_powerschool(src: SourceFile, district: District) -> tuple[ValidatedFile, list[ErrorRecord]]:
    fmt = district.powerschool
    headers = match_headers(src.frame.columns, fmt) if src.frame is not None else None
    return _validate(src, "mapping",
                     lambda raw: type_students(map_columns(raw, fmt, src.file_name, district.required_fields)[0],
                                               district.student_link.powerschool),
                     schemas.PowerSchoolStudents, headers)


def validate_file(src: SourceFile, district: District) -> tuple[ValidatedFile, list[ErrorRecord]]:
    validated, errors = READERS[BY_NAME[src.source].kind][1](src, district)
    validated.origin = src.origin
    return validated, errors


def revalidate_staged_file(key: bytes, source: str, folder: str, staged: StagedFile, district: District,
                           max_rows: int = Limits.max_file_rows) -> ValidatedFile:
    return validate_file(read_staged_file(key, source, folder, staged, district, max_rows), district)[0]


# Each kind of file in the catalogue (lib/read/catalog.py): its reader and its validator.
READERS = {
    "star": (_read_star, validate_star),
    "powerschool": (_read_powerschool, validate_powerschool),
}

CLASSLINK_TABLE = "dbo.ClassLinkUsers"


def validate_classlink(users: pl.DataFrame, district: District) -> tuple[ValidatedFile, list[ErrorRecord]]:
    """The student users of the district's tenant(s), as read from the prod db (filtered there, lib/read/theirs.py)."""
    tenants = set(district.source_names.classlink)
    frame = users.select(
        pl.col("UserId").cast(pl.Utf8).alias("classlink_user_id"),
        pl.col("TenantName").alias("tenant_name"),
        email_key(pl.col("Email")).alias("email_key"),
    )
    if frame.is_empty():
        halted = ErrorRecord(
            "validation", "no_rows", f"{CLASSLINK_TABLE}: no student users for tenant(s) "
            f"{', '.join(sorted(tenants))} named in the registry", CLASSLINK_TABLE)
        return ValidatedFile("classlink_users", CLASSLINK_TABLE, halted=halted), [halted]
    frame = schemas.validate(schemas.ClassLinkUsers, frame, CLASSLINK_TABLE)
    return ValidatedFile("classlink_users", CLASSLINK_TABLE, frame), []
