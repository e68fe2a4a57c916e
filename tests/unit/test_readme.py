"""The README's settings table is what operators read: every setting Courier
reads must be in it, under its environment variable's name."""
from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from entrypoints.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _settings_table() -> str:
    text = README.read_text()
    section = text[text.index("## Settings"):]
    return section[: section.index("\n## ", 1)]


def test_every_setting_is_in_the_readme_table():
    documented = set(re.findall(r"\bCOURIER_[A-Z0-9_]+", _settings_table()))
    settings = {"COURIER_" + f.name.upper() for f in fields(Settings) if f.name != "extra"}
    assert settings - documented == set(), "add these to the README's settings table"
    assert documented - settings == set(), "the README lists settings Courier does not read"
