"""Assets materialized a few at a time, as from the UI, after the drop's whole run was refused: the blocking checks
hold across runs. A step that refuses a drop keeps no frame (nor leaves an earlier run's), a new version of a drop
leaves none of the older version's, and the load refuses frames verified under another AccountInfoId."""
import os

import dagster as dg
import pytest
import polars as pl

from belleville_mtss.definitions import build_definitions
from belleville_mtss.lib.load.warehouse import assessment_results, make_engine, read_table
from belleville_mtss.run import run_drop
from .conftest import make_settings
from .helpers import edited_registry, errors, held_rows, prepare_drop, set_column, warehouse_counts

KEY = "belleville/2026-11-01"
BUILT = ("district_crosswalk", "student_identity_map", "student_roster", "assessment_results")


def _subset(settings, instance, *assets: str) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions("drops", [KEY])
    job = build_definitions(settings).resolve_job_def("drop_job")
    return job.execute_in_process(instance=instance, partition_key=KEY, raise_on_error=False,
                                  asset_selection=[dg.AssetKey(a) for a in assets])


def _failures(result) -> str:
    return " ".join(str(e.step_failure_data.error.message) for e in result.all_events
                    if e.event_type == dg.DagsterEventType.STEP_FAILURE)


def test_a_failed_gate_holds_when_the_later_assets_are_materialized_one_at_a_time(tmp_path, new_instance):
    # The gates ran in a step of their own after the identity map was kept: a later run of the roster and the
    # loads, leaving that step out, loaded a drop whose gate had failed, unaccepted.
    registry = edited_registry(tmp_path, lambda e: e["gates"].update(min_classlink_link_rate=1.0))
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(registry))
    prepare_drop(settings)
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).outcome == "blocked"
        for assets in (["student_roster"], ["assessment_results"], ["dm_student_roster"], ["dm_assessment_results"]):
            result = _subset(settings, instance, *assets)
            assert not result.success and "is not kept at rest" in _failures(result), assets
    assert warehouse_counts(settings) == {"roster": 0, "results": 0}


def test_a_version_refused_by_its_district_check_loads_nothing_later_and_a_new_version_leaves_no_older_frame(
        tmp_path, new_instance):
    # A re-sent drop whose SR.csv names another district was refused, but the earlier version's verified
    # crosswalk stayed at rest: the later assets, run alone, loaded the refused file's scores with it.
    settings = make_settings(tmp_path / "mtss")
    drop = prepare_drop(settings)
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).outcome == "loaded"
        held = warehouse_counts(settings)
        set_column(drop / "SR.csv", "DistrictName", "Bellevue Union Elementary")
        set_column(drop / "SR.csv", "ScaledScore", "777")
        assert run_drop(settings, instance=instance).outcome == "blocked"
        for assets in (["student_identity_map"], ["assessment_results"], ["dm_assessment_results"]):
            assert not _subset(settings, instance, *assets).success, assets
        assert warehouse_counts(settings) == held
        kept = settings.storage_dir
        assert not (kept / "district_crosswalk" / KEY).exists() and not (kept / "student_identity_map" / KEY).exists()

        # a third version received alone: the second's frames (files as validated) are not left to mix with it
        set_column(drop / "SR.csv", "ScaledScore", "778")
        assert (kept / "validated_star_reading" / KEY).exists()
        assert _subset(settings, instance, "received_drop").success
        assert not [p for p in kept.glob(f"*/{KEY}") if p.parent.parent.name != "received_drop"]
        result = _subset(settings, instance, "district_crosswalk", "student_identity_map", "assessment_results",
                         "dm_assessment_results")
        assert not result.success and "is not kept at rest" in _failures(result)
    assert warehouse_counts(settings) == held


