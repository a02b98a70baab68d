"""District drops: what arrived on the drop server, when a drop is complete, and receiving it into staging.

Layout: `<root>/<district drop folder>/` holds either drop folders (`<drop name>/` with the files) or zip archives
(`<drop name>.zip`, as Renaissance ships SR.csv, SM.csv, SEL.csv and more in one archive).
Completion: a sender writes the marker last, `drop.done` inside a drop folder or `<drop name>.zip.done` beside a
zip. A sender that writes no marker: the drop is complete once every file's size and mtime are unchanged across
two looks at least SETTLE_SECONDS apart, the newest file also being that old.
A corrected re-upload (marker removed first, written again last) changes the files' sizes or mtimes, so the
drop's version changes and it runs again; an unchanged drop never does.

Everything a sender controls is untrusted (lib/receive/untrusted.py): names are checked, only regular files are read
(never a link, device or fifo), zips are checked entry by entry before and while they are expanded, and clear
text never rests on disk: each file is hashed and encrypted as it streams in.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import fnmatch
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import stat
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Callable, ContextManager, Mapping, Protocol

from ..faults import fault_point
from .untrusted import (BadName, canonical, check_file_name, check_name, escape, plain, safe_join,
                        without_accounts)
from .vault import DecryptingReader, Encryptor, VaultError, decrypt_bytes, is_part_file

COMPLETION_MARKER = "drop.done"
CHANGED = "changed_during_receipt"  # a refusal the drop sensor answers by asking for the drop again
ZIP_MARKER_SUFFIX = ".done"
SETTLE_SECONDS = 120.0
BLOCK = 1 << 20
MANIFEST = "manifest.json"
RECEIVING_PREFIX = ".incoming-"  # a drop being received; never a drop name (those cannot start with a dot)
MAKING_PREFIX = ".making-"  # its folder before it is locked (_receiving)
MAKING_GRACE_S = 3600  # how old a folder left unfinished must be before a cleaner takes it
_LOCK = ".lock"
# this machine's boot (Linux): when files were read is compared within one boot only (_later)
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_BOOT = _BOOT_ID.read_text().strip() if _BOOT_ID.is_file() else ""
_PUBLISHING = ".publishing.lock"  # a file in a district's staging folder: one publish at a time there (_publishing)
RESERVED = (MANIFEST, _LOCK)  # the receipt's own files beside the staged ones: no file of a drop may take these names


class DropRefused(Exception):
    """A drop (or one of its files) that is refused as a whole: `reason` is a short code for the error log."""

    def __init__(self, reason: str, message: str, file_name: str | None = None):
        super().__init__(message)
        self.reason, self.message, self.file_name = reason, message, file_name


@dataclass(frozen=True)
class Limits:
    """What one drop may cost us (docs/security.md says why these defaults)."""
    max_drop_bytes: int = 8 * 1024 ** 3  # MTSS_MAX_DROP_BYTES
    max_zip_ratio: float = 200.0  # MTSS_MAX_ZIP_RATIO
    max_file_rows: int = 20_000_000  # MTSS_MAX_FILE_ROWS: above the largest US district's files


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    mtime: int
    regular: bool = True  # False: a symbolic link, folder, device or fifo (never read)


@dataclass(frozen=True)
class Drop:
    district: str
    name: str  # as listed on the server
    kind: str  # "folder" or "zip"
    files: tuple[RemoteFile, ...]
    has_marker: bool
    problem: tuple[str, str, str] | None = None  # (reason, message, file): the drop is refused when it is run

    @property
    def key(self) -> str:
        """The canonical drop key (a partition key); only for drops whose name passed the check."""
        return f"{self.district}/{canonical(self.name)}"

    @property
    def listed_name(self) -> str:
        return self.name + ".zip" if self.kind == "zip" else self.name

    @property
    def refused_at_listing(self) -> bool:
        """A drop refused as it is listed (its name, or a folder that cannot be listed): it never becomes a
        partition; its refusal is logged once a version."""
        return self.problem is not None and self.problem[0] in LISTING_REFUSALS

    @property
    def version(self) -> str:
        """Changes when any file's name, size or mtime changes: a corrected re-upload is a new version."""
        text = "|".join(f"{f.name}:{f.size}:{f.mtime}" for f in sorted(self.files, key=lambda f: f.name))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def newest_mtime(self) -> int:
        return max((f.mtime for f in self.files), default=0)


class DropSource(Protocol):
    """Where drops are listed and read from: a local folder or an SFTP server."""

    def list_drops(self, district: str, folder: str) -> list[Drop]: ...

    def list_districts(self, folders: dict[str, str]) -> tuple[list[Drop], dict[str, "DropRefused"]]:
        """Every district's drops (district -> folder), in one session where the server has sessions; a folder
        refused is kept per district and the others still listed."""
        ...

    def open(self, folder: str, drop: Drop, file: RemoteFile) -> ContextManager[BinaryIO]:
        """The file's bytes; raises DropRefused("not_a_regular_file") for anything but a regular file."""
        ...

    def describe(self) -> str: ...

    def stamp(self, folder: str, drop: Drop, file: RemoteFile) -> tuple | None:
        """What any write to the file would change, read before and after the file is received; None when the
        source cannot tell (then the file is read a second time and the two hashes compared)."""
        ...


def one_name(name: str) -> str:
    """What two file names of a drop must not share: one file to a case-insensitive file system, and to SQL
    Server's comparisons, which ignore trailing spaces (the audit's row of one was the other's)."""
    return name.lower().rstrip(" ")


