"""The console script's start (belleville_mtss/start.py): its code imported with the cycle collector off, then
frozen, and the collector on again for the command's work. Each case in a new interpreter: what one imports and
freezes is the process's."""
import importlib.metadata
import json
import subprocess
import sys

PROBE = """
import gc, json, sys
from belleville_mtss.start import imported
cli = imported(sys.argv[1])
print(json.dumps({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count(), "cli": cli.__name__,
                  "dagster": "dagster" in sys.modules, "storages": "belleville_mtss.instance_storage" in sys.modules}))
"""


def _probe(command: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, command], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_a_command_that_runs_dagster_has_it_imported_and_frozen_with_the_collector_on_again():
    found = _probe("run")
    assert found["cli"] == "belleville_mtss.cli" and found["dagster"] and found["storages"] and found["enabled"]
    # Dagster, polars, pandera and our code: a few hundred thousand objects, none left for the collector to scan
    assert found["frozen"] > 100_000


def test_another_command_imports_no_dagster():
    found = _probe("status")
    assert not found["dagster"] and not found["storages"] and found["enabled"] and found["frozen"] > 10_000


def test_the_collector_is_on_again_when_an_import_fails():
    probe = ("import gc, sys\nsys.modules['belleville_mtss.cli'] = None  # importing it now fails\n"
             "from belleville_mtss.start import imported\n"
             "try:\n    imported('run')\nexcept ImportError:\n    print(gc.isenabled())\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


def test_the_installed_command_starts_here():
    script = next(e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "belleville-mtss")
    assert script.value == "belleville_mtss.start:console"
