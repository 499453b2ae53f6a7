"""Density files follow their format's convention: integrating the grid as each format's readers
do gives back the number of ions (cube: ions/Bohr³ on a Bohr grid; CHGCAR: ρ·V, Σ/n_grid)."""

from __future__ import annotations

import numpy as np
import pytest

from superion.analysis.density import density_grid, structure_for_file, write_volumetric
from superion.trajectory import ArrayTrajectory


def _traj(rng, n_ions=5, F=40):
    cell = np.array([[9.0, 0, 0], [1.5, 8.0, 0], [0.5, 0.7, 10.0]])  # triclinic
    frac = (rng.random((1, n_ions + 1, 3)) + np.cumsum(0.01 * rng.standard_normal((F, n_ions + 1, 3)), axis=0)) % 1.0
    return ArrayTrajectory(frac @ cell, cell, np.arange(F) * 10.0, ["Cl"] + ["Na"] * n_ions,
                           np.array([35.45] + [22.99] * n_ions))


def _cube_raw(path):
    """Values and voxel vectors (Bohr) parsed from the cube text itself, as OVITO/VESTA do."""
    lines = path.read_text().splitlines()
    n_atoms = abs(int(lines[2].split()[0]))
    shape, vox = [], []
    for k in range(3):
        parts = lines[3 + k].split()
        shape.append(int(parts[0]))
        vox.append([float(x) for x in parts[1:4]])
    values = np.array(" ".join(lines[6 + n_atoms:]).split(), dtype=float)
    return values.reshape(shape), np.array(vox)


def test_cube_is_in_atomic_units_and_integrates_to_the_ions(tmp_path):
    traj = _traj(np.random.default_rng(5))
    rho, cell = density_grid(traj, np.arange(1, 6), spacing_A=0.5)
    path = tmp_path / "na.cube"
    write_volumetric(path, structure_for_file(traj, cell), rho)
    values, voxel_bohr = _cube_raw(path)
    assert int(path.read_text().splitlines()[2].split()[0]) > 0  # positive count: Bohr units
    voxel_bohr3 = abs(np.linalg.det(voxel_bohr))
    assert values.sum() * voxel_bohr3 == pytest.approx(5.0, rel=1e-4)
    from ase.io.cube import read_cube_data
    from ase.units import Bohr

    data, atoms = read_cube_data(str(path))  # ASE: cell back in Å, values as stored (per Bohr³)
    assert data.sum() * atoms.get_volume() / data.size / Bohr**3 == pytest.approx(5.0, rel=1e-4)


def test_chgcar_holds_density_times_volume(tmp_path):
    traj = _traj(np.random.default_rng(6))
    rho, cell = density_grid(traj, np.arange(1, 6), spacing_A=0.5)
    path = tmp_path / "Na_CHGCAR"
    write_volumetric(path, structure_for_file(traj, cell), rho)
    lines = path.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if line.strip() == "") + 1  # the grid line after the positions
    shape = [int(x) for x in lines[k].split()]
    values = np.array(" ".join(lines[k + 1:]).split()[: int(np.prod(shape))], dtype=float)
    assert values.sum() / values.size == pytest.approx(5.0, rel=1e-4)  # VASP: Σ (ρ·V) / n_grid = N
