"""The registry refuses a malformed or incomplete entry with a message that names the field."""
import os
import re
from pathlib import Path

import pytest

from belleville_mtss.lib.district.registry import PACKAGED_DISTRICTS_DIR
from belleville_mtss.lib.district.registry import (
    PowerSchoolFormat, Registry, RegistryError, load_district, load_registry, registry_folders,
)

from .helpers import two_district_registry

GOOD = (PACKAGED_DISTRICTS_DIR / "belleville.yaml").read_text()


def test_packaged_registry_holds_belleville():
    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    assert (entry.nces_id, entry.account_info_id, entry.state, entry.county) == ("3401350", 107873, "NJ", "ESSEX")
    assert entry.sources["star"].names == ["Belleville Public Schools"]
    assert entry.source_names.classlink == ["Belleville PD"]
    assert entry.powerschool.columns["student_number"] == ("STUDENTS.STUDENT_NUMBER",)
    # the mapping spec's STUDENTS.EMAIL first, the custom field as an alternative
    assert entry.powerschool.columns["email"] == ("STUDENTS.EMAIL", "U_STUDENTSUSERFIELDS.custom_student_email")
    assert entry.sources["star"].link == "StudentIdentifier"
    assert str(entry.verification.ferpa_review_on) == "2026-11-20"


@pytest.mark.parametrize(("edit", "field"), [
    (lambda t: t.replace("account_info_id: 107873\n", ""), "account_info_id"),
    (lambda t: t.replace('nces_id: "3401350"', 'nces_id: "34013"'), "nces_id"),
    (lambda t: t.replace("state: NJ", "state: New Jersey"), "state"),
    (lambda t: t.replace("    email: [STUDENTS.EMAIL, U_STUDENTSUSERFIELDS.custom_student_email]\n", ""),
     "powerschool.columns"),
    (lambda t: t.replace("  ferpa_review_on: 2026-11-20", "  ferpa_review_on: someday"), "verification.ferpa_review_on"),
    (lambda t: t.replace("  verified_by:", "  verified_by_whom:"), "verification.verified_by"),
    (lambda t: t.replace("  classlink: [\"Belleville PD\"]", "  classlink: []"), "source_names.classlink"),
    (lambda t: t + "\nfavourite_colour: blue\n", "favourite_colour"),
    (lambda t: t.replace("    link: StudentIdentifier", "    link: StudentName"), "sources.star.link"),
])
def test_malformed_entry_is_refused_naming_the_field(tmp_path: Path, edit, field):
    path = tmp_path / "belleville.yaml"
    path.write_text(edit(GOOD))
    with pytest.raises(RegistryError) as err:
        load_district(path)
    assert field in str(err.value) and "belleville.yaml" in str(err.value)


def test_an_entry_of_the_earlier_shape_is_refused_naming_the_field_as_written(tmp_path: Path):
    old = (Path(__file__).parent / "fixtures" / "districts" / "riverton.yaml").read_text()
    path = tmp_path / "riverton.yaml"
    path.write_text(old.replace("  renaissance: StudentIdentifier", "  renaissance: StudentName"))
    with pytest.raises(RegistryError, match="riverton.yaml: student_link.renaissance: Input should be"):
        load_district(path)


def test_invalid_yaml_is_set_aside_and_an_empty_registry_is_refused(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text("district: [unclosed\n")
    registry = load_registry(tmp_path)
    assert dict(registry) == {} and registry.problems["bad"].message.startswith("bad.yaml: not valid YAML")
    with pytest.raises(RegistryError, match="bad.yaml: not valid YAML"):
        registry.entry("bad")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RegistryError, match="no district entries"):
        load_registry(empty)


def test_every_wrong_field_is_named_in_one_message(tmp_path: Path):
    path = tmp_path / "belleville.yaml"
    path.write_text(GOOD.replace('nces_id: "3401350"', 'nces_id: "34013"').replace("state: NJ", "state: nj"))
    with pytest.raises(RegistryError) as err:
        load_district(path)
    assert str(err.value) == ("belleville.yaml: nces_id: String should match pattern '^\\d{7}$'; "
                              "state: String should match pattern '^[A-Z]{2}$'")


