"""Output paths checked before any work is done: the file can be written where it is asked for.

Commands call :func:`check_writable` on their outputs before reading inputs or loading a model,
so a typo in ``--out`` costs a second, not a model load and a run, and never ends in a library
traceback. (Root may write anywhere: the permission test then passes, the folder test still holds.)
"""

from __future__ import annotations

import os
from pathlib import Path

from superion.errors import SuperionError


def check_writable(path: str | os.PathLike) -> Path:
    """``path`` as :class:`Path`, or SuperionError if it is a folder, if the folder it goes to
    cannot be created (an ancestor is a file) or if that folder is not writable."""
    p = Path(path)
    if p.is_dir():
        raise SuperionError(f"output {p} is a folder; give a file name")
    folder = p.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise SuperionError(f"cannot write {p}: {folder} is a file, not a folder; choose another output path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SuperionError(f"cannot write {p}: folder {folder} is not writable; choose another output path")
    return p
