import dagster as dg

drop_job = dg.define_asset_job(
    "drop_job", selection=dg.AssetSelection.all() - dg.AssetSelection.groups("monitoring"),
    description="Every asset and check of one district drop, from the drop server to the warehouse",
)
