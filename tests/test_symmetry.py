"""One space-group helper and one lattice description (structures.symmetry, structures.lattice)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import read

from superion.errors import SuperionError
from superion.structures.lattice import lattice_from, lattice_parameters, lattice_report
from superion.structures.symmetry import space_group, space_group_label, symmetry_operations

STRUCTURES = Path(__file__).resolve().parents[1] / "structures"


def test_space_group_of_built_cells():
    nabh4 = read(STRUCTURES / "NaBH4_F-43m.cif")
    assert space_group(nabh4, 0.1) == {"symbol": "F-43m", "number": 216, "symprec_A": 0.1}
    assert space_group_label(nabh4) == "F-43m (216)"
    assert space_group_label(read(STRUCTURES / "Na2B12H12_Pa-3.cif"), 0.1) == "Pa-3 (205)"
    # the o-NBH model's Na ordering breaks the Cmc2_1 symmetry of its anion frame (its CIF header says so)
    assert space_group_label(read(STRUCTURES / "oNBH_Na3BH4B12H12_Cmc21.cif"), 0.1) == "P1 (1)"
    # a rattle larger than symprec destroys the symmetry
    rattled = nabh4.copy()
    rattled.rattle(0.05, seed=3)
    assert space_group(rattled, 1e-3)["number"] == 1


def test_space_group_failure_is_a_report_not_an_error():
    bad = Atoms("Na", positions=[[0, 0, 0]], cell=np.zeros((3, 3)), pbc=True)
    sg = space_group(bad)
    assert sg["symbol"] is None and sg["number"] is None and "error" in sg
    assert space_group_label(bad) == "P1 (1)"


def test_symmetry_operations():
    assert len(symmetry_operations("Fm-3m")) == 192  # 48 point operations x 4 centring translations
    (w, t), = symmetry_operations(None)
    assert np.array_equal(w, np.eye(3)) and not t.any()
    with pytest.raises(SuperionError, match="unknown space group"):
        symmetry_operations("Xx-9")


def test_lattice_description_and_deviation():
    atoms = Atoms(cell=[[8.0, 0, 0], [0, 21.7, 0], [0, 0, 7.6]], pbc=True)
    full = lattice_parameters(atoms)
    assert full["b_A"] == pytest.approx(21.7) and full["volume_A3"] == pytest.approx(8.0 * 21.7 * 7.6)
    assert full["matrix_A"][1] == [0.0, 21.7, 0.0]
    rep = lattice_report(atoms, [8.0083, 21.881, 7.7672])
    assert "matrix_A" not in rep and rep["gamma_deg"] == 90.0
    assert rep["deviation_pct"] == [-0.1, -0.83, -2.15]
    assert rep["volume_A3"] == round(8.0 * 21.7 * 7.6, 5)
    assert "deviation_pct" not in lattice_report(atoms)


def test_lattice_from_shapes():
    assert np.allclose(lattice_from([5, 6, 7]), np.diag([5, 6, 7]))
    hexa = lattice_from([3, 3, 5, 90, 90, 120])
    assert np.allclose(np.linalg.norm(hexa, axis=1), [3, 3, 5])
    with pytest.raises(SuperionError, match="3x3"):
        lattice_from([1, 2])
