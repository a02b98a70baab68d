"""Alerts from a running dagster-daemon to a real webhook receiver and a real SMTP server (aiosmtpd), both on
127.0.0.1: exactly one notification per event (a blocked drop, a halted file, the drop server unreachable past its
window, an overdue district) on each channel, and no student data in any of them.

The drop server is an SFTP address where nothing listens (the outage). The two drops are run from the test process
on the daemon's instance, as `belleville-mtss run` does; the daemon's drop_alert_sensor finds them finished there.
"""
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.scheduler.instigation import TickStatus

from belleville_mtss.run import INSTANCE_YAML, run_drop

from .conftest import make_settings
from .helpers import SMALL, prepare_drop, set_column, start_group, stop_group, two_district_registry
from .test_alerts import Inbox, Receiver, free_port, start_smtp
from .test_pii import _leaks, _pii

REPO = Path(__file__).resolve().parent.parent
EVENTS = ["blocked_drop", "district_overdue", "drop_server_outage", "halted_file"]
TO = "ops@mtss.example.org"


def ticks(instance: dg.DagsterInstance, name: str) -> list:
    """The instigator's finished ticks, newest first (not the one being evaluated)."""
    for state in instance.all_instigator_state():
        if state.instigator_name == name:
            return [t for t in instance.get_ticks(state.instigator_origin_id, state.selector_id)
                    if t.status != TickStatus.STARTED]
    return []


TITLES = {"blocked_drop": " blocked", "halted_file": " halted in drop ", "drop_server_outage": " unreachable",
          "district_overdue": " overdue", "failed_run": " failed", "outage_cleared": " reachable again"}


def kinds(receiver: Receiver, inbox: Inbox) -> tuple[list[str], list[str]]:
    """The alert kind of each webhook post (from its title) and each email (from the kind its body ends with)."""
    titles = [json.loads(r["body"])["text"].splitlines()[0] for r in receiver.requests]
    webhook = sorted(next(k for k, words in TITLES.items() if words in title) for title in titles)
    email = sorted(msg.get_content().rsplit("(", 1)[1].split(",")[0] for _, msg in inbox.messages)
    return webhook, email


