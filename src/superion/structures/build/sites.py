"""Cation sites of an anion frame and which of them to fill.

Sites are the tetrahedral voids of the anion-centre packing (or explicit recipe sites) with
their symmetry orbits; arrangements are chosen by whole-orbit combinations or by simulated
annealing on the point-charge Ewald energy (eV) with a minimum cation–cation distance (Å).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from superion.errors import SuperionError
from superion.structures.build.crystal import Frame, expand_sites, min_image_distances, same_frac, wrap_frac
from superion.structures.build.ewald import ewald_pair_matrix
from superion.structures.clusters import ION_CHARGE  # single-atom ions, incl. lone anions (Cl⁻, S²⁻ in argyrodites)
from superion.structures.symmetry import symmetry_operations


CATION_CHARGE: dict[str, int] = {s: q for s, q in ION_CHARGE.items() if q > 0}


@dataclass
class Void:
    """A tetrahedral void of the anion-centre packing.

    ``frac``: fractional centroid; ``corners``: anion indices (into the centres list);
    ``kinds``: sorted anion names at the corners; ``min_corner_A``: shortest centroid–corner
    distance in Å.
    """

    frac: np.ndarray
    corners: tuple[int, ...]
    kinds: tuple[str, ...]
    min_corner_A: float

    @property
    def label(self) -> str:
        from collections import Counter

        c = Counter(self.kinds)
        return ",".join(f"{k}:{c[k]}" for k in sorted(c))


def tetrahedral_voids(lattice: np.ndarray, centres: Sequence[tuple[str, np.ndarray]]) -> list[Void]:
    """Tetrahedral voids of a periodic point set (Delaunay of a 3x3x3 image block).

    Only tetrahedra whose centroid falls in the home cell [0,1)^3 are kept, so each void
    appears once. Fractional centroids are wrapped into [0, 1).
    """
    from scipy.spatial import Delaunay

    lattice = np.asarray(lattice, float)
    names = [n for n, _ in centres]
    frac = np.array([c for _, c in centres], float) % 1.0
    n = len(frac)
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)), float)
    pts_f = (frac[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    idx = np.tile(np.arange(n), len(shifts))
    tri = Delaunay(pts_f @ lattice)
    voids: list[Void] = []
    for simplex in tri.simplices:
        cf = pts_f[simplex].mean(axis=0)
        if np.any(cf < -1e-9) or np.any(cf >= 1 - 1e-9):
            continue
        cart = cf @ lattice
        corner_d = np.linalg.norm(pts_f[simplex] @ lattice - cart, axis=1)
        # skip slivers: a flat tetrahedron has a centroid too close to an edge to hold an ion
        vol = abs(np.linalg.det((pts_f[simplex[1:]] - pts_f[simplex[0]]) @ lattice)) / 6.0
        if vol < 1e-3:
            continue
        corners = tuple(int(idx[s]) for s in simplex)
        voids.append(Void(wrap_frac(cf), corners, tuple(sorted(names[c] for c in corners)), float(corner_d.min())))
    voids.sort(key=lambda v: tuple(np.round(v.frac, 6)))
    return voids


def symmetrize_voids(voids: Sequence[Void], centres: Sequence[tuple[str, np.ndarray]], lattice: np.ndarray,
                     spacegroup: int | str | None, tol: float = 1e-3) -> list[Void]:
    """Add the symmetry images of every void (a degenerate Delaunay picks one diagonal of a
    square face and breaks the symmetry; the union over images restores it). Images keep the
    corner kinds; conflicting (overlapping) voids are later excluded by the distance rule."""
    out = list(voids)
    names = [n for n, _ in centres]
    cfrac = np.array([c for _, c in centres])
    for v in voids:
        for w, t in symmetry_operations(spacegroup):
            g = wrap_frac(w @ v.frac + t)
            if any(same_frac(g, u.frac, tol) for u in out):
                continue
            d = min_image_distances(lattice, g[None], cfrac)[0]
            corners = tuple(int(k) for k in np.argsort(d)[:4])
            out.append(Void(g, corners, tuple(sorted(names[k] for k in corners)), float(d.min())))
    out.sort(key=lambda v: tuple(np.round(v.frac, 6)))
    return out


def void_orbits(voids: Sequence[Void], spacegroup: int | str | None, tol: float = 1e-3) -> list[list[int]]:
    """Group voids into symmetry orbits (lists of void indices)."""
    ops = symmetry_operations(spacegroup)
    orbit_of = [-1] * len(voids)
    orbits: list[list[int]] = []
    for i, v in enumerate(voids):
        if orbit_of[i] >= 0:
            continue
        members = []
        for w, t in ops:
            g = w @ v.frac + t
            for j, u in enumerate(voids):
                if orbit_of[j] < 0 and same_frac(g, u.frac, tol):
                    orbit_of[j] = len(orbits)
                    members.append(j)
        orbits.append(sorted(members))
    return orbits


def select_sites_mc(
    phi_sites: np.ndarray,
    field_sites: np.ndarray,
    n_select: int,
    dist_sites_A: np.ndarray,
    *,
    min_dist_A: float = 3.0,
    seed: int = 0,
    n_steps: int = 4000,
    t_start_eV: float = 0.5,
    t_end_eV: float = 0.005,
    start: Sequence[int] | None = None,
    charge: float = 1.0,
) -> tuple[list[int], float]:
    """Simulated annealing of ``n_select`` occupied sites minimizing the Ewald energy.

    ``phi_sites`` (m, m): pair potential between sites (eV/e²); ``field_sites`` (m,): potential
    of the fixed charges (anions) at each site (eV/e). Configurations with two occupied sites
    closer than ``min_dist_A`` are forbidden. Returns (sorted site indices, energy in eV of
    the variable part). Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    m = len(field_sites)
    if n_select > m:
        raise SuperionError(f"cannot place {n_select} ions on {m} sites")
    close = dist_sites_A < min_dist_A
    np.fill_diagonal(close, False)

    def energy(occ: np.ndarray) -> float:
        idx = np.flatnonzero(occ)
        return float(charge * field_sites[idx].sum() + 0.5 * charge**2 * phi_sites[np.ix_(idx, idx)].sum())

    occ = np.zeros(m, bool)
    if start is not None:
        occ[list(start)] = True
    else:
        # greedy start that respects the distance rule where possible
        for i in rng.permutation(m):
            if occ.sum() == n_select:
                break
            if not np.any(close[i] & occ):
                occ[i] = True
        while occ.sum() < n_select:
            occ[rng.choice(np.flatnonzero(~occ))] = True
    n_clash = lambda o: int(np.triu(close & o[:, None] & o[None, :]).sum())  # noqa: E731
    penalty = 10.0
    e = energy(occ) + penalty * n_clash(occ)
    best, best_e = occ.copy(), e if n_clash(occ) == 0 else math.inf
    for step in range(n_steps):
        t = t_start_eV * (t_end_eV / t_start_eV) ** (step / max(n_steps - 1, 1))
        i = rng.choice(np.flatnonzero(occ))
        j = rng.choice(np.flatnonzero(~occ)) if (~occ).any() else i
        if i == j:
            continue
        occ[i], occ[j] = False, True
        e_new = energy(occ) + penalty * n_clash(occ)
        if e_new <= e or rng.random() < math.exp(-(e_new - e) / t):
            e = e_new
            if n_clash(occ) == 0 and e < best_e:
                best, best_e = occ.copy(), e
        else:
            occ[i], occ[j] = True, False
    if not math.isfinite(best_e):
        raise SuperionError(f"no arrangement of {n_select} ions with all distances ≥ {min_dist_A} Å was found")
    return sorted(np.flatnonzero(best).tolist()), best_e


