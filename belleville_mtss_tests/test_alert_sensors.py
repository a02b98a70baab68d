"""The alert sensors and the freshness asset, one evaluation at a time on a Dagster instance, delivering to a real
webhook receiver on 127.0.0.1: one alert per event across ticks, outage state that survives failing ticks, and the
configuration that sets how often they look."""
import datetime as dt
import json
import os
import time
from dataclasses import replace

import dagster as dg
import pytest
import yaml

from belleville_mtss.definitions import build_definitions
from belleville_mtss.defs.alerting import make_drop_alert_sensor, make_job_failure_alert_sensor, stored
from belleville_mtss.defs.freshness import drop_freshness
from belleville_mtss.defs.resources import resources
from belleville_mtss.defs.sensors import OUTAGE, DropServerUnreachable
from belleville_mtss.lib.alerts import AlertConfigError, load_alert_config
from belleville_mtss.lib.config import SettingError, load_settings
from belleville_mtss.lib.load.migrations import open_warehouse
from belleville_mtss.lib.load.warehouse import ingestion_files
from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import SMALL, prepare_drop, set_column, tick, two_district_registry
from .sshd_server import SshServer
from .test_alerts import Receiver
from .test_pii import _leaks, _pii


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def texts(receiver: Receiver) -> list[str]:
    return [json.loads(r["body"])["text"] for r in receiver.requests]


def alert_tick(settings, instance, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources(settings)) as ctx:
        result = make_drop_alert_sensor()(ctx)
        return result, ctx.cursor


# --- finished drop runs -------------------------------------------------------------------------------------

def test_each_finished_drop_run_alerts_once_for_what_happened_to_its_drop(settings, receiver, new_instance):
    settings = replace(settings, alert_env={"MTSS_ALERT_WEBHOOK_URL": receiver.url})
    prepare_drop(settings)
    foreign = prepare_drop(settings, replace(SMALL, drop_name="foreign"))
    set_column(foreign / "SR.csv", "DistrictName", "Nutley Public Schools")
    # of the same date as 2026-11-01 and first received after it, so that it is the newer (docs/operations.md,
    # "Drops over time")
    halted = prepare_drop(settings, replace(SMALL, drop_name="2026-11-01-halted"))
    (halted / "SM.csv").write_bytes((halted / "SM.csv").read_bytes()[:-300])
    with new_instance() as instance:
        old = run_drop(settings, "belleville/2026-11-01", instance=instance)
        _, cursor = alert_tick(settings, instance)  # the first tick: what ended before it is history
        assert receiver.requests == []

        reports = {key: run_drop(settings, f"belleville/{key}", instance=instance)
                   for key in ("2026-11-01", "foreign", "2026-11-01-halted", "missing")}  # missing: no such drop folder
        assert {k: r.outcome for k, r in reports.items()} == {
            "2026-11-01": "loaded", "foreign": "blocked", "2026-11-01-halted": "partial", "missing": "failed"}
        statuses = {r.tags["dagster/partition"]: r.status for r in instance.get_runs()}
        assert statuses["belleville/foreign"] == dg.DagsterRunStatus.FAILURE  # blocked: no failed_run alert too
        before = cursor
        result, cursor = alert_tick(settings, instance, cursor)
        assert result.skip_message == "3 alert(s) sent"
        # A tick whose cursor was not kept (cut short by its deadline) is evaluated again: nothing is sent twice.
        again, _ = alert_tick(settings, instance, before)
        assert again.skip_message == "0 alert(s) sent"

        blocked, halted_alert, failed = sorted(texts(receiver), key=lambda t: t.split()[1])
        version = reports["foreign"].version
        assert len(version) > 6 and reports["2026-11-01"].version == old.version  # the same drop, run twice
        assert blocked.splitlines() == [
            "MTSS: drop belleville/foreign blocked", "Check: district_names_match_registry",
            f"Reason: {reports['foreign'].why['district_names_match_registry']}", f"Drop version: {version}"]
        assert "Nutley Public Schools" in blocked
        assert halted_alert.splitlines()[:2] == [
            "MTSS: file SM.csv halted in drop belleville/2026-11-01-halted",
            "Reason: SM.csv: the last record has 53 of 118 fields (file cut short?); the file was halted, nothing "
            "from it is loaded"]
        missing_run = next(r for r in instance.get_runs() if r.tags["dagster/partition"] == "belleville/missing")
        assert failed.splitlines() == [
            "MTSS: run of drop_job failed", "Job: drop_job", f"Run: {missing_run.run_id}",
            "Drop: belleville/missing", "Failed step(s): received_drop", "Details are in the Dagster UI run log."]

        # Later ticks, a replay of the same drop version and a run whose tags changed send nothing new.
        run_drop(settings, "belleville/foreign", instance=instance)
        instance.add_run_tags(missing_run.run_id, {"note": "looked at"})
        for _ in range(2):
            result, cursor = alert_tick(settings, instance, cursor)
        assert len(receiver.requests) == 3 and result.skip_message == "0 alert(s) sent"
    for drop in (foreign, halted):
        assert _leaks("\n".join(texts(receiver)), _pii(drop)) == []


