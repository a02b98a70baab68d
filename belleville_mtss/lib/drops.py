"""District drops: what arrived on the drop server, when a drop is complete, and receiving it into staging.

Layout: `<root>/<district drop folder>/` holds either drop folders (`<drop name>/` with the files) or zip archives
(`<drop name>.zip`, as Renaissance ships SR.csv, SM.csv, SEL.csv and more in one archive).
Completion: a sender writes the marker last, `drop.done` inside a drop folder or `<drop name>.zip.done` beside a
zip. A sender that writes no marker: the drop is complete once every file's size and mtime are unchanged across
two looks at least SETTLE_SECONDS apart, the newest file also being that old.
A corrected re-upload (marker removed first, written again last) changes the files' sizes or mtimes, so the
drop's version changes and it runs again; an unchanged drop never does.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import shutil
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from .vault import VaultError, decrypt_bytes, encrypt_file

COMPLETION_MARKER = "drop.done"
ZIP_MARKER_SUFFIX = ".done"
SETTLE_SECONDS = 120.0
CURSOR_MAX_DROPS = 2_000


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    mtime: int


@dataclass(frozen=True)
class Drop:
    district: str
    name: str
    kind: str  # "folder" or "zip"
    files: tuple[RemoteFile, ...]
    has_marker: bool

    @property
    def key(self) -> str:
        return f"{self.district}/{self.name}"

    @property
    def version(self) -> str:
        """Changes when any file's name, size or mtime changes: a corrected re-upload is a new version."""
        text = "|".join(f"{f.name}:{f.size}:{f.mtime}" for f in sorted(self.files, key=lambda f: f.name))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def newest_mtime(self) -> int:
        return max((f.mtime for f in self.files), default=0)


class DropSource(Protocol):
    """Where drops are listed and fetched from: a local folder or an SFTP server."""

    def list_drops(self, district: str, folder: str) -> list[Drop]: ...

    def fetch(self, folder: str, drop: Drop, file: RemoteFile, dest: Path) -> None: ...

    def describe(self) -> str: ...


def drops_from_listing(district: str, entries: dict[str, list[RemoteFile] | RemoteFile]) -> list[Drop]:
    """Drops from one district folder's listing: name -> files (a sub-folder) or a single file."""
    drops = []
    names = set(entries)
    for name, entry in sorted(entries.items()):
        if isinstance(entry, list):
            data = tuple(f for f in entry if f.name != COMPLETION_MARKER)
            if data:
                drops.append(Drop(district, name, "folder", data, any(f.name == COMPLETION_MARKER for f in entry)))
        elif name.lower().endswith(".zip"):
            drops.append(Drop(district, name[:-4], "zip", (entry,), name + ZIP_MARKER_SUFFIX in names))
    return drops


class LocalDropSource:
    def __init__(self, root: Path):
        self.root = Path(root)

    def describe(self) -> str:
        return f"local folder {self.root}"

    def list_drops(self, district: str, folder: str) -> list[Drop]:
        base = self.root / folder
        if not base.is_dir():
            return []
        entries: dict[str, list[RemoteFile] | RemoteFile] = {}
        for p in base.iterdir():
            if p.is_dir():
                entries[p.name] = [_local_file(f) for f in p.iterdir() if f.is_file()]
            elif p.is_file():
                entries[p.name] = _local_file(p)
        return drops_from_listing(district, entries)

    def fetch(self, folder: str, drop: Drop, file: RemoteFile, dest: Path) -> None:
        base = self.root / folder
        src = base / drop.name / file.name if drop.kind == "folder" else base / file.name
        shutil.copyfile(src, dest)


def _local_file(p: Path) -> RemoteFile:
    st = p.stat()
    return RemoteFile(p.name, st.st_size, int(st.st_mtime))


# ---- which drops to run -------------------------------------------------------------------------------------

def plan_runs(drops: list[Drop], cursor: dict, now: float, settle: float = SETTLE_SECONDS) -> tuple[list[Drop], dict]:
    """The complete drops whose version has not run yet, and the next cursor.

    The cursor stays bounded: it keeps only drops still listed, at most CURSOR_MAX_DROPS of them; the oldest are
    evicted and remembered by a floor on their newest mtime, below which a listed drop counts as already run.
    """
    seen: dict[str, list] = {k: list(v) for k, v in cursor.get("seen", {}).items()}  # key -> [version, mtime]
    pending: dict[str, dict] = dict(cursor.get("pending", {}))
    floor = cursor.get("floor", 0)
    ready, listed = [], set()
    for d in drops:
        listed.add(d.key)
        if (d.key in seen and seen[d.key][0] == d.version) or (d.key not in seen and d.newest_mtime <= floor):
            pending.pop(d.key, None)
            continue
        if d.has_marker:
            ready.append(d)
            continue
        before = pending.get(d.key)
        if before and before["version"] == d.version:
            if now - before["since"] >= settle and now - d.newest_mtime >= settle:
                ready.append(d)
        else:
            pending[d.key] = {"version": d.version, "since": now}
    for d in ready:
        seen[d.key] = [d.version, d.newest_mtime]
        pending.pop(d.key, None)
    seen = {k: v for k, v in seen.items() if k in listed}
    pending = {k: v for k, v in pending.items() if k in listed}
    if len(seen) > CURSOR_MAX_DROPS:
        by_age = sorted(seen.items(), key=lambda kv: kv[1][1])
        evicted, kept = by_age[:-CURSOR_MAX_DROPS], by_age[-CURSOR_MAX_DROPS:]
        floor = max(floor, max(v[1] for _k, v in evicted))
        seen = dict(kept)
    return ready, {"seen": seen, "pending": pending, "floor": floor}