def orbit_combinations(orbits: Sequence[Sequence[int]], n_select: int, dist_A: np.ndarray, min_dist_A: float,
                       max_results: int = 2000) -> list[list[int]]:
    """All unions of whole site orbits with exactly ``n_select`` sites and all distances ≥ min_dist_A."""
    out: list[list[int]] = []
    sizes = [len(o) for o in orbits]

    def ok(sites: list[int]) -> bool:
        if len(sites) < 2:
            return True
        sub = dist_A[np.ix_(sites, sites)]
        return bool(np.all(sub[np.triu_indices(len(sites), 1)] >= min_dist_A))

    def rec(start: int, chosen: list[int], count: int) -> None:
        if len(out) >= max_results:
            return
        if count == n_select:
            out.append(sorted(chosen))
            return
        for k in range(start, len(orbits)):
            if count + sizes[k] <= n_select:
                new = chosen + list(orbits[k])
                if ok(new):
                    rec(k + 1, new, count + sizes[k])

    rec(0, [], 0)
    return out


def cation_sites(recipe: dict, lattice: np.ndarray, frame: Frame) -> tuple[np.ndarray, list[list[int]], list[str]]:
    """Candidate cation sites (fractional), their symmetry orbits and labels for one frame."""
    cat = recipe["cations"]
    sg = cat.get("site_spacegroup", recipe["spacegroup"])
    if cat.get("sites", "voids") == "voids":
        voids = tetrahedral_voids(lattice, frame.centres)
        voids = symmetrize_voids(voids, frame.centres, lattice, sg)
        allowed = cat.get("void_corners") or {}
        keep = []
        for v in voids:
            counts = {k: v.kinds.count(k) for k in set(v.kinds) | set(allowed)}
            if all(lo <= counts.get(k, 0) <= hi for k, (lo, hi) in allowed.items()):
                keep.append(v)
        frac = np.array([v.frac for v in keep]).reshape(-1, 3)
        labels = [v.label for v in keep]
        orbits = void_orbits(keep, sg)
        return frac, orbits, labels
    frac = expand_sites(cat["sites"], sg)
    orbits = [list(range(len(frac)))]
    return frac, orbits, ["site"] * len(frac)


