"""Encryption at rest for staged copies of received files (AES-256-GCM from the `cryptography` package).

Files are encrypted in 4 MiB chunks (the STREAM construction): each chunk's nonce is the file's random prefix plus
the chunk number, and its associated data says whether it is the last chunk, so a chunk cannot be reordered,
dropped or appended without decryption failing. The key comes from MTSS_STAGING_KEY (64 hex characters).
"""
from __future__ import annotations

import io
import os
import secrets
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"MTSSENC1"
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


def encrypt_file(key: bytes, src: Path, dest: Path) -> None:
    """Encrypt the file src into dest."""
    with src.open("rb") as fin:
        _encrypt_stream(key, fin, src.stat().st_size, dest)


def encrypt_bytes(key: bytes, data: bytes, dest: Path) -> None:
    """Encrypt bytes held in memory into dest."""
    _encrypt_stream(key, io.BytesIO(data), len(data), dest)


def _encrypt_stream(key: bytes, fin, size: int, dest: Path) -> None:
    # dest is written to a temporary name, then renamed: never half-written
    aead = AESGCM(key)
    prefix = os.urandom(8)
    tmp = dest.with_name(dest.name + ".part")
    with tmp.open("wb") as fout:
        fout.write(MAGIC + prefix)
        index, done = 0, 0
        while True:
            chunk = fin.read(CHUNK)
            done += len(chunk)
            last = done >= size
            fout.write(aead.encrypt(_nonce(prefix, index), chunk, b"\x01" if last else b"\x00"))
            index += 1
            if last:
                break
    os.replace(tmp, dest)


def decrypt_bytes(key: bytes, path: Path) -> bytes:
    aead = AESGCM(key)
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise VaultError(f"{path.name}: not an encrypted staging file")
    prefix, body = data[8:16], memoryview(data)[16:]
    out, index, pos, step = bytearray(), 0, 0, CHUNK + _TAG
    while True:
        piece = body[pos:pos + step]
        last = pos + step >= len(body)
        try:
            out += aead.decrypt(_nonce(prefix, index), bytes(piece), b"\x01" if last else b"\x00")
        except InvalidTag:
            raise VaultError(f"{path.name}: cannot be decrypted (wrong MTSS_STAGING_KEY, or altered)") from None
        pos += step
        index += 1
        if last:
            return bytes(out)


def staging_key(env_value: str | None, home: Path) -> bytes:
    """MTSS_STAGING_KEY; for the embedded default only, a key generated once under MTSS_HOME (mode 0600)."""
    if env_value:
        return parse_key(env_value)
    path = home / "staging.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_key())
    return parse_key(path.read_text())
