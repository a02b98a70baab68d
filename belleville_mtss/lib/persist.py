"""Objects at rest between steps: pickled, with every polars frame inside written as compressed Parquet, and the
whole encrypted with the staging key (lib/receive/vault.py). Parquet is columnar and compressed: a frame of student strings
takes a fraction of its in-memory size, so writing and reading it costs little memory and time. What is kept is
the data itself: loading it never reads, decrypts or validates a drop's file again. Ahead of the object, in a pickle
of its own, goes what it was made from (`Made`); after it, its stamp, read without reading the object."""
from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .receive.vault import DecryptingReader, Encryptor


def _frame(parquet: bytes) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(parquet))


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, type):
            return NotImplemented  # a class is pickled by reference, as usual
        if isinstance(obj, pl.DataFrame):
            buffer = io.BytesIO()
            obj.write_parquet(buffer, compression="lz4", statistics=False)
            return _frame, (buffer.getvalue(),)
        return NotImplemented


@dataclass(frozen=True)
class Made:
    """The kept objects an object was made from: each one's place at rest -> its stamp when it was read."""
    of: dict


STAMP_BYTES = 32  # an object's stamp, the last bytes of its clear text


class _Hashed:
    """A writer that hashes what passes through it."""

    def __init__(self, out):
        self.out, self.digest = out, hashlib.sha256()

    def write(self, data) -> None:
        self.digest.update(data)
        self.out.write(data)


def save(key: bytes, obj, dest: Path, made: dict | None = None) -> bytes:
    """Keeps `obj` at `dest` with what it was made from, and returns its stamp: a digest of that and of the object as
    written, or, for an object with a `content_version` (a received drop), of that (the same bytes received again
    under the same version are the same drop)."""
    # past the page cache: a run hands its outputs on in memory, so what is kept at rest is read by later runs only
    made = made or {}
    with Encryptor(key, dest, direct=True) as enc:
        pickle.dump(Made(made), enc, protocol=pickle.HIGHEST_PROTOCOL)
        out = _Hashed(enc)
        # what it was made from, in one form whatever order a run read it in (and however pickle shares its strings)
        out.digest.update("\n".join(sorted(f"{'/'.join(place)}={stamp.hex()}"
                                            for place, stamp in made.items())).encode())
        _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        version = getattr(obj, "content_version", None)
        stamp = hashlib.sha256(f"content_version:{version}".encode()).digest() if version else out.digest.digest()
        enc.write(stamp)
    return stamp


def load_made(key: bytes, path: Path) -> tuple[dict | None, object, bytes | None]:
    """What the object was made from, the object, and its stamp (None and None: kept before either was written)."""
    with DecryptingReader(key, path) as reader:
        stream = io.BufferedReader(reader, buffer_size=1 << 20)
        first = pickle.load(stream)
        if not isinstance(first, Made):
            return None, first, None
        return first.of, pickle.load(stream), stream.read(STAMP_BYTES)


def stamp_of(key: bytes, path: Path) -> bytes:
    """The stamp of what is kept at `path`, read from its end (the file checked, no object read)."""
    with DecryptingReader(key, path) as reader:
        reader.seek(reader.size - STAMP_BYTES)
        return reader.read(STAMP_BYTES)


def load(key: bytes, path: Path):
    return load_made(key, path)[1]
