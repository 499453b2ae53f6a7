"""Potential-free contact checks of candidates: soft-sphere overlap score and cation pre-optimization (Å, Å²)."""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np


def soft_sphere_score(atoms, radii_A: dict[str, float] | None = None, exclude_same_cluster: bool = True) -> float:
    """Overlap penalty Σ (r0 − r)² over non-bonded pairs closer than r0 = R_i + R_j (Å²).

    A cheap, potential-free ranking of candidates: 0 means no contacts shorter than the
    sum of the soft radii (defaults: H 0.9, Na 1.2, Li 0.9, B 1.0, S 1.5, Cl 1.5, P 1.1 Å).
    """
    from ase.neighborlist import neighbor_list

    from superion.structures.clusters import label_clusters

    radii = {"H": 0.9, "Na": 1.2, "Li": 0.9, "B": 1.0, "C": 1.0, "S": 1.5, "Cl": 1.5, "P": 1.1, "K": 1.5}
    radii.update(radii_A or {})
    syms = atoms.get_chemical_symbols()
    r = np.array([radii.get(s, 1.2) for s in syms])
    i, j, d = neighbor_list("ijd", atoms, float(2 * r.max()))
    keep = i < j
    i, j, d = i[keep], j[keep], d[keep]
    if exclude_same_cluster:
        cid = label_clusters(atoms).cluster_id
        same = (cid[i] == cid[j]) & (cid[i] >= 0)
        i, j, d = i[~same], j[~same], d[~same]
    r0 = r[i] + r[j]
    over = np.clip(r0 - d, 0, None)
    return float(np.sum(over**2))


def relax_ions_soft(atoms, mobile: Sequence[int], r0_A: dict[tuple[str, str], float] | None = None,
                    n_steps: int = 150, max_step_A: float = 0.1) -> float:
    """Move only the ``mobile`` atoms (cations) down a soft repulsion Σ (r0 − r)² (in place).

    Cheap pre-optimization of cations put at void centroids, so that single points are not
    dominated by Na–H clashes. Default r0 (Å): Na–H 2.35, Na–B 2.9, Na–Na 3.2, Li–H 2.0,
    Li–B 2.5, Li–Li 2.5, Li–S 2.45, Li–Cl 2.45, Li–P 3.0. Returns the final penalty (Å²).
    Neighbours are found once (within r0 + 2 Å); a mobile atom moves less than that.
    """
    r0 = {("Na", "H"): 2.35, ("Na", "B"): 2.9, ("Na", "Na"): 3.2, ("Na", "C"): 2.9, ("Na", "S"): 2.8,
          ("Li", "H"): 2.0, ("Li", "B"): 2.5, ("Li", "Li"): 2.5, ("Li", "S"): 2.45, ("Li", "Cl"): 2.45,
          ("Li", "P"): 3.0, ("Li", "C"): 2.5}
    r0.update(r0_A or {})
    r0.update({(b, a): v for (a, b), v in list(r0.items())})
    mobile = np.asarray(list(mobile), int)
    if mobile.size == 0:
        return 0.0
    syms = np.array(atoms.get_chemical_symbols())
    cell = np.asarray(atoms.cell)
    frac = atoms.get_scaled_positions(wrap=False)
    cut = max(r0.values()) + 2.0
    d = frac[None, :, :] - frac[mobile][:, None, :]
    base = -np.round(d)
    ii, jj, offs = [], [], []
    for s in itertools.product((-1, 0, 1), repeat=3):
        sh = base + np.array(s, float)
        dist0 = np.linalg.norm((d + sh) @ cell, axis=-1)
        a, b = np.nonzero((dist0 < cut) & (dist0 > 1e-8))
        ii.append(mobile[a])
        jj.append(b)
        offs.append(sh[a, b] @ cell)
    i, j, offset = np.concatenate(ii), np.concatenate(jj), np.vstack(offs)
    rr = np.array([r0.get((x, y), 0.0) for x, y in zip(syms[i], syms[j])])
    keep = rr > 0
    i, j, offset, rr = i[keep], j[keep], offset[keep], rr[keep]
    pos = atoms.positions.copy()
    penalty = 0.0
    for _ in range(n_steps):
        vec = pos[j] + offset - pos[i]
        dist = np.linalg.norm(vec, axis=1)
        over = np.clip(rr - dist, 0, None)
        penalty = float(np.sum(over**2))  # mobile–mobile pairs counted twice, harmless for ranking
        if penalty < 1e-6:
            break
        # the force on atom i pushes it away from each overlapping neighbour j
        g = -2.0 * over[:, None] * vec / np.maximum(dist, 1e-8)[:, None]
        force = np.zeros_like(pos)
        np.add.at(force, i, g)
        step = 0.25 * force[mobile]
        norm = np.linalg.norm(step, axis=1, keepdims=True)
        step *= np.minimum(1.0, max_step_A / np.maximum(norm, 1e-12))
        pos[mobile] += step
    atoms.positions = pos
    return penalty
