"""Rigid cluster templates (positions in Å, centred at the origin) and their placement.

Templates are ideal geometries used to *start* structures; a relaxation with the potential
finds the real bond lengths. Default bond lengths:

- ``B12H12`` icosahedron: B–B 1.78 Å (Cs2B12H12 X-ray), B–H 1.20 Å (DFT value for B12 cages);
  identical to ``../shared/structures/B12H12_ideal_Ih_BB1.78_BH1.20.xyz``.
- ``BH4`` tetrahedron: B–H 1.21 Å, H along (±1, ±1, ±1) with an even number of minus signs,
  so the default orientation has the -43m site symmetry of a cubic F-43m site.
- ``B10H10`` bicapped square antiprism (D4d, axis along z): apex–ring B–B 1.70 Å, ring edge
  1.86 Å, ring–ring 1.81 Å (typical closo-B10H10 X-ray/DFT values), B–H 1.20 Å radial.
- ``CB11H12``: the B12H12 icosahedron with vertex 0 (on +z after :func:`template`) made C,
  C–H 1.10 Å; the cage itself is kept ideal (C–B is ~0.07 Å shorter in reality).
- ``PS4`` tetrahedron: P–S 2.05 Å, same orientation convention as BH4.

Every function is deterministic; random orientations come from an explicit seed or
``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superion.errors import SuperionError

GOLDEN = (1.0 + 5.0**0.5) / 2.0


@dataclass(frozen=True)
class Template:
    """A rigid cluster: ``symbols`` and ``positions`` (n, 3) in Å relative to its centre."""

    name: str
    symbols: tuple[str, ...]
    positions: np.ndarray
    charge: int

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def radius_A(self) -> float:
        """Largest centre–atom distance in Å (the H shell for hydroborates)."""
        return float(np.max(np.linalg.norm(self.positions, axis=1)))

    def placed(self, centre, rotation=None) -> np.ndarray:
        """Cartesian positions (n, 3) in Å after rotating (3x3 matrix) and moving to ``centre``."""
        pos = self.positions if rotation is None else self.positions @ np.asarray(rotation, float).T
        return pos + np.asarray(centre, float)


def _icosahedron_vertices(edge_A: float) -> np.ndarray:
    """12 vertices (cyclic permutations of (0, ±1, ±φ)) scaled to the given edge length in Å."""
    v = []
    for s1 in (1, -1):
        for s2 in (1, -1):
            v += [(0, s1, s2 * GOLDEN), (s1, s2 * GOLDEN, 0), (s2 * GOLDEN, 0, s1)]
    v = np.array(v, float)
    return v * (edge_A / 2.0)  # edge between (0,1,φ) and (0,-1,φ) is 2 in these units


def _radial_shell(core: np.ndarray, bond_A: float | np.ndarray) -> np.ndarray:
    """Outer atoms along the centre→core-atom directions, ``bond_A`` beyond each core atom."""
    u = core / np.linalg.norm(core, axis=1)[:, None]
    return core + u * np.asarray(bond_A, float).reshape(-1, 1)


def icosahedral_cage(bb_A: float = 1.78, bh_A: float = 1.20, apex_up: bool = False) -> np.ndarray:
    """24 positions (12 cage + 12 outer H) of an ideal icosahedral X12H12 cage in Å.

    With ``apex_up`` the cage is rotated so vertex 0 lies on +z (used for CB11H12).
    """
    core = _icosahedron_vertices(bb_A)
    if apex_up:
        core = core @ _rotation_to_z(core[0]).T
    return np.vstack([core, _radial_shell(core, bh_A)])


def tetrahedron(center_symbol: str, ligand_symbol: str, bond_A: float) -> np.ndarray:
    """5 positions: centre at origin and ligands along (1,1,1), (1,-1,-1), (-1,1,-1), (-1,-1,1)."""
    dirs = np.array([(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)], float) / np.sqrt(3.0)
    return np.vstack([np.zeros(3), dirs * bond_A])


def bicapped_square_antiprism(
    apex_ring_A: float = 1.70, ring_edge_A: float = 1.86, ring_ring_A: float = 1.81, bh_A: float = 1.20
) -> np.ndarray:
    """20 positions of closo-B10H10 (D4d, axis z): B apex, 4+4 ring B, B apex, then 10 H radial."""
    r = ring_edge_A / np.sqrt(2.0)  # circumradius of a square with that edge
    chord = 2.0 * r * np.sin(np.pi / 8.0)  # in-plane distance between vertices of rings offset 45°
    h = np.sqrt(ring_ring_A**2 - chord**2)  # ring separation
    cap = h / 2.0 + np.sqrt(apex_ring_A**2 - r**2)
    ring1 = [(r * np.cos(k * np.pi / 2), r * np.sin(k * np.pi / 2), h / 2) for k in range(4)]
    ring2 = [(r * np.cos(k * np.pi / 2 + np.pi / 4), r * np.sin(k * np.pi / 2 + np.pi / 4), -h / 2) for k in range(4)]
    core = np.array([(0, 0, cap), *ring1, *ring2, (0, 0, -cap)], float)
    return np.vstack([core, _radial_shell(core, bh_A)])


def _rotation_to_z(v: np.ndarray) -> np.ndarray:
    """Rotation matrix taking direction ``v`` onto +z (deterministic for v ∥ -z)."""
    from scipy.spatial.transform import Rotation

    v = np.asarray(v, float) / np.linalg.norm(v)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(v, z)
    s = np.linalg.norm(axis)
    if s < 1e-12:
        return np.eye(3) if v[2] > 0 else np.diag([1.0, -1.0, -1.0])
    angle = np.arctan2(s, float(v @ z))
    return Rotation.from_rotvec(axis / s * angle).as_matrix()


def template(name: str, **bonds: float) -> Template:
    """The rigid template of a cluster type (``BH4``, ``B12H12``, ``B10H10``, ``CB11H12``, ``PS4``).

    Keyword arguments override bond lengths in Å: ``bh_A``, ``bb_A`` (B12H12/CB11H12),
    ``ch_A`` (CB11H12), ``ps_A`` (PS4), and the B10H10 parameters of
    :func:`bicapped_square_antiprism`.
    """
    from superion.structures.clusters import CLUSTER_CHARGE

    if name == "BH4":
        pos = tetrahedron("B", "H", bonds.get("bh_A", 1.21))
        symbols = ("B", "H", "H", "H", "H")
    elif name == "B12H12":
        pos = icosahedral_cage(bonds.get("bb_A", 1.78), bonds.get("bh_A", 1.20))
        symbols = ("B",) * 12 + ("H",) * 12
    elif name == "CB11H12":
        bh = np.full(12, bonds.get("bh_A", 1.20))
        bh[0] = bonds.get("ch_A", 1.10)
        core = icosahedral_cage(bonds.get("bb_A", 1.78), 1.0, apex_up=True)[:12]
        pos = np.vstack([core, _radial_shell(core, bh)])
        symbols = ("C",) + ("B",) * 11 + ("H",) * 12
    elif name == "B10H10":
        keys = ("apex_ring_A", "ring_edge_A", "ring_ring_A", "bh_A")
        pos = bicapped_square_antiprism(**{k: bonds[k] for k in keys if k in bonds})
        symbols = ("B",) * 10 + ("H",) * 10
    elif name == "PS4":
        pos = tetrahedron("P", "S", bonds.get("ps_A", 2.05))
        symbols = ("P", "S", "S", "S", "S")
    else:
        raise SuperionError(f"unknown cluster template {name!r}; use one of {', '.join(TEMPLATE_NAMES)}")
    return Template(name, symbols, np.asarray(pos, float), CLUSTER_CHARGE[name])


TEMPLATE_NAMES = ("BH4", "B12H12", "B10H10", "CB11H12", "PS4")


def random_rotation(rng: np.random.Generator | int | None) -> np.ndarray:
    """A uniformly random rotation matrix from a seed or Generator (deterministic for a seed)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(rng)
    return Rotation.random(random_state=rng).as_matrix()


def axis_rotation(axis, angle_deg: float) -> np.ndarray:
    """Rotation matrix by ``angle_deg`` degrees about ``axis`` (Cartesian, any length)."""
    from scipy.spatial.transform import Rotation

    axis = np.asarray(axis, float)
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(angle_deg)).as_matrix()


def euler_rotation(angles_deg, seq: str = "zyz") -> np.ndarray:
    """Rotation matrix from Euler angles in degrees (scipy convention, extrinsic lower-case)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler(seq, angles_deg, degrees=True).as_matrix()