def test_a_file_corrected_in_place_under_the_same_version_leaves_no_frame_of_the_bytes_before(tmp_path, new_instance):
    # A drop's version is its files' names, sizes and times: SR.csv rewritten with both kept (another district named,
    # other scores) and received alone kept the crosswalk and identity map verified for the bytes before, and the
    # results, run alone after, loaded the new bytes unchecked.
    settings = make_settings(tmp_path / "mtss")
    sr = prepare_drop(settings) / "SR.csv"
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).outcome == "loaded"
        held = _scores(settings)
        before = sr.stat()
        rows = pl.read_csv(sr, infer_schema=False)
        rows.with_columns(  # as long as before: another district's name, each score's last digit another
            pl.col("DistrictName").str.replace("Belleville Public Schools", "Bellevue Union Elementary"),
            pl.when(pl.col("ScaledScore").str.ends_with("0")).then(pl.col("ScaledScore").str.replace(r"0$", "1"))
            .otherwise(pl.col("ScaledScore").str.replace(r"\d$", "0")),
        ).write_csv(sr)
        os.utime(sr, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert sr.stat().st_size == before.st_size and sr.stat().st_mtime_ns == before.st_mtime_ns

        assert _subset(settings, instance, "received_drop").success
        kept = settings.storage_dir
        assert not [p for p in kept.glob(f"*/{KEY}") if p.parent.parent.name != "received_drop"]
        result = _subset(settings, instance, "assessment_results", "dm_assessment_results")
        assert not result.success and "is not kept at rest" in _failures(result)
        assert _scores(settings) == held


def _scores(settings) -> list:
    return read_table(make_engine(settings.warehouse_url), assessment_results)["ScaledScore"].sort().to_list()


def test_frames_verified_under_an_earlier_account_info_id_do_not_load_under_a_new_one(tmp_path, new_instance):
    # The registry's account_info_id edited after a load: the roster rebuilt and loaded alone (the crosswalk and
    # its checks left out) went in under the new id beside the old rows, a second copy.
    first = make_settings(tmp_path / "mtss")
    prepare_drop(first)
    registry = edited_registry(tmp_path, lambda e: e.update(account_info_id=200000))
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(registry))
    with new_instance() as instance:
        assert run_drop(first, instance=instance).outcome == "loaded"
        assert _subset(settings, instance, "student_roster").success
        result = _subset(settings, instance, "dm_student_roster")
        assert not result.success and "registry now says 200000" in _failures(result)
    logged = errors(settings).filter(pl.col("Reason") == "stale_frames")
    assert logged.height == 1 and "AccountInfoId 107873" in logged["Message"][0]
    assert warehouse_counts(settings)["roster"] == warehouse_counts(first)["roster"]


def test_a_load_of_the_results_alone_refused_by_a_replace_check_logs_its_refusal(tmp_path, new_instance):
    # The replace checks are shown on dm_student_roster: a load of dm_assessment_results alone, refused as
    # superseded, wrote no error row and marked no file, so `status` showed nothing of it.
    import shutil
    settings = make_settings(tmp_path / "mtss")
    prepare_drop(settings)
    shutil.copytree(settings.drop_dir / "belleville" / "2026-11-01", settings.drop_dir / "belleville" / "2026-11-15")
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).outcome == "loaded"
        assert run_drop(settings, "belleville/2026-11-15", instance=instance).outcome == "loaded"
        result = _subset(settings, instance, "dm_assessment_results")
        assert not result.success and "Superseded" in _failures(result)
    logged = errors(settings).filter((pl.col("DropId") == KEY) & (pl.col("Reason") == "superseded"))
    assert logged.height == 1 and logged["Stage"][0] == "replace"


def test_another_spelling_of_a_drop_is_refused_under_that_spelling_not_the_drops_key(tmp_path, new_instance):
    # A partition added by hand as `Belleville/2026-11-01` was refused, but its error row went under
    # `belleville/2026-11-01`, whose status then showed an error the drop never had.
    settings = make_settings(tmp_path / "mtss")
    prepare_drop(settings)
    with new_instance() as instance:
        instance.add_dynamic_partitions("drops", ["Belleville/2026-11-01"])
        job = build_definitions(settings).resolve_job_def("drop_job")
        result = job.execute_in_process(instance=instance, partition_key="Belleville/2026-11-01",
                                        raise_on_error=False, asset_selection=[dg.AssetKey("received_drop")])
        assert not result.success
    logged = errors(settings)
    assert logged.select("DropId", "Reason").rows() == [("'Belleville/2026-11-01'", "bad_drop_name")]


