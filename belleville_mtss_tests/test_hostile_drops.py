"""A hostile sender's corpus: drop names, links, zips and contents that try to read, write or delete outside the
drop. Each case asserts the refusal and its error row (stage, reason, file, district, timestamp, no student
data), the exit code and one-line reason, and that nothing outside the drop changed: every file under MTSS_HOME
and in a sibling folder is snapshotted before and after (the warehouse file aside: it gains the error row)."""
from __future__ import annotations

import fcntl
import os
import re
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from belleville_mtss.cli import main
from belleville_mtss.definitions import build_definitions
from belleville_mtss.lib.read.csvfile import FileRejected, read_text_csv
from belleville_mtss.lib.receive.drops import RECEIVING_PREFIX, purge_staging, purge_storage, remove_orphans
from belleville_mtss.lib.receive.vault import staging_key
from belleville_mtss.lib.load.warehouse import make_engine, read_table, student_roster
from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import (RIVERTON, SMALL, add_riverton, errors, prepare_drop, set_column, snapshot, tick,
                      two_district_registry, warehouse_counts)

BELLEVILLE = 107873
GOOD = "belleville/2026-11-01"
STUDENT_NUMBER = re.compile(r"\b2[1-9]\d{4}\b")  # the sample's student numbers start at 210001


@pytest.fixture
def world(tmp_path, loaded_home):
    """A home with one drop already loaded (its staging and stored frames must survive every attack), and a
    sibling folder outside MTSS_HOME holding a file an attack would aim at."""
    settings = loaded_home(tmp_path / "home")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("must never change\n")
    return settings, outside


def sample_files(settings) -> Path:
    return settings.drop_dir / "belleville" / "2026-11-01"


def receive_rows(settings) -> pl.DataFrame:
    logged = errors(settings)
    return logged.filter(pl.col("Stage") == "receive")


def assert_one_refusal(settings, reason: str, file_name: str | None = None) -> dict:
    rows = receive_rows(settings)
    assert rows.height == 1, rows.to_dicts()
    row = rows.row(0, named=True)
    assert (row["Stage"], row["Reason"], row["DistrictId"]) == ("receive", reason, BELLEVILLE)
    assert row["OccurredAt"] is not None
    if file_name is not None:
        assert row["FileName"] == file_name
    assert "@" not in row["Message"] and not STUDENT_NUMBER.search(row["Message"]), row["Message"]
    return row


def assert_untouched(before: dict, after: dict, drop_key: str | None = None) -> None:
    """Nothing changed or vanished; new files only in the refused drop's own stored frames (the ClassLink and
    AccountInfo snapshots of its run), never in staging."""
    assert {k: v for k, v in before.items() if after.get(k) != v} == {}
    new = set(after) - set(before)
    allowed = "/storage/" if drop_key else None
    assert all(allowed and allowed in p and p.endswith(drop_key) for p in new), sorted(new)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def copy_sample(settings, name: str, marker: bool = True) -> Path:
    dest = settings.drop_dir / "belleville" / name
    dest.mkdir(parents=True)
    for f in sample_files(settings).glob("*.csv"):
        (dest / f.name).write_bytes(f.read_bytes())
    if marker:
        (dest / "drop.done").write_text("")
    return dest


# ---- names ------------------------------------------------------------------------------------------------------

def test_dotted_zip_names_never_become_partitions_and_delete_nothing(world, new_instance):
    settings, outside = world
    folder = settings.drop_dir / "belleville"
    for name in ("...zip", "..zip"):
        with zipfile.ZipFile(folder / name, "w") as zf:
            zf.writestr("SR.csv", (sample_files(settings) / "SR.csv").read_bytes())
        (folder / f"{name}.done").write_text("")
    before = snapshot(settings.home, outside)
    with new_instance() as instance:
        result = tick(settings, instance)
        keys = [r.partition_key for r in result.run_requests] if isinstance(result, dg.SensorResult) else []
        assert all(".." not in k and not k.endswith("/.") for k in keys)
        refused = receive_rows(settings)
        assert sorted(refused["FileName"]) == ["...zip", "..zip"]
        assert set(refused["Reason"]) == {"bad_drop_name"} and set(refused["DistrictId"]) == {BELLEVILLE}
        again = tick(settings, instance, result.cursor)  # logged once, not at every tick
        assert receive_rows(settings).height == 2
        assert ".." not in str(getattr(again, "dynamic_partitions_requests", ""))
    assert_untouched(before, snapshot(settings.home, outside))
    assert (settings.staging_dir / "belleville" / "2026-11-01" / "manifest.json").exists()


def test_drops_named_after_an_address_are_refused_without_it_and_stop_no_district(tmp_path, new_instance):
    """A folder named after its sender's address is a refused name; the refusal quoted the name, the error log
    refuses any message with an "@" in it, and the tick failed, for every district, at every tick. Now the address is
    shown as <account> (in the message and the drop's id), each such drop is logged once, and the other drops run."""
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(two_district_registry(tmp_path)))
    prepare_drop(settings)
    add_riverton(settings)
    for drop in ("belleville/2026-11-01", f"riverton/{RIVERTON.drop_name}", "belleville/jsmith@belleville.example",
                 "belleville/mary@belleville.example"):
        (settings.drop_dir / drop).mkdir(parents=True, exist_ok=True)
        (settings.drop_dir / drop / "drop.done").touch()
        (settings.drop_dir / drop / "notes.txt").touch()
    with new_instance() as instance:
        result = tick(settings, instance)
        assert sorted(r.partition_key for r in result.run_requests) == [
            "belleville/2026-11-01", f"riverton/{RIVERTON.drop_name}"]
        refused = receive_rows(settings)
        assert refused["Reason"].to_list() == ["bad_drop_name"] * 2
        assert not any("@" in str(v) for row in refused.iter_rows() for v in row), refused.to_dicts()
        assert set(refused["DropId"]) == {"'belleville/<account>'"}
        assert "drop name '<account>' is not allowed" in refused["Message"][0]
        tick(settings, instance, result.cursor)
    assert receive_rows(settings).height == 2  # each logged once, two apart though shown alike


def test_a_ui_launched_run_of_a_dotted_partition_deletes_nothing(world, new_instance):
    """What the old sensor made of `...zip`: a partition `belleville/..`, launched from the UI."""
    settings, outside = world
    before = snapshot(settings.home, outside)
    with new_instance() as instance:
        instance.add_dynamic_partitions("drops", ["belleville/.."])
        job = build_definitions(settings).resolve_job_def("drop_job")
        result = job.execute_in_process(instance=instance, partition_key="belleville/..", raise_on_error=False)
    assert not result.success
    row = assert_one_refusal(settings, "bad_drop_name")
    assert row["DropId"] == "'belleville/..'"
    assert_untouched(before, snapshot(settings.home, outside))


