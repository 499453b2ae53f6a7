"""Geometry sanity checks for built or relaxed structures of cluster-anion salts.

:func:`check_geometry` returns a :class:`GeometryReport` listing every problem found:

- every non-cation, non-lone-ion atom belongs to a *known* cluster (BH4, B12H12, ...);
  no stray H, no fused or broken cages;
- intra-cluster bond lengths within sane ranges (``BOND_RANGES_A``) and each cluster has
  the bond count of its template (B12H12: 30 B–B + 12 B–H, ...);
- no H–H contact between different clusters below 1.5 Å;
- cation–H, cation–cation and cation–lone-anion distances above minima (``MIN_CONTACT_A``);
- cluster counts equal to ``expected_counts`` when given;
- charge balance: Σ cluster charges (``superion.structures.clusters.CLUSTER_CHARGE``) + ion charges = 0.

All distances are minimum-image, in Å.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from superion.structures.clusters import CATIONS, CLUSTER_CHARGE, ION_CHARGE, label_clusters

# Accepted intra-cluster bond ranges in Å (equilibrium ± generous margin for 800 K snapshots).
BOND_RANGES_A: dict[tuple[str, str], tuple[float, float]] = {
    ("B", "H"): (1.00, 1.45),
    ("B", "B"): (1.55, 2.05),
    ("B", "C"): (1.50, 1.95),
    ("C", "H"): (0.95, 1.30),
    ("P", "S"): (1.90, 2.25),
}

# Bonds per cluster type (pairs within the bond cutoffs of superion.clusters).
EXPECTED_BONDS: dict[str, dict[tuple[str, str], int]] = {
    "BH4": {("B", "H"): 4},
    "B12H12": {("B", "B"): 30, ("B", "H"): 12},
    "B10H10": {("B", "B"): 24, ("B", "H"): 10},
    "CB11H12": {("B", "B"): 25, ("B", "C"): 5, ("B", "H"): 11, ("C", "H"): 1},
    "PS4": {("P", "S"): 4},
}

# Shortest acceptable contacts between atoms of different units, Å.
MIN_CONTACT_A: dict[tuple[str, str], float] = {
    ("H", "H"): 1.5,
    ("H", "Na"): 1.9,
    ("H", "Li"): 1.6,
    ("Na", "Na"): 2.6,
    ("Li", "Li"): 1.9,
    ("Li", "Na"): 2.2,
    ("Li", "S"): 2.1,
    ("Li", "Cl"): 2.1,
    ("Na", "S"): 2.4,
    ("Na", "Cl"): 2.4,
    ("B", "Na"): 2.2,
    ("B", "Li"): 1.9,
}

@dataclass
class GeometryReport:
    """Outcome of :func:`check_geometry`: ``ok`` is True when ``problems`` is empty."""

    problems: list[str] = field(default_factory=list)
    cluster_counts: dict[str, int] = field(default_factory=dict)
    total_charge: float = 0.0
    min_distances_A: dict[str, float] = field(default_factory=dict)
    bond_ranges_A: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "problems": list(self.problems), "cluster_counts": dict(self.cluster_counts),
                "total_charge": self.total_charge, "min_distances_A": dict(self.min_distances_A),
                "bond_ranges_A": dict(self.bond_ranges_A)}

    def summary(self) -> str:
        """One line: OK / number of problems, cluster counts, charge."""
        counts = ", ".join(f"{k}×{v}" for k, v in sorted(self.cluster_counts.items()))
        head = "OK" if self.ok else f"{len(self.problems)} problem(s): " + "; ".join(self.problems[:3])
        return f"{head} | clusters {counts or 'none'} | charge {self.total_charge:+g}"


def _key(a: str, b: str) -> tuple[str, str]:
    return tuple(sorted((a, b)))  # type: ignore[return-value]


def check_geometry(atoms, expected_counts: dict[str, int] | None = None, *, cutoff_A: float = 3.2) -> GeometryReport:
    """Check a structure; see the module docstring. ``expected_counts``: e.g. {"B12H12": 4, "BH4": 4}."""
    from ase.neighborlist import neighbor_list

    rep = GeometryReport()
    symbols = np.array(atoms.get_chemical_symbols())
    labels = label_clusters(atoms)
    cid = labels.cluster_id
    rep.cluster_counts = labels.counts()

    # 1. every atom is a cation, a lone ion, or in a known cluster
    for k, t in enumerate(labels.types):
        if t not in CLUSTER_CHARGE:
            members = labels.members(k)
            rep.problems.append(f"unknown/broken cluster {t} (atoms {members[:6].tolist()}...)")
    lone = np.flatnonzero(cid < 0)
    for i in lone:
        s = symbols[i]
        if s not in CATIONS and s not in ION_CHARGE:
            rep.problems.append(f"atom {i} ({s}) belongs to no cluster")

    # 2. bonds inside clusters
    i, j, d = neighbor_list("ijd", atoms, cutoff_A)
    keep = i < j
    i, j, d = i[keep], j[keep], d[keep]
    same = (cid[i] == cid[j]) & (cid[i] >= 0)
    from superion.structures.clusters import BOND_CUTOFFS_A

    cut = {**BOND_CUTOFFS_A, **{(b, a): r for (a, b), r in BOND_CUTOFFS_A.items()}}
    bonded = same & np.array([d_ < cut.get((a, b), 0.0) for a, b, d_ in zip(symbols[i], symbols[j], d)], bool)
    bond_counts: dict[int, Counter] = {k: Counter() for k in range(labels.n_clusters)}
    for a, b, dd, c in zip(symbols[i][bonded], symbols[j][bonded], d[bonded], cid[i][bonded]):
        key = _key(a, b)
        bond_counts[int(c)][key] += 1
        name = "-".join(key)
        lo, hi = rep.bond_ranges_A.get(name, [np.inf, -np.inf])
        rep.bond_ranges_A[name] = [min(lo, float(dd)), max(hi, float(dd))]
    for name, (lo, hi) in rep.bond_ranges_A.items():
        a, b = name.split("-")
        rng = BOND_RANGES_A.get(_key(a, b))
        if rng and (lo < rng[0] or hi > rng[1]):
            rep.problems.append(f"{name} bond lengths {lo:.3f}–{hi:.3f} Å outside {rng[0]}–{rng[1]} Å")
    for k, t in enumerate(labels.types):
        exp = EXPECTED_BONDS.get(t)
        if exp and dict(bond_counts[k]) != {_key(*p): n for p, n in exp.items()}:
            rep.problems.append(f"cluster {k} ({t}) has bonds {dict(bond_counts[k])}, expected {exp} (distorted cage)")

    # 3. contacts between different units (different clusters, or any pair involving a lone atom)
    other = ~same
    for a, b, dd in zip(symbols[i][other], symbols[j][other], d[other]):
        key = _key(a, b)
        name = "-".join(key)
        if name not in rep.min_distances_A or dd < rep.min_distances_A[name]:
            rep.min_distances_A[name] = float(dd)
    for key, dmin in MIN_CONTACT_A.items():
        name = "-".join(_key(*key))
        if name in rep.min_distances_A and rep.min_distances_A[name] < dmin:
            what = "between clusters" if key == ("H", "H") else "contact"
            rep.problems.append(f"{name} {what} {rep.min_distances_A[name]:.3f} Å < {dmin} Å")
    rep.min_distances_A = {k: round(v, 4) for k, v in sorted(rep.min_distances_A.items())}
    rep.bond_ranges_A = {k: [round(v[0], 4), round(v[1], 4)] for k, v in sorted(rep.bond_ranges_A.items())}

    # 4. counts and charge balance
    if expected_counts is not None:
        want = {k: v for k, v in expected_counts.items() if v}
        if rep.cluster_counts != want:
            rep.problems.append(f"cluster counts {rep.cluster_counts} != expected {want}")
    charge = sum(CLUSTER_CHARGE.get(t, 0) for t in labels.types)
    charge += sum(ION_CHARGE.get(s, 0) for s in symbols[lone])
    rep.total_charge = float(charge)
    if charge != 0:
        rep.problems.append(f"charge imbalance: formal charges sum to {charge:+d} e")
    return rep


def check_structure_file(path, expected_counts: dict[str, int] | None = None) -> tuple[object, GeometryReport]:
    """(atoms, report) for a structure file read with :func:`superion.structures.io.read_atoms`.

    Overlapping atoms are reported as problems here, not refused by the reader.
    """
    from superion.structures.io import read_atoms

    atoms = read_atoms(path, check_overlap=False)
    return atoms, check_geometry(atoms, expected_counts)