def test_a_gate_that_fails_on_a_later_run_leaves_no_earlier_roster_or_results_to_load(tmp_path, new_instance):
    # A run built the roster and results and ended before its load; a later run of the drop failed a gate (the
    # registry's threshold raised, or the ClassLink table emptied meanwhile). The refusal removed only the identity
    # map, and the load run alone loaded the frames the first run kept.
    first = make_settings(tmp_path / "mtss")
    prepare_drop(first)
    registry = edited_registry(tmp_path, lambda e: e["gates"].update(min_classlink_link_rate=1.0))
    strict = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(registry))
    with new_instance() as instance:
        up_to_the_load = [a.key.to_user_string() for a in build_definitions(first).resolve_all_asset_specs()
                          if a.group_name not in ("monitoring", "warehouse")
                          and a.key.to_user_string() != "link_review"]
        assert _subset(first, instance, *up_to_the_load).success
        assert run_drop(strict, instance=instance).outcome == "blocked"
        result = _subset(strict, instance, "dm_student_roster", "dm_assessment_results")
        assert not result.success and "is not kept at rest" in _failures(result)
    assert warehouse_counts(first) == {"roster": 0, "results": 0}


def test_a_re_executed_run_does_not_accept_a_new_drop_version_with_its_parents_acceptance(tmp_path, new_instance):
    # The UI's re-execution copies the parent's tags, its mtss/accept among them: the parent's acceptance passed
    # the failed gate of a new version nobody had seen, recorded under the parent's person and reason.
    import sqlalchemy as sa
    from belleville_mtss.lib.load.warehouse import gate_acceptances, make_engine
    registry = edited_registry(tmp_path, lambda e: e["gates"].update(min_classlink_link_rate=1.0))
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(registry))
    drop = prepare_drop(settings)
    accept = {"mtss/accept": "classlink_link_rate", "mtss/accept_reason": "checked with the district",
              "mtss/accepted_by": "alice"}
    with new_instance() as instance:
        assert run_drop(settings, instance=instance, tags=accept).outcome == "loaded"
        (parent,) = instance.get_runs()
        set_column(drop / "SR.csv", "ScaledScore", "777")  # a new version of the drop
        child = run_drop(settings, instance=instance, tags={**accept, "dagster/parent_run_id": parent.run_id})
        assert child.outcome == "blocked", child.render()
    engine = make_engine(settings.warehouse_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.select(gate_acceptances.c.DropVersion)).scalars().all()
    finally:
        engine.dispose()
    assert len(versions) == 1  # the parent's version alone