@pytest.mark.parametrize("key", [
    "belleville/../../../../{victim}", "belleville/..", "belleville/.hidden", "belleville/a/b", "belleville/x\n",
    "belleville/" + "a" * 101, "belleville/2026-11-01-\u00e9", "belleville/-rf", "belleville/", "belleville/x.",
])
def test_run_refuses_a_drop_key_that_is_not_a_name(world, capsys, monkeypatch, key):
    settings, outside = world
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    victim = outside / "victim.txt"
    key = key.format(victim=os.path.relpath(victim, settings.staging_dir / "belleville"))
    before = snapshot(settings.home, outside)
    code, out, err = cli(capsys, "run", key)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "error: refused:" in err
    if key.endswith("\n"):
        assert "\\n" in err  # shown escaped
    row = assert_one_refusal(settings, "bad_drop_name")
    assert row["DropId"].startswith("'belleville/")
    assert victim.read_text() == "must never change\n"
    assert_untouched(before, snapshot(settings.home, outside))


def test_two_spellings_of_one_drop_are_one_drop(world, capsys, monkeypatch, new_instance):
    settings, _outside = world
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    copy_sample(settings, "Mixed-Case")
    with new_instance() as instance:
        result = tick(settings, instance)
        assert [r.partition_key for r in result.run_requests] == [GOOD, "belleville/mixed-case"]
    for spelling in ("belleville/MIXED-case", "Belleville/mixed-case"):
        code, out, _err = cli(capsys, "run", spelling)
        assert code == 0, out
    engine = make_engine(settings.warehouse_url)
    roster = read_table(engine, student_roster)
    engine.dispose()
    assert set(roster["DropId"]) == {"belleville/mixed-case"}


def test_drops_differing_only_by_case_are_both_refused(world, new_instance):
    settings, outside = world
    copy_sample(settings, "Drop-A")
    copy_sample(settings, "drop-a")
    before = snapshot(settings.home, outside)
    with new_instance() as instance:
        result = tick(settings, instance)
    assert [r.partition_key for r in result.run_requests] == [GOOD]  # the sample drop, never run by a sensor yet
    refused = receive_rows(settings)
    assert sorted(refused["FileName"]) == ["Drop-A", "drop-a"]
    assert set(refused["Reason"]) == {"bad_drop_name"}
    assert all("spelled two ways" in m for m in refused["Message"])
    assert_untouched(before, snapshot(settings.home, outside))


def test_a_partition_spelled_otherwise_than_canonical_is_refused(world, new_instance):
    settings, outside = world
    copy_sample(settings, "mixed-case")
    before = snapshot(settings.home, outside)
    with new_instance() as instance:
        instance.add_dynamic_partitions("drops", ["belleville/Mixed-Case"])
        job = build_definitions(settings).resolve_job_def("drop_job")
        result = job.execute_in_process(instance=instance, partition_key="belleville/Mixed-Case",
                                        raise_on_error=False)
    assert not result.success
    row = assert_one_refusal(settings, "bad_drop_name")
    assert "canonical form 'belleville/mixed-case'" in row["Message"]
    assert_untouched(before, snapshot(settings.home, outside), "belleville/Mixed-Case")


# ---- links, devices, fifos ----------------------------------------------------------------------------------

def _link_outside_file(settings, drop: Path, outside: Path) -> str:
    target = outside / "SR.csv"
    target.write_bytes((sample_files(settings) / "SR.csv").read_bytes())  # valid rows: a link must not load them
    (drop / "SR.csv").unlink()
    (drop / "SR.csv").symlink_to(target)
    return "SR.csv"


def _link_system_file(settings, drop: Path, outside: Path) -> str:
    (drop / "students.csv").unlink()
    (drop / "students.csv").symlink_to("/etc/passwd")
    return "students.csv"


def _link_other_drop(settings, drop: Path, outside: Path) -> str:
    (drop / "SM.csv").unlink()
    (drop / "SM.csv").symlink_to(os.path.relpath(sample_files(settings) / "SM.csv", drop))
    return "SM.csv"


def _fifo(settings, drop: Path, outside: Path) -> str:
    os.mkfifo(drop / "SEL.csv.tmp")
    return "SEL.csv.tmp"


def _subfolder(settings, drop: Path, outside: Path) -> str:
    (drop / "extra").mkdir()
    (drop / "extra" / "SR.csv").write_text("hidden\n")
    return "extra"


@pytest.mark.parametrize("attack", [_link_outside_file, _link_system_file, _link_other_drop, _fifo, _subfolder])
def test_anything_but_a_regular_file_refuses_the_drop(world, capsys, monkeypatch, attack):
    settings, outside = world
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    drop = copy_sample(settings, "linked")
    name = attack(settings, drop, outside)
    counts = warehouse_counts(settings)
    before = snapshot(settings.home, outside)
    code, out, _err = cli(capsys, "run", "belleville/linked")
    assert code == 1
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("FAILED: belleville/linked: refused:") and "not a regular file" in verdict
    assert_one_refusal(settings, "not_a_regular_file")
    assert warehouse_counts(settings) == counts
    assert not (settings.staging_dir / "belleville" / "linked").exists()
    assert_untouched(before, snapshot(settings.home, outside), "belleville/linked")
    assert name in receive_rows(settings)["Message"][0]


def test_a_drop_folder_that_is_a_link_is_refused(world, capsys, monkeypatch, new_instance):
    settings, outside = world
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    elsewhere = outside / "elsewhere"
    elsewhere.mkdir()
    for f in sample_files(settings).iterdir():
        (elsewhere / f.name).write_bytes(f.read_bytes())
    (settings.drop_dir / "belleville" / "linkdrop").symlink_to(elsewhere)
    before = snapshot(settings.home, outside)
    with new_instance() as instance:
        result = tick(settings, instance)
        assert isinstance(result, dg.SensorResult)
    code, out, _err = cli(capsys, "run", "belleville/linkdrop")
    assert code == 1 and "not a regular file" in out.strip().splitlines()[-1]
    assert_one_refusal(settings, "not_a_regular_file", "linkdrop")
    assert_untouched(before, snapshot(settings.home, outside), "belleville/linkdrop")


# ---- zips --------------------------------------------------------------------------------------------------------

