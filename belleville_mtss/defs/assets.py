"""A drop's assets, and what a run of one district's drop materializes of them."""
import dagster as dg

from ..lib.district.registry import District
from ..lib.sources import FILES
from .district import FILES_TAG, district_assets
from .read import source_assets
from .receive import source_assets as received
from .students import students_assets
from .warehouse import warehouse_assets

ASSETS = [*received, *source_assets, *district_assets, *students_assets, *warehouse_assets]  # a drop's assets


def drop_assets(entry: District | None) -> list[dg.AssetKey]:
    """What a run of a district's drop materializes: every asset of a drop but the kinds of file the district does
    not send (its registry `entry`'s), which its steps read as not sent without a step output, input or event of
    their own (a third of a small run's events, with seven kinds unsent). Every asset for a district without a
    usable entry: its run fails at its first step, saying why."""
    unsent = set() if entry is None else {n for k in FILES if k.asset not in entry.file_patterns
                                          for n in (k.asset, k.validated)}
    return [key for asset in ASSETS for key in asset.keys if key.to_user_string() not in unsent]


def drop_tags(entry: District | None) -> dict[str, str]:
    """The tag that says which kinds of file a run of the district's drop was asked to read (`drop_assets`)."""
    return {} if entry is None else {FILES_TAG: ",".join(k.asset for k in FILES if k.asset in entry.file_patterns)}