def test_a_failed_housekeeping_run_alerts_once_naming_its_job_and_step(tmp_path, receiver, new_instance):
    # A registry folder that is not there: the freshness run fails at its first step.
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(tmp_path / "no-such-folder"),
                             MTSS_ALERT_WEBHOOK_URL=receiver.url)
    defs = build_definitions(settings)
    with new_instance() as instance:
        result = defs.resolve_job_def("drop_freshness_job").execute_in_process(instance=instance,
                                                                              raise_on_error=False)
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        failure = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0].dagster_event
        sensor = make_job_failure_alert_sensor([defs.resolve_job_def("drop_freshness_job")])
        with dg.build_run_status_sensor_context("job_failure_alert_sensor", failure, instance, run,
                                                resources=resources(settings)) as ctx:
            sensor(ctx.for_run_failure())
    assert texts(receiver) == [
        f"MTSS: run of drop_freshness_job failed\nJob: drop_freshness_job\nRun: {result.run_id}\n"
        "Failed step(s): drop_freshness\nDetails are in the Dagster UI run log."]


# --- the drop server outage ---------------------------------------------------------------------------------

def test_an_outage_skips_within_its_window_then_fails_each_tick_alerting_once_and_clears_at_the_first_good_tick(
        tmp_path, receiver, monkeypatch, new_instance):
    monkeypatch.setattr("belleville_mtss.lib.receive.sftp.BACKOFF", (0.05, 0.05))  # the retries' pauses, not 1 s and 3 s
    server = SshServer(tmp_path / "sshd")  # not started yet: nothing listens on its port
    settings = make_settings(tmp_path / "mtss", **server.env(), MTSS_ALERT_WEBHOOK_URL=receiver.url,
                             MTSS_ALERT_OUTAGE_MINUTES="0.005")  # 0.3 s
    try:
        with new_instance() as instance:
            first = tick(settings, instance)
            assert isinstance(first, dg.SkipReason)
            assert first.skip_message.startswith("drop server unreachable for 0.0 min, will retry "
                                                 "(alert after 0.005 min): ")
            assert receiver.requests == [] and stored(instance, OUTAGE, {})["alerted"] is False

            for _ in range(2):  # past the window: every tick fails with the reason; one alert only
                time.sleep(0.4)
                with pytest.raises(DropServerUnreachable, match=r"drop server unreachable for 0\.\d min, longer "
                                   r"than MTSS_ALERT_OUTAGE_MINUTES \(0\.005\); alert sent; retried at every tick: "
                                   rf"\S+@127\.0\.0\.1:{server.port}: NoValidConnectionsError"):
                    tick(settings, instance)
            [outage] = texts(receiver)
            assert outage.startswith("MTSS: drop server 127.0.0.1 unreachable\nUnreachable since ")
            assert "@" not in outage  # the host, never user@host

            server.start()
            back = tick(settings, instance)  # the first good tick clears the outage, and says so once
            assert "no complete new drop" in back.skip_reason.skip_message
            assert stored(instance, OUTAGE, None) == {}
            tick(settings, instance)
            assert [t.splitlines()[0] for t in texts(receiver)] == [
                "MTSS: drop server 127.0.0.1 unreachable", "MTSS: drop server 127.0.0.1 reachable again"]
    finally:
        server.stop()