def test_a_running_daemon_sends_one_notification_per_event_and_no_student_data(tmp_path):
    receiver, inbox = Receiver(), Inbox()
    smtp = start_smtp(inbox)

    registry = two_district_registry(tmp_path)
    for name, days in (("belleville.yaml", 7), ("riverton.yaml", 1)):  # riverton has never sent a drop: overdue
        entry = yaml.safe_load((registry / name).read_text())
        (registry / name).write_text(yaml.safe_dump({**entry, "expected_every_days": days}, sort_keys=False))
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(registry))
    foreign = prepare_drop(settings, replace(SMALL, drop_name="foreign"))
    set_column(foreign / "SR.csv", "DistrictName", "Nutley Public Schools")  # names another district: blocked
    halted = prepare_drop(settings, replace(SMALL, drop_name="halted"))
    (halted / "SM.csv").write_bytes((halted / "SM.csv").read_bytes()[:-300])  # cut short: SM.csv halted

    for name in ("key", "known_hosts"):  # the files exist; the server does not answer
        (tmp_path / name).write_text("")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML.format(home=home))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MTSS_", "DAGSTER_"))}
    env |= {
        "DAGSTER_HOME": str(home), "MTSS_HOME": str(settings.home), "MTSS_DISTRICTS_DIR": str(registry),
        "MTSS_SFTP_HOST": "127.0.0.1", "MTSS_SFTP_PORT": str(free_port()), "MTSS_SFTP_USER": "mtss",
        "MTSS_SFTP_KEY_PATH": str(tmp_path / "key"), "MTSS_SFTP_KNOWN_HOSTS": str(tmp_path / "known_hosts"),
        "MTSS_ALERT_WEBHOOK_URL": receiver.url,
        "MTSS_ALERT_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}?from=alerts%40mtss.example.org",
        "MTSS_ALERT_TO": TO,
        "MTSS_ALERT_OUTAGE_MINUTES": "0.1",  # 6 s: past it at the second or third failing tick
        "MTSS_SENSOR_INTERVAL_SECONDS": "5",
        "MTSS_FRESHNESS_CRON": "* * * * *",  # every minute, so the test need not wait a day
    }
    # Made here before the daemon starts: two processes creating one fresh SQLite instance at once collide.
    instance = dg.DagsterInstance.from_config(str(home))
    instance.get_runs(limit=1), instance.all_instigator_state()
    log_path = tmp_path / "daemon.log"
    daemon = start_group([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                         cwd=REPO, env=env, stdout=(log := open(log_path, "wb")), stderr=log)

    def daemon_log() -> str:
        return log_path.read_text(errors="replace")[-4000:]

    def wait_for(what: str, done, seconds: float = 150):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if value := done():
                return value
            assert daemon.poll() is None, daemon_log()
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}: {kinds(receiver, inbox)}\n{daemon_log()}")

    try:
        # The alert sensor starts from its first tick: runs that ended before it are history.
        wait_for("the first tick of drop_alert_sensor", lambda: ticks(instance, "drop_alert_sensor"), 90)
        reports = [run_drop(settings, key, instance=instance) for key in ("belleville/foreign",
                                                                         "belleville/halted")]
        assert [r.outcome for r in reports] == ["blocked", "partial"]

        sensed = {"blocked_drop", "halted_file", "drop_server_outage"}
        wait_for("the sensors' alerts", lambda: all(sensed <= set(k) for k in kinds(receiver, inbox)))
        # While the schedule's minute comes: more ticks of every sensor, the failing ones included, send nothing more.
        seen = {n: len(ticks(instance, n)) for n in ("sftp_drop_sensor", "drop_alert_sensor")}
        wait_for("the overdue alert and two more ticks of each sensor",
                 lambda: kinds(receiver, inbox) == (EVENTS, EVENTS)
                 and all(len(ticks(instance, n)) >= seen[n] + 2 for n in seen))
        assert kinds(receiver, inbox) == (EVENTS, EVENTS)  # exactly one notification per event on each channel

        # The outage is visible: the drop sensor's ticks fail, the reason as the error.
        latest = ticks(instance, "sftp_drop_sensor")[0]
        assert latest.status == TickStatus.FAILURE
        reason = latest.error.cause  # Dagster wraps the sensor's exception; its message is the reason
        assert reason.cls_name == "DropServerUnreachable", latest.error
        assert reason.message.startswith("belleville_mtss.defs.sensors.DropServerUnreachable: drop server "
                                         "unreachable for "), reason.message
        assert "longer than MTSS_ALERT_OUTAGE_MINUTES (0.1)" in reason.message
        assert f"127.0.0.1:{env['MTSS_SFTP_PORT']}" in reason.message

        # Freshness: belleville's last-drop age as a number, riverton never received.
        # (its alert goes out inside the run, before the materialization is stored: wait for that too)
        freshness = wait_for("the drop_freshness materialization",
                             lambda: instance.get_latest_materialization_event(dg.AssetKey("drop_freshness")), 60)
        meta = freshness.asset_materialization.metadata
        assert isinstance(meta["last_drop_age_days/belleville"], dg.FloatMetadataValue)
        assert 0 <= meta["last_drop_age_days/belleville"].value < 0.01
        assert meta["never_received"].value == "riverton" and meta["overdue"].value == "riverton"
    finally:
        stop_group(daemon)
        instance.dispose()
        log.close()
        smtp.stop()
        receiver.close()

    posts = [json.loads(r["body"])["text"] for r in receiver.requests]
    mails = [msg.as_string() for _, msg in inbox.messages]
    assert all(rcpts == [TO] for rcpts, _ in inbox.messages)
    texts = "\n".join(posts + mails)
    assert "belleville/foreign" in texts and "district_names_match_registry" in texts and "SM.csv" in texts
    assert "riverton" in texts and "127.0.0.1" in texts
    for drop in (foreign, halted):
        assert _leaks((drop / "students.csv").read_text(), _pii(drop))  # the scanner finds what it looks for
        assert _leaks(texts, _pii(drop)) == []
    assert "@" not in "\n".join(posts)  # no address of any kind in the webhook posts
