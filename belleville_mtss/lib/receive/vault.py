"""Encryption at rest for staged copies of received files (AES-256-GCM from the `cryptography` package).

Files are encrypted in 4 MiB chunks (the STREAM construction): each chunk's nonce is the file's random prefix plus
the chunk number, and its associated data says whether it is the last chunk, so a chunk cannot be reordered,
dropped or appended without decryption failing. A received file's SHA-256 is sealed into its last chunk's
associated data as well: it decrypts only against the checksum its receipt recorded, so reading it back checks it
without hashing it again. The key comes from MTSS_STAGING_KEY (64 hex characters).
"""
from __future__ import annotations

import ctypes
import fcntl
import io
import mmap
import os
import re
from concurrent.futures import ThreadPoolExecutor
import secrets
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"MTSSENC1"
PART_SUFFIX = ".part"  # an encrypted file being written; renamed to its final name only when whole
_PART_NAME = re.compile(r"\.[0-9a-f]{16}" + re.escape(PART_SUFFIX) + r"\Z")  # "<final name>.<16 hex>.part"


def is_part_file(name: str) -> bool:
    """A name an Encryptor writes under (a drop or file named so is refused at receipt: lib/receive/drops.py)."""
    return _PART_NAME.search(name) is not None
CHUNK = 4 * 1024 * 1024
_TAG = 16


class VaultError(Exception):
    """A staged file that cannot be decrypted: wrong key, or altered or cut short at rest."""


def parse_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise VaultError("MTSS_STAGING_KEY must be 64 hexadecimal characters (a 256-bit key)")
    return key


def new_key() -> str:
    return secrets.token_hex(32)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def _last(sealed: bytes) -> bytes:
    """The last chunk's associated data: its flag, then the SHA-256 sealed into it (none: empty)."""
    return b"\x01" + sealed


_ALIGN = 4096  # O_DIRECT's unit for offsets, lengths and buffer addresses: a multiple of any device's block
_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux's; elsewhere 0: written through the page cache


class _Output:
    """The file an Encryptor writes, from one buffer its chunks are encrypted into. With `direct`, written past the
    kernel's page cache (O_DIRECT) where the file system allows it: for a file no one reads back soon, whose
    bytes need not take pages of memory on their way to the disk (on the benchmark machine, a virtual one, 0.6-2.8
    CPU-seconds a GB through the cache against 0.1-0.25 past it: docs/performance.md, thirteenth sitting). Whole
    aligned blocks go straight out; the tail, under one block, through the page cache at close."""

    def __init__(self, path: Path, capacity: int, direct: bool):
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        self.direct = direct and bool(_DIRECT)
        try:
            self._fd = os.open(path, flags | (_DIRECT if self.direct else 0), 0o666)
        except OSError:
            if not self.direct:
                raise
            self._fd, self.direct = os.open(path, flags, 0o666), False  # a file system without O_DIRECT
        self._buffer = mmap.mmap(-1, capacity + _ALIGN)  # page-aligned, as O_DIRECT needs; pages touched as used
        self.view = memoryview(self._buffer)
        self.filled = 0  # bytes put in the buffer and not yet written
        self._sent = 0  # of those, what a write that then failed had sent already

    def _send(self, end: int) -> None:
        """The buffer's bytes up to `end` to the file, from where an earlier try stopped."""
        while self._sent < end:
            self._sent += os.write(self._fd, self.view[self._sent:end])

    def _through_cache(self) -> None:
        if self.direct:
            fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) & ~_DIRECT)
            self.direct = False

    def commit(self, size: int) -> None:
        """`size` more bytes were put in the buffer at `filled`: write them out (direct: the whole blocks)."""
        self.filled += size
        whole = self.filled - self.filled % _ALIGN if self.direct else self.filled
        if not whole:
            return
        try:
            self._send(whole)
        except OSError:
            if not self.direct:
                raise
            self._through_cache()  # a file system that opened it so but refuses such writes
            self._send(whole)
        self.view[:self.filled - whole] = self.view[whole:self.filled]
        self.filled, self._sent = self.filled - whole, 0

    def close(self, keep: bool = True) -> None:
        """Writes the tail (`keep`; not for a file being abandoned), then closes the file; once."""
        if self._fd is None:
            return
        try:
            if keep and self.filled:
                self._through_cache()
                self._send(self.filled)
        finally:
            os.close(self._fd)
            # the buffer goes with its last view: a failed write's traceback may still hold one
            self._fd = self.view = self._buffer = None


