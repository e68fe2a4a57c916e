"""Files and directories only Courier's own user may open: the SQLite database
(password hashes, every message), its WAL and shared-memory files, and the secret
that signs every token.

Modes are set explicitly after creating: the mode given to mkdir() and open() goes
through the process umask, which may be anything (0 in some containers and service
managers), so it alone cannot promise 0700 and 0600. What already exists is left
as it is: a directory the operator made, or shares, is theirs to decide."""
from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dir(path: Path) -> None:
    """Create `path` with mode 0700, and its missing parents as `mkdir -p` would."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        return  # another process made it meanwhile, and sets its mode itself
    os.chmod(path, PRIVATE_DIR)


def create_private_file(path: Path) -> int | None:
    """Create `path` empty with mode 0600 and return a descriptor open for writing;
    None when it exists already (O_EXCL: of two processes, one creates it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return None
    os.fchmod(fd, PRIVATE_FILE)
    return fd