# ---- receiving a drop into staging --------------------------------------------------------------------------

@dataclass(frozen=True)
class StagedFile:
    name: str
    size: int
    sha256: str


MANIFEST = "manifest.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def staged_manifest(staging: Path, key: bytes) -> dict | None:
    """The manifest of a complete staged copy whose every file decrypts to its recorded checksum; else None."""
    path = staging / MANIFEST
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    for f in manifest["files"]:
        try:
            data = decrypt_bytes(key, staging / f["name"])
        except (OSError, VaultError):
            return None
        if len(data) != f["size"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
            return None  # an incomplete or altered staging copy is not replayed
    return manifest


def receive(source: DropSource, folder: str, drop: Drop, staging: Path, key: bytes, attempts: int = 3,
            transient: tuple[type[Exception], ...] = (), sleep=time.sleep) -> list[StagedFile]:
    """Copy the drop's files into staging, encrypted at rest, and write the manifest last, so that a
    half-received drop is never replayed. A transfer cut short (an error, or fewer bytes than listed) is
    fetched again; plaintext exists only in the private `.incoming` folder while a file is being received."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True, mode=0o700)
    incoming = staging / ".incoming"
    incoming.mkdir(mode=0o700)
    for f in drop.files:
        dest = incoming / f.name
        for attempt in range(1, attempts + 1):
            try:
                source.fetch(folder, drop, f, dest)
                if dest.stat().st_size == f.size:
                    break
                problem = f"received {dest.stat().st_size} of {f.size} bytes"
            except transient as exc:
                problem = str(exc)
            if attempt == attempts:
                raise IOError(f"{f.name}: transfer failed after {attempts} tries ({problem})")
            sleep(attempt)
    plain = incoming / "files"
    plain.mkdir()
    if drop.kind == "zip":
        _unzip(incoming / drop.files[0].name, plain)
    else:
        for f in drop.files:
            (incoming / f.name).rename(plain / f.name)
    staged = []
    for p in sorted(plain.iterdir()):
        staged.append(StagedFile(p.name, p.stat().st_size, sha256_of(p)))
        encrypt_file(key, p, staging / p.name)
    shutil.rmtree(incoming)
    (staging / MANIFEST).write_text(json.dumps(
        {"drop": drop.key, "version": drop.version, "files": [asdict(s) for s in staged]}, indent=1))
    return staged


def read_staged(staging: Path, file: StagedFile, key: bytes) -> bytes:
    """A staged file's bytes, checked against the checksum recorded when it was received."""
    data = decrypt_bytes(key, staging / file.name)
    if len(data) != file.size or hashlib.sha256(data).hexdigest() != file.sha256:
        raise VaultError(f"{file.name}: the staged copy does not match its recorded SHA-256")
    return data


def purge_staging(root: Path, retention_days: float, now: float) -> list[str]:
    """Delete staged drops received more than `retention_days` ago; returns their keys."""
    removed = []
    if not root.is_dir():
        return removed
    for manifest in sorted(root.glob(f"*/*/{MANIFEST}")):
        if now - manifest.stat().st_mtime > retention_days * 86400:
            shutil.rmtree(manifest.parent)
            removed.append(f"{manifest.parent.parent.name}/{manifest.parent.name}")
    return removed


def _unzip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = Path(info.filename).name  # flatten; never write outside staging
            if not name or name.startswith("."):
                continue
            with zf.open(info) as src, (into / name).open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def find_file(files: tuple, pattern: str):
    """The drop's file for a source (staged files or paths: anything with a .name, compared
    case-insensitively with the registry's pattern); None when absent."""
    matches = sorted((f for f in files if fnmatch.fnmatch(f.name.lower(), pattern.lower())), key=lambda f: f.name)
    return matches[0] if matches else None


@dataclass(frozen=True)
class ReceivedDrop:
    key: str
    version: str
    folder: str  # the staging folder holding the drop's files
    files: tuple[StagedFile, ...]
    replayed: bool  # True: read from staging, the drop server was not needed


def receive_or_replay(source: DropSource, district: str, folder: str, drop_name: str, staging: Path, key: bytes,
                      transient: tuple[type[Exception], ...] = ()) -> ReceivedDrop:
    """Fetch the drop unless staging already holds this very version; replay from staging when the server
    is unreachable. Raises LookupError when the drop is neither on the server nor staged."""
    drop_key = f"{district}/{drop_name}"
    try:
        current = next((d for d in source.list_drops(district, folder) if d.name == drop_name), None)
        reachable = True
    except transient:
        current, reachable = None, False
    manifest = staged_manifest(staging, key)
    if manifest and (current is None or manifest["version"] == current.version):
        files = tuple(StagedFile(**f) for f in manifest["files"])
        return ReceivedDrop(drop_key, manifest["version"], str(staging), files, replayed=True)
    if current is None:
        where = "is not on" if reachable else "cannot be fetched from"
        raise LookupError(f"drop {drop_key} {where} {source.describe()} and has no complete staged copy")
    files = tuple(receive(source, folder, current, staging, key, transient=transient))
    return ReceivedDrop(drop_key, current.version, str(staging), files, replayed=False)