def test_an_acceptance_is_of_the_bytes_accepted_not_of_a_file_corrected_in_place_under_the_same_version(
        tmp_path, new_instance):
    """A drop's version is its files' names, sizes and times: a failed gate accepted for it passed the same gate for
    other bytes sent under it (a file corrected in place, size and time kept), nobody having seen them."""
    registry = edited_registry(tmp_path, lambda e: e["gates"].update(min_classlink_link_rate=1.0))
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(registry))
    sr = prepare_drop(settings) / "SR.csv"
    accept = {"mtss/accept": "classlink_link_rate", "mtss/accept_reason": "checked with the district",
              "mtss/accepted_by": "alice"}
    with new_instance() as instance:
        assert run_drop(settings, instance=instance, tags=accept).outcome == "loaded"
        assert run_drop(settings, instance=instance).outcome == "loaded"  # the same bytes again: still accepted
        # the version an acceptance is kept under is the one the receipt shows (the UI's received_drop metadata)
        from belleville_mtss.lib.load.warehouse import gate_acceptances, make_engine, read_table
        (record,) = instance.fetch_materializations(dg.AssetKey("received_drop"), limit=1).records
        engine = make_engine(settings.warehouse_url)
        kept = read_table(engine, gate_acceptances)["DropVersion"].to_list()
        engine.dispose()
        assert kept == [record.asset_materialization.metadata["content_version"].value]
        before = sr.stat()
        rows = pl.read_csv(sr, infer_schema=False)
        rows.with_columns(pl.when(pl.col("ScaledScore").str.ends_with("0"))
                          .then(pl.col("ScaledScore").str.replace(r"0$", "1"))
                          .otherwise(pl.col("ScaledScore").str.replace(r"\d$", "0"))).write_csv(sr)
        os.utime(sr, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert sr.stat().st_size == before.st_size
        assert run_drop(settings, instance=instance).outcome == "blocked"


def test_a_file_read_again_leaves_nothing_built_on_the_earlier_frames_to_load_unchecked(tmp_path, new_instance):
    """SR.csv past MTSS_MAX_FILE_ROWS was halted and the drop loaded in part; with the limit raised, SR.csv's frame
    made again and the results and their load materialized one at a time loaded its rows under the identity map and
    crosswalk built without it: a file naming another district, its district never checked."""
    first = make_settings(tmp_path / "mtss", MTSS_MAX_FILE_ROWS="300")
    drop = prepare_drop(first)
    set_column(drop / "SR.csv", "DistrictName", "Springfield Public Schools")
    raised = make_settings(tmp_path / "mtss", MTSS_MAX_FILE_ROWS="100000")
    with new_instance() as instance:
        assert run_drop(first, instance=instance).outcome == "partial"
        before = warehouse_counts(first)
        assert _subset(raised, instance, "validated_star_reading").success
        for asset in ("assessment_results", "dm_assessment_results"):
            result = _subset(raised, instance, asset)
            assert not result.success and "is not kept at rest" in _failures(result), asset
        assert warehouse_counts(raised) == before
        assert run_drop(raised, instance=instance).outcome == "blocked"  # its district, checked


def test_frames_of_a_source_the_registry_no_longer_lists_are_refused_not_judged(tmp_path, new_instance):
    """A drop blocked by its MAP Growth file; map_growth taken out of the registry, and the crosswalk materialized
    again (a re-execution from the failure) on the frames read under the old entry: a KeyError, no reason said."""
    import dataclasses

    from .helpers import SMALL
    with_map = edited_registry(tmp_path, lambda e: e["sources"].update(map_growth={}), "with_map")
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(with_map))
    drop = prepare_drop(settings, dataclasses.replace(SMALL, sources=("star", "map_growth")))
    set_column(drop / "AssessmentResults.csv", "DistrictName", "Springfield Public Schools")
    without = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(edited_registry(tmp_path, lambda e: None)))
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).outcome == "blocked"
        result = _subset(without, instance, "district_crosswalk")
        assert not result.success and ("AssessmentResults.csv was read under a registry entry that listed its "
                                       "source, and belleville's entry no longer does") in _failures(result)
        assert run_drop(without, instance=instance).outcome == "loaded"  # the whole drop, read under the entry
    logged = errors(without).filter(pl.col("Reason") == "stale_frames")
    assert logged.height == 1


@pytest.mark.parametrize("sent", [("star", "map_growth"), ("star",)], ids=["map_sent", "map_missing"])
def test_a_frame_of_a_source_the_registry_no_longer_lists_is_refused_by_every_step_that_reads_it(
        tmp_path, new_instance, sent):
    """A drop loaded with its MAP Growth file (or without it: missing); map_growth taken out of the registry; the
    results and their load materialized alone (as from the UI) took the MAP Growth frame kept at rest and loaded it
    under the new entry: only the crosswalk refused such frames (and failed on a TypeError for a missing file). The
    load alone reads no such frame: the crosswalk it loads says."""
    import dataclasses

    from .helpers import SMALL
    with_map = edited_registry(tmp_path, lambda e: e["sources"].update(map_growth={}), "with_map")
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(with_map))
    prepare_drop(settings, dataclasses.replace(SMALL, sources=sent))
    without = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(edited_registry(tmp_path, lambda e: None)))
    named = "AssessmentResults.csv" if "map_growth" in sent else "map_growth (no file)"
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).outcome == ("loaded" if "map_growth" in sent else "partial")
        loaded = held_rows(settings)
        load_alone = _subset(without, instance, "dm_assessment_results")
        assert not load_alone.success and (f"{named} was read under a registry entry that listed its source, and "
                                           "the entry no longer does") in _failures(load_alone)
        result = _subset(without, instance, "assessment_results", "dm_assessment_results")
        assert not result.success and (f"{named} was read under a registry entry that listed its source, and "
                                       "belleville's entry no longer does") in _failures(result)
        for asset in BUILT:  # nothing built on it is left for a later run of the load alone
            assert not (settings.storage_dir / asset / KEY).exists()
    assert held_rows(settings)["results"].equals(loaded["results"])
    assert errors(without).filter(pl.col("Reason") == "stale_frames").height == 2


