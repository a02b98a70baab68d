"""Local drops: MTSS_DROP_DIR/<district drop folder>/<drop name>/<files>. A drop is complete when its
marker `drop.done` exists (written last by the sender)."""
from __future__ import annotations

import fnmatch
from pathlib import Path

COMPLETION_MARKER = "drop.done"


def list_drops(district_dir: Path) -> list[Path]:
    if not district_dir.is_dir():
        return []
    return sorted(p for p in district_dir.iterdir() if p.is_dir() and (p / COMPLETION_MARKER).exists())


def find_file(drop: Path, pattern: str) -> Path | None:
    """The drop's file for a source (file names compared case-insensitively); None when absent."""
    matches = sorted(p for p in drop.iterdir() if p.is_file() and fnmatch.fnmatch(p.name.lower(), pattern.lower()))
    return matches[0] if matches else None