def _zip(settings, name: str, extra: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    folder = settings.drop_dir / "belleville"
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(sample_files(settings).glob("*.csv")):
            zf.writestr(f"Belleville Public Schools/{f.name}", f.read_bytes())
        for entry, data in extra:
            zf.writestr(entry, data)
    (folder / f"{name}.zip.done").write_text("")
    return path


def _symlink_entry() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("notes.csv")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(("extra", "reason"), [
    ([("sub/SR.csv", b"StudentIdentifier\n1\n")], "duplicate_file_name"),
    ([("Belleville Public Schools/sr.CSV", b"x\n")], "duplicate_file_name"),
    ([("../evil.csv", b"x\n")], "unsafe_zip_entry"),
    ([("a/../../evil.csv", b"x\n")], "unsafe_zip_entry"),
    ([("/tmp/evil.csv", b"x\n")], "unsafe_zip_entry"),
    ([("C:\\evil.csv", b"x\n")], "unsafe_zip_entry"),
    ([(_symlink_entry(), b"/etc/passwd")], "unsafe_zip_entry"),
    ([("evil\x1b[2J.csv", b"x\n")], "unsafe_zip_entry"),
])
def test_a_zip_with_an_unsafe_or_colliding_entry_is_refused_and_leaves_nothing(world, capsys, monkeypatch, extra,
                                                                              reason):
    settings, outside = world
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    _zip(settings, "vendor", extra)
    counts = warehouse_counts(settings)
    before = snapshot(settings.home, outside)
    code, out, _err = cli(capsys, "run", "belleville/vendor")
    assert code == 1 and out.strip().splitlines()[-1].startswith("FAILED: belleville/vendor: refused:")
    assert_one_refusal(settings, reason, "vendor.zip")
    assert warehouse_counts(settings) == counts
    assert not list((settings.staging_dir / "belleville").glob("*vendor*"))
    assert not (outside / "evil.csv").exists() and not Path("/tmp/evil.csv").exists()
    assert_untouched(before, snapshot(settings.home, outside), "belleville/vendor")


def test_a_zip_bomb_is_refused_from_its_central_directory(world, capsys, monkeypatch):
    settings, outside = world
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    path = _zip(settings, "bomb", [("padding.csv", b"0" * 60_000_000)])  # 60 MB of one byte: ratio about 1000
    assert path.stat().st_size < 1_000_000
    before = snapshot(settings.home, outside)
    code, out, _err = cli(capsys, "run", "belleville/bomb")
    assert code == 1 and "MTSS_MAX_ZIP_RATIO" in out.strip().splitlines()[-1]
    assert_one_refusal(settings, "zip_ratio", "bomb.zip")
    assert not list((settings.staging_dir / "belleville").glob("*bomb*"))
    assert_untouched(before, snapshot(settings.home, outside), "belleville/bomb")


def test_a_zip_expanding_past_the_drop_limit_is_refused(world, capsys, monkeypatch):
    settings, outside = world
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    monkeypatch.setenv("MTSS_MAX_DROP_BYTES", "400000")  # the sample expands to 624 kB, zipped it is far less
    _zip(settings, "big", [])
    before = snapshot(settings.home, outside)
    code, out, _err = cli(capsys, "run", "belleville/big")
    assert code == 1 and "MTSS_MAX_DROP_BYTES" in out.strip().splitlines()[-1]
    assert_one_refusal(settings, "drop_too_large", "big.zip")
    assert_untouched(before, snapshot(settings.home, outside), "belleville/big")


def test_a_folder_drop_past_the_drop_limit_is_refused_before_it_is_read(world, capsys, monkeypatch):
    settings, outside = world
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    monkeypatch.setenv("MTSS_MAX_DROP_BYTES", "100000")
    copy_sample(settings, "toobig")
    before = snapshot(settings.home, outside)
    code, out, _err = cli(capsys, "run", "belleville/toobig")
    assert code == 1 and "MTSS_MAX_DROP_BYTES" in out.strip().splitlines()[-1]
    assert_one_refusal(settings, "drop_too_large")
    assert_untouched(before, snapshot(settings.home, outside), "belleville/toobig")


def _lie_about_sizes(path: Path, entry: str, declared: int) -> None:
    """Rewrite the uncompressed size an entry declares, in its local header and the central directory."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(entry)
    name = entry.encode()
    local = info.header_offset
    assert data[local:local + 4] == b"PK\x03\x04"
    data[local + 22:local + 26] = declared.to_bytes(4, "little")
    central = data.index(b"PK\x01\x02")
    while True:  # the central directory record of this entry
        n = int.from_bytes(data[central + 28:central + 30], "little")
        if bytes(data[central + 46:central + 46 + n]) == name:
            break
        central = data.index(b"PK\x01\x02", central + 4)
    data[central + 24:central + 28] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_a_zip_whose_sizes_lie_is_refused_while_streaming(world, capsys, monkeypatch):
    settings, outside = world
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    path = _zip(settings, "liar", [("filler.csv", os.urandom(1_000_000).hex().encode())])
    _lie_about_sizes(path, "filler.csv", 1000)  # declares 1 kB, holds 2 MB
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("filler.csv").file_size == 1000
    before = snapshot(settings.home, outside)
    code, out, _err = cli(capsys, "run", "belleville/liar")
    assert code == 1 and out.strip().splitlines()[-1].startswith("FAILED: belleville/liar: refused:")
    row = assert_one_refusal(settings, "bad_zip", "liar.zip")
    assert "liar.zip" in row["Message"]
    assert not list((settings.staging_dir / "belleville").glob("*liar*"))
    assert_untouched(before, snapshot(settings.home, outside), "belleville/liar")


# ---- clear text at rest, orphans, storage ------------------------------------------------------------------

KILLED_RECEIVE = r"""
import sys, time
from contextlib import contextmanager
from pathlib import Path
from belleville_mtss.lib.receive.drops import LocalDropSource, receive
from belleville_mtss.lib.receive.vault import parse_key

class Slow(LocalDropSource):
    @contextmanager
    def open(self, folder, drop, file):
        with super().open(folder, drop, file) as fh:
            class Reader:
                def read(self, n):
                    time.sleep(0.05)
                    return fh.read(64 * 1024)
            yield Reader()

root, staging, key = Path(sys.argv[1]), Path(sys.argv[2]), parse_key(sys.argv[3])
source = Slow(root)
(drop,) = [d for d in source.list_drops("belleville", "belleville") if d.name == "slow"]
receive(source, "belleville", drop, staging, key)
"""


def test_a_receive_killed_midway_leaves_no_clear_text_and_its_leftovers_are_removed(tmp_path):
    from belleville_mtss.lib.receive.vault import new_key
    root, staging = tmp_path / "drops", tmp_path / "staging"
    drop = root / "belleville" / "slow"
    drop.mkdir(parents=True)
    marker = b"StudentIdentifier,ALICE-EXAMPLE-ROW\n"
    (drop / "SR.csv").write_bytes(marker * 350_000)  # 12 MB, read 64 kB every 50 ms
    (drop / "drop.done").write_text("")
    target = staging / "belleville" / "slow"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RECEIVE, str(root), str(target), new_key()])
    deadline = time.time() + 60
    while time.time() < deadline:
        parts = list((staging / "belleville").glob(f"{RECEIVING_PREFIX}slow-*/SR.csv.*.part"))
        if parts and parts[0].stat().st_size > 4 * 1024 * 1024:  # the first 4 MiB chunk is written
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    (left,) = (staging / "belleville").glob(f"{RECEIVING_PREFIX}slow-*")
    for f in left.rglob("*"):
        if f.is_file():
            assert b"ALICE-EXAMPLE-ROW" not in f.read_bytes(), f  # only ciphertext was ever written
    assert not target.exists()
    # A receive in progress holds its lock: the purge leaves it alone; a killed one holds none.
    busy = staging / "belleville" / f"{RECEIVING_PREFIX}other-0000"
    busy.mkdir()
    with (busy / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert purge_staging(staging, 30, time.time()) == ([], [f"belleville/{left.name}"])
        assert busy.exists() and not left.exists()
    assert remove_orphans(staging) == [f"belleville/{busy.name}"]


def _one_file_drop(root: Path, name: str):
    """A one-file drop of belleville's in a local drop folder, marked complete: its source, its listing, its folder."""
    from belleville_mtss.lib.receive.drops import LocalDropSource
    drop = root / "belleville" / name
    drop.mkdir(parents=True)
    (drop / "SR.csv").write_text("StudentIdentifier,ScaledScore\n1,500\n")
    (drop / "drop.done").write_text("")
    source = LocalDropSource(root)
    (listed,) = [d for d in source.list_drops("belleville", "belleville") if d.name == name]
    return source, listed, drop


def _assert_staged_whole(target: Path, drop: Path, key: bytes) -> None:
    """Published whole: a complete manifest, every file decrypting to the bytes the drop holds."""
    from belleville_mtss.lib.receive.drops import StagedFile, read_staged, staged_manifest
    manifest = staged_manifest(target)
    assert manifest and [read_staged(target, StagedFile(**f), key) for f in manifest["files"]] == [
        (drop / "SR.csv").read_bytes()]


def _zip_drop(root: Path, name: str, entries: list[tuple[str, bytes]]):
    """A zip drop of belleville's, its entries stored as given (no compression), marked complete: its source and
    its listing."""
    from belleville_mtss.lib.receive.drops import LocalDropSource
    folder = root / "belleville"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{name}.zip", "w", zipfile.ZIP_STORED) as zf:
        for entry, data in entries:
            zf.writestr(entry, data)
    (folder / f"{name}.zip.done").write_text("")
    source = LocalDropSource(root)
    (listed,) = [d for d in source.list_drops("belleville", "belleville") if d.name == name]
    return source, listed


@pytest.mark.parametrize("before_boundary", [200, 10, 0, None], ids=["header-clear", "header-straddles",
                                                                     "header-at-boundary", "directory-straddles"])
def test_a_zip_whose_headers_straddle_an_encrypted_chunks_end_is_expanded_whole(tmp_path, before_boundary):
    """The archive is staged encrypted in 4 MiB chunks and expanded from there: an entry's header, or the central
    directory, that begins a few bytes before a chunk's end is read across it (a short read was taken for a broken
    archive: `bad_zip`)."""
    from belleville_mtss.lib.receive.drops import read_staged, receive
    from belleville_mtss.lib.receive.vault import CHUNK, new_key, parse_key
    second = b"StudentIdentifier,ScaledScore\n1,500\n"
    if before_boundary is None:  # one entry; the directory after it starts 20 bytes before the chunk's end
        entries = [("SR.csv", b"a" * (CHUNK - 20 - 30 - len("SR.csv")))]
    else:  # the second entry's local header (30 bytes and its name) starts `before_boundary` bytes before it
        entries = [("SR.csv", b"a" * (CHUNK - 30 - len("SR.csv") - before_boundary)), ("SM.csv", second)]
    source, listed = _zip_drop(tmp_path / "drops", "vendor", entries)
    key, target = parse_key(new_key()), tmp_path / "staging" / "belleville" / "vendor"
    staged = receive(source, "belleville", listed, target, key)
    assert {s.name: read_staged(target, s, key) for s in staged} == dict(entries)


@pytest.mark.parametrize("name", ["manifest.json", ".lock"])
@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_a_file_named_as_the_receipts_own_is_refused_before_it_is_read(tmp_path, kind, name):
    """The receipt keeps its manifest and lock beside the staged files: a drop's own file of either name would
    overwrite them or be overwritten (a staged copy that no longer decrypts, or a lock another cleaner takes)."""
    from belleville_mtss.lib.receive.drops import DropRefused, receive
    from belleville_mtss.lib.receive.vault import new_key, parse_key
    root, target = tmp_path / "drops", tmp_path / "staging" / "belleville" / "vendor"
    if kind == "folder":
        source, listed, drop = _one_file_drop(root, "vendor")
        (drop / name).write_text('{"vendor": "notes"}')
        (listed,) = [d for d in source.list_drops("belleville", "belleville") if d.name == "vendor"]
        assert listed.problem and listed.problem[:2] == ("bad_file_name", f"file name '{name}' is kept for the "
                                                         "receipt's own use; rename the file")
        return
    source, listed = _zip_drop(root, "vendor", [("SR.csv", b"StudentIdentifier\n1\n"), (f"export/{name}", b"{}")])
    if name.startswith("."):  # a hidden entry is not data: skipped, as every hidden entry is
        assert [s.name for s in receive(source, "belleville", listed, target, parse_key(new_key()))] == ["SR.csv"]
        return
    with pytest.raises(DropRefused) as refused:
        receive(source, "belleville", listed, target, parse_key(new_key()))
    assert refused.value.reason == "unsafe_zip_entry" and "kept for the receipt's own use" in refused.value.message
    assert not target.exists()


def test_a_file_name_holding_an_at_sign_refuses_the_drop_at_listing_without_the_name(tmp_path):
    """Every message naming such a file was refused by the error log (it looks like an address): a drop with
    `diagnostic_results_ela@2026-11-21.csv` failed its identity step with no error row saying why."""
    source, _listed, drop = _one_file_drop(tmp_path / "drops", "vendor")
    (drop / "diagnostic_results_ela@2026-11-21.csv").write_text("Student ID\n1\n")
    (listed,) = [d for d in source.list_drops("belleville", "belleville") if d.name == "vendor"]
    reason, message, file_name = listed.problem
    assert reason == "bad_file_name" and "holds an at sign" in message
    assert "@" not in message and "@" not in file_name and "2026-11-21" not in message


def test_files_put_in_the_districts_folder_outside_any_drop_are_refused_as_listed_not_passed_over(tmp_path):
    """A roster and its Star files uploaded straight into the district's folder (no dated folder), or a .7z, were
    passed over without a word: no error row, nothing in the tick, until the district was overdue days later."""
    from belleville_mtss.lib.receive.drops import LOOSE_FILE
    source, _listed, _drop = _one_file_drop(tmp_path / "drops", "2026-11-01")
    district = tmp_path / "drops" / "belleville"
    for name in ("students.csv", "drop.done", "2026-11-21.7z", ".DS_Store", "2026-11-22.zip.filepart", "~tmp1.csv"):
        (district / name).write_text("x\n")
    refused = {d.name: d.problem for d in source.list_drops("belleville", "belleville") if d.refused_at_listing}
    # a marker alone marks nothing, and a desktop's hidden file is no one's, nor a file a client is still uploading
    # under a name of its own (WinSCP's .filepart: refused at each tick as it grew): none is refused
    assert sorted(refused) == ["2026-11-21.7z", "students.csv"]
    reason, message, name = refused["students.csv"]
    assert reason == LOOSE_FILE and "not in a drop" in message and name == "students.csv"
    assert [d.name for d in source.list_drops("belleville", "belleville") if not d.refused_at_listing] == \
        ["2026-11-01"]  # the drops beside them are listed as before


@pytest.mark.parametrize("point", ["before_lock", "before_publish"])
def test_a_receiving_folder_being_made_or_published_is_never_taken_for_an_orphan(tmp_path, monkeypatch, point):
    # Runs of several districts receive at once, and each first removes the orphans of every district. Found by
    # the daemon benchmark: a folder caught between its making and its lock, or on its way to being published,
    # was removed under the run receiving it. Each moment is held for a second while another run cleans; an
    # abandoned folder is still removed (test_a_receive_killed_midway_...).
    import threading
    from belleville_mtss.lib.receive.drops import receive
    from belleville_mtss.lib.receive.vault import new_key, parse_key
    root, staging, key = tmp_path / "drops", tmp_path / "staging", parse_key(new_key())
    source, listed, drop = _one_file_drop(root, "d1")
    target, failed = staging / "belleville" / "d1", []

    def receiving():
        try:
            receive(source, "belleville", listed, target, key)
        except Exception as exc:  # noqa: BLE001 - reported to the test's thread below
            failed.append(exc)

    monkeypatch.setenv("MTSS_FAULT", f"{point}:sleep=1")
    worker = threading.Thread(target=receiving)
    worker.start()
    deadline = time.time() + 30
    wanted = "/.lock" if point == "before_lock" else "/manifest.json"  # made, not yet locked / not yet renamed
    while time.time() < deadline and not list(staging.glob(f"belleville/.*d1-*{wanted}")):
        time.sleep(0.01)
    assert list(staging.glob(f"belleville/.*d1-*{wanted}")), "the receive never reached " + point
    assert remove_orphans(staging) == []  # another district's run cleaning meanwhile
    worker.join(30)
    assert failed == []
    _assert_staged_whole(target, drop, key)
    assert not list(staging.glob(f"belleville/{RECEIVING_PREFIX}*")) and not (target / ".lock").exists()


def test_a_folder_left_in_the_instant_before_its_lock_is_removed_once_an_hour_old(tmp_path):
    # a receive killed between making its folder and locking it: nothing in it but an empty lock file
    from belleville_mtss.lib.receive.drops import MAKING_PREFIX
    staging = tmp_path / "staging"
    left = staging / "belleville" / f"{MAKING_PREFIX}d1-0000"
    left.mkdir(parents=True)
    (left / ".lock").touch()
    assert remove_orphans(staging) == [] and purge_staging(staging, 30, time.time()) == ([], [])
    assert left.exists()  # it may be a receive about to lock it
    assert remove_orphans(staging, now=time.time() + 3601) == [f"belleville/{left.name}"] and not left.exists()


def test_a_staged_copy_without_its_manifest_is_purged_only_once_it_has_been_left_an_hour(tmp_path):
    # a receive replacing or publishing a copy leaves it without a manifest for an instant: the daily purge
    # running then must not take it (one check, then the folder removed: whatever came between was lost)
    staging = tmp_path / "staging"
    copy = staging / "belleville" / "2026-11-01"
    copy.mkdir(parents=True)
    (copy / "SR.csv.enc").write_bytes(b"ciphertext")
    assert purge_staging(staging, 30, time.time()) == ([], []) and copy.exists()
    assert purge_staging(staging, 30, time.time() + 3601) == ([], ["belleville/2026-11-01"]) and not copy.exists()


def test_purge_removes_stored_frames_of_purged_drops(world):
    settings, _outside = world
    stored = [p for p in settings.storage_dir.rglob("*") if p.is_file()]
    assert any(p.as_posix().endswith(GOOD) for p in stored)
    expired, orphans = purge_staging(settings.staging_dir, 30, time.time() + 31 * 86400)
    assert expired == [GOOD] and orphans == []
    removed = purge_storage(settings.storage_dir, expired, 3650, time.time())
    assert removed == len([p for p in stored if p.as_posix().endswith(GOOD)]) > 5
    assert not [p for p in settings.storage_dir.rglob("*") if p.is_file() and p.as_posix().endswith(GOOD)]


def test_stored_frames_past_the_retention_period_are_purged(world):
    settings, _outside = world
    assert purge_storage(settings.storage_dir, [], 30, time.time()) == 0
    assert purge_storage(settings.storage_dir, [], 30, time.time() + 31 * 86400) > 5
    assert not [p for p in settings.storage_dir.rglob("*") if p.is_file()]


def test_a_frame_a_killed_writer_left_unfinished_is_purged_once_left_an_hour(tmp_path):
    # a process killed while keeping a frame at rest leaves its part file; a writer adds to its part file as it
    # goes, so one untouched for an hour is abandoned, and one just written may be a run's still writing
    storage = tmp_path / "storage"
    frame = storage / "validated_star_reading" / "belleville" / "2026-11-01"
    frame.parent.mkdir(parents=True)
    kept = frame.with_name("2026-10-01")
    kept.write_bytes(b"a finished frame")
    writer = ("import sys, time\nfrom pathlib import Path\nfrom belleville_mtss.lib.receive.vault import Encryptor\n"
              "enc = Encryptor(bytes(32), Path(sys.argv[1]), direct=True)\nenc.write(bytes(9 << 20))\n"
              "print('written', flush=True)\ntime.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", writer, str(frame)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "written"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    part, = frame.parent.glob("*.part")
    assert part.stat().st_size >= 8 << 20 and not frame.exists()
    assert purge_storage(storage, [], 30, time.time()) == 0 and part.exists()
    assert purge_storage(storage, [], 30, time.time() + 3601) == 1
    assert not part.exists() and kept.read_bytes() == b"a finished frame"


def test_a_finished_frame_of_a_drop_named_like_a_part_file_outlives_the_purge(tmp_path):
    # a drop may be named "2026-11-01.part", and its frames are kept under that name: only the name an unfinished
    # write has ("<name>.<16 hex digits>.part") is taken for one; before, every frame of that drop went at the
    # nightly purge an hour after its run
    storage = tmp_path / "storage"
    frame = storage / "validated_star_reading" / "belleville" / "2026-11-01.part"
    frame.parent.mkdir(parents=True)
    frame.write_bytes(b"a finished frame")
    unfinished = frame.with_name("2026-11-01.0123456789abcdef.part")
    unfinished.write_bytes(b"ciphertext")
    assert purge_storage(storage, [], 30, time.time() + 3601) == 1
    assert frame.read_bytes() == b"a finished frame" and not unfinished.exists()


@pytest.mark.parametrize("what", ["drop", "file"])
def test_a_drop_or_file_named_as_an_unfinished_write_is_refused_at_listing(tmp_path, what):
    # kept under its name, it would be taken for a write a killed process left, and purged
    name = "2026-11-01.0123456789abcdef.part"
    if what == "drop":
        _, listed, _ = _one_file_drop(tmp_path / "drops", name)
    else:
        source, _, drop = _one_file_drop(tmp_path / "drops", "2026-11-01")
        (drop / "SR.csv").rename(drop / "SR.csv.0123456789abcdef.part")
        (listed,) = [d for d in source.list_drops("belleville", "belleville") if d.name == "2026-11-01"]
    shown = name if what == "drop" else "SR.csv.0123456789abcdef.part"
    assert listed.problem and listed.problem[:2] == (
        f"bad_{what}_name", f"{what} name '{shown}' ends as a file being written does ('.<16 hex digits>.part'); "
        "rename it")


def test_a_part_file_renamed_while_the_purge_looks_at_it_is_passed_over(tmp_path, monkeypatch):
    # a run finishing a frame renames its part file at any instant; the daily purge listing the folder then
    # finds it gone between the listing and its look at the file's age: it goes on, and fails no job
    storage = tmp_path / "storage"
    folder = storage / "validated_star_reading" / "belleville"
    folder.mkdir(parents=True)
    part, old = folder / "2026-11-01.0123456789abcdef.part", folder / "2026-10-01"
    part.write_bytes(b"ciphertext")
    old.write_bytes(b"a finished frame")
    real_stat, looks = Path.stat, []

    def renamed_meanwhile(self, *args, **kwargs):
        if self == part:
            looks.append(self)
            if len(looks) == 2:  # is_file() looked; before the purge reads its age, the writer renames it
                os.rename(part, folder / "2026-11-01")
        return real_stat(self, *args, **kwargs)
    monkeypatch.setattr(Path, "stat", renamed_meanwhile)
    # the old frame is removed; the one just finished, listed as its part file, is left to the next purge
    assert purge_storage(storage, [], 30, time.time() + 31 * 86400) == 1
    assert [p.name for p in folder.iterdir()] == ["2026-11-01"]


# ---- values and sizes -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_value_longer_than_its_warehouse_column_is_rejected_per_row(tmp_path, backend, request):
    env = {}
    if backend == "postgresql":
        url = request.getfixturevalue("pg_database")
        env = {"MTSS_WAREHOUSE_URL": url, "MTSS_PROD_DB_URL": url}
    settings = make_settings(tmp_path / "home", **env)
    drop = prepare_drop(settings)
    set_column(drop / "students.csv", "STUDENTS.FIRST_NAME", "A" * 101, rows=slice(0, 1))
    set_column(drop / "students.csv", "U_STUDENTSUSERFIELDS.custom_student_email", "b" * 320 + "@x.org",
               rows=slice(1, 2))
    set_column(drop / "SR.csv", "AssessmentID", "k" * 121, rows=slice(0, 2))
    report = run_drop(settings)
    assert report.success and report.checks_passed, report.render()
    logged = errors(settings).filter(pl.col("Reason") == "value_too_long")
    got = sorted((r["FileName"], r["RowCount"]) for r in logged.iter_rows(named=True))
    assert got == [("SR.csv", 2), ("students.csv", 1), ("students.csv", 1)]
    assert all("@" not in m and "AAAA" not in m for m in logged["Message"])
    assert warehouse_counts(settings)["roster"] == SMALL.students - 2


def test_formula_looking_values_are_data_and_stay_verbatim_in_the_warehouse(settings):
    drop = prepare_drop(settings)
    formulas = ["=HYPERLINK(\"http://x\",\"y\")", "+SUM(A1:A9)", "-2+3", "@cmd"]
    for i, value in enumerate(formulas):
        set_column(drop / "students.csv", "STUDENTS.LAST_NAME", value, rows=slice(i, i + 1))
    assert run_drop(settings).checks_passed
    engine = make_engine(settings.warehouse_url)
    stored = set(read_table(engine, student_roster)["LastName"])
    engine.dispose()
    assert set(formulas) <= stored


def test_csv_files_we_write_neutralise_formulas(tmp_path, capsys):
    names = tmp_path / "names.csv"
    names.write_text('name,state\n"=cmd|\' /C calc\'!A0",NJ\n+BELLEVILLE,NJ\n@SUM(1),NJ\nBelleville,NJ\n')
    reference = tmp_path / "reference.csv"
    reference.write_text("nces_id,name,state\n3401350,BELLEVILLE,NJ\n")
    out = tmp_path / "out.csv"
    assert main(["districts", "match", str(names), "--reference", str(reference), "--output", str(out)]) == 0
    rows = pl.read_csv(out, infer_schema=False)["name"].to_list()
    assert rows == ["'=cmd|' /C calc'!A0", "'+BELLEVILLE", "'@SUM(1)", "Belleville"]


def test_a_file_with_more_rows_than_the_limit_is_refused_before_it_is_parsed(tmp_path):
    settings = make_settings(tmp_path / "home", MTSS_MAX_FILE_ROWS="250")  # students.csv has 300 rows
    prepare_drop(settings)
    report = run_drop(settings)
    assert not report.success or not report.checks_passed
    logged = errors(settings).filter(pl.col("Reason") == "too_many_rows")
    assert "students.csv" in set(logged["FileName"])
    assert all("more than 250 rows (MTSS_MAX_FILE_ROWS)" in m for m in logged["Message"])
    assert warehouse_counts(settings) == {"roster": 0, "results": 0}


def test_the_row_limit_counts_records_not_lines(tmp_path):
    text = 'a,b\n1,"x\ny\nz"\n2,"p\nq"\n3,r\n'  # 3 records on 7 lines
    path = tmp_path / "f.csv"
    path.write_text(text)
    assert read_text_csv(path, max_rows=3).height == 3
    with pytest.raises(FileRejected) as err:
        read_text_csv(path, max_rows=2)
    assert err.value.reason == "too_many_rows"


# ---- the same attacks over SFTP (a real OpenSSH server) --------------------------------------------------------

@pytest.fixture
def sftp_world(tmp_path):
    from .sshd_server import SshServer
    from belleville_mtss.lib.sample import generate_drop, load_databases
    server = SshServer(tmp_path / "sshd").start()
    settings = make_settings(tmp_path / "home", **server.env())
    outgoing = tmp_path / "outgoing"
    tables = generate_drop(outgoing, SMALL)
    load_databases(settings.prod_db_url, settings.warehouse_url, tables["classlink_users"])
    staging_key(None, settings.home)  # the embedded key file exists before any snapshot is taken
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("must never change\n")
    yield settings, server, outgoing, outside
    server.stop()


def _upload(server, outgoing: Path, name: str) -> Path:
    dest = server.root / "belleville" / name
    dest.mkdir(parents=True)
    for f in outgoing.glob("*.csv"):
        (dest / f.name).write_bytes(f.read_bytes())
    (dest / "drop.done").write_text("")
    return dest


def _run_partition(settings, key: str, instance: dg.DagsterInstance):
    with instance:
        instance.add_dynamic_partitions("drops", [key])
        job = build_definitions(settings).resolve_job_def("drop_job")
        return job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)


def test_sftp_a_dotted_zip_name_is_refused_at_the_sensor(sftp_world, new_instance):
    settings, server, outgoing, outside = sftp_world
    folder = server.root / "belleville"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "...zip", "w") as zf:
        zf.write(outgoing / "SR.csv", "SR.csv")
    (folder / "...zip.done").write_text("")
    before = snapshot(settings.home.parent)
    with new_instance() as instance:
        result = tick(settings, instance)
    assert not getattr(result, "run_requests", None)
    assert_one_refusal(settings, "bad_drop_name", "...zip")
    assert_untouched(before, snapshot(settings.home.parent))


