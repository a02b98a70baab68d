"""sftp_drop_sensor and the SFTP drop source against a real OpenSSH server on 127.0.0.1."""
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from belleville_mtss.definitions import build_definitions
from belleville_mtss.lib.sample import generate_drop, load_databases
from belleville_mtss.lib.receive.sftp import SftpFatal
from belleville_mtss.lib.load.warehouse import ingestion_files, make_engine, read_table
from belleville_mtss.run import run_drop
from .conftest import make_settings, one_backend
from .helpers import SMALL, errors, tick, warehouse_counts
from .sshd_server import SshServer, keygen


@pytest.fixture
def server(tmp_path):
    srv = SshServer(tmp_path / "sshd").start()
    yield srv
    srv.stop()


@pytest.fixture
def world(tmp_path, server):
    """Settings pointing at the server, databases loaded, and a helper that uploads a drop."""
    settings = make_settings(tmp_path / "mtss", **server.env())
    spec = SMALL
    tmp_drop = tmp_path / "outgoing"
    tables = generate_drop(tmp_drop, spec)
    load_databases(settings.prod_db_url, settings.warehouse_url, tables["classlink_users"])
    return settings, server, tmp_drop


def upload(server: SshServer, drop: Path, name: str, marker: bool = True) -> Path:
    dest = server.root / "belleville" / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(drop.iterdir()):
        if f.name != "drop.done":
            shutil.copyfile(f, dest / f.name)
    if marker:
        (dest / "drop.done").write_text("")
    return dest


def test_complete_drop_gives_one_run_that_lands_in_the_warehouse(world, new_instance):
    settings, server, drop = world
    upload(server, drop, "2026-11-01")
    with new_instance() as instance:
        result = tick(settings, instance)
        assert [r.partition_key for r in result.run_requests] == ["belleville/2026-11-01"]
        assert result.dynamic_partitions_requests[0].partition_keys == ["belleville/2026-11-01"]
        # the run's assets: the files Belleville sends, none of a kind it does not send
        asked = {k.to_user_string() for k in result.run_requests[0].asset_selection}
        assert {"validated_star_reading", "validated_powerschool_students", "dm_assessment_results"} <= asked
        assert not asked & {"map_growth", "validated_map_growth", "validated_oneroster_export"}
        files = result.run_requests[0].tags["mtss/files"]
        assert files == "powerschool_students,star_reading,star_math,star_early_literacy"
        again = tick(settings, instance, result.cursor)  # unchanged drop: never again
        assert not getattr(again, "run_requests", None)
        instance.add_dynamic_partitions("drops", ["belleville/2026-11-01"])
        job = build_definitions(settings).resolve_job_def("drop_job")
        run = job.execute_in_process(instance=instance, partition_key="belleville/2026-11-01",
                                     tags=result.run_requests[0].tags,
                                     asset_selection=result.run_requests[0].asset_selection)
        assert run.success
        # its run exists: the sensor's table (not the cursor) remembers it, even for a sensor whose cursor was reset
        after = tick(settings, instance, again.cursor)
        assert json.loads(after.cursor)["requested"] == {}
        assert not getattr(tick(settings, instance), "run_requests", None)
    assert warehouse_counts(settings)["roster"] == SMALL.students
    engine = make_engine(settings.warehouse_url)
    manifest = read_table(engine, ingestion_files)
    engine.dispose()
    assert sorted(manifest["FileName"]) == ["SEL.csv", "SM.csv", "SR.csv", "students.csv"]
    original = server.root / "belleville" / "2026-11-01" / "SR.csv"
    assert manifest.filter(manifest["FileName"] == "SR.csv")["Sha256"].item() == hashlib.sha256(
        original.read_bytes()).hexdigest()
    staged = (settings.staging_dir / "belleville" / "2026-11-01" / "SR.csv").read_bytes()
    assert b"StudentIdentifier" not in staged and b"@bellevilleschools.org" not in staged  # encrypted at rest


def test_a_drop_version_run_from_the_command_line_is_not_run_again_by_the_sensor(world, new_instance):
    settings, server, drop = world
    dest = upload(server, drop, "2026-11-05")
    with new_instance() as instance:
        assert run_drop(settings, "belleville/2026-11-05", instance=instance).outcome == "loaded"
        assert not getattr(tick(settings, instance), "run_requests", None)  # received already: same version
        (dest / "drop.done").unlink()
        os.utime(dest / "SR.csv", (time.time() + 5, time.time() + 5))  # a corrected file: a new version
        (dest / "drop.done").write_text("")
        result = tick(settings, instance)
        assert [r.partition_key for r in result.run_requests] == ["belleville/2026-11-05"]


