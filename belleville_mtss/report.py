"""The short report people read after a drop's run: what happened, in one word (loaded, partial, blocked,
superseded, failed), with the exit code and the run tag that say the same. Built from a run's Dagster events, so the CLI
(in-process results) and the outcome sensor (stored run logs) report alike."""
from dataclasses import dataclass, field

from .lib.alerts import Alert, blocked_drop, failed_run, halted_file, superseded_drop
from .lib.checks import CATALOGUE, stopped_as
from .lib.sources import FILES
from .lib.columns import WAREHOUSE_TABLES as WAREHOUSE

LOCK_WAIT = "district_lock_wait_s"  # an observation's metadata: seconds a load waited for its district's lock
# an observation's metadata: what of the drop newer drops hold, left to them (the rest loaded)
SUPERSEDED_IN_PART = "superseded_in_part"
REFUSED_BY = "refused_by"  # a load's failure's metadata: the replace check that refused it

SOURCES = ["received_drop", *(f.asset for f in FILES), "classlink_users", "account_info"]
VALIDATED = [*(f.validated for f in FILES), "validated_classlink_users"]
# loaded: every file loaded; partial: a file was halted, the rest loaded; blocked: a blocking check (district or
# gate) stopped the warehouse; superseded: the warehouse holds a newer drop of the district, which stays (nothing
# wrong, nothing written); failed: a step failed (a refused drop, a database error) or a load's check failed.
# received: a run of some of the drop's assets, none of them a load (from the asset graph): the files received,
# perhaps read and checked, and loading never asked
EXIT_CODES = {"loaded": 0, "partial": 3, "blocked": 1, "superseded": 4, "failed": 1, "received": 0}
OUTCOME_TAG = "mtss/outcome"


