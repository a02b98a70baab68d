"""The configuration contract: every setting has an embedded default, overridden by environment variable."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGED_DISTRICTS_DIR = Path(__file__).resolve().parent.parent / "districts"


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse_url: str
    prod_db_url: str
    drop_dir: Path
    districts_dir: Path
    sftp_host: str | None
    sftp_port: int = 22
    sftp_user: str = ""
    sftp_key_path: str = ""
    sftp_known_hosts: str = ""
    sftp_root: str = "."
    staging_key: str = ""
    staging_retention_days: float = 30.0
    ferpa_review_max_days: int = 365

    @property
    def staging_dir(self) -> Path:
        return self.home / "staging"

    @property
    def storage_dir(self) -> Path:
        return self.home / "storage"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    home = Path(env.get("MTSS_HOME") or "./.mtss").resolve()
    return Settings(
        home=home,
        warehouse_url=env.get("MTSS_WAREHOUSE_URL") or _sqlite_url(home / "warehouse.db"),
        prod_db_url=env.get("MTSS_PROD_DB_URL") or _sqlite_url(home / "prod.db"),
        drop_dir=Path(env.get("MTSS_DROP_DIR") or home / "drops").resolve(),
        districts_dir=Path(env.get("MTSS_DISTRICTS_DIR") or PACKAGED_DISTRICTS_DIR).resolve(),
        sftp_host=env.get("MTSS_SFTP_HOST") or None,
        sftp_port=int(env.get("MTSS_SFTP_PORT") or 22),
        sftp_user=env.get("MTSS_SFTP_USER") or "",
        sftp_key_path=env.get("MTSS_SFTP_KEY_PATH") or "",
        sftp_known_hosts=env.get("MTSS_SFTP_KNOWN_HOSTS") or "",
        sftp_root=env.get("MTSS_SFTP_ROOT") or ".",
        staging_key=env.get("MTSS_STAGING_KEY") or "",
        staging_retention_days=float(env.get("MTSS_STAGING_RETENTION_DAYS") or 30),
        ferpa_review_max_days=int(env.get("MTSS_FERPA_REVIEW_MAX_DAYS") or 365),
    )