class Encryptor:
    """Writes an encrypted file as data streams in (one pass: nothing in clear text on disk). The data goes to
    `dest.<random>.part`, renamed to `dest` by `close()`: a file cut short never takes the final name, and two
    writers of one destination (runs of one drop at once) never rename each other's part file. With `digest` (a
    hashlib object), everything written is hashed into it, and its final value sealed into the last chunk. With
    `direct`, written past the page cache (`_Output`): for a file read back, if ever, by a later run."""

    def __init__(self, key: bytes, dest: Path, digest=None, direct: bool = False):
        self._aead = AESGCM(key)
        self.digest = digest
        self._prefix = os.urandom(8)
        self._dest = dest
        self._tmp = dest.with_name(f"{dest.name}.{self._prefix.hex()}{PART_SUFFIX}")
        self._out = _Output(self._tmp, len(MAGIC) + 8 + CHUNK + _TAG, direct)
        self._out.view[:len(MAGIC) + 8] = MAGIC + self._prefix  # written with the first chunk
        self._out.filled = len(MAGIC) + 8
        # One chunk's clear text, reused, and each chunk encrypted straight into the output's buffer: each byte is
        # copied once on its way to the cipher (a buffer grown, then each chunk sliced and copied out of it: 1.8 s
        # of CPU for an 889 MB file, now 0.3 s). The clear text grows to what the file needs, up to a chunk, and
        # only the output buffer's pages used are touched: a file of a few KB never zeroes 8 MiB.
        self._plain, self._filled = bytearray(), 0
        self._index = 0

    def _emit(self, last: bool) -> None:
        start = self._out.filled
        stored = self._out.view[start:start + self._filled + _TAG]
        self._aead.encrypt_into(_nonce(self._prefix, self._index), memoryview(self._plain)[:self._filled],
                                _last(b"" if self.digest is None else self.digest.digest()) if last else b"\x00",
                                stored)
        stored.release()
        self._out.commit(self._filled + _TAG)
        self._index, self._filled = self._index + 1, 0

    def write(self, data) -> None:
        view = memoryview(data).cast("B")
        if self.digest is not None:
            self.digest.update(view)
        while view:
            # A full chunk is written only once more data follows it: the last chunk must carry the last-chunk flag.
            if self._filled == CHUNK:
                self._emit(last=False)
            take = min(CHUNK - self._filled, len(view))
            if self._filled + take > len(self._plain):
                grown = bytearray(min(CHUNK, max(self._filled + take, 2 * len(self._plain))))
                grown[:self._filled] = self._plain[:self._filled]
                self._plain = grown
            self._plain[self._filled:self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]

    def close(self) -> None:
        try:
            self._emit(last=True)
            self._out.close()
        except BaseException:  # a disk that fills at the last chunk leaves no part file and no open file either
            self.abort()
            raise
        os.replace(self._tmp, self._dest)

    def abort(self) -> None:
        self._out.close(keep=False)
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "Encryptor":
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        self.abort() if exc_type else self.close()


def encrypt_file(key: bytes, src: Path, dest: Path) -> None:
    """Encrypt the file src into dest."""
    with src.open("rb") as fin, Encryptor(key, dest) as enc:
        for block in iter(lambda: fin.read(CHUNK), b""):
            enc.write(block)


def encrypt_bytes(key: bytes, data: bytes, dest: Path) -> None:
    """Encrypt bytes held in memory into dest."""
    with Encryptor(key, dest) as enc:
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            enc.write(view[start:start + CHUNK])


