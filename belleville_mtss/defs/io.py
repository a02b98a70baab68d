"""The IO manager. Within one run, an output is handed to the steps that read it in memory and dropped once the
last of them has it; it is also kept at rest for later runs and re-execution (encrypted with the staging key,
frames as Parquet: lib/persist.py), one file per asset and drop partition. Writing it happens on a background
thread while the run goes on, and the run's end waits for every write."""
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from ..lib.persist import load, save
from ..lib.receive.untrusted import safe_join
from ..lib.receive.vault import staging_key


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
    _writes: dict = PrivateAttr(default_factory=dict)  # path -> Future of its write
    _writer: list = PrivateAttr(default_factory=list)  # the one writer thread of the run

    def _path(self, context) -> Path:
        # the identifier holds the partition key, a sender's drop name: it must stay under base_dir
        return safe_join(Path(self.base_dir), *context.get_asset_identifier())

    def _key(self) -> bytes:
        return staging_key(self.staging_key or None, Path(self.home))

    def _submit(self, obj, path: Path) -> Future:
        if not self._writer:
            self._writer.append(ThreadPoolExecutor(1, thread_name_prefix="mtss-io"))
        return self._writer[0].submit(save, self._key(), obj, path)

    def _raise_failed_writes(self) -> None:
        """A write that failed fails the next step (or the run's end), never silently."""
        for path, future in self._writes.items():
            if future.done() and future.exception() is not None:
                raise dg.Failure(f"keeping {path.parent.parent.name} at rest failed: {future.exception()!r}")

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        self._raise_failed_writes()
        if obj is None:
            return
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writes[path] = self._submit(obj, path)
        readers = _consumers(context)
        if readers:
            self._memory[path] = [obj, readers]

    def load_input(self, context: dg.InputContext):
        path = self._path(context)
        held = self._memory.get(path)
        if held is None:
            if path in self._writes:
                self._writes[path].result()  # written by this run: wait for it
            return load(self._key(), path)
        held[1] -= 1
        if held[1] <= 0:
            del self._memory[path]
        return held[0]

    def teardown_after_execution(self, context) -> None:
        """Every output of the run is at rest before the run ends; a failed write fails loudly here."""
        try:
            for future in self._writes.values():
                future.result()
        finally:
            for writer in self._writer:
                writer.shutdown(wait=True)
            self._writer.clear()
            self._writes.clear()
            self._memory.clear()