def test_a_failing_drop_sensor_alerts_once_at_its_first_failed_tick_and_again_when_it_works(tmp_path, receiver, new_instance):
    from .sshd_server import keygen
    server = SshServer(tmp_path / "sshd").start()
    stranger = tmp_path / "stranger_key"
    keygen(stranger)  # a key the server does not authorise: every tick fails at authentication
    env = {**server.env(), "MTSS_SFTP_KEY_PATH": str(stranger)}
    refused = make_settings(tmp_path / "mtss", **env, MTSS_ALERT_WEBHOOK_URL=receiver.url)
    try:
        with new_instance() as instance:
            for _ in range(3):
                with pytest.raises(Exception, match="uthenticat"):
                    tick(refused, instance)
            [failing] = texts(receiver)  # three failed ticks, one alert
            assert failing.startswith("MTSS: sensor sftp_drop_sensor failing\nIts tick failed at ")
            assert "@" not in failing and str(stranger) not in failing
            fixed = make_settings(tmp_path / "mtss", **server.env(), MTSS_ALERT_WEBHOOK_URL=receiver.url)
            tick(fixed, instance)
            tick(fixed, instance)
            assert [t.splitlines()[0] for t in texts(receiver)] == [
                "MTSS: sensor sftp_drop_sensor failing", "MTSS: sensor sftp_drop_sensor working again"]
    finally:
        server.stop()


# --- freshness and overdue districts ------------------------------------------------------------------------

def _received(settings, drop_id: str, version: str, days_ago: float) -> None:
    """An audit row as received_drop writes it, received `days_ago`."""
    engine = open_warehouse(settings.warehouse_url, settings.embedded_warehouse)
    at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(days=days_ago)
    with engine.begin() as conn:
        conn.execute(ingestion_files.insert(), [{
            "DropId": drop_id, "DropVersion": version, "FileName": "SR.csv", "DistrictId": 107873, "Sha256": "0" * 64,
            "SizeBytes": 1, "RunId": None, "ReceivedAt": at, "Outcome": "loaded", "OutcomeAt": at}])
    engine.dispose()


def test_drop_freshness_plots_each_districts_age_and_alerts_once_per_overdue_period(tmp_path, receiver, new_instance):
    registry = two_district_registry(tmp_path)
    for name, days in (("belleville.yaml", 7), ("riverton.yaml", 1)):
        entry = yaml.safe_load((registry / name).read_text())
        (registry / name).write_text(yaml.safe_dump({**entry, "expected_every_days": days}, sort_keys=False))
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(registry), MTSS_ALERT_WEBHOOK_URL=receiver.url)
    _received(settings, "belleville/2026-10-01", "v1", days_ago=10)
    _received(settings, "belleville/2026-10-01", "v1", days_ago=1)  # a replay from staging: not a new drop

    def materialize(instance) -> dict:
        result = dg.materialize([drop_freshness], instance=instance, resources=resources(settings))
        return result.asset_materializations_for_node("drop_freshness")[0].metadata

    with new_instance() as instance:
        meta = materialize(instance)
        assert isinstance(meta["last_drop_age_days/belleville"], dg.FloatMetadataValue)
        assert meta["last_drop_age_days/belleville"].value == pytest.approx(10, abs=0.01)
        assert "last_drop_age_days/riverton" not in meta  # never received: nothing to plot
        assert (meta["overdue"].value, meta["never_received"].value) == ("belleville, riverton", "riverton")
        assert "| belleville |" in meta["districts"].value and "**overdue**" in meta["districts"].value
        first = texts(receiver)
        assert [t.splitlines()[0] for t in first] == ["MTSS: district belleville overdue",
                                                      "MTSS: district riverton overdue"]
        assert "(10.0 days ago)" in first[0] and "Expected every 7 day(s)." in first[0]
        assert "Last drop: never." in first[1]

        materialize(instance)  # the next day's run: the same missing periods, no new alert
        assert len(receiver.requests) == 2

        _received(settings, "belleville/2026-11-20", "v7", days_ago=0)  # belleville sends again
        meta = materialize(instance)
        assert meta["last_drop_age_days/belleville"].value < 0.01
        assert meta["overdue"].value == "riverton" and len(receiver.requests) == 2
        ages = [m.asset_materialization.metadata["last_drop_age_days/belleville"].value for m in
                instance.fetch_materializations(dg.AssetKey("drop_freshness"), limit=10).records]
        assert len(ages) == 3 and ages[0] < 0.01 and ages[-1] == pytest.approx(10, abs=0.01)  # a series to plot


# --- configuration ------------------------------------------------------------------------------------------