def _sftp_symlink_outside(server, drop: Path, outside: Path) -> None:
    (drop / "SR.csv").unlink()
    (drop / "SR.csv").symlink_to(outside / "victim.txt")


def _sftp_symlink_system(server, drop: Path, outside: Path) -> None:
    (drop / "notes.csv").symlink_to("/etc/passwd")


def _sftp_fifo(server, drop: Path, outside: Path) -> None:
    os.mkfifo(drop / "pipe.csv")


@pytest.mark.parametrize("attack", [_sftp_symlink_outside, _sftp_symlink_system, _sftp_fifo])
def test_sftp_a_server_reporting_a_link_or_fifo_refuses_the_drop(sftp_world, attack, new_instance):
    settings, server, outgoing, outside = sftp_world
    drop = _upload(server, outgoing, "linked")
    attack(server, drop, outside)
    before = snapshot(settings.home.parent)
    with new_instance() as instance:
        result = tick(settings, instance)
        assert [r.partition_key for r in result.run_requests] == ["belleville/linked"]
    run = _run_partition(settings, "belleville/linked", new_instance())
    assert not run.success
    assert_one_refusal(settings, "not_a_regular_file")
    assert warehouse_counts(settings) == {"roster": 0, "results": 0}
    assert not list((settings.staging_dir / "belleville").glob("*linked*"))
    assert_untouched(before, snapshot(settings.home.parent), "belleville/linked")


