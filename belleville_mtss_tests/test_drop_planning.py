"""When a drop is complete and which version runs: plan_runs on listings (no server needed)."""
import json

from belleville_mtss.lib.receive.drops import Drop, RemoteFile, plan_runs

T0 = 1_800_000_000


def drop(name="d1", size=100, mtime=T0, marker=False):
    return Drop("belleville", name, "folder", (RemoteFile("SR.csv", size, mtime),), marker)


def sent_after(ready, sent=None) -> dict:
    """What the sensor's table holds once the ready drops' runs exist."""
    return {**(sent or {}), **{d.key: d.version for d in ready}}


def test_marker_makes_a_drop_ready_once():
    ready, cursor = plan_runs([drop(marker=True)], {}, now=T0 + 1, sent={})
    assert [d.key for d in ready] == ["belleville/d1"]
    again, _ = plan_runs([drop(marker=True)], cursor, now=T0 + 60, sent=sent_after(ready))
    assert again == []
    # requested, its run not seen yet: the cursor remembers it; once its run exists the table does
    assert plan_runs([drop(marker=True)], cursor, now=T0 + 60, sent={})[0] == []
    assert plan_runs([drop(marker=True)], {}, now=T0 + 60, sent=sent_after(ready))[0] == []


def test_without_marker_a_drop_must_be_stable_for_the_settle_window():
    ready, c1 = plan_runs([drop()], {}, now=T0 + 10, sent={}, settle=120)
    assert ready == [] and "belleville/d1" in c1["pending"]
    ready, c2 = plan_runs([drop()], c1, now=T0 + 60, sent={}, settle=120)  # same files, not long enough
    assert ready == []
    ready, c3 = plan_runs([drop(size=150, mtime=T0 + 100)], c2, now=T0 + 200, sent={}, settle=120)  # growing
    assert ready == [] and c3["pending"]["belleville/d1"]["since"] == T0 + 200
    ready, _ = plan_runs([drop(size=150, mtime=T0 + 100)], c3, now=T0 + 330, sent={}, settle=120)
    assert [d.key for d in ready] == ["belleville/d1"]


def test_a_changed_file_is_a_new_version():
    first, cursor = plan_runs([drop(marker=True)], {}, now=T0, sent={})
    ready, _ = plan_runs([drop(size=101, marker=True)], cursor, now=T0 + 5, sent=sent_after(first))
    assert len(ready) == 1 and ready[0].version != drop(marker=True).version


def test_thousands_of_drops_with_old_file_times_are_each_planned_once_and_the_cursor_stays_small():
    many = [drop(name=f"d{i:05d}", mtime=T0 + i, marker=True) for i in range(5_000)]
    ready, cursor = plan_runs(many, {}, now=T0 + 10_000, sent={}, limit=len(many))
    assert len(ready) == len(many)
    sent = sent_after(ready)
    cursor["requested"] = {}  # their runs exist now: the sensor moved them to its table
    assert plan_runs(many, cursor, now=T0 + 10_060, sent=sent)[0] == []
    assert len(json.dumps(cursor)) < 100
    # a new drop copied with its old file times (WinSCP, rsync -t), older than every drop sent: still planned
    copied = drop(name="c00001", mtime=T0 - 86_400 * 30, marker=True)
    ready, cursor = plan_runs([copied] + many, cursor, now=T0 + 20_000, sent=sent)
    assert [d.key for d in ready] == ["belleville/c00001"]
    corrected = drop(name="d00001", size=999, mtime=T0 - 5, marker=True)  # a re-send, its times old too
    ready, _ = plan_runs([corrected] + many[2:], cursor, now=T0 + 20_100, sent=sent_after(ready, sent))
    assert [d.key for d in ready] == ["belleville/d00001"]


def test_run_requests_are_capped_per_tick_and_the_rest_carried_over_oldest_first():
    complete = [drop(f"d{i:02d}", mtime=T0 - i, marker=True) for i in range(30)]  # d29 arrived first
    # no marker, from a district that writes none: ready once stable
    settled = [Drop("riverton", "late", "folder", (RemoteFile("SR.csv", 100, T0 - 100),), False)]
    _, cursor = plan_runs(settled, {}, now=T0, sent={})
    first, cursor = plan_runs(complete + settled, cursor, now=T0 + 600, sent={}, limit=25)
    assert len(first) == 25 and first[0].key == "riverton/late" and first[1].key == "belleville/d29"
    second, cursor = plan_runs(complete + settled, cursor, now=T0 + 630, sent=sent_after(first), limit=25)
    assert sorted(d.key for d in second) == sorted(d.key for d in complete[:6])  # the rest, none lost
    third, _ = plan_runs(complete + settled, cursor, now=T0 + 660, sent=sent_after(second, sent_after(first)),
                         limit=25)
    assert third == []


