"""Each setting declared once (lib/config.SETTINGS): the README's configuration table is the declarations' table,
every MTSS_ variable the package names is declared, and every declaration is read by load_settings."""
import re
from pathlib import Path

import pytest

import belleville_mtss
from belleville_mtss.lib import config

PACKAGE = Path(belleville_mtss.__file__).parent
README = PACKAGE.parent / "README.md"


def test_readme_configuration_table_is_the_declarations():
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- settings: generated from belleville_mtss/lib/config.py \(SETTINGS\) -->\n(.*?)\n"
                      r"<!-- /settings -->", text, re.S)
    assert found, "README.md lacks the generated configuration table"
    assert found.group(1) == config.markdown_table(), (
        'paste the output of: python -c "from belleville_mtss.lib.config import markdown_table as t; print(t())"')


def test_every_variable_the_package_names_is_declared():
    named = {m for path in PACKAGE.rglob("*.py") for m in re.findall(r"\bMTSS_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())}
    assert named - set(config.SETTINGS) == set()


def test_every_declaration_is_read(monkeypatch):
    read = []
    original = config.setting_value
    monkeypatch.setattr(config, "setting_value", lambda env, name: read.append(name) or original(env, name))
    config.load_settings({})
    assert set(config.SETTINGS) - set(read) == set()


def test_an_undeclared_name_is_refused():
    with pytest.raises(KeyError, match="MTSS_NO_SUCH is not a declared setting"):
        config.setting_value({}, "MTSS_NO_SUCH")