class DecryptingReader(io.RawIOBase):
    """A seekable read-only view of an encrypted file's clear text, one chunk decrypted at a time (a zip archive
    is read through it: its central directory sits at the end). `sealed`: the SHA-256 (32 bytes) its last chunk
    must carry, for a file written with one."""

    def __init__(self, key: bytes, path: Path, sealed: bytes = b""):
        self._aead = AESGCM(key)
        self._sealed_digest = sealed
        self._name = path.name
        self._fh = path.open("rb")
        if self._fh.read(len(MAGIC)) != MAGIC:
            self._fh.close()
            raise VaultError(f"{path.name}: not an encrypted staging file")
        self._prefix = self._fh.read(8)
        body = os.fstat(self._fh.fileno()).st_size - len(MAGIC) - 8  # the file opened, whatever is renamed in since
        step = CHUNK + _TAG
        self._chunks = max(1, -(-body // step))
        self.size = body - self._chunks * _TAG
        if self.size < 0:
            self._fh.close()
            raise VaultError(f"{path.name}: cannot be decrypted (cut short)")
        self._pos = 0
        self._stored = bytearray(min(CHUNK + _TAG, body))  # one chunk as stored, reused (a small file: its size)
        # the chunk last decrypted for reads: its clear text, its number and its length
        self._plain, self._cached, self._length = bytearray(min(CHUNK, self.size)), -1, 0
        try:
            self._chunk(self._chunks - 1)  # at once: a file cut short or altered at its end fails here
        except VaultError:
            self._fh.close()
            raise

    def _open_into(self, index: int, out: memoryview) -> memoryview:
        """Decrypt chunk `index` into the start of `out`; returns the part of `out` it filled."""
        self._fh.seek(len(MAGIC) + 8 + index * (CHUNK + _TAG))
        read = self._fh.readinto(self._stored)
        if not _TAG <= read <= len(out) + _TAG:  # cut short or grown since it was opened
            raise VaultError(f"{self._name}: cannot be decrypted (changed while it was read)")
        try:
            self._aead.decrypt_into(_nonce(self._prefix, index), memoryview(self._stored)[:read],
                                    _last(self._sealed_digest) if index == self._chunks - 1 else b"\x00",
                                    out[:read - _TAG])
        except InvalidTag:
            raise VaultError(f"{self._name}: cannot be decrypted (wrong MTSS_STAGING_KEY, or altered)") from None
        return out[:read - _TAG]

    def _chunk(self, index: int) -> memoryview:
        if self._cached != index:
            self._cached = -1  # until it is whole: a chunk that failed is not served
            self._length = len(self._open_into(index, memoryview(self._plain)))
            self._cached = index
        return memoryview(self._plain)[:self._length]

    def decrypt_into(self, out: memoryview):
        """Decrypts the whole file into `out` (`size` bytes), chunk by chunk, in order; yields each chunk's part of
        `out` once it holds the clear text."""
        for index in range(self._chunks):
            yield self._open_into(index, out[index * CHUNK:])

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        if self._pos >= self.size:
            return 0
        index, offset = divmod(self._pos, CHUNK)
        data = self._chunk(index)[offset:offset + len(buffer)]
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()


def decrypt_bytes(key: bytes, path: Path, digest=None, sealed: bytes = b"") -> bytes:
    """The clear text of an encrypted file (`sealed`: the SHA-256 sealed into it, as DecryptingReader takes it).
    With `digest` (a hashlib object), it is also fed every chunk, on a second thread while the next chunk is
    decrypted. Decrypted straight into the bytes object returned (polars reads bytes, not a bytearray)."""
    with DecryptingReader(key, path, sealed) as reader, ThreadPoolExecutor(1) as hasher:
        out, view = _unfilled_bytes(reader.size)
        pending = None
        for part in reader.decrypt_into(view):
            if digest is not None:
                if pending is not None:
                    pending.result()
                pending = hasher.submit(digest.update, part)
        if pending is not None:
            pending.result()
        view.release()
    return out  # only now seen by anyone: filled whole, or dropped with the error that stopped it


_new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
_new_bytes.restype, _new_bytes.argtypes = ctypes.py_object, (ctypes.c_void_p, ctypes.c_ssize_t)
_bytes_buffer = ctypes.pythonapi.PyBytes_AsString
_bytes_buffer.restype, _bytes_buffer.argtypes = ctypes.c_void_p, (ctypes.py_object,)


def _unfilled_bytes(size: int) -> tuple[bytes, memoryview]:
    """A new bytes object of `size` bytes, not yet filled, and a writable view of exactly its buffer: CPython's
    documented way to build one (PyBytes_FromStringAndSize(NULL, size): "the contents are uninitialized"), for
    its caller to fill before anyone else sees it. A bytearray copied into bytes at the end cost a second buffer
    the size of the file, each zeroed or copied page faulted in: in a run with others allocating beside it, the
    two took 3.5 s of each 889 MB file (docs/performance.md)."""
    out = _new_bytes(None, size)
    if not size:
        return out, memoryview(bytearray())  # the shared empty bytes: nothing to fill
    return out, memoryview((ctypes.c_char * size).from_address(_bytes_buffer(out))).cast("B")


def staging_key(env_value: str | None, home: Path) -> bytes:
    """MTSS_STAGING_KEY; for the embedded default only, a key generated once under MTSS_HOME (mode 0600)."""
    if env_value:
        return parse_key(env_value)
    path = home / "staging.key"
    if not path.exists():
        _publish_once(path, new_key())
    return parse_key(path.read_text())


def _publish_once(path: Path, text: str) -> None:
    """`text` written to `path` (mode 0600) unless a file is there already, and never seen half-written: written
    whole under a private name, then linked into place, which never replaces a file. Runs starting at once on a new
    home each make a key; the first linked is the key of all (the others' are removed unused)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    private = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())  # a key lost to a crash after use would leave staged copies unreadable
        try:
            os.link(private, path)
        except FileExistsError:
            pass  # another run linked its key first: that one is the key
    finally:
        private.unlink(missing_ok=True)
