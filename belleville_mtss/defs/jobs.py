import dagster as dg

from .partitions import drops

drop_job = dg.define_asset_job(
    "drop_job", selection=dg.AssetSelection.all(), partitions_def=drops,
    description="Every asset and check of one district drop, from the drop server to the warehouse",
)
