"""Progress on long work: one plain line per step when the output is not a terminal, a bar when it is; and the
instance the command line's runs are kept on."""
import io
import re
from dataclasses import replace

import pytest

from belleville_mtss.progress import Progress
from belleville_mtss.run import run_drop

from .helpers import SMALL, prepare_drop, set_column

LINE = re.compile(r"^\[(\d+)/(\d+)\] (\w+) (done|FAILED|skipped) \(\d+\.\d s\)$")


def _progress(capsys) -> list[str]:
    """The progress lines of stderr (Dagster's console log of warnings goes there too)."""
    return [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("[") and "/" in line.split("]")[0] or line.endswith("step(s) not run")]


def test_each_step_is_one_line_when_not_a_terminal_and_a_blocked_run_says_what_did_not_run(settings, capsys):
    prepare_drop(settings)
    run_drop(settings, progress=True)
    lines = _progress(capsys)
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    total = int(parsed[0].group(2))
    assert [int(m.group(1)) for m in parsed] == list(range(1, total + 1))
    assert {m.group(4) for m in parsed} == {"done"} and parsed[-1].group(3) == "warehouse_load"

    foreign = prepare_drop(settings, replace(SMALL, drop_name="foreign"))
    set_column(foreign / "SM.csv", "DistrictName", "Nutley Public Schools")
    run_drop(settings, "belleville/foreign", progress=True)
    lines = _progress(capsys)
    assert any(line.startswith("[") and "district_crosswalk FAILED" in line for line in lines)
    not_run = int(lines[-1].split()[0])
    assert lines[-1] == f"{not_run} step(s) not run" and not_run == total - (len(lines) - 1)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_not_lines():
    out = _Terminal()
    progress = Progress(2, "belleville/x", stream=out)
    with progress.attached():
        progress("STEP_START", "received_drop")
        progress("STEP_SUCCESS", "received_drop")
    assert progress.done == 1 and "[1/2]" not in out.getvalue()
    assert out.getvalue().rstrip().endswith("1 step(s) not run")


@pytest.mark.persistent_instance
def test_runs_of_the_command_line_are_kept_on_the_instance_the_ui_reads(settings, monkeypatch):
    """`run` and `demo` write to MTSS_HOME/dagster (DAGSTER_HOME when set): `dagster dev` started with that home
    shows the run, its partition and its check results."""
    import dagster as dg

    from belleville_mtss.run import dagster_home

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    prepare_drop(settings)
    run_drop(settings)
    home = dagster_home(settings)
    assert home == (settings.home / "dagster").resolve()
    assert "enabled: false" in (home / "dagster.yaml").read_text()  # no usage statistics leave the machine
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert run.tags["dagster/partition"] == "belleville/2026-11-01" and run.tags["mtss/outcome"] == "loaded"
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("district_crosswalk"), "district_names_match_registry")])
        assert len(check) == 1
    monkeypatch.setenv("DAGSTER_HOME", str(settings.home / "elsewhere"))
    assert dagster_home(settings) == (settings.home / "elsewhere").resolve()
