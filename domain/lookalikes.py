"""What lets one name pass for another: compatibility forms, mixed scripts, mixed
digits, invisible characters. domain/model.py's username rule is built from these.

- `lookalike_key`: Unicode's NFKC_Casefold idea (normalise, case-fold, normalise
  again: folding can undo a composition). Fullwidth "ａｌｉｃｅ", mathematical bold
  "𝐚𝐥𝐢𝐜𝐞" and "ALICE" all give "alice". (NFKC_Casefold proper also drops default
  ignorable characters; the username rule refuses those instead, so a name never
  holds an invisible difference.)
- `mixed_scripts`: Unicode's "Highly Restrictive" level (UTS #39, section 5.2).
  A name is written in one script - characters whose Script_Extensions is Common
  or Inherited (digits, '_', '.', '-') belong to every script and mix with any -
  or in one of the three writing systems that mix scripts by nature, each also with
  Latin: Japanese (Han + Hiragana + Katakana), Chinese (Han + Bopomofo), Korean
  (Han + Hangul). So "аlice" (Cyrillic а) and "alphaα" are refused, "山田たろう",
  "tanaka田中" and "김kim" are not. What it does not catch: a name wholly in another
  script that looks like a Latin one ("асе", all Cyrillic, beside "ace").
- `mixed_digits`: decimal digits from more than one numbering system ("1" and
  Arabic-Indic "١" look alike; UTS #39, section 5.3).
- `invisible`: default ignorable code points that Python's \\w takes for letters
  (the Hangul fillers): "alice" followed by U+3164 would be a second "alice".

Script properties come from the `regex` package (the standard library has none), so
they follow its Unicode data, not a table of ours."""
from __future__ import annotations

import functools
import unicodedata

import regex

# Characters of every script: Script_Extensions is Common or Inherited (these two
# never come with another script). "ー" (Common, but Script_Extensions Hiragana and
# Katakana) is not one of them, as UTS #39 says.
_ANY_SCRIPT = regex.compile(r"[\p{Script_Extensions=Common}\p{Script_Extensions=Inherited}]")
_INVISIBLE = regex.compile(r"\p{Default_Ignorable_Code_Point}")

LATIN = "Latin"
# UTS #39's augmented script sets: a Han character is written in Japanese, Chinese and
# Korean alike, a Hiragana one only in Japanese, and so on.
_WRITING_SYSTEMS = {
    "Han": ("Japanese", "Chinese", "Korean"),
    "Hiragana": ("Japanese",),
    "Katakana": ("Japanese",),
    "Bopomofo": ("Chinese",),
    "Hangul": ("Korean",),
}
_MIXED_BY_NATURE = frozenset({"Japanese", "Chinese", "Korean"})


def lookalike_key(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def mixed_scripts(text: str) -> list[str]:
    """The scripts of `text`, in the order they appear, when they mix as a name may
    not ("Cyrillic", "Latin"; a character of several: "Arabic/Thaana/Yezidi");
    [] when they do not."""
    letters = [scripts for scripts in map(scripts_of, text) if scripts is not None]
    if not letters or _written_in(letters):
        return []
    non_latin = [scripts for scripts in letters if LATIN not in scripts]
    if non_latin and _written_in(non_latin) & _MIXED_BY_NATURE:
        return []
    return list(dict.fromkeys("/".join(sorted(scripts)) or "Unknown" for scripts in letters))


def mixed_digits(text: str) -> bool:
    """Whether `text` has decimal digits of more than one numbering system. Every
    system's digits are ten consecutive code points, so each digit names its zero."""
    zeros = {ord(c) - unicodedata.decimal(c) for c in text if unicodedata.decimal(c, None) is not None}
    return len(zeros) > 1


def invisible(text: str) -> list[str]:
    found: list[str] = _INVISIBLE.findall(text)
    return found


@functools.lru_cache(maxsize=4096)
def scripts_of(char: str) -> frozenset[str] | None:
    """The scripts of one character (its Script_Extensions), None for every script."""
    if _ANY_SCRIPT.match(char):
        return None
    return frozenset(name for name, pattern in _script_patterns() if pattern.match(char))


def _written_in(letters: list[frozenset[str]]) -> frozenset[str]:
    """UTS #39's resolved script set: the scripts and writing systems that every one
    of the (one or more) letters is written in; empty when there is none."""
    common: frozenset[str] | None = None
    for scripts in letters:
        augmented = scripts.union(*(_WRITING_SYSTEMS.get(script, ()) for script in scripts))
        common = augmented if common is None else common & augmented
    return common if common is not None else frozenset()


@functools.cache
def _script_patterns() -> tuple[tuple[str, regex.Pattern], ...]:
    """Every script the regex package knows, each with the pattern of the characters
    whose Script_Extensions include it.

    regex lists the values \\p{...} accepts nowhere public: this reads the table its
    pattern parser looks names up in (regex._regex_core.PROPERTIES), so the list is
    always the one of the pinned version's Unicode data. tests/unit/test_lookalikes.py
    fails if an upgrade moves that table."""
    from regex import _regex_core

    _, aliases = _regex_core.PROPERTIES["SCRIPTEXTENSIONS"]
    names: dict[int, str] = {}
    for alias, value in aliases.items():  # the full name first, then the ISO 15924 code
        if value not in names or len(names[value]) == 4 != len(alias):
            names[value] = alias  # "HAN", not "HANI"; "THAI", which is both
    every_script = {"UNKNOWN", "COMMON", "INHERITED", "KATAKANAORHIRAGANA"}  # none is one script
    return tuple(
        (name.capitalize(), regex.compile(rf"\p{{Script_Extensions={name}}}"))  # "CYRILLIC" -> "Cyrillic"
        for name in sorted(names.values())
        if name not in every_script
    )
