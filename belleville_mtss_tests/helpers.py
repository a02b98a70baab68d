"""Shared test set-up: a small sample drop with its databases."""
from pathlib import Path

import polars as pl

from belleville_mtss.lib.config import Settings
from belleville_mtss.lib.sample import SampleSpec, generate_drop, load_databases
from belleville_mtss.lib.warehouse import assessment_results, ingestion_errors, make_engine, read_table, student_roster

SMALL = SampleSpec(students=300, missing_from_classlink=5, without_tests=7, unknown_star_rows=3)


def prepare_drop(settings: Settings, spec: SampleSpec = SMALL) -> Path:
    drop = settings.drop_dir / "belleville" / spec.drop_name
    tables = generate_drop(drop, spec)
    load_databases(settings.prod_db_url, settings.warehouse_url, tables["classlink_users"])
    return drop


def set_column(path: Path, column: str, value: str, rows: slice | None = None) -> None:
    """Rewrite one column of a CSV file (all rows, or a slice of them)."""
    frame = pl.read_csv(path, infer_schema=False)
    series = frame[column].to_list()
    for i in range(*(rows or slice(None)).indices(len(series))):
        series[i] = value
    frame.with_columns(pl.Series(column, series)).write_csv(path)


def warehouse_counts(settings: Settings) -> dict[str, int]:
    engine = make_engine(settings.warehouse_url)
    try:
        return {
            "roster": read_table(engine, student_roster).height,
            "results": read_table(engine, assessment_results).height,
        }
    finally:
        engine.dispose()


def errors(settings: Settings) -> pl.DataFrame:
    engine = make_engine(settings.warehouse_url)
    try:
        return read_table(engine, ingestion_errors)
    finally:
        engine.dispose()
