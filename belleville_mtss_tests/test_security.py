"""Encryption at rest, retention, the FERPA review check, secrets in the UI, and SQL built from data."""
import datetime as dt
import os
import shutil
import time
from pathlib import Path

import pytest

from belleville_mtss.defs.resources import resources
from belleville_mtss.lib.config import load_settings
from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
from belleville_mtss.lib.receive.drops import purge_staging, sha256_of
from belleville_mtss.lib.receive.vault import (CHUNK, Encryptor, VaultError, decrypt_bytes, encrypt_file, new_key,
                                               parse_key)
from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import errors, prepare_drop, set_column, warehouse_counts


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 17])
def test_encryption_round_trip_at_chunk_edges(tmp_path, size):
    key = parse_key(new_key())
    plain = tmp_path / "p"
    plain.write_bytes(os.urandom(size))
    encrypt_file(key, plain, tmp_path / "e")
    assert decrypt_bytes(key, tmp_path / "e") == plain.read_bytes()
    # written past the page cache: whole 4 KiB blocks straight out, the tail at close (chunks end off the blocks)
    with Encryptor(key, tmp_path / "d", direct=True) as enc:
        enc.write(plain.read_bytes())
    assert decrypt_bytes(key, tmp_path / "d") == plain.read_bytes()


def _direct_writes_allowed(folder: Path) -> bool:
    try:
        os.close(os.open(folder / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT))
        return True
    except (AttributeError, OSError):
        return False


def _pages_in_memory(path: Path) -> int:
    """The file's pages held in the kernel's page cache (util-linux `fincore`)."""
    import subprocess
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "PAGES", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def test_a_frame_kept_at_rest_is_written_past_the_page_cache(tmp_path):
    """What a run keeps at rest is read back by later runs only (within a run outputs are handed on in memory):
    written through the page cache, each of its bytes took a fresh page of memory on its way to the disk (0.6-2.8
    CPU-seconds a GB on the benchmark machine: docs/performance.md). A staged copy, which the run reads back at
    once, still is. Checked by the pages of each file the kernel holds."""
    import shutil as sh
    import numpy as np
    import polars as pl
    from belleville_mtss.lib.persist import load, save
    if not _direct_writes_allowed(tmp_path):
        pytest.skip("the file system of the test's temporary folder refuses O_DIRECT (Linux's direct I/O)")
    if sh.which("fincore") is None:
        pytest.skip("fincore (util-linux: apt-get install -y util-linux) tells the pages a file holds in memory")
    key = parse_key(new_key())
    frame = pl.DataFrame({"n": np.random.default_rng(7).integers(0, 2 ** 62, 5_000_000)})  # 40 MB, as random
    save(key, {"results": frame}, tmp_path / "at_rest")
    size = (tmp_path / "at_rest").stat().st_size
    assert size > 8 * CHUNK
    assert _pages_in_memory(tmp_path / "at_rest") <= 1  # at most the tail's block, written through the cache
    assert load(key, tmp_path / "at_rest")["results"].equals(frame)
    encrypt_file(key, tmp_path / "at_rest", tmp_path / "staged")  # the same bytes as a staged copy: kept in memory
    assert _pages_in_memory(tmp_path / "staged") >= size // os.sysconf("SC_PAGE_SIZE") // 2


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="Linux's O_DIRECT: elsewhere every file is written "
                    "through the page cache, as the round trips test")
