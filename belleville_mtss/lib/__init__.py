"""Plain Python over polars frames; nothing in here imports Dagster. One subpackage per stage of a drop, in order:
receive/ (from the drop server into encrypted staging), read/ (each file parsed, bound, typed, validated),
district/ (which district the drop is, against dm.AccountInfo and the registry), students/ (links across ClassLink,
PowerSchool and Renaissance; the roster and results frames), load/ (our warehouse tables, the error log, the audit).
Beside them: checks.py (every check, declared once), pipeline.py (the stages composed, as the asset graph runs
them), config.py (every setting, declared once), columns.py (each frame's columns and lineage), alerts.py,
persist.py (frames at rest between steps) and sample.py (the demo's generated drop)."""

# The engine for a lazy query over frames already in memory where it was measured faster: polars 2's default picks
# its streaming engine, which took up to twice the in-memory engine's time for the typing of Star rows and the
# identity map's joins on 2 cores (docs/performance.md, sixth sitting). A CSV scan keeps the default (the two are
# alike there), and so does the typing of PowerSchool rows (the default was faster).
IN_MEMORY = "in-memory"