def cation_configurations(recipe: dict, lattice: np.ndarray, frame: Frame) -> list[dict]:
    """Cation arrangements for one frame ranked by point-charge Ewald energy (centre charges).

    Orbit combinations (when requested) keep the space group; Monte Carlo runs with seeds
    ``seed..seed+mc_seeds-1`` sample symmetry-broken arrangements. Returns dicts with
    ``sites`` (indices into the site list), ``frac``, ``ewald_eV``, ``origin``.
    """
    from superion.structures.clusters import CLUSTER_CHARGE

    cat = recipe["cations"]
    symbol, n = cat["symbol"], int(cat["count"])
    q_cat = float(cat.get("charge", CATION_CHARGE.get(symbol, 1)))
    frac, orbits, labels = cation_sites(recipe, lattice, frame)
    if len(frac) < n:
        raise SuperionError(f"recipe {recipe['name']}: only {len(frac)} cation sites for {n} {symbol}")
    cfrac = np.array([c for _, c in frame.centres])
    q_an = np.array([CLUSTER_CHARGE[nm] for nm, _ in frame.centres], float)
    extra = recipe.get("cations", {}).get("fixed_ions") or []
    if extra:
        for sym, f in extra:
            cfrac = np.vstack([cfrac, np.asarray(f, float)])
            q_an = np.append(q_an, ION_CHARGE[sym])
    if abs(q_an.sum() + n * q_cat) > 1e-6:
        raise SuperionError(f"recipe {recipe['name']}: {n} {symbol} do not balance anion charge {q_an.sum():+g}")
    phi = ewald_pair_matrix(lattice, np.vstack([cfrac, frac]))
    na = len(cfrac)
    field = phi[na:, :na] @ q_an
    phis = phi[na:, na:]
    const = 0.5 * q_an @ phi[:na, :na] @ q_an
    dist = min_image_distances(lattice, frac, frac)
    dmin = float(cat.get("min_dist_A", 3.0))
    conf = cat.get("configurations", {})
    found: dict[tuple, dict] = {}

    def add(sites: list[int], origin: str) -> None:
        key = tuple(sorted(sites))
        if key in found:
            return
        idx = list(key)
        e = float(q_cat * field[idx].sum() + 0.5 * q_cat**2 * phis[np.ix_(idx, idx)].sum() + const)
        found[key] = {"sites": idx, "frac": frac[idx], "ewald_eV": e, "origin": origin,
                      "site_labels": sorted({labels[i] for i in idx})}

    if conf.get("orbit_combinations", False):
        for sites in orbit_combinations(orbits, n, dist, dmin):
            add(sites, "orbits")
    for s in range(int(conf.get("mc_seeds", 4))):
        try:
            sites, _ = select_sites_mc(phis, field, n, dist, min_dist_A=dmin, seed=recipe["seed"] + s,
                                       n_steps=int(conf.get("mc_steps", 3000)), charge=q_cat)
        except SuperionError:
            continue
        add(sites, f"mc{s}")
    out = sorted(found.values(), key=lambda c: c["ewald_eV"])
    if not out:
        raise SuperionError(f"recipe {recipe['name']}: no {symbol} arrangement with {symbol}–{symbol} ≥ {dmin} Å")
    return out[: int(conf.get("keep", 8))]