def test_a_file_system_refusing_direct_writes_gets_the_file_whole_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    """Some file systems refuse O_DIRECT when the file is opened, others at the first write: either way the file
    is written whole, through the page cache (faults this machine's file system cannot be made to show, so the two
    calls are made to refuse). A write that fails partway fails with its own error and leaves nothing."""
    import errno
    import fcntl
    from belleville_mtss.lib.receive import vault
    key, data = parse_key(new_key()), os.urandom(3 * CHUNK + 4_099)
    real_open, real_write = os.open, os.write

    def refused_open(path, flags, *args, **kwargs):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args, **kwargs)

    def refused_write(fd, data):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    sent = []

    def refused_after_a_block(fd, data):  # one block sent, then refused: the rest follows it, nothing twice
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            if sent:
                raise OSError(errno.EINVAL, "Invalid argument")
            sent.append(real_write(fd, data[:4096]))
            return sent[0]
        return real_write(fd, data)

    for name, fake in (("open", refused_open), ("write", refused_write), ("write_partly", refused_after_a_block)):
        with monkeypatch.context() as patch:
            patch.setattr(vault.os, name.split("_")[0], fake)
            with vault.Encryptor(key, tmp_path / name, direct=True) as enc:
                enc.write(data)
        assert decrypt_bytes(key, tmp_path / name) == data

    # A write the kernel refuses partway, for real: a limit on the size of the files this process writes (Python
    # ignores the limit's signal, so the write fails with EFBIG). As data comes, or only at the last chunk: the
    # error is the write's own, and neither a part file nor an open file is left.
    import resource
    opened = len(os.listdir("/proc/self/fd"))
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    for direct in (True, False):
        for size, cap in ((len(data), CHUNK + 1_000), (10, 20)):
            resource.setrlimit(resource.RLIMIT_FSIZE, (cap, limit[1]))
            try:
                with pytest.raises(OSError, match="File too large"):
                    with vault.Encryptor(key, tmp_path / "full", direct=direct) as enc:
                        enc.write(data[:size])
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, limit)
            assert not [p for p in tmp_path.iterdir() if p.name.startswith("full")]
    assert len(os.listdir("/proc/self/fd")) == opened


def test_wrong_key_altered_or_cut_short_files_are_refused(tmp_path):
    key = parse_key(new_key())
    plain = tmp_path / "p"
    plain.write_bytes(os.urandom(CHUNK + 100))
    enc = tmp_path / "e"
    encrypt_file(key, plain, enc)
    with pytest.raises(VaultError, match="cannot be decrypted"):
        decrypt_bytes(parse_key(new_key()), enc)
    data = bytearray(enc.read_bytes())
    data[100] ^= 1
    (tmp_path / "altered").write_bytes(bytes(data))
    with pytest.raises(VaultError):
        decrypt_bytes(key, tmp_path / "altered")
    (tmp_path / "cut").write_bytes(enc.read_bytes()[: 16 + CHUNK + 16])  # the last chunk dropped
    with pytest.raises(VaultError):
        decrypt_bytes(key, tmp_path / "cut")
    with pytest.raises(VaultError, match="64 hexadecimal"):
        parse_key("not-a-key")


def test_staging_is_encrypted_with_the_environment_key_and_purged_after_retention(tmp_path):
    key = new_key()
    s = make_settings(tmp_path / "m", MTSS_STAGING_KEY=key)
    prepare_drop(s)
    assert run_drop(s).checks_passed
    staged = s.staging_dir / "belleville" / "2026-11-01"
    assert b"STUDENTS.STUDENT_NUMBER" not in (staged / "students.csv").read_bytes()
    sealed = bytes.fromhex(sha256_of(s.drop_dir / "belleville" / "2026-11-01" / "students.csv"))
    assert b"STUDENTS.STUDENT_NUMBER" in decrypt_bytes(parse_key(key), staged / "students.csv", sealed=sealed)
    with pytest.raises(VaultError):  # the receipt's checksum is sealed into the staged copy: no other opens it
        decrypt_bytes(parse_key(key), staged / "students.csv", sealed=bytes(32))
    assert not (s.home / "staging.key").exists()  # the environment's key, no key file
    assert purge_staging(s.staging_dir, 30, time.time()) == ([], [])
    assert purge_staging(s.staging_dir, 30, time.time() + 31 * 86400) == (["belleville/2026-11-01"], [])
    assert not staged.exists()


def _registry_with(tmp_path: Path, old: str, new: str) -> Path:
    registry = tmp_path / "districts"
    shutil.copytree(PACKAGED_DISTRICTS_DIR, registry)
    path = registry / "belleville.yaml"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    return registry