def test_drop_still_being_written_gives_no_run(world, new_instance):
    settings, server, drop = world
    dest = upload(server, drop, "2026-11-02", marker=False)
    with new_instance() as instance:
        first = tick(settings, instance)
        assert not getattr(first, "run_requests", None)
        with (dest / "SR.csv").open("a") as fh:  # still growing
            fh.write("\n")
        second = tick(settings, instance, first.cursor)
        assert not getattr(second, "run_requests", None)
        assert "belleville/2026-11-02" in json.loads(second.cursor)["pending"]


def test_corrected_reupload_runs_again(world, new_instance):
    settings, server, drop = world
    dest = upload(server, drop, "2026-11-03")
    with new_instance() as instance:
        first = tick(settings, instance)
        (dest / "drop.done").unlink()
        shutil.copyfile(drop / "SM.csv", dest / "SM.csv")
        with (dest / "SM.csv").open("ab") as fh:
            fh.write(b"")
        os.utime(dest / "SM.csv", (time.time() + 5, time.time() + 5))  # the corrected file
        (dest / "drop.done").write_text("")
        second = tick(settings, instance, first.cursor)
        assert [r.partition_key for r in second.run_requests] == ["belleville/2026-11-03"]
        assert second.run_requests[0].run_key != first.run_requests[0].run_key
        assert not second.dynamic_partitions_requests[0].partition_keys or \
            second.dynamic_partitions_requests[0].partition_keys == ["belleville/2026-11-03"]


def test_wrong_host_key_fails_the_tick(world, tmp_path, new_instance):
    settings, server, drop = world
    upload(server, drop, "2026-11-04")
    other = keygen(tmp_path / "other_host_key")
    kind, key = other.split()[:2]
    bad_known = tmp_path / "bad_known_hosts"
    bad_known.write_text(f"[127.0.0.1]:{server.port} {kind} {key}\n")
    s = make_settings(settings.home, **{**server.env(), "MTSS_SFTP_KNOWN_HOSTS": str(bad_known)})
    with new_instance() as instance, pytest.raises(SftpFatal, match="host key does not match"):
        tick(s, instance)
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    s = make_settings(settings.home, **{**server.env(), "MTSS_SFTP_KNOWN_HOSTS": str(empty)})
    with new_instance() as instance, pytest.raises(SftpFatal, match="not in MTSS_SFTP_KNOWN_HOSTS"):
        tick(s, instance)
    assert (empty.read_text() == "")  # an unknown key is never added


def test_wrong_user_key_fails_the_tick(world, tmp_path, new_instance):
    settings, server, drop = world
    upload(server, drop, "2026-11-05")
    keygen(tmp_path / "stranger")
    s = make_settings(settings.home, **{**server.env(), "MTSS_SFTP_KEY_PATH": str(tmp_path / "stranger")})
    with new_instance() as instance, pytest.raises(SftpFatal, match="authentication refused"):
        tick(s, instance)


def test_server_down_skips_and_the_next_tick_after_it_returns_picks_the_drop_up(world, new_instance):
    settings, server, drop = world
    upload(server, drop, "2026-11-06")
    server.stop()
    with new_instance() as instance:
        down = tick(settings, instance)
        assert isinstance(down, dg.SkipReason)
        assert "unreachable" in down.skip_message
        server.start()
        back = tick(settings, instance)
        assert [r.partition_key for r in back.run_requests] == ["belleville/2026-11-06"]


def test_zip_drop_from_a_vendor_is_received_and_unpacked(world, new_instance):
    import zipfile

    settings, server, drop = world
    folder = server.root / "belleville"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "renaissance-2026-11-07.zip", "w") as zf:
        for name in ("students.csv", "SR.csv", "SM.csv", "SEL.csv"):
            zf.write(drop / name, f"Belleville Public Schools/{name}")
    (folder / "renaissance-2026-11-07.zip.done").write_text("")
    with new_instance() as instance:
        result = tick(settings, instance)
        key = "belleville/renaissance-2026-11-07"
        assert [r.partition_key for r in result.run_requests] == [key]
        instance.add_dynamic_partitions("drops", [key])
        job = build_definitions(settings).resolve_job_def("drop_job")
        assert job.execute_in_process(instance=instance, partition_key=key).success
    assert warehouse_counts(settings)["roster"] == SMALL.students


