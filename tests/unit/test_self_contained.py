"""The repository needs nothing outside it: no tracked file refers to a folder beside
the repository or to a path of one machine. A team adopting Courier gets a clone and
nothing else, so a link, a default or a command that reaches outside it is broken for
them (issue 17).

What counts: the folder `shared` beside the repository (`..` then `/shared`), and
absolute paths of one machine's checkout or home (under /work, /root or /home), and the
contract document once kept beside it (docs/api.md is the reference now). Each
pattern and example below is written so that it does not match its own text, so this
file is checked too."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

OUTSIDE = re.compile(
    r"\.\./shared\b"  # the folder beside the repository
    r"|(?<![\w.~-])/wor[k]/"  # the checkouts of one machine
    r"|(?<![\w.~-])/roo[t]/"  # a home folder of one machine
    r"|(?<![\w.~-])/hom[e]/[\w.-]+"
    # the contract document kept beside the repository, which docs/api.md replaced
    r"|\bSPE[C](?:\.md\b|\s+section\b|\))"
)


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [name for name in listed.decode().split("\0") if name]


def references_outside(text: str) -> list[tuple[int, str]]:
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]


def test_the_patterns_find_what_they_are_for():
    assert references_outside("see .." + "/shared/SPE" + "C.md")
    assert references_outside("BENCH_SRC=$REPO/.." + "/shared/bench")
    assert references_outside("node " + "/wor" + "k/main/scripts/bench/hold_sockets.js")
    assert references_outside("  1230 KiB  " + "/roo" + "t/.pyenv/versions/3.11.7/lib/python3.11/asyncio/tasks.py")
    assert references_outside("cd " + "/hom" + "e/alice/courier")
    assert references_outside("(SPE" + "C section 6)") and references_outside("room for more (SPE" + "C).")
    assert not references_outside("docs/api.md, ./scripts/bench/make-bench.sh, /api/v1/users/me")
    assert not references_outside("useradd --system --home /app courier; ~/.cache/im-bench")


def test_no_tracked_file_refers_to_a_folder_outside_the_repository():
    found = []
    for name in tracked_files():
        path = REPO / name
        if not path.is_file():
            continue  # deleted in the work tree, not yet in the index
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (images)
        for number, line in references_outside(data.decode("utf-8", "replace")):
            found.append(f"{name}:{number}: {line[:160]}")
    assert found == [], "files that refer to places outside the repository:\n" + "\n".join(found)