@pytest.mark.parametrize(("review", "reason_text"), [
    ("null", "no FERPA review"),
    ((dt.date.today() - dt.timedelta(days=400)).isoformat(), "days old"),
])
def test_missing_or_stale_ferpa_review_blocks_the_warehouse(tmp_path, review, reason_text):
    registry = _registry_with(tmp_path, "ferpa_review_on: 2026-11-20", f"ferpa_review_on: {review}")
    s = make_settings(tmp_path / "m", MTSS_DISTRICTS_DIR=str(registry))
    prepare_drop(s)
    report = run_drop(s)
    assert report.checks["ferpa_review_current"] is False
    assert warehouse_counts(s) == {"roster": 0, "results": 0}
    logged = errors(s)
    row = logged.filter(logged["Reason"] == "ferpa_review").row(0, named=True)
    assert reason_text in row["Message"] and row["DistrictId"] == 107873


def test_secrets_are_shown_as_environment_variables_not_values(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/w.db"
    monkeypatch.setenv("MTSS_WAREHOUSE_URL", url)
    monkeypatch.setenv("MTSS_STAGING_KEY", new_key())
    configured = resources(load_settings())
    # what the UI shows of the resources' configuration
    text = repr({name: r._get_non_default_public_field_values() for name, r in configured.items()})
    assert os.environ["MTSS_STAGING_KEY"] not in text and url not in text
    assert "MTSS_WAREHOUSE_URL" in text and "MTSS_STAGING_KEY" in text
    with configured["warehouse"].process_config_and_initialize_cm() as resolved:  # resolved at run time
        assert resolved.url == url


def test_sql_injection_in_file_content_is_only_data(settings):
    drop = prepare_drop(settings)
    hostile = "Belleville'); DROP TABLE StudentRoster;--"
    set_column(drop / "SR.csv", "DistrictName", hostile)
    report = run_drop(settings)
    assert report.checks["district_names_match_registry"] is False
    logged = errors(settings)
    assert any(hostile in m for m in logged["Message"].to_list())  # stored as a bound value
    assert warehouse_counts(settings) == {"roster": 0, "results": 0}  # the tables are still there


def test_no_sql_text_is_built_from_values():
    """Only SQLAlchemy expressions with bound parameters; the few text() statements use our own constants."""
    root = Path(__file__).resolve().parent.parent / "belleville_mtss"
    offenders = []
    for path in root.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "text(f" in line and "CREATE SCHEMA" not in line:
                offenders.append(f"{path.name}:{n}")
            if ".execute(f" in line or 'execute("' in line and "%" in line:
                offenders.append(f"{path.name}:{n}")
    assert offenders == []


def test_any_run_of_writes_reads_back_whole_and_any_cut_is_refused():
    """The encryptor takes writes of any size and type (a pickler writes small pieces and whole buffers); the
    clear text reads back whole, by decrypt_bytes and by seeks and reads; a copy cut short anywhere is refused,
    and one that grows or is cut while it is read gives its bytes as opened or is refused, never another error.
    Chunks of 32 bytes, so that a few hundred bytes cross many chunk edges."""
    import tempfile
    from hypothesis import given, settings, strategies as st
    from belleville_mtss.lib.receive import vault

    @given(data=st.binary(max_size=300), sizes=st.lists(st.integers(0, 80), max_size=10),
           windows=st.lists(st.tuples(st.integers(0, 320), st.integers(0, 90)), max_size=6), cut=st.integers(0, 400))
    @settings(max_examples=200, deadline=None)
    def check(data, sizes, windows, cut):
        key = parse_key(new_key())
        with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
            patch.setattr(vault, "CHUNK", 32)
            dest = Path(folder) / "e"
            with vault.Encryptor(key, dest) as enc:
                start = 0
                for i, size in enumerate(sizes + [len(data)]):
                    piece = data[start:start + size]
                    enc.write([bytes, bytearray, memoryview][i % 3](piece))
                    start += len(piece)
            assert vault.decrypt_bytes(key, dest) == data
            with vault.DecryptingReader(key, dest) as reader:
                for at, length in windows:
                    reader.seek(at)
                    got = b""  # a raw read may stop at a chunk's end
                    while len(got) < length and (piece := reader.read(length - len(got))):
                        got += piece
                    assert got == data[at:at + length]
            sealed = dest.read_bytes()
            with vault.DecryptingReader(key, dest) as reader:  # opened, then written to: its bytes or refused
                with dest.open("ab") as more:
                    more.write(b"x" * (cut % 40 + 1))
                out = bytearray(reader.size)
                try:
                    list(reader.decrypt_into(memoryview(out)))
                    assert out == data
                except VaultError:
                    pass
            dest.write_bytes(sealed)
            if cut < len(sealed):
                with vault.DecryptingReader(key, dest) as reader:  # opened whole, then cut short while read
                    dest.write_bytes(sealed[:cut])
                    with pytest.raises(VaultError):
                        list(reader.decrypt_into(memoryview(bytearray(reader.size))))
                with pytest.raises(VaultError):
                    vault.decrypt_bytes(key, dest)

    check()


def test_a_file_replaced_as_it_is_opened_is_read_as_the_file_opened(tmp_path, monkeypatch):
    """Another run of the drop renames its frame into place just after a reader opened the older one (a race of
    microseconds, forced here): the reader reads the file it opened, whole. It took that file's size from the
    name, the newer file's, and refused the older one as altered or under a wrong key."""
    from belleville_mtss.lib.receive import vault
    key, older, newer = parse_key(new_key()), os.urandom(CHUNK + 5), os.urandom(100)
    path, incoming = tmp_path / "frame", tmp_path / "frame.incoming"
    for dest, data in ((path, older), (incoming, newer)):
        with Encryptor(key, dest) as enc:
            enc.write(data)
    real_open = Path.open

    def opened_then_replaced(self, *args, **kwargs):
        handle = real_open(self, *args, **kwargs)
        if self == path and incoming.exists():
            os.rename(incoming, path)
        return handle

    monkeypatch.setattr(Path, "open", opened_then_replaced)
    with vault.DecryptingReader(key, path) as reader:
        out = bytearray(reader.size)
        list(reader.decrypt_into(memoryview(out)))
    assert out == older and vault.decrypt_bytes(key, path) == newer


def test_any_run_of_writes_past_the_page_cache_reads_back_whole():
    """Written direct, whole 4 KiB blocks go out as chunks fill and the rest waits in the buffer: any sizes of
    writes, across many chunk and block edges (chunks of 3,000 bytes: none ends on a block's edge), read back
    whole."""
    import tempfile
    from hypothesis import given, settings, strategies as st
    from belleville_mtss.lib.receive import vault

    @given(size=st.integers(0, 40_000), cuts=st.lists(st.integers(0, 40_000), max_size=12))
    @settings(max_examples=60, deadline=None)
    def check(size, cuts):
        key, data = parse_key(new_key()), os.urandom(size)
        with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
            patch.setattr(vault, "CHUNK", 3_000)
            dest = Path(folder) / "e"
            with vault.Encryptor(key, dest, direct=True) as enc:
                edges = sorted({0, size, *(c for c in cuts if c < size)})
                for start, end in zip(edges, edges[1:]):
                    enc.write(data[start:end])
            assert vault.decrypt_bytes(key, dest) == data

    check()


def test_a_small_file_is_encrypted_and_read_without_chunk_sized_buffers(tmp_path):
    """A run keeps dozens of small files at rest: buffers the size of a 4 MiB chunk, zeroed for each, would cost
    a small drop's run more than its data."""
    import tracemalloc
    from belleville_mtss.lib.receive.vault import encrypt_bytes
    key, data = parse_key(new_key()), os.urandom(20_000)
    tracemalloc.start()
    try:
        encrypt_bytes(key, data, tmp_path / "e")
        assert decrypt_bytes(key, tmp_path / "e") == data
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < CHUNK // 8  # the file's own size, a few times over: not a chunk's


def test_a_file_is_decrypted_into_the_bytes_returned_one_buffer_its_size(tmp_path):
    """Decrypted straight into the bytes object it returns: one buffer the size of the file, not a bytearray
    copied into a second (each page of both faulted in: seconds per file in a run at 1,000,000 students). A file
    of one byte or none does not touch the bytes objects Python shares (b"" and each single byte)."""
    import tracemalloc
    key, data = parse_key(new_key()), os.urandom(8 * CHUNK + 5)
    plain = tmp_path / "p"
    plain.write_bytes(data)
    encrypt_file(key, plain, tmp_path / "e")
    tracemalloc.start()
    try:
        got = decrypt_bytes(key, tmp_path / "e")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert type(got) is bytes and got == data
    assert peak < 1.5 * len(data)  # the file once, and a chunk or two: two copies would be twice its size
    for small in (b"", b"Z"):
        (tmp_path / "s").write_bytes(small)
        encrypt_file(key, tmp_path / "s", tmp_path / "se")
        assert decrypt_bytes(key, tmp_path / "se") == small
    assert bytes(1) == b"\x00" and bytes([0])[0] == 0 and len(b"") == 0 and bytes([90]) == b"Z"


def test_two_writers_of_one_destination_both_finish_and_leave_one_whole_file(tmp_path):
    key, dest = parse_key(new_key()), tmp_path / "kept"
    first, second = Encryptor(key, dest), Encryptor(key, dest)  # two runs of one drop keep one asset at once
    first.write(b"a" * (CHUNK + 5))
    second.write(b"b" * 7)
    second.close()
    first.close()  # a shared part file would be gone by now: FileNotFoundError
    assert decrypt_bytes(key, dest) == b"a" * (CHUNK + 5)
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]


