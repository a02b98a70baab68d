"""Plain Python over polars frames; nothing in here imports Dagster. One subpackage per stage of a drop, in order:
receive/ (from the drop server into encrypted staging), read/ (each file parsed, bound, typed, validated),
district/ (which district the drop is, against dm.AccountInfo and the registry), students/ (links across ClassLink,
PowerSchool and Renaissance; the roster and results frames), load/ (our warehouse tables, the error log, the audit).
Beside them: checks.py (every check, declared once), pipeline.py (the stages composed, as the asset graph runs
them), config.py (every setting, declared once), columns.py (each frame's columns and lineage), alerts.py,
persist.py (frames at rest between steps) and sample.py (the demo's generated drop)."""