def test_a_received_drop_replays_without_the_server(world, new_instance):
    settings, server, drop = world
    upload(server, drop, "2026-11-08")
    key = "belleville/2026-11-08"
    with new_instance() as instance:
        instance.add_dynamic_partitions("drops", [key])
        job = build_definitions(settings).resolve_job_def("drop_job")
        assert job.execute_in_process(instance=instance, partition_key=key).success
        server.stop()
        replay = job.execute_in_process(instance=instance, partition_key=key)
        assert replay.success
        meta = replay.asset_materializations_for_node("received_drop")[0].metadata
        assert meta["replayed_from_staging"].value is True


def test_one_ssh_session_lists_every_district_and_a_refused_folder_stops_only_its_own(server):
    from belleville_mtss.lib.receive.sftp import SftpConfig, SftpDropSource
    folders = {f"district{i:02d}": f"district{i:02d}" for i in range(40)}
    for folder in folders.values():
        drop = server.root / folder / "2026-11-01"
        drop.mkdir(parents=True)
        (drop / "SR.csv").write_text("x\n")
        (drop / "drop.done").write_text("")
    elsewhere = server.root / "elsewhere"
    elsewhere.mkdir()
    (server.root / "linked").symlink_to(elsewhere)  # a link where a district's folder should be
    env = server.env()
    source = SftpDropSource(SftpConfig("127.0.0.1", int(env["MTSS_SFTP_PORT"]), env["MTSS_SFTP_USER"],
                                       env["MTSS_SFTP_KEY_PATH"], env["MTSS_SFTP_KNOWN_HOSTS"], env["MTSS_SFTP_ROOT"]))
    log = server.base / "sshd.log"
    sessions = log.read_text(errors="replace").count("Accepted publickey")
    found, refused = source.list_districts({**folders, "linked": "linked"})
    assert sorted(d.district for d in found) == sorted(folders) and all(d.has_marker for d in found)
    assert list(refused) == ["linked"] and refused["linked"].reason == "not_a_regular_file"
    time.sleep(0.2)  # sshd writes its log line as it accepts
    assert log.read_text(errors="replace").count("Accepted publickey") - sessions == 1


def test_a_drop_folder_the_service_account_cannot_list_is_refused_alone():
    """One drop sub-folder the service account may not list (here, as root, the account is `nobody`; otherwise the
    folder's mode is 000): that drop is refused, once, as it is listed; the district's other drops and the other
    districts are listed. Before, the listing's PermissionError failed the tick of every district, at every tick."""
    import tempfile
    from belleville_mtss.lib.receive.drops import UNLISTABLE
    from belleville_mtss.lib.receive.sftp import SftpConfig, SftpDropSource
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="mtss-sftp-"))  # another account can reach it, unlike pytest's folders
    os.chmod(base, 0o755)
    server = SshServer(base / "sshd")
    locked, locked_district = server.root / "d1" / "2026-11-08", server.root / "d3"
    try:
        if as_root:
            server.user = "nobody"
        for district, drop in (("d1", "2026-11-01"), ("d1", "2026-11-08"), ("d2", "2026-11-01"), ("d3", "2026-11-01")):
            (server.root / district / drop).mkdir(parents=True)
            (server.root / district / drop / "SR.csv").write_text("x\n")
            (server.root / district / drop / "drop.done").write_text("")
        for p in [server.base, server.base / "authorized_keys", *server.root.parent.rglob("sftp-root*"),
                  *server.root.rglob("*")]:  # readable by the account; the keys stay private
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        for folder in (locked, locked_district):
            os.chmod(folder, 0o700 if as_root else 0o000)
        server.start()
        env = server.env()
        source = SftpDropSource(SftpConfig("127.0.0.1", int(env["MTSS_SFTP_PORT"]), env["MTSS_SFTP_USER"],
                                           env["MTSS_SFTP_KEY_PATH"], env["MTSS_SFTP_KNOWN_HOSTS"],
                                           env["MTSS_SFTP_ROOT"]))
        found, refused = source.list_districts({"d1": "d1", "d2": "d2", "d3": "d3"})
        # a district folder it may not list is that district's refusal alone (it failed every district's tick)
        assert {d: (r.reason, r.message) for d, r in refused.items()} == {"d3": (UNLISTABLE, (
            "the drop folder 'd3' cannot be listed (permission denied): give the service account read access to it"))}
        assert sorted((d.key, d.refused_at_listing) for d in found) == [
            ("d1/2026-11-01", False), ("d1/2026-11-08", True), ("d2/2026-11-01", False)]
        (unlisted,) = [d for d in found if d.refused_at_listing]
        assert unlisted.problem[:2] == (UNLISTABLE, "the drop folder '2026-11-08' cannot be listed (permission "
                                                    "denied): give the service account read access to it")
    finally:
        server.stop()
        for folder in (locked, locked_district):
            if folder.exists():
                os.chmod(folder, 0o755)
        shutil.rmtree(base, ignore_errors=True)


