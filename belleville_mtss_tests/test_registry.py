"""The registry refuses a malformed or incomplete entry with a message that names the field."""
from pathlib import Path

import pytest

from belleville_mtss.lib.config import PACKAGED_DISTRICTS_DIR
from belleville_mtss.lib.registry import RegistryError, load_district, load_registry

GOOD = (PACKAGED_DISTRICTS_DIR / "belleville.yaml").read_text()


def test_packaged_registry_holds_belleville():
    entry = load_registry(PACKAGED_DISTRICTS_DIR)["belleville"]
    assert (entry.nces_id, entry.account_info_id, entry.state, entry.county) == ("3401350", 107873, "NJ", "ESSEX")
    assert entry.source_names.renaissance == ["Belleville Public Schools"]
    assert entry.source_names.classlink == ["Belleville PD"]
    assert entry.powerschool.columns["student_number"] == ("STUDENTS.STUDENT_NUMBER",)
    # the mapping spec's STUDENTS.EMAIL first, the custom field as an alternative
    assert entry.powerschool.columns["email"] == ("STUDENTS.EMAIL", "U_STUDENTSUSERFIELDS.custom_student_email")
    assert entry.student_link.renaissance == "StudentIdentifier"
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
    (lambda t: t.replace("  renaissance: StudentIdentifier", "  renaissance: StudentName"), "student_link.renaissance"),
])
def test_malformed_entry_is_refused_naming_the_field(tmp_path: Path, edit, field):
    path = tmp_path / "belleville.yaml"
    path.write_text(edit(GOOD))
    with pytest.raises(RegistryError) as err:
        load_district(path)
    assert field in str(err.value) and "belleville.yaml" in str(err.value)


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
