"""Space groups: detection (spglib) for reports, and the operations of a named group.

One owner for every report that names a space group: ``superion relax`` (before/after),
``superion build`` (screened and chosen models) and ``structures/reference_energies.py``.
Tolerances: ``symprec`` in Å; angles within 5° (pymatgen's SpacegroupAnalyzer default,
which the relax reports used before this module existed).
"""

from __future__ import annotations

import warnings

import numpy as np

from superion.errors import SuperionError

SYMPREC_A = 0.1  # tolerant enough to see the symmetry of a relaxed (float32-noisy) structure
ANGLE_TOLERANCE_DEG = 5.0


def space_group(atoms, symprec: float = SYMPREC_A) -> dict:
    """``{"symbol", "number", "symprec_A"}`` found by spglib at ``symprec`` Å.

    Never raises: a failed detection gives ``symbol``/``number`` None and an ``error`` text
    (symmetry is a report, never a reason to fail a relaxation).
    """
    try:
        import spglib

        cell = (np.asarray(atoms.cell[:], dtype=float), atoms.get_scaled_positions(), atoms.get_atomic_numbers())
        with warnings.catch_warnings():  # spglib 2.x warns about its legacy error handling
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = spglib.get_symmetry_dataset(cell, symprec=symprec, angle_tolerance=ANGLE_TOLERANCE_DEG)
        if ds is None:
            raise ValueError("spglib found no symmetry dataset")
        return {"symbol": ds.international, "number": int(ds.number), "symprec_A": symprec}
    except Exception as exc:
        return {"symbol": None, "number": None, "symprec_A": symprec, "error": str(exc)[:200]}


def space_group_label(atoms, symprec: float = SYMPREC_A) -> str:
    """Space-group symbol and number as one string, e.g. ``"Cmc2_1 (36)"`` (``"P1 (1)"`` if none found)."""
    sg = space_group(atoms, symprec)
    if sg["number"] is None:
        return "P1 (1)"
    return f"{sg['symbol']} ({sg['number']})"


def symmetry_operations(spacegroup: int | str | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W, t) pairs of a space group (fractional, standard setting); identity only for ``None``."""
    if spacegroup is None:
        return [(np.eye(3), np.zeros(3))]
    from ase.spacegroup import Spacegroup

    try:
        sg = Spacegroup(spacegroup)
    except Exception as exc:  # ase raises several types for unknown symbols
        raise SuperionError(f"unknown space group {spacegroup!r}: {exc}") from None
    return [(np.asarray(w, float), np.asarray(t, float)) for w, t in sg.get_symop()]