def test_frames_between_assets_are_encrypted_at_rest(tmp_path):
    from belleville_mtss.lib.persist import load

    key = new_key()
    s = make_settings(tmp_path / "m", MTSS_STAGING_KEY=key)
    drop = prepare_drop(s)
    assert run_drop(s).checks_passed
    stored = sorted(p for p in s.storage_dir.rglob("*") if p.is_file())
    assert {p.relative_to(s.storage_dir).parts[0] for p in stored} >= {"student_roster", "validated_powerschool_students"}
    email = (drop / "students.csv").read_text().splitlines()[1].split(",")[-1].strip().lower().encode()
    for path in stored:
        assert email not in path.read_bytes().lower(), path
    roster = load(parse_key(key), s.storage_dir / "student_roster" / "belleville" / "2026-11-01")
    assert roster.height == 300


def test_frames_are_handed_over_in_memory_within_a_run_and_read_back_in_a_later_run(settings, monkeypatch, new_instance):
    import dagster as dg

    import belleville_mtss.defs.io as io_manager
    from belleville_mtss.definitions import build_definitions

    prepare_drop(settings)

    def from_disk(*_args):
        raise AssertionError("a frame was read back from disk within the run that made it")

    monkeypatch.setattr(io_manager, "load", from_disk)
    assert run_drop(settings).checks_passed
    monkeypatch.undo()
    counts = warehouse_counts(settings)
    # a later run of one warehouse asset alone reads its input from the encrypted store
    with new_instance() as instance:
        instance.add_dynamic_partitions("drops", ["belleville/2026-11-01"])
        job = build_definitions(settings).resolve_job_def("drop_job")
        result = job.execute_in_process(instance=instance, partition_key="belleville/2026-11-01",
                                        asset_selection=[dg.AssetKey("dm_student_roster")])
    assert result.success
    assert result.asset_materializations_for_node("warehouse_load")[0].metadata["rows_written"].value == 300
    assert warehouse_counts(settings) == counts


