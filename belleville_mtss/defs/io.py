"""The IO manager. Within one run, an output is handed to the steps that read it in memory and dropped once the
last of them has it; it is also kept at rest for later runs and re-execution (encrypted with the staging key,
frames as Parquet: lib/persist.py), one file per asset and drop partition."""
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from ..lib.persist import load, save
from ..lib.untrusted import safe_join
from ..lib.vault import staging_key


def _consumers(context: dg.OutputContext) -> int:
    """How many steps of this run read the output (the plan is the run's own: a subset run counts its subset)."""
    plan = context.step_context.execution_plan
    return sum(h.step_key == context.step_key and h.output_name == context.name
               for step in plan.get_steps_to_execute_in_topo_order()
               for step_input in step.step_inputs
               for h in step_input.get_step_output_handle_dependencies())


class EncryptedFrameIOManager(dg.ConfigurableIOManager):
    base_dir: str
    home: str
    staging_key: str = ""
    _memory: dict = PrivateAttr(default_factory=dict)  # path -> [object, readers still to come]

    def _path(self, context) -> Path:
        # the identifier holds the partition key, a sender's drop name: it must stay under base_dir
        return safe_join(Path(self.base_dir), *context.get_asset_identifier())

    def _key(self) -> bytes:
        return staging_key(self.staging_key or None, Path(self.home))

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        save(self._key(), obj, path)
        readers = _consumers(context)
        if readers:
            self._memory[path] = [obj, readers]

    def load_input(self, context: dg.InputContext):
        path = self._path(context)
        held = self._memory.get(path)
        if held is None:
            return load(self._key(), path)
        held[1] -= 1
        if held[1] <= 0:
            del self._memory[path]
        return held[0]
