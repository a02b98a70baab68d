"""One dynamic partition per received drop, keyed "<district>/<drop name>"."""
import dagster as dg

drops = dg.DynamicPartitionsDefinition(name="drops")


def split_drop_key(key: str) -> tuple[str, str]:
    district, _, drop = key.partition("/")
    if not district or not drop:
        raise dg.Failure(f"'{key}' is not a drop key (expected '<district>/<drop name>')")
    return district, drop