def test_a_later_run_loads_validated_frames_from_the_store_and_never_reads_a_file_again(settings, monkeypatch, new_instance):
    import dagster as dg

    import belleville_mtss.lib.read.ingest as ingest
    from belleville_mtss.definitions import build_definitions

    prepare_drop(settings)
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).checks_passed
        identity = instance.get_latest_materialization_event(dg.AssetKey("student_identity_map"))
        linked = identity.asset_materialization.metadata["assessment_link/linked_rows"].value
        reads = []
        real = ingest.read_staged
        monkeypatch.setattr(ingest, "read_staged", lambda *a, **k: reads.append(a[1].name) or real(*a, **k))
        # the identity map alone: its inputs are the validated frames of every file, loaded from the store
        job = build_definitions(settings).resolve_job_def("drop_job")
        later = job.execute_in_process(instance=instance, partition_key="belleville/2026-11-01",
                                       asset_selection=[dg.AssetKey("student_identity_map")])
        assert later.success
        again = later.asset_materializations_for_node("student_identity_map")[0]
        assert again.metadata["assessment_link/linked_rows"].value == linked > 200
        assert reads == []  # no staged file decrypted, read or validated again
        # the same counter sees a file asset's own read (it would catch a store that kept recipes)
        job.execute_in_process(instance=instance, partition_key="belleville/2026-11-01",
                               asset_selection=[dg.AssetKey("star_reading")])
        assert reads == ["SR.csv"]


