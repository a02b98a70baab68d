"""Drops on an SFTP server (paramiko): key authentication, host key checked against a known-hosts file
(an unknown or changed key is refused, never added), timeouts well under the 60 s sensor deadline, and
retries with backoff for transient network errors only.

Errors are sorted in two: SftpTransient (the server is down or the network hiccupped: try again later) and
SftpFatal (authentication, host key, configuration: a person must act; never read as "no new files").
"""
from __future__ import annotations

import socket
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .drops import (UNLISTABLE, Drop, DropRefused, RemoteFile, drops_from_listing, list_drop_folder, list_each,
                    unlistable)
from .untrusted import escape

if TYPE_CHECKING:
    import paramiko

CONNECT_TIMEOUT = 8.0
# A server that answers nothing for this long (an SFTP subsystem stuck on hung storage, a path that swallows
# packets) is down: the session's every read, its first (the SFTP version) included, gives up after it
READ_TIMEOUT = 20.0
KEEPALIVE_S = 10
ATTEMPTS = 3
BACKOFF = (1.0, 3.0)


class SftpTransient(Exception):
    """Worth retrying later: connection refused or reset, timeout, server banner not read."""


class SftpFatal(Exception):
    """Needs a person: authentication refused, host key unknown or changed, bad configuration."""


@dataclass(frozen=True)
class SftpConfig:
    host: str
    port: int
    user: str
    key_path: str
    known_hosts: str
    root: str = "."

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def _connect(cfg: SftpConfig) -> paramiko.SSHClient:
    import paramiko  # here, not at import: a run on a local drop folder never needs it (0.07 s of each start)
    for path, what in ((cfg.key_path, "MTSS_SFTP_KEY_PATH"), (cfg.known_hosts, "MTSS_SFTP_KNOWN_HOSTS")):
        if not path or not Path(path).is_file():
            raise SftpFatal(f"{what} does not name a readable file")
    client = paramiko.SSHClient()
    client.load_host_keys(cfg.known_hosts)  # only this file: never the user's, never added to
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            cfg.host, port=cfg.port, username=cfg.user, key_filename=cfg.key_path, timeout=CONNECT_TIMEOUT,
            banner_timeout=CONNECT_TIMEOUT, auth_timeout=CONNECT_TIMEOUT, channel_timeout=CONNECT_TIMEOUT,
            look_for_keys=False, allow_agent=False,
        )
    except paramiko.BadHostKeyException:
        client.close()
        raise SftpFatal(f"{cfg.where}: the server's host key does not match MTSS_SFTP_KNOWN_HOSTS "
                        "(changed key: refused)") from None
    except paramiko.AuthenticationException:
        client.close()
        raise SftpFatal(f"{cfg.where}: authentication refused for the key in MTSS_SFTP_KEY_PATH") from None
    except paramiko.SSHException as exc:
        client.close()
        if "known_hosts" in str(exc) or "not found in" in str(exc):
            raise SftpFatal(f"{cfg.where}: the server's host key is not in MTSS_SFTP_KNOWN_HOSTS (refused)") from None
        if isinstance(exc, paramiko.ssh_exception.PasswordRequiredException) or "private key" in str(exc).lower():
            raise SftpFatal(f"{cfg.where}: the key in MTSS_SFTP_KEY_PATH cannot be used") from None
        raise SftpTransient(f"{cfg.where}: {exc.__class__.__name__}: {exc}") from None
    except (OSError, EOFError, socket.timeout) as exc:
        client.close()
        raise SftpTransient(f"{cfg.where}: {exc.__class__.__name__}: {exc}") from None
    return client


