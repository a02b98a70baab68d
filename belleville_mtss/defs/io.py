"""The IO manager. Within one run, an output is handed to the steps that read it in memory and dropped once the last of
them has it (at the run's end where a step that depends on it does not load it: `frames_of` loads the frames of the
files a district sends only); it is also kept at rest for later runs and re-execution (encrypted with the staging
key, frames as Parquet: lib/persist.py), one file per asset and drop partition. Writing it happens on a background
thread while the run goes on; a step that no other step of the run reads from (the run's last step is one) waits for
every write before its outputs are recorded (or, keeping none here, before it reads its inputs), so a write that
fails fails the run. What an earlier run kept at an output's place is removed before the output is recorded: a run
killed, or a write failing, before its write ends leaves no frame, and no later run takes an older frame for this
run's.

Each object kept carries what it was made from: every kept object upstream of it, with that one's stamp (a digest
of what it holds: lib/persist.py). One loaded from rest is refused if any of those now holds something else, or is
gone: a frame built on a verdict is never loaded over frames that verdict did not judge, whatever runs overlapped,
and an upstream object made again the same leaves what was made from it current."""
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from ..lib.persist import load, load_made, save, stamp_of
from ..lib.receive.untrusted import safe_join
from ..lib.receive.vault import staging_key


def _readers(step_context) -> Counter:
    """(step key, output name) -> how many inputs of this run's steps read it; the plan is the run's own, so a
    subset run counts its subset."""
    plan = step_context.execution_plan
    return Counter((h.step_key, h.output_name)
                   for step in plan.get_steps_to_execute_in_topo_order()
                   for step_input in step.step_inputs
                   for h in step_input.get_step_output_handle_dependencies())


def _keeps_none(step_context) -> bool:
    """No output of the step comes here: each is of type Nothing, or a check's result."""
    return all(output.dagster_type_key == "Nothing" or output.properties.asset_check_key is not None
               for output in step_context.step.step_outputs)


def _stamp(value) -> bytes:
    """A stamp, or the write of this run that gives it (waited for)."""
    return value.result() if isinstance(value, Future) else value