def _file_problem(files: list[RemoteFile]) -> tuple[str, str, str] | None:
    for f in files:
        if not f.regular:
            return ("not_a_regular_file", f"{escape(f.name)} is not a regular file (a link, folder, device or "
                    "fifo); only regular files are read", plain(f.name, 250))
        try:
            _check_data_name(f.name)
        except BadName as exc:
            return ("bad_file_name", str(exc), plain(f.name, 250))
    seen: dict[str, str] = {}
    for f in files:
        other = seen.setdefault(one_name(f.name), f.name)
        if other != f.name:
            return ("duplicate_file_name", f"{escape(other)} and {escape(f.name)} differ only by case or by spaces "
                                           "at their end", plain(f.name, 250))
    return None


def _check_data_name(name: str) -> str:
    """check_file_name, and none of the names the receipt writes beside the staged files (RESERVED)."""
    if check_file_name(name) in RESERVED:
        raise BadName(f"file name {escape(name)} is kept for the receipt's own use; rename the file")
    if "@" in name:  # every message naming the file would be refused by the error log, as one holding an address
        raise BadName(f"file name {escape(name)} holds an at sign, which the error log keeps out of its messages "
                      "as part of an email address; rename the file")
    return _not_a_part_name(name, "file name")


def _not_a_part_name(name: str, what: str) -> str:
    """A drop or file is kept under its name, which must not be taken for a write left unfinished (purged)."""
    if is_part_file(name):
        raise BadName(f"{what} {escape(name)} ends as a file being written does ('.<16 hex digits>.part'); rename it")
    return name


UNLISTABLE = "unlistable_drop_folder"
LOOSE_FILE = "file_outside_a_drop"
LISTING_REFUSALS = ("bad_drop_name", UNLISTABLE, LOOSE_FILE)


def unlistable(folder: str) -> str:
    return f"the drop folder {escape(folder)} cannot be listed (permission denied): give the service account read " \
           "access to it"


# Names a client gives a file while it uploads it (WinSCP's .filepart, ...), or a desktop's hidden files: no one's
# drop yet, nor a fault to log at every tick as the file grows
_UPLOADING = re.compile(r"(?i)^[.~]|\.(filepart|part|partial|tmp|temp|crdownload)$")


def _uploading(name: str) -> bool:
    return _UPLOADING.search(name) is not None


def drops_from_listing(district: str, entries: dict[str, list[RemoteFile] | RemoteFile | PermissionError]
                       ) -> list[Drop]:
    """Drops from one district folder's listing: name -> the files of a sub-folder (or the PermissionError its
    listing raised: a drop refused, logged once, the other drops listed), or a single entry.

    A sub-folder or `.zip` is a drop; any other entry that is not a regular file is a refused drop too (a link
    where a drop should be), and so is a regular file (`file_outside_a_drop`). Names are checked here: a drop with
    a bad name, or whose name only differs by case from another's, carries the problem `bad_drop_name` and never
    becomes a partition."""
    drops, loose = [], []
    names = set(entries)
    for name, entry in sorted(entries.items()):
        if isinstance(entry, PermissionError):
            drops.append(Drop(district, name, "folder", (), False, (UNLISTABLE, unlistable(name), plain(name, 250))))
        elif isinstance(entry, list):
            files = [f for f in entry if f.name != COMPLETION_MARKER]
            if files:
                drops.append(Drop(district, name, "folder", tuple(files), COMPLETION_MARKER in {f.name for f in entry},
                                  _file_problem(files)))
        elif name.lower().endswith(".zip"):
            drops.append(Drop(district, name[:-4], "zip", (entry,), name + ZIP_MARKER_SUFFIX in names,
                              _file_problem([entry])))
        elif not entry.regular and not name.endswith(ZIP_MARKER_SUFFIX):
            drops.append(Drop(district, name, "folder", (entry,), False, _file_problem([entry])))
        elif not name.endswith(ZIP_MARKER_SUFFIX) and not _uploading(name):  # a file beside the drops (a roster
            # uploaded with no folder, a .7z): no drop holds it, and it was passed over without a word
            loose.append(Drop(district, name, "folder", (entry,), False, (
                LOOSE_FILE, f"{escape(name)} is a file in the district's folder, not in a drop: put a drop's files "
                "in a folder named by its date (or in one .zip), then its marker", plain(name, 250))))
    by_key: dict[str, list[Drop]] = {}
    checked = []
    for d in drops:
        try:
            _not_a_part_name(check_name(d.name), "drop name")
        except BadName as exc:
            checked.append(Drop(d.district, d.name, d.kind, d.files, d.has_marker,
                                ("bad_drop_name", str(exc), plain(d.listed_name, 250))))
            continue
        by_key.setdefault(d.key, []).append(d)
    for key, alike in by_key.items():
        if len(alike) == 1:
            checked += alike
            continue
        listed = ", ".join(escape(d.listed_name) for d in alike)
        checked += [Drop(d.district, d.name, d.kind, d.files, d.has_marker,
                         ("bad_drop_name", f"drops {listed} are one drop name spelled two ways",
                          plain(d.listed_name, 250)))
                    for d in alike]
    return sorted(checked + loose, key=lambda d: (d.name, d.kind))


# ---- a local drop folder ---------------------------------------------------------------------------------------

