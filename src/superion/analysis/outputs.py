"""Result files of the analysis commands: a JSON summary with its curves as ``.npz`` beside it.

Both are written atomically, the curves first, so a JSON on disk always has its curves.
"""

from __future__ import annotations

import os
from pathlib import Path


def curves_path(json_path: str | os.PathLike) -> Path:
    """The ``.npz`` of curves that belongs to the result JSON ``json_path`` (same name, .npz)."""
    return Path(json_path).with_suffix(".npz")


def write_result(json_path: str | os.PathLike, summary, curves: dict) -> None:
    """Write ``curves`` (name → array) to :func:`curves_path` and then ``summary`` as JSON."""
    import numpy as np

    from superion.atomic import atomic_path, write_json

    with atomic_path(curves_path(json_path)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **curves)
    write_json(json_path, summary)