def test_sftp_a_drop_that_is_a_link_on_the_server_is_refused(sftp_world, new_instance):
    settings, server, outgoing, outside = sftp_world
    real = _upload(server, outgoing, "real")
    (server.root / "belleville" / "alias").symlink_to(real)
    with new_instance() as instance:
        tick(settings, instance)
    before = snapshot(settings.home.parent)
    run = _run_partition(settings, "belleville/alias", new_instance())
    assert not run.success
    assert_one_refusal(settings, "not_a_regular_file", "alias")
    assert_untouched(before, snapshot(settings.home.parent), "belleville/alias")


@pytest.mark.parametrize(("entry", "data", "reason"), [
    ("../../outside/evil.csv", b"x\n", "unsafe_zip_entry"),
    ("sub/SR.csv", b"x\n", "duplicate_file_name"),
    ("padding.csv", b"0" * 20_000_000, "zip_ratio"),
])
def test_sftp_an_unsafe_zip_is_refused_and_leaves_nothing(sftp_world, entry, data, reason, new_instance):
    settings, server, outgoing, outside = sftp_world
    folder = server.root / "belleville"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "vendor.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for f in outgoing.glob("*.csv"):
            zf.write(f, f.name)
        zf.writestr(entry, data)
    (folder / "vendor.zip.done").write_text("")
    before = snapshot(settings.home.parent)
    run = _run_partition(settings, "belleville/vendor", new_instance())
    assert not run.success
    assert_one_refusal(settings, reason, "vendor.zip")
    assert not (outside / "evil.csv").exists()
    assert not list((settings.staging_dir / "belleville").glob("*vendor*"))
    assert_untouched(before, snapshot(settings.home.parent), "belleville/vendor")