def _open_dir(root: Path, parts: list[str]) -> int:
    """A directory fd for root/parts, refusing a symbolic link at every step below root."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def list_each(list_drops, folders: dict[str, str]) -> tuple[list[Drop], dict[str, "DropRefused"]]:
    """`list_districts` from a per-district lister."""
    found, refused = [], {}
    for district, folder in folders.items():
        try:
            found += list_drops(district, folder)
        except DropRefused as exc:
            refused[district] = exc
    return found, refused


SETTLED_NS = 1_000_000_000  # a file changed less than this long ago gets no stamp: the kernel's timestamps are
# coarse (a few milliseconds), so a write just after it could keep its change time


def _entry(name: str, st: os.stat_result) -> RemoteFile:
    return RemoteFile(name, st.st_size, int(st.st_mtime), stat.S_ISREG(st.st_mode))


def list_drop_folder(entries: dict, name: str, list_it) -> None:
    """A drop sub-folder's files (`list_it()`) into `entries`, for either source: one removed since its district's
    folder was listed is passed over; one the account may not list is kept as its PermissionError, which
    drops_from_listing refuses alone, never failing every district's tick."""
    try:
        entries[name] = list_it()
    except FileNotFoundError:
        pass
    except PermissionError as exc:
        entries[name] = exc


def _listed(fd: int, name: str) -> list[RemoteFile]:
    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
    try:
        return [_entry(i.name, i.stat(follow_symlinks=False)) for i in os.scandir(sub)]
    finally:
        os.close(sub)


