"""Molecular anion clusters (BH4, B12H12, B10H10, CB11H12, CB9H10, PS4, ...) from bond connectivity.

Atoms are joined by a bond when their distance (minimum image, any cell shape) is below a
pair cutoff. The cutoffs sit between the longest intra-cluster bond seen in hot MD and the
shortest inter-cluster contact (e.g. B–H 1.2 Å bonded vs ≥ 2.4 Å to a neighbouring anion),
so labels survive thermal distortion. Cations (Li, Na, K, ...) and lone anions (S²⁻, Cl⁻)
belong to no cluster (``cluster_id == -1``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

# Bond cutoffs in Å, symmetric pairs. Values: B–H 1.20–1.25 Å at equilibrium, stretches to
# ~1.45 Å at 800 K; B–B 1.78 Å (icosahedron) / 1.7–1.9 Å (B10 antiprism); P–S 2.05 Å.
BOND_CUTOFFS_A: dict[tuple[str, str], float] = {
    ("B", "H"): 1.55,
    ("B", "B"): 2.15,
    ("B", "C"): 2.05,
    ("C", "H"): 1.45,
    ("C", "C"): 1.90,
    ("P", "S"): 2.50,
    ("N", "H"): 1.35,
    ("Al", "H"): 1.95,
}

# Species that never belong to a cluster.
CATIONS = frozenset({"H+", "Li", "Na", "K", "Rb", "Cs", "Mg", "Ca", "Ag", "Cu"})

# Canonical names of known clusters, keyed by their element counts.
KNOWN_CLUSTERS: dict[frozenset, str] = {
    frozenset({("B", 1), ("H", 4)}): "BH4",
    frozenset({("B", 12), ("H", 12)}): "B12H12",
    frozenset({("B", 10), ("H", 10)}): "B10H10",
    frozenset({("C", 1), ("B", 11), ("H", 12)}): "CB11H12",
    frozenset({("C", 1), ("B", 9), ("H", 10)}): "CB9H10",
    frozenset({("P", 1), ("S", 4)}): "PS4",
    frozenset({("N", 1), ("H", 2)}): "NH2",
    frozenset({("Al", 1), ("H", 4)}): "AlH4",
}

# Formal charge per cluster type (for charge-balance checks and centre-of-charge MSD).
CLUSTER_CHARGE: dict[str, int] = {
    "BH4": -1,
    "B12H12": -2,
    "B10H10": -2,
    "CB11H12": -1,
    "CB9H10": -1,
    "PS4": -3,
    "NH2": -1,
    "AlH4": -1,
}

# Formal charge of single-atom ions (cations and lone anions such as S2-, Cl-): the one table,
# used by the geometry/charge checks, the builder and Nernst-Einstein (mobile-ion charge).
# H is absent on purpose: a lone H in a hydroborate is a broken cluster, not a proton; a proton
# conductor's analysis passes --charge 1.
ION_CHARGE: dict[str, int] = {
    "Li": 1, "Na": 1, "K": 1, "Rb": 1, "Cs": 1, "Ag": 1, "Cu": 1, "Mg": 2, "Ca": 2, "Zn": 2,
    "F": -1, "Cl": -1, "Br": -1, "I": -1, "O": -2, "S": -2,
}

# Element order used to write the formula of an unknown cluster.
_FORMULA_ORDER = ("C", "B", "Al", "P", "N", "S", "H")


@dataclass
class ClusterLabels:
    """Cluster membership of every atom.

    ``cluster_id[i]`` is the index of atom i's cluster, or -1; ``types[k]`` is the type of
    cluster k (e.g. ``"B12H12"``).
    """

    cluster_id: np.ndarray
    types: list[str] = field(default_factory=list)

    @property
    def n_clusters(self) -> int:
        return len(self.types)

    def members(self, k: int) -> np.ndarray:
        """Atom indices of cluster ``k``."""
        return np.flatnonzero(self.cluster_id == k)

    def clusters_of_type(self, cluster_type: str) -> list[int]:
        """Indices of all clusters of one type."""
        return [k for k, t in enumerate(self.types) if t == cluster_type]

    def atoms_of_type(self, cluster_type: str) -> np.ndarray:
        """Indices of all atoms belonging to clusters of one type."""
        ks = np.array(self.clusters_of_type(cluster_type), dtype=int)
        return np.flatnonzero(np.isin(self.cluster_id, ks)) if ks.size else np.zeros(0, dtype=int)

    def counts(self) -> dict[str, int]:
        """Number of clusters per type."""
        return dict(Counter(self.types))

    def to_dict(self) -> dict:
        return {"cluster_id": self.cluster_id.astype(int).tolist(), "types": list(self.types)}

    @classmethod
    def from_dict(cls, data: dict) -> "ClusterLabels":
        return cls(np.asarray(data["cluster_id"], dtype=int), list(data["types"]))

    def attach(self, atoms) -> None:
        """Store the labels on an ASE ``Atoms`` (survives extxyz round trips)."""
        atoms.arrays["cluster_id"] = self.cluster_id.astype(int)
        atoms.info["cluster_types"] = ",".join(self.types)

    @classmethod
    def from_atoms(cls, atoms) -> "ClusterLabels | None":
        """Labels stored by :meth:`attach`, or ``None`` when the atoms carry none."""
        if "cluster_id" not in atoms.arrays:
            return None
        types_str = atoms.info.get("cluster_types", "")
        types = [t for t in str(types_str).split(",") if t]
        return cls(np.asarray(atoms.arrays["cluster_id"], dtype=int), types)


def cluster_name(symbols: list[str]) -> str:
    """Canonical name of a cluster from its element symbols, e.g. ``"B12H12"``."""
    counts = Counter(symbols)
    known = KNOWN_CLUSTERS.get(frozenset(counts.items()))
    if known:
        return known
    order = sorted(counts, key=lambda s: (_FORMULA_ORDER.index(s) if s in _FORMULA_ORDER else 99, s))
    return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in order)


def bonded_pairs(atoms, cutoffs: dict[tuple[str, str], float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i < j, closer than their pair cutoff (minimum image)."""
    from ase.neighborlist import neighbor_list

    table = _symmetric(cutoffs or BOND_CUTOFFS_A)
    symbols = atoms.get_chemical_symbols()
    present = set(symbols)
    table = {k: v for k, v in table.items() if k[0] in present and k[1] in present}
    if not table:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    i, j = neighbor_list("ij", atoms, table)
    keep = i < j
    return i[keep], j[keep]