@pytest.mark.parametrize(("edit", "field", "says"), [
    (lambda t: t.replace("    dob: STUDENTS.DOB\n", "    birthday: STUDENTS.DOB\n"), "powerschool.columns",
     "unknown column(s) birthday"),
    (lambda t: t.replace("star_math: SM.csv,", "star_science: SC.csv,"), "sources.star.files",
     "unknown Star file(s) star_science"),
    (lambda t: t.replace("\nsources:\n", "\nsources:\n  acme: {names: [Acme]}\n"), "sources",
     "unknown source(s) acme"),
    (lambda t: t.replace("    dob: STUDENTS.DOB\n", "    dob: ' '\n"), "powerschool.columns", "no header given for dob"),
    (lambda t: t.replace('  delimiter: ","', '  delimiter: ";;"'), "powerschool.delimiter", "must be one character"),
    (lambda t: t.replace("  encoding: utf-8\n", "  encoding: utf-8\n  column_order: [STUDENTS.STUDENT_NUMBER]\n"),
     "powerschool", "column_order is only for exports without a header row"),
    (lambda t: t.replace("  encoding: utf-8\n", "  encoding: utf-8\n  has_header: false\n"), "powerschool",
     "needs column_order"),
])
def test_a_wrong_value_is_refused_saying_what_is_wrong(tmp_path: Path, edit, field, says):
    path = tmp_path / "belleville.yaml"
    path.write_text(edit(GOOD))
    with pytest.raises(RegistryError) as err:
        load_district(path)
    assert str(err.value).startswith(f"belleville.yaml: {field}") and says in str(err.value)


HEADERLESS = {"has_header": False, "columns": {"student_number": "STUDENT_NUMBER", "email": "EMAIL"}}