def test_drops_found_at_one_tick_are_requested_by_the_date_their_names_say_then_by_file_time():
    """A missed 2026-11-01 drop uploaded after 2026-11-08 was requested second, by file time: the district's runs go
    one at a time in that order, and the older drop, run after the newer, was superseded whole."""
    from belleville_mtss.lib.load.order import date_in_name
    files = lambda mtime: (RemoteFile("SR.csv", 10, mtime),)  # noqa: E731
    found = [Drop("belleville", "2026-11-08", "folder", files(T0), True),
             Drop("belleville", "2026-11-01", "folder", files(T0 + 50), True),
             Drop("belleville", "extra-export", "folder", files(T0 - 50), True)]  # no date: as received, last
    ready, _ = plan_runs(found, {}, now=T0 + 60, sent={}, dated=lambda d: date_in_name(d.name, "%Y-%m-%d"))
    assert [d.name for d in ready] == ["2026-11-01", "2026-11-08", "extra-export"]
    assert [d.name for d in plan_runs(found, {}, now=T0 + 60, sent={})[0]] == [  # undated, file time decides
        "extra-export", "2026-11-08", "2026-11-01"]


def test_a_drop_without_its_marker_waits_for_it_where_the_district_writes_markers():
    """An upload cut short stands still: after the settle time it was run, torn (eight students left the current
    roster, their tests deleted), though the district writes a marker after every drop. A district that writes none
    is still read once its drop has settled."""
    done = Drop("belleville", "2026-11-01", "folder", (RemoteFile("SR.csv", 100, T0),), True)
    cut = drop(name="2026-11-08")
    _, cursor = plan_runs([done, cut], {}, now=T0 + 1, sent={done.key: done.version})
    ready, _ = plan_runs([done, cut], cursor, now=T0 + 10_000, sent={done.key: done.version})
    assert ready == []
    _, cursor = plan_runs([cut], {}, now=T0 + 1, sent={})  # a district that writes no marker
    assert plan_runs([cut], cursor, now=T0 + 10_000, sent={})[0] == [cut]


def test_a_district_that_wrote_markers_is_waited_for_once_its_marked_drops_are_gone_from_the_server():
    """The district cleaned its loaded drops off the server; its next upload, cut short and so unmarked, was taken
    for a district that writes no marker: run once settled, torn, and said OK."""
    done = Drop("belleville", "2026-11-01", "folder", (RemoteFile("SR.csv", 100, T0),), True)
    _, cursor = plan_runs([done], {}, now=T0, sent={})
    cut = drop(name="2026-11-20")
    _, cursor = plan_runs([cut], cursor, now=T0 + 1, sent={done.key: done.version})  # 2026-11-01 removed
    assert plan_runs([cut], cursor, now=T0 + 10_000, sent={done.key: done.version})[0] == []
    marked = Drop("belleville", "2026-11-20", "folder", cut.files, True)  # the marker comes: it runs
    assert plan_runs([marked], cursor, now=T0 + 10_001, sent={done.key: done.version})[0] == [marked]


def test_two_files_whose_names_differ_only_by_a_trailing_space_refuse_the_drop(tmp_path):
    """`SR.csv` and `SR.csv ` were both received: SQL Server compares names ignoring trailing spaces, so marking the
    stray one `not_expected` marked the real one too, and its loaded results stayed audited as not expected."""
    from belleville_mtss.lib.receive.drops import LocalDropSource
    drop = tmp_path / "belleville" / "2026-11-01"
    drop.mkdir(parents=True)
    for name in ("SR.csv", "SR.csv "):
        (drop / name).write_text("StudentIdentifier,ScaledScore\n1,500\n")
    (listed,) = LocalDropSource(tmp_path).list_drops("belleville", "belleville")
    assert listed.problem[0] == "duplicate_file_name"  # refused when received, as two names differing by case are
    assert listed.problem[1].endswith("differ only by case or by spaces at their end")
