"""OneRoster 1.1 and 1.2 CSV exports as a roster (export.py). Not yet a source of the list (lib/sources/__init__.py
NAMES): its reading is here and tested; the asset graph, onboarding and the registry do not use it yet."""