@contextmanager
def session(cfg: SftpConfig, attempts: int = ATTEMPTS, sleep=time.sleep):
    """An SFTP session; transient failures retried with backoff, fatal ones raised at once."""
    import paramiko
    last: SftpTransient | None = None
    for attempt in range(attempts):
        try:
            client = _connect(cfg)
            break
        except SftpTransient as exc:
            last = exc
            if attempt < attempts - 1:
                sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
    else:
        raise last  # type: ignore[misc]
    try:
        # the channel opened and bounded here, before the SFTP version is read: `open_sftp` reads it on a channel
        # without a timeout, and a server that went quiet there held the sensor's tick, or a run, for good
        transport = client.get_transport()
        transport.set_keepalive(KEEPALIVE_S)
        channel = transport.open_session(timeout=CONNECT_TIMEOUT)
        channel.settimeout(READ_TIMEOUT)
        channel.invoke_subsystem("sftp")
        sftp = paramiko.SFTPClient(channel)
        yield sftp
    except (OSError, EOFError, paramiko.SSHException) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError)):
            raise
        raise SftpTransient(f"{cfg.where}: {exc.__class__.__name__}: {exc}") from None
    finally:
        client.close()


def _entry(a: paramiko.SFTPAttributes) -> RemoteFile:
    # Directory listings carry lstat attributes: a symbolic link shows as a link, never as its target.
    return RemoteFile(a.filename, a.st_size or 0, int(a.st_mtime or 0), stat.S_ISREG(a.st_mode or 0))


class SftpDropSource:
    def __init__(self, cfg: SftpConfig, attempts: int = ATTEMPTS):
        self.cfg = cfg
        self.attempts = attempts

    def describe(self) -> str:
        return f"sftp://{self.cfg.where}{self.cfg.root}"

    def _dir(self, folder: str) -> str:
        return str(PurePosixPath(self.cfg.root) / folder)

    def list_drops(self, district: str, folder: str) -> list[Drop]:
        with session(self.cfg, self.attempts) as sftp:
            return self._list(sftp, district, folder)

    def list_districts(self, folders: dict[str, str]) -> tuple[list[Drop], dict[str, DropRefused]]:
        """Every district in one session: one key exchange and authentication per tick, not one per district."""
        with session(self.cfg, self.attempts) as sftp:
            return list_each(lambda district, folder: self._list(sftp, district, folder), folders)

    def _list(self, sftp: paramiko.SFTPClient, district: str, folder: str) -> list[Drop]:
        base = self._dir(folder)
        try:
            if not stat.S_ISDIR(sftp.lstat(base).st_mode or 0):
                raise DropRefused("not_a_regular_file", f"the drop folder {escape(folder)} is a link or not a folder")
            top = sftp.listdir_attr(base)
        except FileNotFoundError:
            return []
        except PermissionError:  # this district's folder alone: the others are still listed
            raise DropRefused(UNLISTABLE, unlistable(folder)) from None
        entries: dict[str, list[RemoteFile] | RemoteFile] = {}
        for a in top:
            if stat.S_ISDIR(a.st_mode or 0):
                list_drop_folder(entries, a.filename,
                                 lambda: [_entry(i) for i in sftp.listdir_attr(f"{base}/{a.filename}")])
            else:
                entries[a.filename] = _entry(a)
        return drops_from_listing(district, entries)

    def stamp(self, folder: str, drop: Drop, file: RemoteFile) -> None:
        """None: what an SFTP server reports (size, mtime to the second) a sender can keep through a rewrite."""
        return None

    @contextmanager
    def open(self, folder: str, drop: Drop, file: RemoteFile):
        remote = f"{self._dir(folder)}/{drop.name}/{file.name}" if drop.kind == "folder" else \
            f"{self._dir(folder)}/{file.name}"
        with session(self.cfg, self.attempts) as sftp:
            if not stat.S_ISREG(sftp.lstat(remote).st_mode or 0):
                raise DropRefused("not_a_regular_file", f"{escape(file.name)} is not a regular file", file.name)
            with sftp.open(remote, "rb") as fh:
                if not stat.S_ISREG(fh.stat().st_mode or 0):
                    raise DropRefused("not_a_regular_file", f"{escape(file.name)} is not a regular file", file.name)
                fh.prefetch(file.size)  # pipelined reads: a large file streams at link speed
                yield fh
