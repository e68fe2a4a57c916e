"""domain/lookalikes.py: the Unicode rules behind look-alike usernames, and its use of
the regex package (which scripts there are comes from a table regex keeps internally:
these tests fail if an upgrade of regex moves it)."""
from __future__ import annotations

import unicodedata

from domain import lookalikes


def test_every_script_of_the_regex_package_is_known():
    names = [name for name, _ in lookalikes._script_patterns()]
    assert len(names) > 150
    for script in ("Latin", "Greek", "Cyrillic", "Han", "Hiragana", "Katakana", "Hangul", "Bopomofo", "Arabic",
                   "Thai", "Cherokee", "Canadianaboriginal"):
        assert script in names
    assert not {"Common", "Inherited", "Unknown"} & set(names)


def test_the_scripts_of_a_character_are_its_script_extensions():
    assert lookalikes.scripts_of("a") == {"Latin"}
    assert lookalikes.scripts_of("\u0430") == {"Cyrillic"}
    assert lookalikes.scripts_of("ー") == {"Hiragana", "Katakana"}  # Script Common, extensions two
    assert lookalikes.scripts_of("\u0661") == {"Arabic", "Thaana", "Yezidi"}
    for every_script in ("1", "_", ".", "-", "\U0001d41a"):  # the mathematical letters are Common
        assert lookalikes.scripts_of(every_script) is None


def test_mixed_scripts_lists_them_in_order():
    assert lookalikes.mixed_scripts("\u0430lice") == ["Cyrillic", "Latin"]
    assert lookalikes.mixed_scripts("ab\u0661") == ["Latin", "Arabic/Thaana/Yezidi"]
    assert lookalikes.mixed_scripts("alice") == []
    assert lookalikes.mixed_scripts("_1.-") == []  # no letters: no script to mix


def test_the_lookalike_key_is_nfkc_casefold():
    assert lookalikes.lookalike_key("ＡＬＩＣＥ") == "alice"
    # Case-folding can leave a string that is no longer NFKC ("ῷ" folds to "ῶι" with the
    # accent apart): the second normalisation makes the key NFKC again.
    folded = unicodedata.normalize("NFKC", "ῷ").casefold()
    assert not unicodedata.is_normalized("NFKC", folded)
    assert unicodedata.is_normalized("NFKC", lookalikes.lookalike_key("ῷ"))