@dataclass
class DropReport:
    key: str
    success: bool
    source_rows: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    halted: dict[str, str] = field(default_factory=dict)  # validated asset -> why its file was halted
    links: dict[str, dict] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)  # failed check -> its reason
    load_checks: dict[str, bool] = field(default_factory=dict)  # "table check" -> passed (after the load)
    written: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # step -> its one-line failure message
    causes: dict[str, str] = field(default_factory=dict)  # failed step -> the class of the error it raised
    version: str = ""  # the drop version received (received_drop's metadata)
    arrived: bool = False  # this run was the drop version's first receipt (not a replay, not a re-run)
    files: dict[str, str] = field(default_factory=dict)  # source asset -> the file name it read
    waited_s: float = 0.0  # for another load of the district (the warehouse's district lock)
    suggestions: dict[str, int] = field(default_factory=dict)  # link_review's counts: open, new_this_drop, ...
    superseded_in_part: str = ""  # what newer drops hold of this drop's, left to them
    planned: set[str] = field(default_factory=set)  # the warehouse assets the run was to materialize
    plan_seen: bool = False  # whether its events say what it was to materialize

    @classmethod
    def from_events(cls, key: str, events: list) -> "DropReport":
        """The report of one run, from its Dagster events (in-process results and stored run logs alike)."""
        report = cls(key=key, success=not any(e.is_step_failure for e in events)
                     and not any(e.event_type_value == "RUN_FAILURE" for e in events))
        for event in events:
            if event.event_type_value == "ASSET_MATERIALIZATION":
                mat = event.event_specific_data.materialization
                report._materialized(mat.asset_key.to_user_string(),
                                     {k: getattr(v, "value", v) for k, v in mat.metadata.items()})
            elif event.event_type_value == "ASSET_CHECK_EVALUATION":
                ev = event.event_specific_data
                meta = {k: getattr(v, "value", v) for k, v in ev.metadata.items()}
                asset = ev.asset_key.to_user_string()
                check = CATALOGUE.get(ev.check_name)
                if asset in WAREHOUSE and (check is None or check.stage == "load"):
                    name = f"{WAREHOUSE[asset]} {ev.check_name}"
                    report.load_checks[name] = ev.passed
                    if not ev.passed:
                        report.failures[name] = str(meta.get("why"))
                    continue
                report.checks[ev.check_name] = ev.passed
                if not ev.passed:
                    report.why[ev.check_name] = str(meta.get("why") or "see the check")
            elif event.event_type_value == "ASSET_MATERIALIZATION_PLANNED":
                report.plan_seen = True
                node = event.event_specific_data.asset_key.to_user_string()
                if node in WAREHOUSE:
                    report.planned.add(node)
            elif event.event_type_value == "ASSET_OBSERVATION":
                meta = event.event_specific_data.asset_observation.metadata
                if LOCK_WAIT in meta:
                    report.waited_s = float(meta[LOCK_WAIT].value)
                if SUPERSEDED_IN_PART in meta:
                    report.superseded_in_part = str(meta[SUPERSEDED_IN_PART].value)
            elif event.is_step_failure:
                failure = event.step_failure_data
                error = failure.error
                while error is not None and error.cause is not None and error.cls_name.startswith("Dagster"):
                    error = error.cause  # Dagster's wrapper says a step failed; its cause says why
                data = failure.user_failure_data
                refused_by = data.metadata.get(REFUSED_BY) if data is not None else None
                if refused_by is not None:  # a refusal, not a failure: as its check says (when its check is shown)
                    name = str(refused_by.value)
                    report.checks[name] = False
                    report.why.setdefault(name, str(data.metadata["why"].value))
                    continue
                text = data.description if data is not None else (error.message if error is not None else "")
                report.failures[event.step_key] = " ".join((text or "").split())
                report.causes[event.step_key] = error.cls_name if error is not None else "unknown"
        return report

    def _materialized(self, node: str, meta: dict) -> None:
        if meta.get("sent") is False:
            return  # a kind of file the district does not send: nothing to report
        if node in SOURCES:
            if node == "received_drop":
                self.version = str(meta.get("version") or "")
                self.arrived = meta.get("first_receipt_of_version") is True
            else:
                self.source_rows[node] = int(meta.get("dagster/row_count", 0))
                if meta.get("file"):
                    self.files[node] = str(meta["file"])
        elif node in VALIDATED:
            self.rejected[node] = int(meta.get("rows_rejected", 0))
            if meta.get("halted"):
                self.halted[node] = meta["halted"]
        elif node == "student_identity_map":
            for name, value in meta.items():
                if "/" in name and not name.startswith("dagster/"):
                    link, stat = name.split("/", 1)
                    self.links.setdefault(link, {})[stat] = value
        elif node in WAREHOUSE:
            self.written[node] = int(meta.get("rows_written", 0))
        elif node == "link_review":
            self.suggestions = {k: int(v) for k, v in meta.items() if isinstance(v, (int, float))}

    @property
    def loaded_all(self) -> bool:
        """Every warehouse asset the run was to load was loaded (both, where its events plan neither: a run from
        before the plan was read, or one that failed before it)."""
        return bool(self.written) and (self.planned or set(WAREHOUSE)) <= set(self.written)

    @property
    def checks_passed(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    @property
    def outcome(self) -> str:
        failed = [name for name, passed in self.checks.items() if not passed]
        if failed:
            return stopped_as(failed)
        if self.plan_seen and not self.planned and not self.failures:
            return "received"
        if self.failures or not self.loaded_all:
            return "failed"
        return "partial" if self.halted else "loaded"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def render(self) -> str:
        out = ["Rows per source:"]
        out += [f"  {k:<32} {v:>8}" for k, v in self.source_rows.items()]
        out.append("Rows rejected at validation:")
        out += [f"  {k:<32} {v:>8}" for k, v in self.rejected.items()]
        out += [f"  HALTED {k}: {v}" for k, v in self.halted.items()]
        out.append("Identity links:")
        for link, counts in self.links.items():
            detail = ", ".join(f"{k}={v}" for k, v in counts.items() if k != "match_rate")
            out.append(f"  {link:<32} match rate {counts.get('match_rate', 0):.2%} ({detail})")
        out.append("Blocking checks and gates:")
        out += [f"  {k:<32} {'PASSED' if v else 'FAILED'}" for k, v in self.checks.items()]
        out.append("Checks of the loads:")
        out += [f"  {k:<48} {'PASSED' if v else 'FAILED'}" for k, v in self.load_checks.items()]
        out.append("Rows written to the warehouse:")
        out += [f"  {WAREHOUSE[k]:<32} {self.written.get(k, 0):>8}" for k in WAREHOUSE]
        if not self.written:
            out.append("  (nothing written: the warehouse was not touched)")
        if self.waited_s:
            out.append(f"Waited {self.waited_s:,.0f} s for another load of this district to end (one load of a "
                       "district at a time: the warehouse's district lock)")
        if self.suggestions:
            district = self.key.split("/")[0]
            out.append(f"Link suggestions waiting for a person: {self.suggestions.get('open', 0):,} "
                       f"({self.suggestions.get('new_this_drop', 0):,} new with this drop): "
                       f"belleville-mtss links review {district}")
        return "\n".join(out)

    def verdict(self) -> str:
        """One line: what happened to the drop."""
        outcome = self.outcome
        if outcome in ("blocked", "superseded"):
            name = next(k for k, passed in self.checks.items() if not passed)
            return f"{outcome.upper()}: {self.key}: {name}: {self.why.get(name, 'see the check')}"
        roster, results = (self.written.get(k, 0) for k in WAREHOUSE)
        loaded = f"{roster:,} roster rows and {results:,} results loaded"
        if outcome == "failed":
            reason = next(iter(self.failures.values()), "the warehouse was not written")
            if self.loaded_all:  # the load committed; a step after it failed, or the run stopped
                return f"FAILED after loading: {self.key}: {loaded}; then {reason}"
            return f"FAILED: {self.key}: {reason}"
        if outcome == "received":
            return f"RECEIVED: {self.key}: no load was asked of this run" + (
                "; halted: " + "; ".join(self.halted.values()) if self.halted else "")
        newer = f"; superseded in part: {self.superseded_in_part}" if self.superseded_in_part else ""
        if outcome == "partial":
            return f"PARTIAL: {self.key}: {loaded}; halted: " + "; ".join(self.halted.values()) + newer
        return f"OK: {self.key}: {loaded}, every file{newer}"




def drop_alerts(report: DropReport, run_id: str, job_name: str, run_failed: bool, version: str = "") -> list[Alert]:
    """What a finished drop run tells people, one alert per event: a blocked drop (nothing was written, whatever
    else went wrong), else a failed run (a failed step, or a failed check of a load), else one per halted file.
    `version`: the run's tag, when the run never got to receive the drop; keys carry the version, so a replay of
    the same version alerts no one twice."""
    version = report.version or version or "unknown"
    if report.outcome == "superseded":  # the newer data stays; said once, as the version first arrives
        # (not a replay, nor a run of some assets of a drop received before); a version a later version of the
        # same drop superseded is no one's concern: the later version's run says what became of it
        return [superseded_drop(report.key, version, report.why.get("drop_is_newest", "a newer drop"))] \
            if report.arrived and report.checks.get("drop_is_newest") is False else []
    failed = [name for name, passed in report.checks.items() if not passed]
    if failed:
        reasons = [report.why.get(name, "see the check") for name in failed]
        reason = reasons[0] if len(failed) == 1 else "; ".join(f"{n}: {r}" for n, r in zip(failed, reasons))
        return [blocked_drop(report.key, version, ", ".join(failed), reason)]
    if run_failed or report.failures:
        # a receipt that failed (a file rewritten as it was read, a transfer cut) is asked for again by the drop
        # sensor, up to 8 times: one alert for the drop version, not one per retry
        receipt = list(report.failures) == ["received_drop"] and version != "unknown"
        return [failed_run(run_id, job_name, report.key, list(report.failures),
                           once_per=f"{report.key}:{version}:receipt" if receipt else None)]
    return [halted_file(report.key, version, report.files.get(node.removeprefix("validated_"), node), why)
            for node, why in report.halted.items()]