class LocalDropSource:
    def __init__(self, root: Path):
        self.root = Path(root)

    def describe(self) -> str:
        return f"local folder {self.root}"

    def list_districts(self, folders: dict[str, str]) -> tuple[list[Drop], dict[str, DropRefused]]:
        return list_each(self.list_drops, folders)

    def list_drops(self, district: str, folder: str) -> list[Drop]:
        try:
            fd = _open_dir(self.root, folder.split("/"))
        except FileNotFoundError:
            return []
        except PermissionError:
            raise DropRefused(UNLISTABLE, unlistable(folder)) from None
        except OSError:
            raise DropRefused("not_a_regular_file", f"the drop folder {escape(folder)} is a link or not a folder")
        entries: dict[str, list[RemoteFile] | RemoteFile] = {}
        try:
            for e in os.scandir(fd):
                st = e.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    list_drop_folder(entries, e.name, lambda: _listed(fd, e.name))
                else:
                    entries[e.name] = _entry(e.name, st)
        finally:
            os.close(fd)
        return drops_from_listing(district, entries)

    @staticmethod
    def _drop_parts(folder: str, drop: Drop) -> list[str]:
        """The folders from the root to the drop's files (for a zip, to the folder that holds it)."""
        return folder.split("/") + ([drop.name] if drop.kind == "folder" else [])

    def stamp(self, folder: str, drop: Drop, file: RemoteFile) -> tuple | None:
        """The file's inode and its size, modification and change times to the nanosecond. The change time is
        the kernel's: every write sets it, and no sender can set it back (`touch`, `cp -p`, `sftp put -p` restore
        only the modification time), so an equal stamp after a read means no byte changed during it."""
        try:
            dir_fd = _open_dir(self.root, self._drop_parts(folder, drop))
        except OSError:
            return None
        try:
            st = os.stat(file.name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return None
        finally:
            os.close(dir_fd)
        if not stat.S_ISREG(st.st_mode) or time.time_ns() - st.st_ctime_ns < SETTLED_NS:
            return None
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns

    @contextmanager
    def open(self, folder: str, drop: Drop, file: RemoteFile):
        try:
            dir_fd = _open_dir(self.root, self._drop_parts(folder, drop))
        except OSError:
            raise DropRefused("not_a_regular_file", f"{escape(drop.name)} is a link or not a folder") from None
        try:
            # O_NOFOLLOW: a link is refused, never followed; O_NONBLOCK: a fifo cannot hang the open
            fd = os.open(file.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError:
            raise DropRefused("not_a_regular_file", f"{escape(file.name)} is a link or cannot be opened",
                              file.name) from None
        finally:
            os.close(dir_fd)
        fh = os.fdopen(fd, "rb")
        with fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise DropRefused("not_a_regular_file", f"{escape(file.name)} is not a regular file", file.name)
            yield fh


# ---- which drops to run ---------------------------------------------------------------------------------------

RUNS_PER_TICK = 25  # run requests one sensor tick makes; the rest are carried to the next ticks


def plan_runs(drops: list[Drop], cursor: dict, now: float, sent: Mapping[str, str],
              settle: float = SETTLE_SECONDS, limit: int = RUNS_PER_TICK,
              dated: Callable[[Drop], dt.date | None] = lambda d: None) -> tuple[list[Drop], dict]:
    """The complete drops whose version was not sent yet, at most `limit` of them (the oldest first: by the date
    `dated` reads in a drop's name, then by file time; the others are planned at the next ticks), and the next
    cursor. Drops with a bad name are the caller's to refuse; they are never planned. A tick that creates hundreds
    of runs one by one blocks every other sensor meanwhile. Drops of one district run one at a time in the order
    requested: by file time alone, a missed drop uploaded after a later one ran second, and was superseded.

    `sent` (drop key -> version) is what the caller keeps in a table, unbounded: the drops whose run exists. The
    cursor holds only what is between: drops still arriving (no marker, not yet stable) and drops requested whose
    run the caller has not seen yet (`requested`), so it stays as small as the server's listing, and a drop's file
    times never decide whether it ran.
    """
    pending: dict[str, dict] = dict(cursor.get("pending", {}))
    requested: dict[str, str] = dict(cursor.get("requested", {}))
    ready, listed = [], set()
    # a district whose folder shows a marker, or ever showed one (the cursor remembers: its marked drops may be
    # gone from the server since), writes them: its drop without one is still being sent, however long it has
    # stood (an upload cut short stands still too); only a district that writes none is read once settled
    marking = set(cursor.get("marking", ())) | {d.district for d in drops if d.has_marker and not d.refused_at_listing}
    for d in drops:
        if d.refused_at_listing:
            continue
        listed.add(d.key)
        if d.version in (sent.get(d.key), requested.get(d.key)):
            pending.pop(d.key, None)
            continue
        if d.has_marker:
            ready.append(d)
            continue
        before = pending.get(d.key)
        if before and before["version"] == d.version:
            if d.district not in marking and now - before["since"] >= settle and now - d.newest_mtime >= settle:
                ready.append(d)
        else:
            pending[d.key] = {"version": d.version, "since": now}
    ready.sort(key=lambda d: (dated(d) or dt.date.max, d.newest_mtime, d.key))  # undated: as received, newest
    ready = ready[:limit]  # the rest stay unsent (and pending), so the next tick plans them
    for d in ready:
        pending.pop(d.key, None)
        requested[d.key] = d.version
    pending = {k: v for k, v in pending.items() if k in listed}
    requested = {k: v for k, v in requested.items() if k in listed}
    return ready, {k: v for k, v in cursor.items() if k not in ("seen", "floor")} | {
        "pending": pending, "requested": requested, "marking": sorted(marking)}


# ---- receiving a drop into staging ----------------------------------------------------------------------------

@dataclass(frozen=True)
class StagedFile:
    name: str
    size: int
    sha256: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(BLOCK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stream(src: BinaryIO, enc: Encryptor | None, budget: int) -> tuple[int, str]:
    """Copy src into the encryptor (None: only hash it), which hashes it on the way and seals the SHA-256 into
    the staged copy; stops after `budget` + 1 bytes (the caller refuses)."""
    digest, done = hashlib.sha256() if enc is None else enc.digest, 0
    for block in iter(lambda: src.read(BLOCK), b""):
        done += len(block)
        if done > budget:
            break
        if enc is None:
            digest.update(block)
        else:
            enc.write(block)
            if done == len(block):
                fault_point("mid_transfer")
    return done, digest.hexdigest()


def _digest(source: DropSource, folder: str, drop: Drop, f: RemoteFile) -> tuple[int, str]:
    with source.open(folder, drop, f) as src:
        return _stream(src, None, f.size)


def _receive_file(source: DropSource, folder: str, drop: Drop, f: RemoteFile, dest: Path, key: bytes,
                  attempts: int, transient: tuple[type[Exception], ...], sleep, began: dict) -> StagedFile:
    """One file, encrypted as it streams in. A transfer cut short (an error, or fewer bytes than listed) is
    fetched again; so is a file whose bytes change while it is received. The source's stamp of the file before
    and after tells that where it can (a local folder); elsewhere the file is read a second time and the two
    hashes compared (a rewrite in place keeps its size, and `sftp put -p` its mtime: only the bytes tell).
    `began[f.name]`: when the read of the bytes kept began."""
    changed = False
    for attempt in range(1, attempts + 1):
        began[f.name] = _ticket()  # the bytes kept are of this moment on: a later read reads later bytes
        try:
            before = source.stamp(folder, drop, f)
            with source.open(folder, drop, f) as src, Encryptor(key, dest, hashlib.sha256()) as enc:
                done, digest = _stream(src, enc, f.size)
            if done == f.size:
                if (source.stamp(folder, drop, f) == before if before is not None
                        else _digest(source, folder, drop, f) == (done, digest)):
                    return StagedFile(f.name, done, digest)
                changed, problem = True, "its bytes changed while it was received"
            else:
                problem = f"received {'more than ' if done > f.size else ''}{done} of {f.size} bytes"
        except (FileNotFoundError, *transient) as exc:  # a file gone since listing is a failed transfer too
            # the account and host the error names stay out: the error log keeps no address
            problem = f"{type(exc).__name__}: {without_accounts(str(exc))}"
        if attempt == attempts:
            if changed:
                raise DropRefused(CHANGED, f"{escape(f.name)}: its bytes changed while it was "
                                  f"received, {attempts} times; run the drop again once the district's upload "
                                  "has finished", f.name)
            raise DropRefused("transfer_failed", f"{escape(f.name)}: transfer failed after {attempts} tries "
                              f"({problem})", f.name)
        sleep(attempt)
    raise AssertionError("unreachable")


def zip_entries(zf: zipfile.ZipFile, archive: str, limits: Limits) -> list[tuple[zipfile.ZipInfo, str]]:
    """The entries to expand, flattened to their file names, after checking the central directory: no absolute
    path, no "..", no link or device, no two entries with one name, nothing encrypted, sizes within the limits."""
    chosen, seen, total = [], {}, 0
    for info in zf.infolist():
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
            raise DropRefused("unsafe_zip_entry", f"{archive}: entry {escape(name)} points outside the archive",
                              archive)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise DropRefused("unsafe_zip_entry", f"{archive}: entry {escape(name)} is a link or device", archive)
        if info.is_dir() or parts[0] == "__MACOSX" or parts[-1].startswith("."):
            continue  # folders are flattened away; macOS resource forks and hidden files are not data
        try:
            base = _check_data_name(parts[-1])
        except BadName as exc:
            raise DropRefused("unsafe_zip_entry", f"{archive}: {exc}", archive) from None
        if info.flag_bits & 0x1:
            raise DropRefused("bad_zip", f"{archive}: entry {escape(name)} is encrypted", archive)
        other = seen.setdefault(one_name(base), name)
        if other != name:
            raise DropRefused("duplicate_file_name", f"{archive}: entries {escape(other)} and {escape(name)} are "
                              "both named " + escape(base) + " once folders are flattened (case and spaces at the "
                              "end aside)", archive)
        if info.file_size > limits.max_zip_ratio * max(info.compress_size, 1):
            raise DropRefused("zip_ratio", f"{archive}: entry {escape(name)} expands more than "
                              f"{limits.max_zip_ratio:g} times (MTSS_MAX_ZIP_RATIO)", archive)
        total += info.file_size
        chosen.append((info, base))
    if total > limits.max_drop_bytes:
        raise DropRefused("drop_too_large", f"{archive}: expands to {total:,} bytes, more than MTSS_MAX_DROP_BYTES "
                          f"({limits.max_drop_bytes:,})", archive)
    return chosen


def _expand_zip(archive: Path, sealed: bytes, name: str, into: Path, key: bytes, limits: Limits) -> list[StagedFile]:
    """Each entry streamed from the encrypted archive (`sealed`: its SHA-256, sealed into it) into its own
    encrypted file; the limits are enforced again while streaming, because declared sizes can lie."""
    staged, total = [], 0
    try:
        # buffered: the reader's reads stop at a chunk's end, and zipfile takes a short read for a broken archive
        with DecryptingReader(key, archive, sealed) as reader, zipfile.ZipFile(io.BufferedReader(reader)) as zf:
            for info, base in zip_entries(zf, name, limits):
                budget = min(int(limits.max_zip_ratio * max(info.compress_size, 1)), limits.max_drop_bytes - total)
                with zf.open(info) as src, Encryptor(key, into / base, hashlib.sha256()) as enc:
                    done, digest = _stream(src, enc, budget)
                    if done > budget:
                        raise DropRefused("zip_ratio" if total + done <= limits.max_drop_bytes else "drop_too_large",
                                          f"{name}: entry {escape(info.filename)} expands past the limits it "
                                          "declared (MTSS_MAX_ZIP_RATIO, MTSS_MAX_DROP_BYTES)", name)
                total += done
                staged.append(StagedFile(base, done, digest))
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise DropRefused("bad_zip", f"{name}: not a readable zip archive ({type(exc).__name__})", name) from None
    return staged


@contextmanager
def _receiving(staging: Path):
    """A private work folder beside the drop's staging folder, locked from before it takes its receiving name until
    it is published or removed: a process killed mid-receive leaves it unlocked, and the next receive or purge
    removes it. A cleaner (another district's run) finds no receiving folder but a locked one."""
    token = secrets.token_hex(4)
    making = staging.with_name(f"{MAKING_PREFIX}{staging.name}-{token}")
    work = staging.with_name(f"{RECEIVING_PREFIX}{staging.name}-{token}")
    making.mkdir(parents=True, mode=0o700)
    lock = (making / _LOCK).open("w")
    try:
        fault_point("before_lock")
        fcntl.flock(lock, fcntl.LOCK_EX)
        making.rename(work)  # the lock is the file's: it holds under the new name
        yield work
    finally:
        try:
            for folder in (making, work):
                if folder.exists():
                    shutil.rmtree(folder)
        finally:
            lock.close()


def _left_unfinished(path: Path, now: float) -> bool:
    """Unchanged for MAKING_GRACE_S: something found unfinished (a folder with no lock yet or no manifest, a part
    file) that no process is still making, replacing or writing."""
    return now - path.stat().st_mtime >= MAKING_GRACE_S


def remove_orphans(staging_root: Path, now: float | None = None) -> list[str]:
    """Receiving folders no process holds (a killed run), and `.part` files left by one; returns what was removed.
    A folder is removed only while its lock is held here, so that runs of several districts may clean at once.
    A `.making-` folder (locked an instant after it is made) is left alone until MAKING_GRACE_S old: its process
    died in that instant."""
    removed, now = [], time.time() if now is None else now
    if not staging_root.is_dir():
        return removed
    for district in _real_dirs(staging_root):
        for work in _real_dirs(district):
            making = work.name.startswith(MAKING_PREFIX)
            if not (work.name.startswith(RECEIVING_PREFIX) or making):
                continue
            try:
                if making and not _left_unfinished(work, now):
                    continue
                lock = (work / _LOCK).open("a")  # made if a killed run left none
            except FileNotFoundError:
                continue  # published (renamed) or removed since it was listed
            with lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a receive in progress
                try:
                    shutil.rmtree(work)
                except FileNotFoundError:
                    continue  # another cleaner removed it first
            removed.append(f"{district.name}/{work.name}")
    return removed


def _unchanged_since_listed(source: DropSource, folder: str, drop: Drop) -> None:
    """Every file as the listing the receipt started from showed it (size, modification time, the marker still
    there), now that all are read: a file written to after it was read (a sender still uploading behind its
    marker) refuses the drop, and the sensor asks for it again once it has settled (defs/sensors.py)."""
    now = [d for d in source.list_drops(drop.district, folder) if d.name == drop.name and d.kind == drop.kind]
    if not now or now[0].version != drop.version or now[0].has_marker != drop.has_marker:
        raise DropRefused(CHANGED, f"{escape(drop.name)}: its files changed while they were received (a sender "
                          "still writing them); it is received again once they stop changing", None)


def receive(source: DropSource, folder: str, drop: Drop, staging: Path, key: bytes, limits: Limits = Limits(),
            attempts: int = 3, transient: tuple[type[Exception], ...] = (), sleep=time.sleep,
            published=None) -> list[StagedFile]:
    """Copy the drop's files into staging, hashed and encrypted as they stream in, and publish the staged copy
    (manifest last) with one rename: a half-received or refused drop leaves nothing behind. The copy says when
    the read of each file began (_ticket): a receipt that published first, with other bytes read after these, is
    the drop's, and this one is refused (_newer_copy). `published(version, staged)`: called with the publish lock still
    held (the audit's receipt: receipts are recorded in the order they published)."""
    if drop.problem:
        raise DropRefused(*drop.problem)
    declared = sum(f.size for f in drop.files)
    if declared > limits.max_drop_bytes:
        raise DropRefused("drop_too_large", f"{escape(drop.name)}: {declared:,} bytes, more than MTSS_MAX_DROP_BYTES "
                          f"({limits.max_drop_bytes:,})")
    remove_orphans(staging.parent.parent)  # staging is <staging root>/<district>/<drop>
    with _receiving(staging) as work:
        began: dict[str, list] = {}  # each file's: when the read of its bytes kept began
        if drop.kind == "zip":
            (archive,) = drop.files
            packed = work / ".archive"  # a name no entry can take (hidden entries are skipped)
            received = _receive_file(source, folder, drop, archive, packed, key, attempts, transient, sleep, began)
            staged = _expand_zip(packed, bytes.fromhex(received.sha256), archive.name, work, key, limits)
            packed.unlink()
            began = {s.name: began[archive.name] for s in staged}  # one read, every entry's
        else:  # two files at a time: hashing and encryption release the GIL, and SFTP waits on the network
            with ThreadPoolExecutor(2, thread_name_prefix="mtss-receive") as pool:
                staged = list(pool.map(lambda f: _receive_file(source, folder, drop, f, work / f.name, key,
                                                               attempts, transient, sleep, began), drop.files))
        fault_point("after_receipt")
        _unchanged_since_listed(source, folder, drop)
        manifest = {"drop": drop.key, "version": drop.version, "files": [asdict(s) for s in staged], "began": began}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1))
        with _publishing(staging.parent):
            fault_point("before_publish")
            same, held = _same_files(staging, staged), _held_copy(staging)
            newer = "ours" if same else _newer_copy(held, {s.name: [s.sha256, began[s.name]] for s in staged})
            if newer == "theirs":
                raise DropRefused("received_again", f"{escape(drop.name)}: received again while this receipt was "
                                  f"read, with other bytes read after these, and that receipt published first: it "
                                  f"is the drop's")
            if newer == "mixed":  # each copy has a file read after the other's: neither is the drop as it is now
                raise DropRefused(CHANGED, f"{escape(drop.name)}: received again while this receipt was read, each "
                                  f"receipt with a file read after the other's: run the drop again")
            if same:  # the staged copy stays: each file's latest read is kept with it
                later = {n: m for n, (_h, m) in held.items() if _later(m, began.get(n, ["", 0]))}
                (work / MANIFEST).write_text(json.dumps({**manifest, "began": {**began, **later}}, indent=1))
            if same and _opens(staging, staged, key):
                # the bytes staged already: the copy stays where it is (another run may be reading it), only its
                # manifest is replaced, in one rename
                os.replace(work / MANIFEST, staging / MANIFEST)
            else:
                if staging.exists():
                    shutil.rmtree(staging)
                work.rename(staging)  # still locked: no cleaner takes it on its way
                (staging / _LOCK).unlink()
            if published is not None:
                published(drop.version, staged)
    return staged


def _ticket() -> list:
    """A moment in an order every process of this machine agrees on: the boot, and the monotonic clock, which the
    wall clock's corrections never step back."""
    return [_BOOT, time.monotonic_ns()]


def _later(a: list, b: list) -> bool | None:
    """Whether moment `a` came after `b`; None where that is not known (two boots, or two machines: a copy staged
    before a restart was published before anything of this boot began)."""
    if not a[0] or a[0] != b[0]:
        return None
    return a[1] > b[1]


def _newer_copy(held: dict, ours: dict) -> str:
    """Which of two copies of a drop holds its newest bytes, by when each differing file was read (`held`, `ours`:
    file name -> [sha256, moment its read began]; a file one copy lacks counts as read when that copy's first read
    began): "theirs", "ours", or "mixed" (each has a file read after the other's)."""
    def moment(copy: dict, name: str) -> list:
        return copy[name][1] if name in copy else min((m for _h, m in copy.values()), key=lambda m: m[1],
                                                       default=["", 0])
    differing = [n for n in set(held) | set(ours) if (held.get(n) or [None])[0] != (ours.get(n) or [None])[0]]
    verdicts = {_later(moment(held, n), moment(ours, n)) for n in differing}
    if verdicts == {True}:
        return "theirs"
    return "mixed" if verdicts == {True, False} else "ours"


def _held_copy(staging: Path) -> dict:
    """The staged copy's files: name -> [sha256, moment its read began] (["", 0]: staged before that was said)."""
    try:
        manifest = json.loads((staging / MANIFEST).read_text())
        began = manifest.get("began", {})
        moment = {name: [str(boot), int(ns)] for name, (boot, ns) in began.items()}  # a malformed one: unread
        return {f["name"]: [f["sha256"], moment.get(f["name"], ["", 0])] for f in manifest["files"]}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


@contextmanager
def _publishing(district: Path):
    """Held while a receipt looks at the drop's staged copy and swaps in its own: two runs of one drop at once
    (a command-line run beside the sensor's) would otherwise both swap, one failing or removing the copy the
    other had just published; the purge holds it too, so that it never removes a copy a receipt is keeping. One
    lock file a district, never removed (staging is listed by its folders), never opened through a link (a link
    left there fails the receipt instead of making a file where it points)."""
    fd = os.open(district / _PUBLISHING, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _same_files(staging: Path, staged: list[StagedFile]) -> bool:
    """The staged copy holds exactly these files, by name, size and checksum (its manifest says so)."""
    try:
        files = json.loads((staging / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return sorted((f["name"], f["size"], f["sha256"]) for f in files) == sorted((s.name, s.size, s.sha256)
                                                                                  for s in staged)


def _opens(staging: Path, staged: list[StagedFile], key: bytes) -> bool:
    """Each staged file opens with `key` and the checksum sealed into it, at its size: a copy encrypted under a key
    since rotated, cut short or altered at its end is replaced by the one just received. The last chunk is checked
    (opening decrypts it), not every byte: a chunk altered within fails the read, which names the file."""
    for s in staged:
        try:
            with DecryptingReader(key, staging / s.name, bytes.fromhex(s.sha256)) as reader:
                if reader.size != s.size:
                    return False
        except (OSError, ValueError, VaultError):
            return False
    return True


def staged_manifest(staging: Path) -> dict | None:
    """The manifest of a complete staged copy (its manifest is written last) whose every file is there; else None.
    Not decrypted here: every read of a staged file checks it against its checksum (`read_staged`), and a run reads
    them all in one step, which fails whole when one is unusable: a replay decrypts no more than a run from the
    server does."""
    path = staging / MANIFEST
    if not path.is_file() or path.is_symlink():
        return None
    try:
        manifest = json.loads(path.read_text())
        for f in manifest["files"]:
            staged = safe_join(staging, check_file_name(StagedFile(**f).name))
            if not staged.is_file() or staged.is_symlink():
                return None
    except (OSError, ValueError, KeyError, TypeError):  # a bad file name is a ValueError
        return None  # an incomplete or unreadable staged copy is not replayed
    return manifest


def read_staged(staging: Path, file: StagedFile, key: bytes) -> bytes:
    """A staged file's bytes, checked against the checksum recorded when it was received: the receipt sealed it
    into the copy, which decrypts against no other. A copy staged before checksums were sealed (or altered: it
    fails again) is hashed as it is decrypted. Raises VaultError for a copy that is altered, cut, or cannot be read
    (gone, or the disk's error): its callers catch one error, whose text names the file, never the path."""
    path = safe_join(staging, check_file_name(file.name))
    mismatch = VaultError(f"{file.name}: the staged copy does not match its recorded SHA-256")
    try:
        sealed = bytes.fromhex(file.sha256)
    except (TypeError, ValueError):
        raise mismatch from None
    try:
        try:
            data = decrypt_bytes(key, path, sealed=sealed)
        except VaultError:
            digest = hashlib.sha256()
            data = decrypt_bytes(key, path, digest)
            if digest.hexdigest() != file.sha256:
                raise mismatch from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise VaultError(f"{file.name}: the staged copy cannot be read ({reason})") from None
    if len(data) != file.size:
        raise mismatch
    return data


def _real_dirs(folder: Path) -> list[Path]:
    """Sub-folders, never following a link."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())


def staged_drops(root: Path) -> set[str]:
    """The keys of the drops staged under root (being received or not)."""
    if not root.is_dir():
        return set()
    return {f"{district.name}/{staged.name}" for district in _real_dirs(root) for staged in _real_dirs(district)
            if not staged.name.startswith(RECEIVING_PREFIX)}


def purge_staging(root: Path, retention_days: float, now: float) -> tuple[list[str], list[str]]:
    """Delete staged drops received more than `retention_days` ago, and orphans (a folder without a complete
    manifest, a receiving folder of a killed run); returns (expired drop keys, orphans removed)."""
    expired, orphans = [], remove_orphans(root)
    if not root.is_dir():
        return expired, orphans
    for district in _real_dirs(root):
        with _publishing(district):  # a copy being received again is judged once its receipt has published it
            for staged in _real_dirs(district):
                if staged.name.startswith((RECEIVING_PREFIX, MAKING_PREFIX)):
                    continue  # being received right now (remove_orphans took the abandoned ones)
                manifest = staged / MANIFEST
                key = f"{district.name}/{staged.name}"
                if not manifest.is_file():
                    # A copy being replaced or published lacks it for an instant, and was changed an instant ago
                    if _left_unfinished(staged, now):
                        shutil.rmtree(staged)
                        orphans.append(key)
                elif now - manifest.stat().st_mtime > retention_days * 86400:
                    shutil.rmtree(staged)
                    expired.append(key)
    return expired, orphans


def expired_partitions(last_run: Mapping[str, float | None], staged: set[str], retention_days: float,
                       now: float) -> list[str]:
    """Drop partitions (district/drop) to remove: no staged copy left, a last run (epoch seconds) older than the
    retention period, and not their district's newest drop, whose partition shows what the warehouse holds now.
    A partition with no run yet (a request still queued) is kept."""
    newest: dict[str, tuple[float, str]] = {}
    for key, ended in last_run.items():
        if ended is not None:
            newest[key.split("/")[0]] = max(newest.get(key.split("/")[0], (ended, key)), (ended, key))
    return sorted(key for key, ended in last_run.items()
                  if ended is not None and key not in staged and now - ended > retention_days * 86400
                  and newest[key.split("/")[0]][1] != key)


def purge_storage(storage: Path, drop_keys: list[str], retention_days: float, now: float) -> int:
    """The IO manager's stored frames of purged drops, any stored frame older than the retention period, and the
    part file of a frame whose writer was killed (untouched for MAKING_GRACE_S: a writer adds to its part file
    as it goes, and a load reads only the final name); returns the number of files removed."""
    removed = 0
    if not storage.is_dir():
        return removed
    for asset in _real_dirs(storage):
        for key in drop_keys:
            try:
                path = safe_join(asset, *key.split("/"))
            except ValueError:
                continue
            if path.is_file():
                path.unlink()
                removed += 1
        for path in asset.rglob("*"):
            if _stored_expired(path, retention_days, now):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _stored_expired(path: Path, retention_days: float, now: float) -> bool:
    """A stored frame past the retention period, or a part file left unfinished; not a file renamed or removed
    since it was listed (a writer finishing its frame)."""
    try:
        return path.is_file() and (now - path.stat().st_mtime > retention_days * 86400
                                   or (is_part_file(path.name) and _left_unfinished(path, now)))
    except FileNotFoundError:
        return False


def name_matches(name: str, pattern: str) -> bool:
    """Whether a file name matches a registry pattern, case-insensitively: a shell pattern, or several of them
    separated by `|` (a vendor that renamed its exports: either name)."""
    return any(fnmatch.fnmatch(name.lower(), p.strip().lower()) for p in pattern.split("|"))


def files_matching(files: tuple, pattern: str) -> list:
    """The drop's files (staged files or paths: anything with a .name) a registry pattern matches, by name."""
    return sorted((f for f in files if name_matches(f.name, pattern)), key=lambda f: f.name)


def find_file(files: tuple, pattern: str):
    """The drop's file for a source (the first `files_matching`); None when absent."""
    matches = files_matching(files, pattern)
    return matches[0] if matches else None


@dataclass(frozen=True)
class ReceivedDrop:
    key: str
    version: str
    folder: str  # the staging folder holding the drop's files
    files: tuple[StagedFile, ...]
    replayed: bool  # True: read from staging, the drop server was not needed
    run_id: str = ""  # the run that received it, whose audit rows (dm.IngestionFiles) are of these bytes

    @property
    def content_version(self) -> str:
        """The version and the bytes received under it: what a person's acceptance of a failed check is for (a
        file corrected in place, its size and time kept, is the same version with other bytes)."""
        text = "|".join([self.version, *sorted(f"{f.name}:{f.sha256}" for f in self.files)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def acceptance_keys(self) -> tuple[str, str]:
        """The versions an acceptance of these bytes may be recorded under: its content version, and the version
        alone (acceptances recorded before they were kept by content)."""
        return self.content_version, self.version


def replaced(received: ReceivedDrop) -> bool:
    """The drop's staged copy no longer holds the bytes this receipt staged: a later receipt, with other bytes,
    replaced it (an unreadable manifest says nothing: False)."""
    held = _held_copy(Path(received.folder))
    return bool(held) and {name: sha for name, (sha, _began) in held.items()} != {f.name: f.sha256
                                                                                  for f in received.files}


def why_unreadable(received: ReceivedDrop, error: VaultError) -> str:
    """Why a file of this receipt could not be read from staging (`read_staged`'s error): its copy replaced by a
    later receipt, or the read's own reason."""
    return "replaced by a later receipt of the drop, with other bytes" if replaced(received) else str(error)


class DropUnreachable(LookupError):
    """The drop server did not answer, and the drop has no staged copy to replay (of the version requested)."""


def receive_or_replay(source: DropSource, district: str, folder: str, drop_name: str, staging: Path, key: bytes,
                      limits: Limits = Limits(), transient: tuple[type[Exception], ...] = (),
                      requested: str | None = None, published=None) -> ReceivedDrop:
    """Fetch the drop whenever the server has it, and replay from staging only when it does not or cannot be
    reached: whether a file changed is decided by its bytes (hashed as they are received), never by the size and
    modification time a listing shows, so a correction made in place with both kept is loaded, and the audit holds
    the hash of what was read. `drop_name` is canonical; the listed drop is found by its canonical name.
    `requested`: the version a run was asked for (the drop sensor's); another one is never loaded in its place.
    Raises LookupError when the drop is neither on the server nor staged, DropUnreachable when the server did not
    answer and nothing staged is the version `requested`, DropRefused when it is refused. `published(version,
    files)`: the receipt recorded (under the publish lock, for a drop fetched: `receive`)."""
    drop_key = f"{district}/{drop_name}"
    try:
        listed = [d for d in source.list_drops(district, folder) if not d.refused_at_listing and d.key == drop_key]
        current, reachable = (listed[0] if listed else None), True
    except transient:
        current, reachable = None, False
    if current is None:  # a replay: the staged copy, each file checked as it is read
        # the copy staged as the receipt is recorded, under the publish lock as a fetched drop's is: no receipt
        # publishing meanwhile is recorded before it
        with _publishing(staging.parent) if staging.parent.is_dir() else nullcontext():
            manifest = staged_manifest(staging)
            if manifest and requested and manifest["version"] != requested and not reachable:
                # the version asked for is asked for again once the server answers, as when nothing is staged
                raise DropUnreachable(f"{drop_key}: the drop server cannot be reached, and the staged copy is "
                                      f"version {manifest['version']}, not {requested}, the version this run was "
                                      f"requested for")
            if manifest:
                files = tuple(StagedFile(**f) for f in manifest["files"])
                if published is not None:
                    published(manifest["version"], list(files))
                return ReceivedDrop(drop_key, manifest["version"], str(staging), files, replayed=True)
        where = "is not on" if reachable else "cannot be fetched from"
        raise (LookupError if reachable else DropUnreachable)(
            f"drop {drop_key} {where} {source.describe()} and has no complete staged copy")
    if requested and current.version != requested:
        # changed on the server since it was requested (a re-upload under way, its marker taken down): the version
        # now listed is the sensor's to request, when it is complete
        raise DropRefused("changed_since_requested", f"{drop_key}: the server now lists version {current.version}, "
                                                     f"not {requested}, the version this run was requested for")
    files = tuple(receive(source, folder, current, staging, key, limits, transient=transient, published=published))
    return ReceivedDrop(drop_key, current.version, str(staging), files, replayed=False)
