"""One dynamic partition per received drop, keyed "<district>/<drop name>" (lib/receive/untrusted.py: the canonical key)."""
import warnings

import dagster as dg

# Per-partition asset checks (one status per drop) are a preview feature in Dagster 1.13; we rely on it on
# purpose (a blocked drop must not block another), so its warning is not repeated on every import.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")

drops = dg.DynamicPartitionsDefinition(name="drops")
