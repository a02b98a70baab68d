"""Named fault points in the receive and load paths, for tests that cause a fault where it cannot be caused for
real: the process killed, or an error raised, at an exact place (as storage systems test their recovery).

Armed by the environment variable `MTSS_FAULT=<point>:<action>`: `kill` (SIGKILL, this process), `raise`
(`InjectedFault`), `sleep=<seconds>` (a pause, while a test does something to the world) or `wait=<path>` (a pause
until that file exists, at most ten minutes: the test says when). Unset, a point is one dictionary look-up. Never set
it in production.
"""
from __future__ import annotations

import os
import signal
import time

VARIABLE = "MTSS_FAULT"
POINTS = {
    "before_claim": "a run's first step begun, before it tags the run as the district's",
    "before_district_lock": "a load's frames in hand, before it asks for the district's lock",
    "after_stage": "a load's rows are in staging; nothing applied",
    "in_apply": "inside the apply's transaction, the district lock held, nothing committed",
    "after_commit": "the load committed; its staged rows not yet removed",
    "before_unstage": "about to remove the load's staged rows (after a commit or a rollback)",
    "before_lock": "a drop listed, its receiving folder made, before it is locked and any file is read",
    "mid_transfer": "a received file half copied to staging",
    "after_receipt": "every file of a drop read, before the drop is listed again and published to staging",
    "before_publish": "a received drop about to be published to staging, the district's publish lock held",
}


class InjectedFault(Exception):
    """Raised at an armed fault point (action `raise`)."""


def fault_point(name: str) -> None:
    armed = os.environ.get(VARIABLE)
    if not armed:
        return
    point, _, action = armed.partition(":")
    if point != name:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("sleep="):
        time.sleep(float(action.removeprefix("sleep=")))
    elif action.startswith("wait="):
        deadline = time.monotonic() + 600
        while not os.path.exists(action.removeprefix("wait=")) and time.monotonic() < deadline:
            time.sleep(0.1)
    else:
        raise InjectedFault(f"fault injected at {name}")
