"""Rigid clusters placed in a cell: symmetry images, the anion frame, fractional-coordinate helpers.

Positions: fractional (``frac``) or Cartesian Å; lattices are (3, 3) with rows = vectors.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from superion.errors import SuperionError
from superion.structures.symmetry import symmetry_operations
from superion.structures.templates import Template, template


@dataclass
class ClusterPlacement:
    """One cluster: template ``name``, fractional ``centre``, Cartesian ``rotation`` (3x3)."""

    name: str
    centre: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def to_dict(self) -> dict:
        return {"name": self.name, "centre": np.round(self.centre, 6).tolist(), "rotation": np.round(self.rotation, 8).tolist()}


@dataclass
class Frame:
    """Anion frame: clusters placed with one orientation choice per entry."""

    key: str
    symbols: list[str]
    positions: np.ndarray
    centres: list[tuple[str, np.ndarray]]
    placements: list[ClusterPlacement]


def wrap_frac(frac: np.ndarray) -> np.ndarray:
    out = np.mod(frac, 1.0)
    out[np.isclose(out, 1.0, atol=1e-9)] = 0.0
    return out


def same_frac(a: np.ndarray, b: np.ndarray, tol: float = 1e-4) -> bool:
    d = a - b
    d -= np.round(d)
    return bool(np.all(np.abs(d) < tol))


def expand_clusters(
    lattice: np.ndarray,
    placements: Sequence[ClusterPlacement],
    spacegroup: int | str | None = None,
    templates: dict[str, Template] | None = None,
    tol_A: float = 0.3,
) -> tuple[list[str], np.ndarray, list[tuple[str, np.ndarray]]]:
    """Place clusters and their symmetry images.

    Returns ``(symbols, cart_positions (n,3) Å, centres)`` where ``centres`` lists
    ``(cluster_name, frac_centre)`` for every cluster in the cell. Images whose centre
    coincides with an earlier one are dropped; if two images overlap *with different atom
    positions* (the orientation breaks the site symmetry) a :class:`SuperionError` is raised.
    """
    lattice = np.asarray(lattice, float)
    inv = np.linalg.inv(lattice)
    ops = symmetry_operations(spacegroup)
    symbols: list[str] = []
    frac_all: list[np.ndarray] = []
    centres: list[tuple[str, np.ndarray]] = []
    for p in placements:
        tmpl = (templates or {}).get(p.name) or template(p.name)
        centre = np.asarray(p.centre, float)
        cart = tmpl.placed(centre @ lattice, p.rotation)
        frac = cart @ inv
        for w, t in ops:
            c_new = wrap_frac(w @ centre + t)
            f_new = frac @ w.T + t
            # keep the cluster whole: shift all its atoms with the centre
            shift = c_new - (w @ centre + t)
            f_new = f_new + shift
            dup = [k for k, (_, c) in enumerate(centres) if same_frac(c, c_new)]
            if dup:
                k = dup[0]
                start = sum(len((templates or {}).get(n) or template(n)) for n, _ in centres[:k])
                other = np.vstack(frac_all)[start : start + len(tmpl)]
                if not _same_cluster(other, f_new, lattice, tol_A):
                    raise SuperionError(
                        f"{p.name} at {np.round(centre, 4).tolist()}: its orientation breaks the site symmetry "
                        "of the space group (images overlap); choose an orientation compatible with the site "
                        "or use spacegroup: null with explicit centres"
                    )
                continue
            centres.append((p.name, c_new))
            symbols.extend(tmpl.symbols)
            frac_all.append(f_new)
    frac_arr = np.vstack(frac_all) if frac_all else np.zeros((0, 3))
    return symbols, frac_arr @ lattice, centres


def _same_cluster(f1: np.ndarray, f2: np.ndarray, lattice: np.ndarray, tol_A: float) -> bool:
    """True if two fractional point sets coincide as sets (minimum image, within tol_A)."""
    d = f1[:, None, :] - f2[None, :, :]
    d -= np.round(d)
    dist = np.linalg.norm(d @ lattice, axis=-1)
    return bool(np.all(dist.min(axis=1) < tol_A) and np.all(dist.min(axis=0) < tol_A))


def make_atoms(lattice: np.ndarray, symbols: Sequence[str], positions: np.ndarray, ions: Iterable[tuple[str, np.ndarray]] = ()):
    """ASE Atoms from cluster atoms plus ``ions`` given as (symbol, fractional position)."""
    from ase import Atoms

    symbols = list(symbols)
    pos = [np.asarray(positions, float).reshape(-1, 3)]
    for sym, frac in ions:
        symbols.append(sym)
        pos.append(np.asarray(frac, float).reshape(1, 3) @ lattice)
    atoms = Atoms(symbols=symbols, positions=np.vstack(pos), cell=lattice, pbc=True)
    atoms.wrap()
    return atoms


def expand_sites(frac: Sequence[Sequence[float]], spacegroup: int | str | None) -> np.ndarray:
    """All symmetry-equivalent fractional positions (deduplicated) of the given sites."""
    out: list[np.ndarray] = []
    for f in np.atleast_2d(np.asarray(frac, float)):
        for w, t in symmetry_operations(spacegroup):
            g = wrap_frac(w @ f + t)
            if not any(same_frac(g, o) for o in out):
                out.append(g)
    return np.array(out).reshape(-1, 3)


def min_image_distances(lattice: np.ndarray, frac_a: np.ndarray, frac_b: np.ndarray) -> np.ndarray:
    """Minimum-image distance matrix (Å) between two fractional point sets (orthogonal-ish cells)."""
    d = np.asarray(frac_a, float)[:, None, :] - np.asarray(frac_b, float)[None, :, :]
    d -= np.round(d)
    # check the 27 neighbours for skewed cells
    best = np.full(d.shape[:2], np.inf)
    for s in itertools.product((-1, 0, 1), repeat=3):
        best = np.minimum(best, np.linalg.norm((d + s) @ lattice, axis=-1))
    return best