def test_the_sensor_interval_and_the_freshness_cron_are_read_from_their_variables(tmp_path):
    def sensors_and_schedule(**env):
        defs = build_definitions(load_settings({"MTSS_HOME": str(tmp_path), **env}))
        sensors = {s.name: s.minimum_interval_seconds for s in defs.sensors}
        return sensors, defs.resolve_schedule_def("drop_freshness_schedule").cron_schedule

    names = {"sftp_drop_sensor", "drop_outcome_sensor", "drop_alert_sensor", "job_failure_alert_sensor"}
    assert sensors_and_schedule() == (dict.fromkeys(names, 30), "0 6 * * *")
    assert sensors_and_schedule(MTSS_SENSOR_INTERVAL_SECONDS="5", MTSS_FRESHNESS_CRON=" */10  * * * 1-5") == (
        dict.fromkeys(names, 5), "*/10 * * * 1-5")
    for env, variable in (({"MTSS_SENSOR_INTERVAL_SECONDS": "0"}, "MTSS_SENSOR_INTERVAL_SECONDS"),
                          ({"MTSS_SENSOR_INTERVAL_SECONDS": "2.5"}, "MTSS_SENSOR_INTERVAL_SECONDS"),
                          ({"MTSS_FRESHNESS_CRON": "61 * * * *"}, "MTSS_FRESHNESS_CRON"),
                          ({"MTSS_FRESHNESS_CRON": "daily"}, "MTSS_FRESHNESS_CRON")):
        with pytest.raises(SettingError, match=f"^{variable} "):
            sensors_and_schedule(**env)


def test_a_malformed_alert_setting_stops_the_load_naming_the_variable_and_the_ui_shows_secrets_as_variables(
        tmp_path, monkeypatch):
    with pytest.raises(AlertConfigError, match="^MTSS_ALERT_TO "):
        load_settings({"MTSS_HOME": str(tmp_path), "MTSS_ALERT_TO": "ops@mtss.example.org"})
    monkeypatch.setenv("MTSS_ALERT_WEBHOOK_URL", "https://hooks.example.org/services/T0/B0/s3cret")
    monkeypatch.setenv("MTSS_ALERT_TO", "ops@mtss.example.org")
    monkeypatch.setenv("MTSS_ALERT_SMTP_URL", "smtp://bot:s3cret@mail.example.org")
    monkeypatch.setenv("MTSS_ALERT_URLS", "workflows://prod-1.westus.logic.azure.com/wf0/s3cret")
    settings = load_settings({**os.environ, "MTSS_HOME": str(tmp_path)})
    assert "s3cret" not in repr(settings)
    alerting = resources(settings)["alerting"]
    assert isinstance(alerting.webhook_url, dg.EnvVar) and alerting.webhook_url == "MTSS_ALERT_WEBHOOK_URL"
    assert isinstance(alerting.smtp_url, dg.EnvVar) and alerting.to == "ops@mtss.example.org"
    assert isinstance(alerting.urls, dg.EnvVar) and alerting.urls == "MTSS_ALERT_URLS"
    assert [d.channel for d in load_alert_config(os.environ).destinations] == ["workflows", "webhook", "email"]


def test_a_run_re_executed_with_its_parents_tags_is_alerted_and_tagged_as_its_own(settings, receiver, new_instance):
    """Re-executing a run from the UI copies its tags: the parent's `mtss/alerts` and `mtss/outcome` made the
    sensors take the child for handled, so its failure paged no one and its outcome stayed the parent's."""
    from belleville_mtss.report import OUTCOME_TAG
    settings = replace(settings, alert_env={"MTSS_ALERT_WEBHOOK_URL": receiver.url})
    with new_instance() as instance:
        _, cursor = alert_tick(settings, instance)
        run_drop(settings, "belleville/missing", instance=instance)  # no such drop: the run fails
        result, cursor = alert_tick(settings, instance, cursor)
        assert result.skip_message == "1 alert(s) sent"
        (run,) = instance.get_runs()
        assert run.tags[OUTCOME_TAG] == "failed" and run.tags["mtss/alerts"] == "1"
        inherited = {k: v for k, v in run.tags.items() if not k.startswith("dagster/")}
        prepare_drop(settings, replace(SMALL, drop_name="missing"))  # the drop arrived since: the child loads it
        child = run_drop(settings, "belleville/missing", instance=instance,
                         tags={**inherited, "dagster/parent_run_id": run.run_id})
        assert child.outcome == "loaded"
        child_run = instance.get_runs(limit=1)[0]
        assert child_run.tags[OUTCOME_TAG] == "loaded" and child_run.tags[f"{OUTCOME_TAG}/run"] == child_run.run_id
        run_drop(settings, "belleville/nowhere", instance=instance, tags={**inherited})  # fails, a parent's tags
        result, cursor = alert_tick(settings, instance, cursor)
        assert result.skip_message == "1 alert(s) sent" and "Drop: belleville/nowhere" in texts(receiver)[-1]


