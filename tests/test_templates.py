"""Rigid cluster templates: bond lengths, point-group symmetry, placement and determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist

from superion.errors import SuperionError
from superion.structures.templates import TEMPLATE_NAMES, axis_rotation, random_rotation, template


def _invariant(pos: np.ndarray, symbols, rot: np.ndarray, tol: float = 1e-6) -> bool:
    """True if the rotated point set maps onto itself, element by element."""
    new = pos @ rot.T
    symbols = np.asarray(symbols)
    for s in set(symbols):
        d = cdist(new[symbols == s], pos[symbols == s])
        if not np.all(d.min(axis=1) < tol):
            return False
    return True


def _bond_lengths(t, a, b, cutoff):
    sy = np.asarray(t.symbols)
    d = cdist(t.positions[sy == a], t.positions[sy == b])
    if a == b:
        d = d[np.triu_indices(len(d), 1)]
    return d[(d > 0) & (d < cutoff)]


def test_b12h12_matches_shared_template(shared_dir):
    from ase.io import read

    ref = read(shared_dir / "structures" / "B12H12_ideal_Ih_BB1.78_BH1.20.xyz")
    t = template("B12H12")
    assert list(t.symbols) == ref.get_chemical_symbols()
    assert np.allclose(t.positions, ref.positions, atol=1e-5)


def test_b12h12_geometry_and_icosahedral_symmetry():
    t = template("B12H12")
    bb = _bond_lengths(t, "B", "B", 2.0)
    assert len(bb) == 30 and np.allclose(bb, 1.78)
    bh = _bond_lengths(t, "B", "H", 1.5)
    assert len(bh) == 12 and np.allclose(bh, 1.20)
    assert np.allclose(t.positions.mean(axis=0), 0, atol=1e-12)
    # 5-fold axis through a vertex, 3-fold along (1,1,1), 2-fold along x: all symmetries of Ih
    v = t.positions[0]
    assert _invariant(t.positions, t.symbols, axis_rotation(v, 72))
    assert _invariant(t.positions, t.symbols, axis_rotation([1, 1, 1], 120))
    assert _invariant(t.positions, t.symbols, axis_rotation([1, 0, 0], 180))
    assert _invariant(t.positions, t.symbols, np.diag([-1.0, 1, 1]))  # mirror x = 0 (needed on the Cmc2_1 4a site)
    assert not _invariant(t.positions, t.symbols, axis_rotation([1, 0, 0], 30))


def test_bh4_and_ps4_are_regular_tetrahedra():
    for name, centre, lig, bond in (("BH4", "B", "H", 1.21), ("PS4", "P", "S", 2.05)):
        t = template(name)
        d = _bond_lengths(t, centre, lig, 3.0)
        assert len(d) == 4 and np.allclose(d, bond)
        u = t.positions[1:] / bond
        angles = np.degrees(np.arccos(np.clip(u @ u.T, -1, 1)))[np.triu_indices(4, 1)]
        assert np.allclose(angles, 109.4712, atol=1e-3)
        # -4 about z keeps it (Td); a plain 90° rotation inverts it
        s4 = axis_rotation([0, 0, 1], 90) @ np.diag([1.0, 1, -1])
        assert _invariant(t.positions, t.symbols, s4)
        assert not _invariant(t.positions, t.symbols, axis_rotation([0, 0, 1], 90))


def test_b10h10_is_bicapped_square_antiprism():
    t = template("B10H10")
    assert t.symbols.count("B") == 10 and t.symbols.count("H") == 10
    bb = _bond_lengths(t, "B", "B", 1.95)
    assert len(bb) == 24  # 8 apex-ring + 8 ring-ring + 8 in-ring edges
    assert set(np.round(bb, 3)) == {1.70, 1.81, 1.86}
    assert np.allclose(_bond_lengths(t, "B", "H", 1.5), 1.20)
    s8 = axis_rotation([0, 0, 1], 45) @ np.diag([1.0, 1, -1])  # D4d improper 8-fold axis
    assert _invariant(t.positions, t.symbols, s8)
    assert _invariant(t.positions, t.symbols, axis_rotation([0, 0, 1], 90))


def test_cb11h12_has_one_carbon_on_top():
    t = template("CB11H12")
    sy = np.asarray(t.symbols)
    assert (sy == "C").sum() == 1 and (sy == "B").sum() == 11
    c = t.positions[sy == "C"][0]
    assert np.allclose(c[:2], 0, atol=1e-9) and c[2] > 1.5
    ch = _bond_lengths(t, "C", "H", 1.3)
    assert len(ch) == 1 and np.isclose(ch[0], 1.10)
    assert _invariant(t.positions, t.symbols, axis_rotation([0, 0, 1], 72))  # C5v


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_placement_is_rigid(name):
    t = template(name)
    rot = random_rotation(3)
    placed = t.placed([1.0, -2.0, 3.5], rot)
    assert np.allclose(pdist(placed), pdist(t.positions))
    assert np.allclose(placed.mean(axis=0) - np.array([1.0, -2.0, 3.5]), t.positions.mean(axis=0) @ rot.T)


def test_random_rotation_deterministic():
    a, b, c = random_rotation(7), random_rotation(7), random_rotation(8)
    assert np.allclose(a, b) and not np.allclose(a, c)
    assert np.allclose(a @ a.T, np.eye(3)) and np.isclose(np.linalg.det(a), 1.0)


def test_unknown_template_is_user_error():
    with pytest.raises(SuperionError, match="unknown cluster template"):
        template("B6H6")