@pytest.mark.parametrize("kept", ["assessment_results", "student_roster"])
def test_a_write_at_rest_that_fails_late_fails_the_run_and_leaves_no_older_frame_in_its_place(settings, monkeypatch,
                                                                                           new_instance, kept):
    """The writes at rest go on behind the run; one that fails after the last step it could fail (the disk full as
    the run ends: a fault not caused for real here) fails the run's last step, whatever the writer's timing, and
    removes the frame an earlier run kept there: a later run reading it finds none rather than an older one."""
    import errno
    import time

    import belleville_mtss.defs.io as io_manager

    prepare_drop(settings)
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).outcome == "loaded"
    at_rest = settings.storage_dir / kept / "belleville" / "2026-11-01"
    assert at_rest.exists()
    real = io_manager.save

    def late_and_full(key, obj, path, *made):
        if path == at_rest:
            time.sleep(1.5)  # after every later step has asked for the writes done so far
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(key, obj, path, *made)

    monkeypatch.setattr(io_manager, "save", late_and_full)
    with new_instance() as instance:
        report = run_drop(settings, instance=instance)
    # the steps that asked once the write had failed (the last steps, on time), each naming what was not kept
    assert report.outcome == "failed" and report.failures and report.written == {}  # the warehouse untouched
    assert all(f"keeping {kept} at rest failed: OSError(28, 'No space left" in f for f in report.failures.values())
    assert not at_rest.exists()


def test_a_write_that_fails_late_removes_no_frame_another_run_kept_meanwhile(settings, monkeypatch, new_instance):
    """Two runs of one drop at once (one from the UI beside the sensor's): this run's write of a frame fails late (a
    full disk: a fault not caused for real here) after the other run has kept its own frame at that place. This run
    fails; the other's frame stays, as its run recorded it."""
    import errno

    import belleville_mtss.defs.io as io_manager

    prepare_drop(settings)
    at_rest = settings.storage_dir / "validated_star_reading" / "belleville" / "2026-11-01"
    real = io_manager.save

    def kept_by_another_then_full(key, obj, path, *made):
        if path == at_rest:
            at_rest.write_bytes(b"the other run's frame")  # its write ended while this one went on
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(key, obj, path, *made)

    monkeypatch.setattr(io_manager, "save", kept_by_another_then_full)
    with new_instance() as instance:
        report = run_drop(settings, instance=instance)
    assert report.outcome == "failed" and report.written == {}
    assert at_rest.read_bytes() == b"the other run's frame"


