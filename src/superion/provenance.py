"""Provenance: library versions, input file identity and timestamps stored with every output.

One owner: run metadata (MD), structure reports (prepare/relax) and the potential record
(:meth:`superion.potential.LoadedPotential.record`) all call these functions.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path

# Libraries whose versions change results (the potential's parity depends on the first three).
TRACKED_DISTRIBUTIONS = ("matgl", "torch-geometric", "torch", "ase", "numpy", "h5py")


def software_versions(distributions: tuple[str, ...] = TRACKED_DISTRIBUTIONS, *, python: bool = True) -> dict[str, str]:
    """{name: version} of superion, Python and ``distributions`` ("missing" when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    from superion import __version__

    out = {"superion": __version__, "python": sys.version.split()[0]} if python else {}
    for dist in distributions:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "missing"
    return out


def file_record(path: str | os.PathLike) -> dict:
    """{"path": absolute path, "sha256": content digest} of an input file."""
    from superion.atomic import file_sha256

    p = Path(path)
    return {"path": str(p.resolve()), "sha256": file_sha256(p)}


def now_utc() -> str:
    """Current UTC time as ISO 8601 with seconds (``2026-12-01T12:00:00Z``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