@pytest.mark.parametrize(("order", "says"), [
    (["STUDENT_NUMBER", "EMAIL", "student_number "], "column_order names a column twice"),
    (["STUDENT_NUMBER", "FIRST_NAME"], "column_order lacks the mapped column(s) EMAIL"),
])
def test_a_headerless_export_needs_each_mapped_column_once_in_column_order(order, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        PowerSchoolFormat.model_validate({**HEADERLESS, "column_order": order})
    # the same columns, each once and in any case, are accepted
    fmt = PowerSchoolFormat.model_validate({**HEADERLESS, "column_order": ["email", "Student_Number", "GRADE"]})
    assert fmt.column_order == ["email", "Student_Number", "GRADE"]


def test_a_file_that_is_not_a_mapping_is_refused_and_set_aside(tmp_path: Path):
    (tmp_path / "belleville.yaml").write_text(GOOD)
    (tmp_path / "listed.yaml").write_text("- district: listed\n- drop_folder: listed\n")
    with pytest.raises(RegistryError, match=r"^listed.yaml: expected a mapping of fields at the top level$"):
        load_district(tmp_path / "listed.yaml")
    registry = load_registry(tmp_path)
    # the broken file stops only its own district (named after the file): Belleville still loads
    assert list(registry) == ["belleville"] and list(registry.problems) == ["listed"]
    assert registry.problems["listed"].file == "listed.yaml"


def test_a_district_defined_twice_is_refused_naming_both_files(tmp_path: Path):
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    (first / "belleville.yaml").write_text(GOOD)
    (second / "belleville-copy.yaml").write_text(GOOD.replace("drop_folder: belleville", "drop_folder: elsewhere"))
    registry = load_registry([first, second])
    assert dict(registry) == {} and registry.folders == (first, second)
    problem = registry.problems["belleville"]
    assert problem.message == "belleville.yaml, belleville-copy.yaml: district 'belleville' is defined twice"
    # what the first readable file says, so that the district's drops can be found and refused
    assert (problem.file, problem.district, problem.drop_folder, problem.account_info_id) == (
        "belleville.yaml, belleville-copy.yaml", "belleville", "belleville", 107873)
    with pytest.raises(RegistryError, match="defined twice"):
        registry.entry("belleville")


def test_a_district_defined_twice_with_both_files_broken_is_still_defined_twice(tmp_path: Path):
    broken = GOOD.replace("account_info_id: 107873\n", "")
    (tmp_path / "a.yaml").write_text(broken)
    (tmp_path / "b.yaml").write_text(broken)
    problem = load_registry(tmp_path).problems["belleville"]
    assert problem.message == "a.yaml, b.yaml: district 'belleville' is defined twice"
    assert (problem.drop_folder, problem.account_info_id) == (None, None)


def test_a_broken_file_still_says_where_its_drops_arrive(tmp_path: Path):
    # Its drops are refused with the file's own message, not taken for an unknown district's.
    (tmp_path / "riverton.yaml").write_text("district: riverton\ndrop_folder: riv\naccount_info_id: 555001\n")
    (tmp_path / "junk.yaml").write_text("district: 12\ndrop_folder: [a]\naccount_info_id: '555002'\n")
    (tmp_path / "blank.yaml").write_text("district: '  '\n")
    problems = load_registry(tmp_path).problems
    assert (problems["riverton"].file, problems["riverton"].district, problems["riverton"].drop_folder,
            problems["riverton"].account_info_id) == ("riverton.yaml", "riverton", "riv", 555001)
    assert problems["riverton"].message.startswith("riverton.yaml: ")
    assert "display_name: Field required" in problems["riverton"].message
    # a key, folder or id that is not readable is not taken: the file's stem names it
    assert (problems["junk"].district, problems["junk"].drop_folder, problems["junk"].account_info_id) == (
        "junk", None, None)
    assert problems["blank"].district == "blank"


def test_an_absent_district_and_a_missing_folder_are_named(tmp_path: Path):
    registry = load_registry(PACKAGED_DISTRICTS_DIR)
    with pytest.raises(RegistryError, match=r"^district 'atlantis' is not in the registry \(belleville\)$"):
        registry.entry("atlantis")
    assert registry.entry("belleville") is registry["belleville"]
    with pytest.raises(RegistryError, match=r"^district 'atlantis' is not in the registry \(empty\)$"):
        Registry({}, {}, ()).entry("atlantis")
    with pytest.raises(RegistryError, match=r"is not in the registry \(belleville, riverton\)$"):
        load_registry(two_district_registry(tmp_path)).entry("atlantis")
    with pytest.raises(RegistryError, match="the registry folder does not exist"):
        load_registry([PACKAGED_DISTRICTS_DIR, tmp_path / "nowhere"])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(RegistryError) as err:
        load_registry([tmp_path / "a", tmp_path / "b"])
    assert str(err.value) == f"{tmp_path / 'a'}, {tmp_path / 'b'}: no district entries (*.yaml)"


def test_registry_folders_setting(tmp_path: Path):
    assert registry_folders(None) == (PACKAGED_DISTRICTS_DIR,)
    assert registry_folders(f" packaged {os.pathsep}{tmp_path} {os.pathsep} ") == (PACKAGED_DISTRICTS_DIR, tmp_path)
    assert registry_folders(str(tmp_path / "x" / "..")) == (tmp_path,)


def test_a_link_field_must_be_mapped_and_is_then_required_in_the_file(tmp_path: Path):
    path = tmp_path / "belleville.yaml"
    path.write_text(GOOD.replace("  powerschool: student_number", "  powerschool: dcid"))
    with pytest.raises(RegistryError) as err:
        load_district(path)
    # a rule across fields is the entry's, not one field's
    assert str(err.value) == ("belleville.yaml: (entry): Value error, student_link uses PowerSchool field(s) dcid: "
                              "map them in powerschool.columns")
    path.write_text(GOOD.replace("  powerschool: student_number", "  powerschool: dcid")
                    .replace("    dob: STUDENTS.DOB\n", "    dcid: STUDENTS.DCID\n"))
    assert load_district(path).required_fields == ("student_number", "dcid", "email")
    assert load_registry(PACKAGED_DISTRICTS_DIR)["belleville"].required_fields == ("student_number", "email")


# ---- drop folders: inside the drop root, one district each (issue 34) -------------------------------------------

@pytest.mark.parametrize("folder", ["../etc", "belleville/../../x", "/srv/drops", "a\\\\b", ".", "a//b"])
def test_a_drop_folder_outside_the_drop_root_is_refused(tmp_path, folder):
    from .helpers import edited_registry
    registry = load_registry(edited_registry(tmp_path, lambda e: e.update(drop_folder=folder)))
    assert "belleville" not in registry
    assert "drop_folder" in registry.problems["belleville"].message


def _with_riverton(tmp_path, line: str, instead: str):
    """The packaged registry and Riverton's fixture entry, one of its lines written `instead`: (folder, registry)."""
    import shutil
    from .helpers import FIXTURE_DISTRICTS, edited_registry
    folder = edited_registry(tmp_path, lambda e: None)
    shutil.copy(FIXTURE_DISTRICTS / "riverton.yaml", folder / "riverton.yaml")
    (folder / "riverton.yaml").write_text((folder / "riverton.yaml").read_text().replace(line, instead))
    return folder, load_registry(folder)


def test_two_districts_sharing_a_drop_folder_both_stop_and_districts_check_says_so(tmp_path, monkeypatch, capsys):
    from belleville_mtss.cli import main
    folder, registry = _with_riverton(tmp_path, "drop_folder: riverton", "drop_folder: Belleville")
    assert set(registry) == set() and set(registry.problems) == {"belleville", "riverton"}
    assert registry.problems["riverton"].message == ("riverton: drop_folder 'Belleville' is also belleville's: "
                                                     "each district needs a folder of its own")
    monkeypatch.setenv("MTSS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MTSS_DISTRICTS_DIR", str(folder))
    assert main(["districts", "check"]) == 1
    out = capsys.readouterr().out
    assert "belleville: PROBLEMS (belleville.yaml" in out and "riverton: PROBLEMS (riverton.yaml" in out
    assert "is also riverton's" in out and "is also belleville's" in out


def test_two_districts_under_one_account_info_id_both_stop(tmp_path):
    # Each load replaces its AccountInfoId's rows: the second district's drop would replace the first's students.
    _folder, registry = _with_riverton(tmp_path, "account_info_id: 555001", "account_info_id: 107873")
    assert set(registry) == set() and set(registry.problems) == {"belleville", "riverton"}
    assert registry.problems["belleville"].message == ("belleville: account_info_id '107873' is also riverton's: "
                                                       "each district needs an AccountInfoId of its own")
    assert registry.problems["riverton"].account_info_id == 107873