def test_no_older_frame_is_in_place_once_an_output_is_recorded_and_its_write_goes_on(settings, monkeypatch,
                                                                                    new_instance):
    """A run killed after an output's materialization is recorded, while its write at rest goes on behind the run,
    leaves no frame an earlier run kept there for a later run to load as this run's: the window is watched from the
    writer itself (a kill is not made here: what it would leave is what is on disk at that moment). A later run of
    a step reading that output alone then fails, saying what to materialize again."""
    import dagster as dg

    import belleville_mtss.defs.io as io_manager
    from belleville_mtss.definitions import build_definitions

    prepare_drop(settings)
    kept, drop = "validated_star_reading", "belleville/2026-11-01"  # read by later steps: no step waits for it
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).outcome == "loaded"
        first = instance.get_latest_materialization_event(dg.AssetKey(kept)).run_id
        at_rest = settings.storage_dir / kept / drop
        assert at_rest.exists()
        real, seen = io_manager.save, []

        def once_recorded(key, obj, path, *made):
            if path == at_rest:
                deadline = time.monotonic() + 60
                while instance.get_latest_materialization_event(dg.AssetKey(kept)).run_id == first:
                    assert time.monotonic() < deadline, "the output's materialization was never recorded"
                    time.sleep(0.02)
                seen.append(path.exists())  # the moment a kill would leave
            return real(key, obj, path, *made)

        monkeypatch.setattr(io_manager, "save", once_recorded)
        assert run_drop(settings, instance=instance).outcome == "loaded"
        assert seen == [False] and at_rest.exists()

        at_rest.unlink()  # as a killed run would have left it
        job = build_definitions(settings).resolve_job_def("drop_job")
        later = job.execute_in_process(instance=instance, partition_key=drop, raise_on_error=False,
                                       asset_selection=[dg.AssetKey("student_identity_map")])
    assert not later.success
    failure = next(e for e in later.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    # the identity map's first input, the crosswalk kept at rest, was made from the frame no longer there
    assert (f"district_crosswalk of {drop} was made from {kept} as it was then, and {kept} has been made again since "
            f"with other contents, or removed or altered: materialize the drop again") in str(
        failure.step_failure_data.error)


def test_every_output_is_kept_at_rest_halted_files_included(settings, new_instance):
    """Every value a step reads is kept for later runs, a halted file's too. A file asset is a record: its metadata
    says what was read, and its rows are kept once, in the staged copy, never again beside it."""
    import dagster as dg

    drop = prepare_drop(settings)
    (drop / "SM.csv").write_bytes((drop / "SM.csv").read_bytes()[:-300])  # halted: no frame, still an output
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).outcome == "partial"
        recorded = instance.get_latest_materialization_event(dg.AssetKey("star_reading")).asset_materialization
    stored = {p.parent.parent.name for p in settings.storage_dir.rglob("2026-11-01")}
    assert {"validated_star_math", "validated_star_reading", "validated_powerschool_students", "student_identity_map",
            "assessment_results"} <= stored
    assert not {"star_math", "star_reading", "powerschool_students"} & stored
    sr = drop / "SR.csv"
    assert recorded.metadata["sha256"].value == sha256_of(sr) and recorded.metadata["bytes"].value == sr.stat().st_size


def test_runs_starting_at_once_on_a_new_home_share_one_generated_staging_key(tmp_path):
    """The embedded default's staging key is generated by the first run that needs it. Runs of several districts
    starting at once on a new home (the daemon's first sensor tick) all get that one key, none an error or a key
    read half-written: a clean-clone CI run at d3eafa6 failed a run's receipt with FileExistsError here."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from belleville_mtss.lib.receive.vault import staging_key

    runs = 16
    for attempt in range(40):
        home, start = tmp_path / f"home-{attempt}", Barrier(runs)

        def first_run(_):
            start.wait()
            return staging_key(None, home)

        with ThreadPoolExecutor(runs) as pool:
            keys = list(pool.map(first_run, range(runs)))  # an error in any run is raised here
        assert len(set(keys)) == 1 and len(keys[0]) == 32
        assert [p.name for p in home.iterdir()] == ["staging.key"]  # nothing else left beside it
        assert (home / "staging.key").stat().st_mode & 0o777 == 0o600
