"""The `belleville-mtss` console script: `cli.console`, its code imported while Python's cycle collector waits.

Importing Dagster, polars, pandera, SQLAlchemy and our code makes several hundred thousand objects that live as
long as the process. While they are made, the collector scans them all each time they have grown by a quarter, and
again later in the run: about a third of a second of a 600-student `run` on a 2-core machine (docs/performance.md).
So the imports run with the collector off; then what they made is frozen (`gc.freeze`: left out of every later
collection; none of it is garbage) and the collector is back on for the command's own work, where a cycle may hold
a large frame."""
from __future__ import annotations

import gc
import importlib
import sys
from types import ModuleType

# The commands that run Dagster: it is imported with the rest, before the collector comes back, and so are the
# instance's storages (their module pulls in Dagster's storage layer and alembic: some 330 modules a run would
# otherwise import with the collector on, as the instance is made).
DAGSTER_COMMANDS = ("run", "demo")
DAGSTER_MODULES = ("run", "instance_storage")


def imported(command: str | None) -> ModuleType:
    """The cli module, and for a command of DAGSTER_COMMANDS the DAGSTER_MODULES, imported with the collector off;
    everything made so far frozen; the collector on again."""
    gc.disable()
    try:
        from . import cli
        if command in DAGSTER_COMMANDS:
            for module in DAGSTER_MODULES:  # Dagster with them, while the collector waits
                importlib.import_module(f"{__package__}.{module}")
        gc.freeze()
    finally:
        gc.enable()
    return cli


def console() -> None:
    imported(sys.argv[1] if len(sys.argv) > 1 else None).console()