def _unkeep(path: Path) -> None:
    """What an earlier run kept at `path` removed: stale once this run's output is recorded. A write that fails
    later removes nothing (its part file is its writer's to remove): what is at `path` by then is another run's."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # nothing there that a load could read as a frame (a folder, say)


class EncryptedFrameIOManager(dg.ConfigurableIOManager):
    base_dir: str
    home: str
    staging_key: str = ""
    _memory: dict = PrivateAttr(default_factory=dict)  # path -> [object, readers to come, what it was made from]
    _inputs: dict = PrivateAttr(default_factory=dict)  # step key -> what its inputs were made from, together
    _now: dict = PrivateAttr(default_factory=dict)  # step key -> the stamps of what is kept now, as it read them
    _writes: dict = PrivateAttr(default_factory=dict)  # path -> Future of its write
    _writer: list = PrivateAttr(default_factory=list)  # the one writer thread of the run
    _read: list = PrivateAttr(default_factory=list)  # _readers of the run's plan, once
    _sinks: dict = PrivateAttr(default_factory=dict)  # step key -> whether no other step of the run reads from it

    def _at(self, *place: str) -> Path:
        """Where the object of `place` (asset, drop) is kept. The drop is a sender's name: it must stay under
        base_dir."""
        return safe_join(Path(self.base_dir), *place)

    def _path(self, context) -> Path:
        return self._at(*context.get_asset_identifier())

    def _key(self) -> bytes:
        return staging_key(self.staging_key or None, Path(self.home))

    def _submit(self, obj, path: Path, made: dict) -> Future:
        if not self._writer:
            self._writer.append(ThreadPoolExecutor(1, thread_name_prefix="mtss-io"))
        # the stamps of what it was made from, this run's own once their writes end (written before it, in order)
        return self._writer[0].submit(lambda: save(self._key(), obj, path, {p: _stamp(v) for p, v in made.items()}))

    def _stamp_now(self, place: tuple) -> bytes | None:
        """The stamp of what is kept at `place` now (None: nothing readable is)."""
        try:
            return stamp_of(self._key(), self._at(*place))
        except Exception:  # gone, being written, altered, or not of this key
            return None

    def _still_current(self, step_key: str, place: tuple, made: dict | None) -> None:
        """An object loaded from rest is refused unless everything it was made from still holds what it held (each
        stamp read once a step: its inputs share their upstream objects)."""
        now = self._now.setdefault(step_key, {})
        asset, *drop = place
        of = '/'.join(drop) or 'this run'
        if made is None:
            raise dg.Failure(f"{asset} of {of} was kept by an earlier version of the pipeline, which did not record "
                             f"what it was made from: materialize the drop again")
        for place, stamp in made.items():
            if (now[place] if place in now else now.setdefault(place, self._stamp_now(place))) != stamp:
                raise dg.Failure(f"{asset} of {of} was made from {place[0]} as it was then, and {place[0]} has been "
                                 f"made again since with other contents, or removed or altered: materialize the drop "
                                 f"again")

    def _joined(self, step_key: str, made: dict, asset: str) -> None:
        """What a step's inputs were made from, together: two versions of one object are refused."""
        together = self._inputs.setdefault(step_key, {})
        for place, stamp in made.items():
            held = together.setdefault(place, stamp)
            if held is not stamp and _stamp(held) != _stamp(stamp):  # within a run, one write: never waited for
                raise dg.Failure(f"{step_key} read {asset}, made from a version of {place[0]} other than its other "
                                 f"inputs were: materialize the drop again")

    def _raise_failed_writes(self, wait: bool = False) -> None:
        """A write that failed fails the step asking (`wait`: once every write has ended), never silently."""
        for path, future in self._writes.items():
            if (wait or future.done()) and future.exception() is not None:
                raise dg.Failure(f"keeping {path.parent.parent.name} at rest failed: {future.exception()!r}")

    def _readers_of(self, step_context, output: str) -> int:
        if not self._read:
            self._read.append(_readers(step_context))
        return self._read[0][step_context.step.key, output]

    def _may_be_last(self, step_context) -> bool:
        """A step no other step of the run reads from: the run's last step is one. It waits for every write at
        its outputs, or, keeping none here (the warehouse's load), as it reads its inputs: after it, a write that
        failed could fail nothing."""
        key = step_context.step.key
        if key not in self._sinks:
            self._sinks[key] = not any(self._readers_of(step_context, o.name) for o in step_context.step.step_outputs)
        return self._sinks[key]

    def forget(self, drop: str, *assets: str) -> None:
        """What earlier runs kept of `assets` for `drop`, removed: a step that refuses the drop keeps nothing, nor
        leaves what was built on an earlier verdict, so no later run's step loads the drop from frames of an earlier
        version, registry or prod table as this one's."""
        for asset in assets:
            _unkeep(self._at(asset, drop))

    def forget_older_version(self, drop: str, received) -> None:
        """The drop received in a new version, or with other bytes under the same one (a file corrected in place,
        its size and time kept): every frame kept of what was received before removed (the files as validated, the
        crosswalk, the identity map, the roster and results), so that no later run's step mixes them with these
        bytes, or loads them unchecked under them."""
        base, kept = Path(self.base_dir), self._at("received_drop", drop)
        if not kept.exists():
            return
        try:
            before = load(self._key(), kept)
        except Exception:  # unreadable (altered, or of another key): of no version this one can be
            before = None
        if before is None or before.content_version != received.content_version:
            self.forget(drop, *sorted(p.name for p in base.iterdir() if p.is_dir() and p.name != "received_drop"))

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        last = self._may_be_last(context.step_context)
        self._raise_failed_writes(wait=last)
        if obj is None:
            return
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        # before the output is recorded, not as the write ends: a run killed while writing leaves no frame at all
        _unkeep(path)
        made = self._inputs.get(context.step_context.step.key, {})
        self._writes[path] = self._submit(obj, path, made)
        made = {**made, tuple(context.get_asset_identifier()): self._writes[path]}
        if last:
            self._raise_failed_writes(wait=True)
        readers = self._readers_of(context.step_context, context.name)
        if readers:
            self._memory[path] = [obj, readers, made]

    def load_input(self, context: dg.InputContext):
        return self._load(context.step_context, tuple(context.get_asset_identifier()))

    def kept(self, asset: str, drop: str) -> bool:
        """Whether `asset` of `drop` is this run's, or kept at rest by an earlier run."""
        path = self._at(asset, drop)
        return path in self._memory or path in self._writes or path.is_file()

    def load_asset(self, step_context, asset: str, drop: str):
        """`asset` of `drop` as an input of the step, which declared it as a dependency only (`deps`): the step
        loads the frames it needs and no other, with every check an input has."""
        return self._load(step_context, (asset, drop))

    def _load(self, step, place: tuple):
        self._raise_failed_writes(wait=self._may_be_last(step) and _keeps_none(step))
        path = self._at(*place)
        held = self._memory.get(path)
        if held is None:
            if path in self._writes:
                self._writes[path].result()  # written by this run: wait for it
                made, obj, stamp = load_made(self._key(), path)
            else:
                try:
                    made, obj, stamp = load_made(self._key(), path)
                except FileNotFoundError:
                    asset, *drop = place
                    raise dg.Failure(f"{asset} of {'/'.join(drop) or 'this run'} is not kept at rest: the run that "
                                     f"made it ended before keeping it, or it was purged; materialize {asset} "
                                     f"again") from None
                self._still_current(step.step.key, place, made)
            made = {**(made or {}), place: stamp}
        else:
            obj, made = held[0], held[2]
            held[1] -= 1
            if held[1] <= 0:
                del self._memory[path]
        self._joined(step.step.key, made, place[0])
        return obj

    def teardown_after_execution(self, context) -> None:
        """Every output of the run is at rest before the run ends; a failed write the last step could not see (one
        that reads and keeps nothing here) is raised here, which Dagster records as an error of the run's end."""
        try:
            for future in self._writes.values():
                future.result()
        finally:
            for writer in self._writer:
                writer.shutdown(wait=True)
            for kept in (self._writer, self._writes, self._memory, self._read, self._sinks, self._inputs,
                         self._now):
                kept.clear()
