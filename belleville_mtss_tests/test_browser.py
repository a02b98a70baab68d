"""The Dagster UI in a real headless browser (Debian's Chromium, driven by Playwright), started as the README says
after its first command: the demo's run, partition and checks are there; the warehouse asset shows its lineage
table; the graph materializes from the UI; a drop naming another district reads as a refusal, with its crosswalk
and warehouse assets not materialized.
Screenshots go to test-artifacts/ (kept by CI as artifacts)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import IN_CI, make_settings
from .helpers import set_column, start_group, stop_group, warehouse_counts

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
GOOD, FOREIGN = "belleville/2026-11-01", "belleville/foreign"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is installed by the test extra") \
    if not IN_CI else __import__("playwright.sync_api").sync_api
if not Path(CHROMIUM).exists():
    if IN_CI:
        raise RuntimeError(f"{CHROMIUM} is required where CI=true (.ci/run installs Debian's chromium)")
    pytest.skip("Debian's chromium is not installed; .ci/run installs it", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """As a new user would: the README's first command (`belleville-mtss demo`, here in an empty folder), then the UI
    started as the README says (`DAGSTER_HOME=$PWD/.mtss/dagster dagster dev`), with a foreign drop arriving."""
    base = tmp_path_factory.mktemp("ui")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MTSS_", "DAGSTER_"))}
    bin_dir = Path(sys.executable).parent
    demo = subprocess.run([str(bin_dir / "belleville-mtss"), "demo"], cwd=base, env=env, capture_output=True,
                          text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr[-3000:]
    settings = make_settings(base / ".mtss")
    port = _free_port()
    web = start_group([str(bin_dir / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port),
                       "-w", str(REPO / "workspace.yaml")], cwd=base,
                      # the sensors tick every 5 s instead of 30: the foreign drop is picked up sooner
                      env={**env, "DAGSTER_HOME": str(base / ".mtss" / "dagster"), "MTSS_SENSOR_INTERVAL_SECONDS": "5"},
                      stdout=subprocess.DEVNULL, stderr=open(base / "dagster-dev.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/server_info", timeout=2)
            break
        except OSError:
            if web.poll() is not None or time.time() > deadline:
                raise RuntimeError((base / "dagster-dev.log").read_text()[-3000:])
            time.sleep(0.5)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_role("button", name="Skip").click()  # the UI's first-visit newsletter dialog, once
            yield url, page, settings
            browser.close()
    finally:
        stop_group(web)  # dagster dev, its webserver, daemon and code servers


def _runs(url: str, partition: str | None = None) -> list[dict]:
    """The instance's runs, newest first (of one partition)."""
    query = '{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }'
    req = urllib.request.Request(url + "/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    runs = json.loads(urllib.request.urlopen(req, timeout=10).read())["data"]["runsOrError"]["results"]
    return [r for r in runs if partition is None or {"key": "dagster/partition", "value": partition} in r["tags"]]


def _finished(url: str, partition: str, timeout: float = 240) -> dict:
    """The newest run of a partition, once it has finished."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = _runs(url, partition)
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return runs[0]
        time.sleep(1)
    raise AssertionError(f"no finished run for {partition}")


def _materialize_from_ui(url: str, page, partition: str) -> str:
    page.goto(url + "/asset-groups")
    page.get_by_role("button", name="Materialize all…").wait_for()
    page.wait_for_timeout(1500)
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.click()
    page.get_by_role("button", name="Materialize all…").click()
    page.get_by_text("Select a partition or create one").click()
    page.get_by_text(partition, exact=True).first.click()
    page.keyboard.press("Escape")
    before = {r["runId"] for r in _runs(url, partition)}
    page.get_by_role("button", name="Launch 1 run").click()
    deadline = time.time() + 180
    while time.time() < deadline:
        runs = [r for r in _runs(url, partition) if r["runId"] not in before]
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return runs[0]["status"]
        time.sleep(1)
    raise AssertionError(f"the run for {partition} did not finish")


def _expand_graph(page) -> None:
    """The graph's settings menu (bottom-right gear): expand all groups, then zoom out to see every asset."""
    gear = page.eval_on_selector_all('[aria-label="settings"]', "els => els.map(e => {"
                                     "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]})")
    page.mouse.click(*gear[-1])
    page.get_by_role("menuitem", name="unfold_more Expand all groups").click()
    page.keyboard.press("Escape")
    page.mouse.click(5, 500)  # close the menu
    page.wait_for_timeout(1500)
    zoom_out = page.eval_on_selector_all('[aria-label="zoom_out"]', "els => els.map(e => {"
                                         "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]})")
    for _ in range(2):
        page.mouse.click(*zoom_out[-1])
        page.wait_for_timeout(300)
    page.wait_for_timeout(3000)  # statuses load


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _show(page, url: str, path: str, *expect: str) -> str:
    """The page's text once every expected text is on it (a page's panels load one after another)."""
    page.goto(url + path)
    for text in expect:
        page.get_by_text(text).first.wait_for()
    page.wait_for_timeout(500)
    return page.inner_text("body")


def _settled(page, done, seconds: float = 20) -> str:
    """The page's text once `done(text)` holds: a checks page lists its checks before their statuses arrive."""
    deadline = time.time() + seconds
    text = page.inner_text("body")
    while not done(text) and time.time() < deadline:
        page.wait_for_timeout(250)
        text = page.inner_text("body")
    return text


def test_after_the_quick_start_the_ui_shows_the_demos_run_partition_and_checks(ui):
    url, page, settings = ui
    (demo,) = _runs(url, GOOD)  # the demo's run (the drop sensor does not run a drop version again)
    assert demo["status"] == "SUCCESS" and {"key": "mtss/outcome", "value": "loaded"} in demo["tags"]
    for asset in ("dm_student_roster", "dm_assessment_results"):
        text = _show(page, url, f"/assets/{asset}", "Latest materialization", GOOD)
        assert GOOD in text and "Never materialized" not in text, asset
    _show(page, url, "/assets/district_crosswalk?view=checks", "Checks (5)")
    text = _settled(page, lambda t: t.count("Succeeded") == 5)
    _shot(page, "1-demo-checks-passed")
    assert text.count("Succeeded") == 5 and "Failed" not in text, text
    # 4 replace checks, 3 load checks
    _show(page, url, "/assets/dm_student_roster?view=checks", "Checks (7)", "rows_written_match_frame", "drop_is_newest")
    text = _settled(page, lambda t: t.count("Succeeded") == 7)
    assert text.count("Succeeded") == 7 and "Failed" not in text, text
    _shot(page, "2-demo-load-checks")


def test_the_warehouse_asset_page_shows_the_lineage_table(ui):
    url, page, _settings = ui
    _show(page, url, "/assets/dm_assessment_results", "Latest materialization")
    page.get_by_text("lineage", exact=True).first.wait_for()
    _shot(page, "3-lineage-entry")
    row = page.locator("tr", has=page.get_by_text("lineage", exact=True)).first
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("dm.AssessmentResults.ScaledScore").first.wait_for()
    text = dialog.inner_text()
    assert "validated_star_reading.scaled_score" in text and 'SR.csv, column "ScaledScore"' in text
    _shot(page, "4-lineage-table")
    dialog.get_by_role("button", name="Close").click()


def test_the_link_review_asset_shows_counts_only(ui):
    """The demo's unlinked Star students wait for a person: the asset page shows how many, never who."""
    url, page, _settings = ui
    text = _show(page, url, "/assets/link_review", "Latest materialization", GOOD, "new_this_drop")
    assert GOOD in text
    for name in ("open", "accepted", "rejected", "new_this_drop", "suggested/unknown_star_student"):
        assert name in text, name
    assert "9210" not in text and "@" not in text  # no identifier, no address
    _shot(page, "link-review")


def test_materialize_the_graph_from_the_ui(ui):
    url, page, settings = ui
    before = warehouse_counts(settings)  # Belleville's and the demo's second district's
    assert _materialize_from_ui(url, page, GOOD) == "SUCCESS"
    _show(page, url, "/asset-groups", "warehouse")
    _expand_graph(page)
    _shot(page, "0-asset-graph")
    text = _show(page, url, "/assets/district_crosswalk?view=checks", "Checks (5)")
    assert "This is a blocking asset check" in text
    assert warehouse_counts(settings) == before  # the demo's drop, loaded again: the same rows


def test_a_foreign_drop_reads_as_a_refusal(ui):
    """The drop sensor runs the foreign drop; its run page ends with the plain summary, its crosswalk is not
    materialized, and nothing of it reaches the warehouse."""
    url, page, settings = ui
    before = warehouse_counts(settings)
    foreign = settings.drop_dir / FOREIGN  # the demo's drop, sent again under another name, naming another district
    shutil.copytree(settings.drop_dir / GOOD, foreign, ignore=shutil.ignore_patterns("drop.done"))
    set_column(foreign / "SM.csv", "DistrictName", "Nutley Public Schools")
    (foreign / "drop.done").touch()  # the sender's marker, written last
    run = _finished(url, FOREIGN)
    assert run["status"] == "FAILURE"
    assert {"key": "dagster/sensor_name", "value": "sftp_drop_sensor"} in run["tags"]
    text = _show(page, url, f"/runs/{run['runId']}", "Blocked: drop belleville/foreign")
    assert "is registered to Belleville Public Schools (NJ, AccountInfoId 107873)" in text
    assert "SM.csv: names 'Nutley Public Schools', resolved; best candidate 'NUTLEY'" in text
    assert "Remedy (district_names_match_registry)" in text
    assert "DagsterAssetCheckFailedError" not in text
    _shot(page, "5-refusal-run")
    _show(page, url, "/assets/district_crosswalk?view=checks", "Checks (5)")
    page.get_by_text("district_names_match_registry").first.click()
    page.get_by_text("Latest execution").wait_for()
    page.wait_for_timeout(1000)
    text = page.inner_text("body")
    assert "Failed" in text and FOREIGN in text
    _shot(page, "6-check-failed")
    page.locator("tr", has=page.get_by_text("files", exact=True)).first.get_by_text("[Show Markdown]").click()
    table = page.get_by_role("dialog")
    table.get_by_text("SM.csv").first.wait_for()
    rows = table.locator("tbody tr").all_inner_texts()  # one row per file of the drop
    assert sorted(r.split("\t")[0] for r in rows) == sorted(
        ["students.csv", "SR.csv", "SM.csv", "SEL.csv", "dbo.ClassLinkUsers"])
    assert any(r.startswith("SM.csv") and "Nutley Public Schools" in r and "NUTLEY" in r for r in rows)
    _shot(page, "7-check-files-table")
    table.get_by_role("button", name="Close").click()
    # the demo's two drops (Belleville's and the second district's) materialized, the refused one failed
    text = _show(page, url, "/assets/district_crosswalk?view=partitions", "Materialized (2)")
    assert "Failed (1)" in text  # the refused drop's crosswalk is no good materialization
    _shot(page, "8-crosswalk-partitions")
    for asset in ("dm_student_roster", "dm_assessment_results"):
        text = _show(page, url, f"/assets/{asset}?view=partitions", "Materialized (2)")
        assert "Failed (1)" in text, asset
    assert warehouse_counts(settings) == before  # nothing of the foreign drop was written