def test_a_run_leaves_out_the_kinds_of_file_its_district_does_not_send_and_the_whole_graph_still_loads(
        tmp_path, new_instance):
    """A run of Belleville's drop materialized, kept and loaded into every later step each of the seven kinds of
    file Belleville does not send, as "not sent": a third of the run's events. Its run now leaves them out; a run of
    the whole graph (the UI's "Materialize all") still materializes them as not sent, and loads the same."""
    from belleville_mtss.defs.assets import ASSETS
    from belleville_mtss.lib.district.registry import load_registry
    from belleville_mtss.lib.sources import FILES
    settings = make_settings(tmp_path / "mtss")
    prepare_drop(settings)
    sent = load_registry(settings.districts_dirs)["belleville"].file_patterns
    unsent = [k.validated for k in FILES if k.asset not in sent]
    assert len(unsent) == len(FILES) - 4  # PowerSchool and Star's three files

    def made(instance) -> set[str]:
        return {k.to_user_string() for k in instance.get_asset_keys() if KEY in instance.get_materialized_partitions(k)}
    with new_instance() as instance:
        # a caller's tag naming other kinds (copied from another run) changes nothing: the run reads what it selects
        assert run_drop(settings, instance=instance, tags={"mtss/files": "star_reading"}).outcome == "loaded"
        assert not made(instance) & {*unsent, *(k.asset for k in FILES if k.asset not in sent)}
        assert {k.validated for k in FILES if k.asset in sent} <= made(instance)
        before = warehouse_counts(settings)
        whole = _subset(settings, instance, *(key.to_user_string() for a in ASSETS for key in a.keys))
        assert whole.success and set(unsent) <= made(instance)
        assert all(whole.output_for_node("read_drop", name).sent is False for name in unsent)
    assert warehouse_counts(settings) == before and before["results"] > 0


def test_a_run_asked_for_before_its_entry_listed_a_source_fails_saying_so_and_loads_nothing(tmp_path, new_instance):
    """A run's assets are its district's files as its registry entry listed them when the run was asked for; the
    entry then lists MAP Growth too. The crosswalk must neither take the file the run was never asked to read as
    not sent, nor load a frame of it an earlier run kept (read under another entry, or of other bytes)."""
    import dataclasses

    from belleville_mtss.defs.assets import drop_assets, drop_tags
    from belleville_mtss.lib.district.registry import load_registry
    from .helpers import SMALL
    with_map = edited_registry(tmp_path, lambda e: e["sources"].update(map_growth={}), "with_map")
    settings = make_settings(tmp_path / "mtss", MTSS_DISTRICTS_DIR=str(with_map))
    prepare_drop(settings, dataclasses.replace(SMALL, sources=("star", "map_growth")))
    before = load_registry(make_settings(tmp_path / "mtss").districts_dirs)["belleville"]
    assert dg.AssetKey("validated_map_growth") not in drop_assets(before)
    said = "belleville's registry entry lists map_growth, which it did not when this run of belleville/2026-11-01 "

    def asked_before(instance) -> dg.ExecuteInProcessResult:
        instance.add_dynamic_partitions("drops", [KEY])
        job = build_definitions(settings).resolve_job_def("drop_job")
        return job.execute_in_process(instance=instance, partition_key=KEY, raise_on_error=False,
                                      asset_selection=drop_assets(before), tags=drop_tags(before))
    with new_instance() as instance:
        result = asked_before(instance)
        assert not result.success and said in _failures(result)
        assert warehouse_counts(settings) == {"roster": 0, "results": 0}
        assert run_drop(settings, instance=instance).outcome == "loaded"  # keeps a frame of AssessmentResults.csv
        loaded = held_rows(settings)
        result = asked_before(instance)
        assert not result.success and said in _failures(result)
    assert "map_growth" in set(loaded["results"]["Assessment"])
    assert held_rows(settings)["results"].equals(loaded["results"])


