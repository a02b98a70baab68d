"""The Dagster UI in a real headless browser (Debian's Chromium, driven by Playwright): materialize the graph
from the UI, see the warehouse assets materialized and the checks passed; then a drop with a foreign district
name, whose blocking check shows failed and whose warehouse assets were not materialized.
Screenshots go to test-artifacts/ (kept by CI as artifacts)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from .conftest import IN_CI, make_settings
from .helpers import SMALL, prepare_drop, set_column, warehouse_counts

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
    base = tmp_path_factory.mktemp("ui")
    settings = make_settings(base / "home")
    prepare_drop(settings)
    foreign = prepare_drop(settings, replace(SMALL, drop_name="foreign"))
    set_column(foreign / "SM.csv", "DistrictName", "Nutley Public Schools")
    dagster_home = base / "dagster_home"
    dagster_home.mkdir()
    # Runs launched from the UI start at once (no daemon, so the drop sensor stays out of the way).
    (dagster_home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MTSS_")},
           "MTSS_HOME": str(settings.home), "DAGSTER_HOME": str(dagster_home)}
    subprocess.run([sys.executable, "-c", "import dagster as dg; dg.DagsterInstance.get().add_dynamic_partitions("
                    f"'drops', ['{GOOD}', '{FOREIGN}'])"], env=env, check=True)
    port = _free_port()
    web = subprocess.Popen([str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                            "-w", "workspace.yaml"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                           stderr=open(base / "webserver.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(url + "/server_info", timeout=2)
            break
        except OSError:
            if web.poll() is not None or time.time() > deadline:
                raise RuntimeError((base / "webserver.log").read_text()[-3000:])
            time.sleep(0.5)
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        yield url, page, settings
        browser.close()
    web.terminate()
    web.wait(timeout=30)


def _runs(url: str) -> list[dict]:
    query = '{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }'
    req = urllib.request.Request(url + "/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())["data"]["runsOrError"]["results"]


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
    page.get_by_role("button", name="Launch 1 run").click()
    deadline = time.time() + 180
    while time.time() < deadline:
        runs = [r for r in _runs(url) if {"key": "dagster/partition", "value": partition} in r["tags"]]
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


def _show(page, url: str, path: str, expect: str) -> str:
    page.goto(url + path)
    page.get_by_text(expect).first.wait_for()
    page.wait_for_timeout(500)
    return page.inner_text("body")


def test_materialize_the_graph_from_the_ui(ui):
    url, page, settings = ui
    assert _materialize_from_ui(url, page, GOOD) == "SUCCESS"
    _show(page, url, "/asset-groups", "warehouse")
    _expand_graph(page)
    _shot(page, "1-asset-graph")
    for asset in ("dm_student_roster", "dm_assessment_results"):
        text = _show(page, url, f"/assets/{asset}", "Latest materialization")
        assert GOOD in text and "Never materialized" not in text, asset
        _shot(page, f"2-{asset}")
    text = _show(page, url, "/assets/district_crosswalk?view=checks", "Checks (3)")
    assert "This is a blocking asset check" in text
    assert text.count("Succeeded") == 3 and "Failed" not in text
    _shot(page, "3-checks-passed")
    assert warehouse_counts(settings)["roster"] == SMALL.students


def test_a_foreign_district_fails_the_blocking_check_and_the_warehouse_is_not_materialized(ui):
    url, page, settings = ui
    before = warehouse_counts(settings)
    assert _materialize_from_ui(url, page, FOREIGN) == "FAILURE"
    _show(page, url, "/assets/district_crosswalk?view=checks", "Checks (3)")
    page.get_by_text("district_names_match_registry").first.click()
    page.get_by_text("Latest execution").wait_for()
    page.wait_for_timeout(1000)
    text = page.inner_text("body")
    assert "Failed" in text and FOREIGN in text
    assert "Nutley Public Schools" in text and "NUTLEY" in text  # which name, which candidate
    _shot(page, "4-check-failed")
    for asset in ("dm_student_roster", "dm_assessment_results"):
        text = _show(page, url, f"/assets/{asset}?view=partitions", "Materialized (1)")
        assert "Failed (1)" in text and "Materialized (1)" in text, asset
        _shot(page, f"5-{asset}-partitions")
    assert warehouse_counts(settings) == before  # nothing of the foreign drop was written
