"""Progress on long work, for the command line: a bar that names the running step on a terminal (rich), one plain
line per finished step when the output is a file or a pipe. Dagster steps reach it through an ordinary Python
logger (`PROGRESS_LOGGER`), which the `progress` Dagster logger feeds with step events."""
from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager

import dagster as dg

PROGRESS_LOGGER = "belleville_mtss.progress"
_STEP_EVENTS = {"STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"}


@dg.logger(description="Step progress for the command line (belleville-mtss run and demo)")
def progress_logger(_init_context) -> logging.Logger:
    logger = logging.getLogger(PROGRESS_LOGGER)
    logger.setLevel(logging.DEBUG)  # step events are logged at DEBUG
    logger.propagate = False  # for the progress display only, not for whatever logging the caller set up
    return logger


class _StepHandler(logging.Handler):
    def __init__(self, report):
        super().__init__(logging.DEBUG)
        self.report = report

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_meta", {}).get("dagster_event")
        if event is not None and event.event_type_value in _STEP_EVENTS:
            self.report(event.event_type_value, event.step_key)


class Progress:
    """Steps of one run: a rich bar on a terminal, plain lines otherwise (to stderr: stdout is the report)."""

    def __init__(self, total: int, title: str, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.title, self.done = total, title, 0
        self.started: dict[str, float] = {}
        self._bar = None
        if self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn
            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=Console(file=self.stream), transient=True)
            self._task = self._bar.add_task(title, total=total)

    def __call__(self, kind: str, step: str) -> None:
        if kind == "STEP_START":
            self.started[step] = time.perf_counter()
            if self._bar is not None:
                self._bar.update(self._task, description=f"{self.title}: {step}")
            return
        self.done += 1
        seconds = time.perf_counter() - self.started.get(step, time.perf_counter())
        word = {"STEP_SUCCESS": "done", "STEP_FAILURE": "FAILED", "STEP_SKIPPED": "skipped"}[kind]
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
        else:
            print(f"[{self.done}/{self.total}] {step} {word} ({seconds:.1f} s)", file=self.stream, flush=True)

    @contextmanager
    def attached(self):
        """Feed this progress with the step events of runs made while the block runs."""
        logger = logging.getLogger(PROGRESS_LOGGER)
        handler = _StepHandler(self)
        logger.addHandler(handler)
        logger.propagate = False
        if self._bar is not None:
            self._bar.start()
        try:
            yield self
        finally:
            logger.removeHandler(handler)
            if self._bar is not None:
                self._bar.stop()
            if self.done < self.total:  # steps after a failed or blocked one never start
                print(f"{self.total - self.done} step(s) not run", file=self.stream, flush=True)


def phase(text: str, stream=None) -> None:
    """One line of progress for work that is not a Dagster run (generating a sample, loading its tables)."""
    print(text, file=stream or sys.stderr, flush=True)