def test_housekeeping_prunes_old_drop_partitions_but_each_districts_newest_staged_and_queued_ones(tmp_path,
                                                                                               monkeypatch, new_instance):
    from belleville_mtss.lib.receive.drops import MANIFEST, expired_partitions
    settings = make_settings(tmp_path / "mtss")
    staged = settings.staging_dir / "a" / "1"
    staged.mkdir(parents=True)
    (staged / MANIFEST).write_text("{}")

    @dg.op
    def noop():
        pass

    @dg.job
    def drop_run():
        noop()

    with new_instance() as instance:
        instance.add_dynamic_partitions("drops", ["a/0", "a/1", "a/2", "a/3", "b/1"])
        for key in ("a/0", "a/1", "a/2", "b/1"):  # in this order: a/2 is a's newest; a/3 is queued, no run yet
            # a/0 and a/2 as the command line runs them: no tag of the sensor's (their partitions were never pruned)
            tags = {"dagster/partition": key, **({} if key in ("a/0", "a/2") else {"mtss/drop": key})}
            assert drop_run.execute_in_process(instance=instance, tags=tags).success
        job = build_definitions(settings).resolve_job_def("staging_retention_job")
        assert job.execute_in_process(instance=instance).success
        assert len(instance.get_dynamic_partitions("drops")) == 5  # all ran just now: none is old
        later = time.time() + 31 * 86400
        os.utime(staged / MANIFEST, (later, later))  # a/1 re-received since: its staged copy is young
        monkeypatch.setattr("belleville_mtss.defs.maintenance.time.time", lambda: later)
        assert job.execute_in_process(instance=instance).success
        assert sorted(instance.get_dynamic_partitions("drops")) == ["a/1", "a/2", "a/3", "b/1"]
        assert len(instance.get_runs(dg.RunsFilter(tags={"dagster/partition": "a/0"}))) == 1  # its history stays
    ran = {"a/0": 10.0, "a/1": 20.0, "a/2": 30.0, "a/3": None, "b/1": 5.0}
    assert expired_partitions(ran, {"a/1"}, 1, now=86_400 + 100) == ["a/0"]
    assert expired_partitions(ran, set(), 1, now=86_400 + 5) == []  # a/0 ran 86,395 s before: not yet a day


