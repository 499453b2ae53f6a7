"""Lattice parameters of a cell: parsing recipe cells and describing cells in reports.

Lengths Å, angles degrees, volumes Å³. :func:`lattice_parameters` is the full-precision
description (relax reports); :func:`lattice_report` is the same rounded to 5 decimals, with the
% deviation from a reference a, b, c (build records, reference energies).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from superion.errors import SuperionError


def lattice_from(cell: Any) -> np.ndarray:
    """3x3 lattice (rows = vectors, Å) from a matrix, [a, b, c] or [a, b, c, α, β, γ] (degrees)."""
    from ase.geometry import cellpar_to_cell

    arr = np.asarray(cell, float)
    if arr.shape == (3, 3):
        return arr
    if arr.shape == (3,):
        return np.diag(arr)
    if arr.shape == (6,):
        return cellpar_to_cell(arr)
    raise SuperionError(f"cell must be a 3x3 matrix, [a,b,c] or [a,b,c,alpha,beta,gamma]; got shape {arr.shape}")


def lattice_parameters(atoms) -> dict:
    """a, b, c (Å), alpha, beta, gamma (deg), volume (Å^3) and the matrix (rows = vectors, rounded to 1e-8 Å)."""
    a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
    return {
        "a_A": float(a), "b_A": float(b), "c_A": float(c),
        "alpha_deg": float(alpha), "beta_deg": float(beta), "gamma_deg": float(gamma),
        "volume_A3": float(atoms.get_volume()),
        "matrix_A": np.asarray(atoms.cell[:], dtype=float).round(8).tolist(),
    }


def lattice_report(atoms, reference: Sequence[float] | None = None) -> dict:
    """Cell parameters (Å, degrees) and volume (Å³) rounded to 5 decimals, and the % deviation
    (2 decimals) of a, b, c from ``reference`` when given."""
    out: dict[str, Any] = {k: round(v, 5) for k, v in lattice_parameters(atoms).items() if k != "matrix_A"}
    if reference is not None:
        ref = np.asarray(reference, float)[:3]
        par = atoms.cell.cellpar()
        out["reference_abc_A"] = ref.tolist()
        out["deviation_pct"] = (100 * (par[:3] - ref) / ref).round(2).tolist()
    return out