def test_frames_kept_by_a_run_that_overlapped_a_read_of_the_drop_are_not_loaded_over_the_new_frames(
        tmp_path, new_instance):
    """Two runs of one drop at once: the first keeps the crosswalk and identity map it built on SR.csv's frame of
    before, after the second made that frame again (with the row limit raised) and removed them. A run of the
    results and their load alone then loaded the new SR.csv rows, naming another district, under that crosswalk.
    The first run's late writes are made here by putting its kept files back after the second run."""
    import shutil
    first = make_settings(tmp_path / "mtss", MTSS_MAX_FILE_ROWS="300")
    drop = prepare_drop(first)
    set_column(drop / "SR.csv", "DistrictName", "Springfield Public Schools")
    raised = make_settings(tmp_path / "mtss", MTSS_MAX_FILE_ROWS="100000")
    with new_instance() as instance:
        assert run_drop(first, instance=instance).outcome == "partial"
        before = warehouse_counts(first)
        late = tmp_path / "late"
        for asset in BUILT:
            shutil.copytree(first.storage_dir / asset, late / asset)
        assert _subset(raised, instance, "validated_star_reading").success
        for asset in BUILT:  # the first run's writes, ending after the second run's read
            shutil.rmtree(first.storage_dir / asset, ignore_errors=True)
            shutil.copytree(late / asset, first.storage_dir / asset)
        for asset in ("assessment_results", "dm_assessment_results"):
            result = _subset(raised, instance, asset)
            assert not result.success, asset
            assert ("was made from validated_star_reading as it was then, and validated_star_reading has been made "
                    "again since with other contents") in _failures(result), asset
        assert warehouse_counts(raised) == before
        assert run_drop(raised, instance=instance).outcome == "blocked"  # its district, checked


def test_a_frame_kept_without_what_it_was_made_from_is_refused_at_rest(tmp_path, new_instance):
    """A frame kept before frames recorded what they were made from (an earlier version of the pipeline) cannot be
    told current: a run that would load it from rest is refused, and one that makes it again loads."""
    import pickle

    from belleville_mtss.lib.persist import load, load_made, stamp_of
    from belleville_mtss.lib.receive.vault import encrypt_bytes, staging_key
    settings = make_settings(tmp_path / "mtss")
    prepare_drop(settings)
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).outcome == "loaded"
        kept, key = settings.storage_dir / "student_identity_map" / KEY, staging_key(None, settings.home)
        made, identity, stamp = load_made(key, kept)
        crosswalk = settings.storage_dir / "district_crosswalk" / KEY
        assert made[("district_crosswalk", KEY)] == stamp_of(key, crosswalk) and stamp == stamp_of(key, kept)
        assert ("validated_star_reading", KEY) in made and ("student_identity_map", KEY) not in made
        encrypt_bytes(key, pickle.dumps(identity), kept)  # as an earlier version kept it
        assert type(load(key, kept)) is type(identity)
        result = _subset(settings, instance, "assessment_results")
        assert not result.success
        assert ("student_identity_map of belleville/2026-11-01 was kept by an earlier version of the pipeline"
                in _failures(result))
        assert _subset(settings, instance, "student_identity_map", "assessment_results").success


def test_an_upstream_asset_made_again_the_same_leaves_what_was_made_from_it_current(tmp_path, new_instance):
    """The crosswalk materialized again alone (its checks looked at again), or the drop received again under the same
    version with the same bytes: what was built on them holds what it held, and the loads run alone still load."""
    settings = make_settings(tmp_path / "mtss")
    prepare_drop(settings)
    with new_instance() as instance:
        assert run_drop(settings, instance=instance).outcome == "loaded"
        held = warehouse_counts(settings)
        for again in ("district_crosswalk", "received_drop"):
            assert _subset(settings, instance, again).success, again
            result = _subset(settings, instance, "assessment_results", "dm_student_roster", "dm_assessment_results")
            assert result.success, (again, _failures(result))
        assert _subset(settings, instance, "link_review").success
    assert warehouse_counts(settings) == held
