"""When a drop is complete and which version runs: plan_runs on listings (no server needed)."""
import json

from belleville_mtss.lib.receive.drops import CURSOR_MAX_DROPS, Drop, RemoteFile, plan_runs

T0 = 1_800_000_000


def drop(name="d1", size=100, mtime=T0, marker=False):
    return Drop("belleville", name, "folder", (RemoteFile("SR.csv", size, mtime),), marker)


def test_marker_makes_a_drop_ready_once():
    ready, cursor = plan_runs([drop(marker=True)], {}, now=T0 + 1)
    assert [d.key for d in ready] == ["belleville/d1"]
    again, _ = plan_runs([drop(marker=True)], cursor, now=T0 + 60)
    assert again == []


def test_without_marker_a_drop_must_be_stable_for_the_settle_window():
    ready, c1 = plan_runs([drop()], {}, now=T0 + 10, settle=120)
    assert ready == [] and "belleville/d1" in c1["pending"]
    ready, c2 = plan_runs([drop()], c1, now=T0 + 60, settle=120)  # same files, not long enough
    assert ready == []
    ready, c3 = plan_runs([drop(size=150, mtime=T0 + 100)], c2, now=T0 + 200, settle=120)  # still growing
    assert ready == [] and c3["pending"]["belleville/d1"]["since"] == T0 + 200
    ready, _ = plan_runs([drop(size=150, mtime=T0 + 100)], c3, now=T0 + 330, settle=120)
    assert [d.key for d in ready] == ["belleville/d1"]


def test_a_changed_file_is_a_new_version():
    _, cursor = plan_runs([drop(marker=True)], {}, now=T0)
    ready, _ = plan_runs([drop(size=101, marker=True)], cursor, now=T0 + 5)
    assert len(ready) == 1 and ready[0].version != drop(marker=True).version


def test_cursor_stays_bounded_and_evicted_drops_do_not_run_again():
    many = [drop(name=f"d{i:05d}", mtime=T0 + i, marker=True) for i in range(CURSOR_MAX_DROPS + 50)]
    ready, cursor = plan_runs(many, {}, now=T0 + 10_000, limit=len(many))
    assert len(ready) == len(many)
    assert len(cursor["seen"]) == CURSOR_MAX_DROPS and len(json.dumps(cursor)) < 200_000
    again, cursor = plan_runs(many, cursor, now=T0 + 10_060)
    assert again == []  # the 50 evicted ones are below the floor
    corrected = drop(name="d00001", size=999, mtime=T0 + 20_000, marker=True)
    ready, cursor = plan_runs([corrected] + many[2:], cursor, now=T0 + 20_100)
    assert [d.key for d in ready] == ["belleville/d00001"]
    _, cursor = plan_runs(many[:10], cursor, now=T0 + 20_200)  # drops removed from the server are forgotten
    assert len(cursor["seen"]) <= 10


def test_run_requests_are_capped_per_tick_and_the_rest_carried_over_oldest_first():
    complete = [drop(f"d{i:02d}", mtime=T0 - i, marker=True) for i in range(30)]  # d29 arrived first
    settled = [drop("late", mtime=T0 - 100)]  # no marker: ready once stable
    _, cursor = plan_runs(settled, {}, now=T0)
    first, cursor = plan_runs(complete + settled, cursor, now=T0 + 600, limit=25)
    assert len(first) == 25 and first[0].key == "belleville/late" and first[1].key == "belleville/d29"
    second, cursor = plan_runs(complete + settled, cursor, now=T0 + 630, limit=25)
    assert sorted(d.key for d in second) == sorted(d.key for d in complete[:6])  # the rest, none lost
    third, _ = plan_runs(complete + settled, cursor, now=T0 + 660, limit=25)
    assert third == []
