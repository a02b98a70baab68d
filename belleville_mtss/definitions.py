"""The one Definitions object of the code location."""

import dagster as dg

from .defs.identity import identity_assets, identity_checks
from .defs.resources import MtssResource
from .defs.sources import account_info, classlink_users, file_assets
from .defs.validation import validation_assets
from .defs.warehouse import warehouse_assets
from .lib.config import Settings, load_settings

ASSETS = [*file_assets, classlink_users, account_info, *validation_assets, *identity_assets, *warehouse_assets]
drop_job = dg.define_asset_job("drop_job", selection=dg.AssetSelection.all(),
                               description="Every asset and check of one district drop, source files to warehouse")


def build_definitions(settings: Settings, **resource_overrides) -> dg.Definitions:
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=identity_checks,
        jobs=[drop_job],
        resources={
            "mtss": MtssResource.from_settings(settings, **resource_overrides),
            "io_manager": dg.FilesystemIOManager(base_dir=str(settings.storage_dir)),
        },
        executor=dg.in_process_executor,
    )


defs = build_definitions(load_settings())
