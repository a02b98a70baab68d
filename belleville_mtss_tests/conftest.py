import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from belleville_mtss.lib.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
# shared/ beside the repository; from a copy inside it (mutmut's mutants/), the nearest one above.
REFERENCE = next((p / "shared" / "reference" for p in REPO.parents if (p / "shared" / "reference").is_dir()),
                 REPO.parent / "shared" / "reference")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required where CI=true")
    pytest.skip(f"{what} is not available here")


def need_debian_package(package: str, present: bool, what_for: str) -> None:
    """A test that needs a system package skips without it, naming the package and the command that installs it
    (.ci/run installs it; where CI=true its absence fails)."""
    if not present:
        _missing(f"Debian's {package} ({what_for}; install it with `apt-get install -y {package}`)")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        _missing(f"the reference folder {REFERENCE}")
    return REFERENCE


@pytest.fixture(autouse=True)
def in_memory_dagster_instance(request, monkeypatch):
    """Runs made in-process by a test (`run_drop`, the CLI) use an in-memory Dagster instance: a persistent one
    costs about a second of SQLite writes per run. Tests of the persistent instance itself are marked
    `persistent_instance` (and subprocesses, the UI's and the daemon's, always use theirs)."""
    if request.node.get_closest_marker("persistent_instance") is None:
        import dagster as dg

        monkeypatch.setattr("belleville_mtss.run.instance_for", lambda settings: dg.DagsterInstance.ephemeral())


def make_settings(home: Path, **env: str) -> Settings:
    return load_settings({"MTSS_HOME": str(home), **env})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "mtss")


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    url = os.environ.get("MTSS_TEST_PG_URL")
    if not url:
        _missing("PostgreSQL (MTSS_TEST_PG_URL, a user that may create databases and roles: install it with "
                 "`apt-get install -y postgresql`, or run .ci/run, which installs and starts one)")
    return url


@pytest.fixture
def pg_database(pg_server_url: str):
    """A fresh PostgreSQL database per test, dropped afterwards."""
    name = f"mtss_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """Settings for a whole drop on the embedded SQLite default, then on PostgreSQL (both databases in one)."""
    if request.param == "sqlite":
        return make_settings(tmp_path / "mtss")
    url = request.getfixturevalue("pg_database")
    return make_settings(tmp_path / "mtss", MTSS_WAREHOUSE_URL=url, MTSS_PROD_DB_URL=url)


# The slowest files first (seconds each took in a CI run, `--durations`): `--dist loadfile` hands files to the two
# workers in collection order, so a long file collected last would keep one worker busy while the other idles.
SLOW_FIRST = ("test_benchmark.py", "test_browser.py", "test_recovery.py", "test_truth_over_time.py", "test_one_load_per_district.py",
              "test_faults.py", "test_daemon_postgres.py", "test_alert_daemon.py", "test_configuration.py",
              "test_dry_run.py", "test_staging.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """A warehouse of ours at head, on SQLite and on PostgreSQL."""
    from belleville_mtss.lib.load.warehouse import make_engine
    from belleville_mtss.lib.sample import migrate_sample_warehouse

    url = f"sqlite:///{tmp_path}/w.db" if request.param == "sqlite" else request.getfixturevalue("pg_database")
    eng = make_engine(url)
    migrate_sample_warehouse(eng)
    yield eng
    eng.dispose()
