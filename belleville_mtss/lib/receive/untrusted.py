"""Names and paths that come from senders: drop folders, zip names, zip entries and file names are untrusted input.

One canonical drop key ("<district>/<drop name>") and one safe-path helper: every path built from a key or a file
name goes through `safe_join`, which refuses a result outside its root.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

NAME_MAX = 100  # characters in a district or drop name; real drop names are dates or vendor job names
FILE_NAME_MAX = 255  # a file name, as most file systems bound it
# Letters, digits, ".", "_" and "-"; the first character a letter or digit (no leading dot, no option-like "-").
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


_ACCOUNT = re.compile(r"[^\s@'\"/]*@[^\s@'\"/]*")  # not across a path's /


class BadName(ValueError):
    """A name that cannot be a district, drop or file name; the message shows it escaped."""


class UnsafePath(ValueError):
    """A path that would leave its root."""


def plain(text: str, limit: int = 80) -> str:
    """A sender's name as it may be stored: what looks like an email address replaced (a folder named after a
    person's address is theirs to see, not the log's), control characters and non-ASCII escaped, length bounded."""
    shown = _ACCOUNT.sub("<account>", text).encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[:limit] + "..."


def escape(text: str, limit: int = 80) -> str:
    """A sender's name as it may be shown in a message: `plain`, quoted."""
    return repr(plain(text, limit))


_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")


def without_accounts(text: str) -> str:
    """An error's text without the accounts (`user@host:port`, the form our SFTP errors name the server in) and
    addresses it may carry: what an error row may keep of a transfer failure."""
    return _ADDRESS.sub("<address>", _ACCOUNT.sub("<account>", text))


def check_name(name: str, what: str = "drop name") -> str:
    """The name itself, when it matches the strict pattern; raises BadName otherwise."""
    if not isinstance(name, str) or not name:
        raise BadName(f"empty {what}")
    if len(name) > NAME_MAX:
        raise BadName(f"{what} {escape(name)} is longer than {NAME_MAX} characters")
    if not _NAME.fullmatch(name) or ".." in name or name.endswith("."):
        raise BadName(f"{what} {escape(name)} is not allowed (letters, digits, '.', '_' and '-' only; "
                      "no leading or trailing dot, no '..')")
    return name


def canonical(name: str) -> str:
    """Two spellings of one name (case) are one name: drop names are compared and keyed in lower case."""
    return check_name(name).lower()


@dataclass(frozen=True)
class DropKey:
    district: str
    drop: str

    def __str__(self) -> str:
        return f"{self.district}/{self.drop}"


def parse_drop_key(key: str) -> DropKey:
    """The canonical DropKey of "<district>/<drop name>"; raises BadName for anything else."""
    if not isinstance(key, str) or key.count("/") != 1:
        raise BadName(f"drop key {escape(str(key))} is not '<district>/<drop name>'")
    district, drop = key.split("/")
    return DropKey(canonical(district), canonical(drop))


def check_file_name(name: str) -> str:
    """A file name inside a drop or a zip: one path segment, printable, bounded; raises BadName otherwise."""
    bad = (not name or name in (".", "..") or "/" in name or "\\" in name or len(name) > FILE_NAME_MAX
           or any(unicodedata.category(c).startswith("C") for c in name))
    if bad:
        raise BadName(f"file name {escape(name)} is not allowed")
    return name


def safe_join(root: Path, *parts: str) -> Path:
    """root/parts..., resolved; raises UnsafePath unless the result is strictly inside root (a "..", a ".",
    an absolute part, or a symbolic link pointing elsewhere)."""
    base = Path(root).resolve()
    for part in parts:
        segments = str(part).replace("\\", "/").split("/")
        if not part or Path(part).is_absolute() or any(s in ("", ".", "..") for s in segments):
            raise UnsafePath(f"path part {escape(str(part))} is empty, absolute or holds '.' or '..'")
    path = base.joinpath(*parts).resolve()
    if base not in path.parents:
        raise UnsafePath(f"{escape('/'.join(parts))} leaves {base}")
    return path


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value):
    """A cell for a CSV file we write: text that a spreadsheet would run as a formula gets a leading quote.
    (In the warehouse such values are data and stay verbatim; only files people open in Excel are guarded.)"""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
