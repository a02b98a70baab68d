"""Objects at rest between steps: pickled, with every polars frame inside written as compressed Parquet, and the
whole encrypted with the staging key (lib/receive/vault.py). Parquet is columnar and compressed: a frame of student strings
takes a fraction of its in-memory size, so writing and reading it costs little memory and time. What is kept is
the data itself: loading it never reads, decrypts or validates a drop's file again."""
from __future__ import annotations

import io
import pickle
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


def save(key: bytes, obj, dest: Path) -> None:
    # past the page cache: a run hands its outputs on in memory, so what is kept at rest is read by later runs only
    with Encryptor(key, dest, direct=True) as enc:
        _Pickler(enc, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)


def load(key: bytes, path: Path):
    with DecryptingReader(key, path) as reader:
        return pickle.load(io.BufferedReader(reader, buffer_size=1 << 20))