def test_two_runs_receiving_one_drop_at_once_both_succeed_and_publish_it_once(tmp_path, monkeypatch):
    # Two runs of one drop at once (a run from the command line beside the sensor's): each received the files
    # into a folder of its own, then both published, swapping the staged copy at the same instant. One failed
    # (the other's copy was already in place), or removed the copy the other had just published, and that run's
    # next step found no file. Both are held at the moment of publishing; the second must find the first's copy.
    import threading
    from belleville_mtss.lib.receive.drops import receive
    from belleville_mtss.lib.receive.vault import new_key, parse_key
    root, staging, key = tmp_path / "drops", tmp_path / "staging", parse_key(new_key())
    monkeypatch.setenv("MTSS_FAULT", "before_publish:sleep=0.3")
    for attempt in range(5):
        source, listed, drop = _one_file_drop(root, f"d{attempt}")
        target, failed, published = staging / "belleville" / drop.name, [], []
        start = threading.Barrier(2)

        def receiving():
            start.wait(10)
            try:
                receive(source, "belleville", listed, target, key)
                published.append(target.stat().st_ino)  # the copy in place when this run's receipt returned
            except Exception as exc:  # noqa: BLE001 - reported to the test's thread below
                failed.append(exc)

        workers = [threading.Thread(target=receiving) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(30)
        assert failed == [], failed
        assert len(set(published)) == 1, "the second run replaced the copy the first had published"
        _assert_staged_whole(target, drop, key)
        assert not list(staging.glob(f"belleville/{RECEIVING_PREFIX}*")) and not (target / ".lock").exists()


def test_the_purge_never_removes_a_staged_copy_a_run_is_receiving_again(tmp_path, monkeypatch):
    # A drop past the retention period, received again at the moment the daily purge runs: the purge found its
    # manifest old and removed the copy while the run was keeping it (or had just kept it) as the drop's copy,
    # and the run's next step found no file. The purge waits for a receipt of the district to publish, then
    # finds the copy received again.
    import threading
    from belleville_mtss.lib.receive.drops import receive
    from belleville_mtss.lib.receive.vault import new_key, parse_key
    root, staging, key = tmp_path / "drops", tmp_path / "staging", parse_key(new_key())
    source, listed, drop = _one_file_drop(root, "d1")
    target = staging / "belleville" / "d1"
    receive(source, "belleville", listed, target, key)
    old = time.time() - 40 * 86400
    os.utime(target / "manifest.json", (old, old))  # received 40 days ago: past a 30-day retention
    failed = []

    def receiving_again():
        try:
            receive(source, "belleville", listed, target, key)
        except Exception as exc:  # noqa: BLE001 - reported to the test's thread below
            failed.append(exc)

    monkeypatch.setenv("MTSS_FAULT", "before_publish:sleep=1")
    worker = threading.Thread(target=receiving_again)
    worker.start()
    deadline = time.time() + 30
    while time.time() < deadline and not list(staging.glob("belleville/.incoming-d1-*/manifest.json")):
        time.sleep(0.01)
    assert list(staging.glob("belleville/.incoming-d1-*/manifest.json")), "the receipt never reached publishing"
    time.sleep(0.2)  # the receipt is publishing: its manifest written, held at the fault point
    assert purge_staging(staging, 30, time.time()) == ([], [])
    worker.join(30)
    assert failed == []
    _assert_staged_whole(target, drop, key)


def test_a_link_in_place_of_the_publishing_lock_fails_the_receipt_and_makes_nothing_where_it_points(tmp_path):
    # Only an operator can put a link in MTSS_HOME; opened through it, the lock made an empty file where it pointed.
    from belleville_mtss.lib.receive.drops import receive
    from belleville_mtss.lib.receive.vault import new_key, parse_key
    root, staging, key = tmp_path / "drops", tmp_path / "staging", parse_key(new_key())
    source, listed, _drop = _one_file_drop(root, "d1")
    (staging / "belleville").mkdir(parents=True)
    outside = tmp_path / "elsewhere" / "made"
    outside.parent.mkdir()
    (staging / "belleville" / ".publishing.lock").symlink_to(outside)
    with pytest.raises(OSError):
        receive(source, "belleville", listed, staging / "belleville" / "d1", key)
    assert not outside.exists()
    assert sorted(p.name for p in (staging / "belleville").iterdir()) == [".publishing.lock"]  # nothing staged


def test_zip_entries_whose_names_differ_only_by_a_trailing_space_refuse_the_drop(tmp_path):
    """As files of a folder drop do (test_drop_planning.py): SQL Server's comparisons ignore trailing spaces, so the
    stray entry's audit row would be the real one's."""
    from belleville_mtss.lib.receive.drops import DropRefused, receive
    from belleville_mtss.lib.receive.vault import new_key, parse_key
    source, listed = _zip_drop(tmp_path / "drops", "vendor", [("SR.csv", b"StudentIdentifier\n1\n"),
                                                              ("export/SR.csv ", b"StudentIdentifier\n2\n")])
    target = tmp_path / "staging" / "belleville" / "vendor"
    with pytest.raises(DropRefused) as refused:
        receive(source, "belleville", listed, target, parse_key(new_key()))
    assert refused.value.reason == "duplicate_file_name" and not target.exists()