def label_clusters(atoms, cutoffs: dict[tuple[str, str], float] | None = None) -> ClusterLabels:
    """Label every atom with its cluster (connected component of bonded non-cation atoms).

    Components of a single atom (S²⁻, Cl⁻, a stray H) are not clusters. Clusters are numbered
    in order of their lowest atom index, so labelling is deterministic.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    i, j = bonded_pairs(atoms, cutoffs)
    ok = ~np.isin(symbols[i], list(CATIONS)) & ~np.isin(symbols[j], list(CATIONS))
    i, j = i[ok], j[ok]
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp, minlength=comp.max() + 1 if n else 0)

    cluster_id = np.full(n, -1, dtype=int)
    types: list[str] = []
    remap: dict[int, int] = {}
    for atom in range(n):
        c = comp[atom]
        if sizes[c] < 2:
            continue
        if c not in remap:
            remap[c] = len(types)
            members = np.flatnonzero(comp == c)
            types.append(cluster_name(symbols[members].tolist()))
        cluster_id[atom] = remap[c]
    return ClusterLabels(cluster_id, types)


def labels_for(atoms) -> ClusterLabels:
    """Stored labels if the atoms carry them, else labels from connectivity."""
    stored = ClusterLabels.from_atoms(atoms)
    return stored if stored is not None else label_clusters(atoms)


def _symmetric(table: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    out = dict(table)
    for (a, b), r in table.items():
        out[(b, a)] = r
    return out