@one_backend
def test_a_server_killed_mid_transfer_is_recorded_and_the_sensor_asks_for_the_drop_again(backend, server, tmp_path,
                                                                                        monkeypatch, capsys, new_instance):
    """Issue 34 case 9, with a real OpenSSH server stopped while a file streams in: the refusal is recorded
    (`transfer_failed`, no account or address in it), `status` shows the drop, and once the server is back the
    sensor requests the drop again (after its backoff) and the run loads it whole."""
    import threading
    from belleville_mtss.cli import main
    from belleville_mtss.defs import sensors
    monkeypatch.setattr("belleville_mtss.lib.receive.sftp.BACKOFF", (0.05, 0.05))
    settings = make_settings(backend.home, **server.env(), MTSS_WAREHOUSE_URL=backend.warehouse_url,
                             MTSS_PROD_DB_URL=backend.prod_db_url)
    drop = tmp_path / "outgoing"
    tables = generate_drop(drop, SMALL)
    load_databases(settings.prod_db_url, settings.warehouse_url, tables["classlink_users"])
    upload(server, drop, "2026-11-01")
    key = "belleville/2026-11-01"
    with new_instance() as instance:
        first = tick(settings, instance)
        [request] = first.run_requests
        monkeypatch.setenv("MTSS_FAULT", "mid_transfer:sleep=1")  # each file pauses after its first block

        def stop_when_files_stream_in():  # the server dies while the files stream in
            deadline = time.time() + 60
            while time.time() < deadline and not list(settings.staging_dir.glob("belleville/.incoming-*/*.part")):
                time.sleep(0.01)
            server.stop()

        stopper = threading.Thread(target=stop_when_files_stream_in)
        stopper.start()
        instance.add_dynamic_partitions("drops", [key])
        job = build_definitions(settings).resolve_job_def("drop_job")
        failed = job.execute_in_process(instance=instance, partition_key=key, tags=request.tags,
                                        raise_on_error=False)
        stopper.join()
        monkeypatch.delenv("MTSS_FAULT")
        assert not failed.success
        logged = errors(settings).filter(pl.col("Reason") == "transfer_failed")
        assert logged.height == 1 and logged["DropId"].to_list() == [key]
        message = logged["Message"][0]
        assert "@" not in message and "127.0.0.1" not in message and server.user not in message.split(), message
        server.start()
        monkeypatch.setattr(sensors, "TRANSFER_BACKOFF_S", 3600.0)
        assert not getattr(tick(settings, instance, first.cursor), "run_requests", None)  # within its backoff
        monkeypatch.setattr(sensors, "TRANSFER_BACKOFF_S", 0.0)
        again = tick(settings, instance, first.cursor)
        [retry] = again.run_requests
        assert retry.partition_key == key and retry.run_key == f"{request.run_key}#transfer1"
        assert job.execute_in_process(instance=instance, partition_key=key, tags=retry.tags).success
        assert not getattr(tick(settings, instance, again.cursor), "run_requests", None)  # received: never again
    assert warehouse_counts(settings)["roster"] == SMALL.students
    monkeypatch.setenv("MTSS_HOME", str(settings.home))
    monkeypatch.setenv("MTSS_WAREHOUSE_URL", settings.warehouse_url)
    capsys.readouterr()
    assert main(["status", key]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(key) and "receive/transfer_failed 1" in shown and "loaded" in shown, shown


def test_a_run_loads_only_the_version_it_was_requested_for(world, new_instance, monkeypatch):
    """A run the sensor requested for a corrected version, started while the server was down, replayed the older
    staged copy under the new version's tag, and the correction was never loaded; a run started after the sender
    took the marker down to upload again received the half-sent files. Now the first fails as a failed transfer,
    asked for again once the server answers, and the second is refused: what the server lists now is the sensor's to
    request once it is complete."""
    monkeypatch.setattr("belleville_mtss.defs.sensors.TRANSFER_BACKOFF_S", 0)
    settings, server, drop = world
    key = "belleville/2026-11-09"
    dest = upload(server, drop, "2026-11-09")
    job = build_definitions(settings).resolve_job_def("drop_job")

    def corrected(seconds: float) -> None:
        (dest / "drop.done").unlink()
        os.utime(dest / "SR.csv", (time.time() + seconds, time.time() + seconds))
        (dest / "drop.done").write_text("")

    with new_instance() as instance:
        first = tick(settings, instance)
        instance.add_dynamic_partitions("drops", [key])
        assert job.execute_in_process(instance=instance, partition_key=key, tags=first.run_requests[0].tags).success
        corrected(5)
        second = tick(settings, instance, first.cursor)
        v2 = second.run_requests[0].tags
        server.stop()
        down = job.execute_in_process(instance=instance, partition_key=key, tags=v2, raise_on_error=False)
        assert not down.success
        logged = errors(settings).filter(pl.col("Stage") == "receive")
        assert logged["Reason"].to_list() == ["transfer_failed"]
        assert "the staged copy is version" in logged["Message"][0] and "127.0.0.1" not in logged["Message"][0]
        server.start()
        again = tick(settings, instance, second.cursor)
        assert [r.tags["mtss/drop_version"] for r in again.run_requests] == [v2["mtss/drop_version"]]
        corrected(10)  # a third version uploaded before the run asked for the second starts
        moved = job.execute_in_process(instance=instance, partition_key=key, tags=again.run_requests[0].tags,
                                       raise_on_error=False)
        assert not moved.success
        assert errors(settings).filter(pl.col("Stage") == "receive")["Reason"].to_list()[-1] == \
            "changed_since_requested"
        assert job.execute_in_process(instance=instance, partition_key=key, tags=tick(
            settings, instance, again.cursor).run_requests[0].tags).success  # the third, requested by the sensor


def test_a_run_started_while_the_server_is_down_is_a_failed_transfer_asked_for_again(world, new_instance,
                                                                                      monkeypatch):
    """It failed with no error row, and the sensor, which retries what the error log calls a failed transfer,
    never asked for the drop again."""
    monkeypatch.setattr("belleville_mtss.defs.sensors.TRANSFER_BACKOFF_S", 0)
    settings, server, drop = world
    key = "belleville/2026-11-10"
    upload(server, drop, "2026-11-10")
    with new_instance() as instance:
        first = tick(settings, instance)
        instance.add_dynamic_partitions("drops", [key])
        server.stop()
        job = build_definitions(settings).resolve_job_def("drop_job")
        assert not job.execute_in_process(instance=instance, partition_key=key, tags=first.run_requests[0].tags,
                                          raise_on_error=False).success
        assert errors(settings).filter(pl.col("Stage") == "receive")["Reason"].to_list() == ["transfer_failed"]
        server.start()
        again = tick(settings, instance, first.cursor)
        assert [r.partition_key for r in again.run_requests] == [key]
        assert job.execute_in_process(instance=instance, partition_key=key, tags=again.run_requests[0].tags).success


def test_a_missed_drop_uploaded_after_a_later_one_is_requested_first(world, new_instance):
    settings, server, drop = world
    upload(server, drop, "2026-11-08")
    late = upload(server, drop, "2026-11-01")  # the missed one, sent afterwards
    for f in late.iterdir():
        os.utime(f, (time.time() + 60, time.time() + 60))
    with new_instance() as instance:
        result = tick(settings, instance)
    assert [r.partition_key for r in result.run_requests] == ["belleville/2026-11-01", "belleville/2026-11-08"]


def test_a_server_that_goes_quiet_as_the_sftp_session_opens_is_given_up_on_not_waited_for_forever(tmp_path,
                                                                                                  monkeypatch):
    """The SFTP version was read on a channel with no timeout: a server that accepted the login and then answered
    nothing (its SFTP subsystem stuck on hung storage) held the sensor's tick, or the run, for good. Here the real
    OpenSSH server runs a command that never answers in place of its SFTP server."""
    from belleville_mtss.lib.receive import sftp
    from belleville_mtss.lib.receive.sftp import SftpConfig, SftpDropSource, SftpTransient
    stuck = SshServer(tmp_path / "sshd", command="sleep 600").start()
    try:
        monkeypatch.setattr(sftp, "READ_TIMEOUT", 2.0)
        env = stuck.env()
        cfg = SftpConfig("127.0.0.1", stuck.port, env["MTSS_SFTP_USER"], env["MTSS_SFTP_KEY_PATH"],
                         env["MTSS_SFTP_KNOWN_HOSTS"], env["MTSS_SFTP_ROOT"])
        started = time.monotonic()
        with pytest.raises(SftpTransient):
            SftpDropSource(cfg, attempts=1).list_drops("belleville", "belleville")
        assert time.monotonic() - started < 20
    finally:
        stuck.stop()