def test_a_live_run_is_never_judged_dead_by_a_process_id_it_inherited():
    import socket
    from belleville_mtss.defs.recovery import HOST, PID, _dead
    gone = "999999999"  # no process has it
    inherited = {HOST: socket.gethostname(), PID: gone, f"{HOST}/run": "parent", f"{PID}/run": "parent"}
    assert not _dead(dg.DagsterRun(job_name="drop_job", run_id="child", tags=inherited))
    own = {**inherited, f"{HOST}/run": "child", f"{PID}/run": "child"}
    assert _dead(dg.DagsterRun(job_name="drop_job", run_id="child", tags=own))


def test_runs_from_the_asset_graph_are_tagged_and_alerted_and_one_that_loads_nothing_leaves_its_files_received(
        settings, receiver, new_instance):
    """Assets materialized from the asset graph run under Dagster's implicit job: the sensors looked at drop_job's
    runs only, so a blocked drop materialized there alerted no one and was never tagged; and a run of the receipt
    alone (no load asked) was called failed, with a run/failed row, its files marked failed."""
    from belleville_mtss.defs.outcomes import make_drop_outcome_sensor
    from belleville_mtss.lib.load.warehouse import ingestion_errors, make_engine, read_table
    from belleville_mtss.report import OUTCOME_TAG
    settings = replace(settings, alert_env={"MTSS_ALERT_WEBHOOK_URL": receiver.url})
    prepare_drop(settings)
    foreign = prepare_drop(settings, replace(SMALL, drop_name="foreign"))
    set_column(foreign / "SR.csv", "DistrictName", "Nutley Public Schools")
    graph = build_definitions(settings).resolve_implicit_global_asset_job_def()

    def materialize(key: str, *assets: str) -> dg.DagsterRun:
        instance.add_dynamic_partitions("drops", [key])
        result = graph.execute_in_process(instance=instance, partition_key=key, raise_on_error=False,
                                          asset_selection=[dg.AssetKey(a) for a in assets] or None)
        return instance.get_run_by_id(result.run_id)

    def outcome_tick():
        with dg.build_sensor_context(instance=instance, resources=resources(settings)) as ctx:
            make_drop_outcome_sensor()(ctx)

    with new_instance() as instance:
        _, cursor = alert_tick(settings, instance)
        blocked = materialize("belleville/foreign")
        assert blocked.job_name == graph.name != "drop_job"
        received = materialize("belleville/2026-11-01", "received_drop")
        assert received.status == dg.DagsterRunStatus.SUCCESS
        result, cursor = alert_tick(settings, instance, cursor)
        assert result.skip_message == "1 alert(s) sent"
        assert texts(receiver)[0].startswith("MTSS: drop belleville/foreign blocked")
        outcome_tick()
        assert instance.get_run_by_id(blocked.run_id).tags[OUTCOME_TAG] == "blocked"
        assert instance.get_run_by_id(received.run_id).tags[OUTCOME_TAG] == "received"
        # another code location's partitioned run on the same instance is none of ours: not tagged, not alerted
        @dg.asset(partitions_def=dg.DailyPartitionsDefinition("2026-12-01"))
        def theirs():
            raise ValueError("theirs")
        foreign = dg.materialize([theirs], instance=instance, partition_key="2026-12-01", raise_on_error=False)
        outcome_tick()
        result, cursor = alert_tick(settings, instance, cursor)
        assert result.skip_message == "0 alert(s) sent"
        assert OUTCOME_TAG not in instance.get_run_by_id(foreign.run_id).tags
        # the drop's whole run after it settles nothing of the receipt's: its files were received, as it says
        assert run_drop(settings, instance=instance).outcome == "loaded"
        engine = make_engine(settings.warehouse_url)
        errors = read_table(engine, ingestion_errors)
        files = read_table(engine, ingestion_files)
    assert errors.filter(errors["RunId"] == received.run_id).is_empty()
    assert set(files.filter(files["RunId"] == received.run_id)["Outcome"]) == {"received"}
