"""Stage 5, load. In: the roster and results frames of a drop that passed its checks and gates. Out: rows in our
warehouse tables (warehouse.py, declared once; changed only through migrations.py), written only when the drop is
not older than what they hold (order.py), the error log (errors.py: dm.IngestionErrors, never a student's data)
and the audit of files (audit.py: dm.IngestionFiles)."""
