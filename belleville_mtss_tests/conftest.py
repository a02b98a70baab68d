import os
import shutil
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


def _instance_at(home: Path):
    """The instance at `home`, configured as `belleville-mtss run` configures one (run.py's INSTANCE_YAML: the
    project's SQLite storages)."""
    import dagster as dg

    from belleville_mtss.run import INSTANCE_YAML

    (home / "dagster.yaml").write_text(INSTANCE_YAML.format(home=home))
    return dg.DagsterInstance.from_config(str(home))


@pytest.fixture(scope="session")
def instance_template(tmp_path_factory) -> Path:
    """A Dagster home whose databases are created and migrated once per test process; `fresh_instance` copies it."""
    home = tmp_path_factory.mktemp("dagster-template")
    with _instance_at(home) as instance:
        instance.run_storage, instance.event_log_storage, instance.schedule_storage  # made now
    return home


def fresh_instance(template: Path, home: Path):
    """A new, empty Dagster instance at `home`, copied from the template (0.05 s; making one takes 0.2 s). Its
    storages are the ones users run on, and a run stores its events faster there than in Dagster's in-memory
    instance, which opens a connection for every query."""
    # the template's databases are WAL and may be open in this process: the log is copied with them, not its index
    shutil.copytree(template, home, ignore=shutil.ignore_patterns("*-shm", "dagster.yaml"))
    return _instance_at(home)


@pytest.fixture
def new_instance(instance_template: Path, tmp_path_factory):
    """`new_instance()`: a new, empty Dagster instance (`fresh_instance`), in a folder of its own beside the test's:
    tests that compare their folder before and after a run see only what the run wrote there."""
    return lambda: fresh_instance(instance_template, tmp_path_factory.mktemp("dagster") / "home")


@pytest.fixture(autouse=True)
def new_dagster_instance(request, monkeypatch):
    """Runs made in-process by a test (`run_drop`, the CLI) each get a new instance (`new_instance`), never
    MTSS_HOME's. Tests of the instance under MTSS_HOME itself are marked `persistent_instance` (and subprocesses,
    the UI's and the daemon's, always use theirs)."""
    if request.node.get_closest_marker("persistent_instance") is None:
        make = request.getfixturevalue("new_instance")
        monkeypatch.setattr("belleville_mtss.run.instance_for", lambda settings: make())


def make_settings(home: Path, **env: str) -> Settings:
    return load_settings({"MTSS_HOME": str(home), **env})


@pytest.fixture(scope="session")
def loaded_template(instance_template: Path, tmp_path_factory) -> Path:
    """An MTSS_HOME (embedded databases) whose sample drop is loaded, made once per test process (a run takes a
    second or two; `loaded_home` copies the home in milliseconds). Nothing in it names its folder."""
    from belleville_mtss.run import run_drop
    from .helpers import prepare_drop

    home = tmp_path_factory.mktemp("loaded") / "home"
    settings = make_settings(home)
    prepare_drop(settings)
    with fresh_instance(instance_template, tmp_path_factory.mktemp("dagster") / "home") as instance:
        assert run_drop(settings, instance=instance).outcome == "loaded"
    return home


@pytest.fixture
def loaded_home(loaded_template: Path):
    """`loaded_home(home)`: the settings of a copy, at `home`, of MTSS_HOME with the sample drop loaded."""
    def copy(home: Path) -> Settings:
        shutil.copytree(loaded_template, home)
        return make_settings(home)
    return copy


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


# `@one_backend` on a test taking `backend`: a whole drop whose claim is the same on every database runs once, on
# PostgreSQL (production's stand-in) where one is given, as in CI, else on the embedded SQLite default. What the two
# databases do differently is tested on both: at the level of lib/load (`engine`) and by whole drops left on both.
one_backend = pytest.mark.parametrize("backend", ["one"], indirect=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """Settings for a whole drop on the embedded SQLite default, then on PostgreSQL (both databases in one)."""
    if request.param == "sqlite" or (request.param == "one" and not os.environ.get("MTSS_TEST_PG_URL")):
        return make_settings(tmp_path / "mtss")
    url = request.getfixturevalue("pg_database")
    return make_settings(tmp_path / "mtss", MTSS_WAREHOUSE_URL=url, MTSS_PROD_DB_URL=url)


# The slowest files first (seconds each took in a CI run, `--durations`): `--dist loadfile` hands files to the
# workers in collection order, so a long file collected last would keep one worker busy while the others idle.
SLOW_FIRST = ("test_benchmark.py", "test_browser.py", "test_recovery.py", "test_truth_over_time.py", "test_one_load_per_district.py",
              "test_faults.py", "test_daemon_postgres.py", "test_alert_daemon.py", "test_configuration.py",
              "test_dry_run.py", "test_staging.py", "test_subset_runs.py")


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
