"""A OneRoster export as the district's roster, at the level of lib/: which roster a registry entry has, which files
of a drop the export is read from, and a drop whose roster would be a guess."""
from dataclasses import dataclass

import pytest
import yaml

from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR, District, RegistryError, load_district
from belleville_mtss.lib.read.ingest import drop_files
from belleville_mtss.lib.receive.drops import DropRefused
from belleville_mtss.lib.sources import BY_NAME


@dataclass(frozen=True)
class Named:
    name: str


def entry(**changes) -> dict:
    raw = yaml.safe_load((PACKAGED_DISTRICTS_DIR / "belleville.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def oneroster_entry(**changes) -> dict:
    raw = entry(powerschool=None, **changes)
    raw["sources"]["oneroster"] = {"names": ["Belleville Public Schools"], "number": "userIds:SIS"}
    return raw


def test_the_roster_is_the_registrys_powerschool_by_default_oneroster_where_listed():
    belleville = District.model_validate(entry())
    assert belleville.roster_source.name == "powerschool" and "oneroster_export" not in belleville.file_patterns
    listed = District.model_validate(oneroster_entry())
    assert listed.roster_source.name == "oneroster" and listed.powerschool is None
    assert listed.file_patterns == {"oneroster_export": "manifest.csv", "star_reading": "SR.csv",
                                    "star_math": "SM.csv", "star_early_literacy": "SEL.csv"}  # no students*.csv
    assert listed.assessments == {"star": listed.sources["star"]}  # the gates' sources: never the roster


@pytest.mark.parametrize(("raw", "said"), [
    (lambda: {**oneroster_entry(), "powerschool": entry()["powerschool"]},
     "both a powerschool section and sources.oneroster: say which is the roster"),
    (lambda: entry(roster="oneroster"), "roster: oneroster needs its section, sources.oneroster"),
    (lambda: entry(powerschool=None), "powerschool: required where the roster is a PowerSchool export"),
    (lambda: entry(student_link={"classlink": "sourced_id"}), "sourced_id needs a OneRoster roster"),
    (lambda: {**oneroster_entry(), "sources": {"oneroster": {"number": "studentNumber"}}},
     "'studentNumber' is not one of identifier, username, sourcedId, userMasterIdentifier"),
])
def test_an_entry_whose_roster_is_unclear_is_refused_saying_why(tmp_path, raw, said):
    path = tmp_path / "belleville.yaml"
    path.write_text(yaml.safe_dump(raw()))
    with pytest.raises(RegistryError, match="belleville.yaml: ") as refused:
        load_district(path)
    assert said in str(refused.value)


def test_the_export_is_read_with_the_files_beside_its_manifest_under_its_prefix():
    raw = oneroster_entry()
    raw["sources"]["oneroster"]["files"] = {"oneroster_export": "*manifest.csv"}  # the district's own pattern
    district = District.model_validate(raw)
    files = tuple(Named(n) for n in ("SR.csv", "x_manifest.csv", "x_USERS.csv", "x_orgs.csv", "y_users.csv",
                                     "classes.csv", "x_classes.csv"))
    found = drop_files(district, files)
    assert [f.name for f in found["oneroster_export"]] == ["x_manifest.csv", "x_classes.csv", "x_orgs.csv",
                                                          "x_USERS.csv"]  # in the kind's order of companions
    assert [f.name for f in found["star_reading"]] == ["SR.csv"] and found["star_math"] == ()
    kind = BY_NAME["oneroster"].files[0]
    assert kind.prefix("X_Manifest.csv") == "x_" and BY_NAME["star"].files[0].prefix("x_SR.csv") == ""


@pytest.mark.parametrize("roster", ["oneroster", "powerschool"])
def test_a_drop_holding_both_rosters_is_refused_unless_the_registry_names_one(roster):
    files = tuple(Named(n) for n in ("manifest.csv", "users.csv", "students.csv", "SR.csv"))
    district = District.model_validate(oneroster_entry() if roster == "oneroster" else entry())
    with pytest.raises(DropRefused) as refused:
        drop_files(district, files)
    assert refused.value.reason == "ambiguous_roster"
    assert "does not say which is its roster: set `roster: " in refused.value.message
    named = District.model_validate(oneroster_entry(roster="oneroster") if roster == "oneroster"
                                    else entry(roster="powerschool"))
    found = drop_files(named, files)
    mine, other = ("oneroster_export", "powerschool_students")[::1 if roster == "oneroster" else -1]
    assert found[mine] and other not in found  # the other export is no file of the district's: not expected


@pytest.mark.parametrize("on", ["email", "sourced_id"])
def test_lineage_traces_the_classlink_link_to_the_column_the_registry_links_by(on):
    from belleville_mtss.lib.columns import lineage_text

    district = District.model_validate(oneroster_entry(student_link={"classlink": on}))
    text = lineage_text(district, "dm.StudentRoster.ClassLinkUserId")
    ours, theirs = {"email": ('"users.csv email"', '"Email"'), "sourced_id": ('"users.csv sourcedId"', '"SourcedId"')}[on]
    assert f"oneroster_export: manifest.csv, column {ours}" in text
    assert f"classlink_users: dbo.ClassLinkUsers, column {theirs}" in text
    assert ("email" in text.lower()) == (on == "email")  # a sourcedId link never traced to an address
