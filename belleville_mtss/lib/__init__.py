"""Plain Python over polars frames; nothing in here imports Dagster."""
