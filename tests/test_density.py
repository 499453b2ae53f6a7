"""Ion density grid: histogram kernel vs NumPy, normalization, cube/CHGCAR round trips."""

from __future__ import annotations

import numpy as np
import pytest

from superion.analysis.density import density_grid, structure_for_file, volumetric_format, write_volumetric
from superion.errors import SuperionError
from superion.analysis.kernels import as_c64, histogram_frac
from superion.trajectory import ArrayTrajectory


def test_histogram_kernel_matches_histogramdd():
    rng = np.random.default_rng(41)
    frac = rng.random((7, 9, 3)) * 3 - 1  # any image: the kernel wraps
    grid = np.zeros((4, 5, 6))
    histogram_frac(as_c64(frac), grid)
    w = (frac - np.floor(frac)).reshape(-1, 3)
    ref, _ = np.histogramdd(w, bins=(4, 5, 6), range=[(0, 1)] * 3)
    assert np.array_equal(grid, ref)


def site_hopping_trajectory(rng, F=200):
    """Two Na vibrating around fixed fractional sites (0.25,·,·) and (0.75,·,·); breathing cell; one Cl."""
    cells = np.diag([8.0, 8.0, 8.0])[None] * (1 + 0.03 * np.sin(np.arange(F) / 7.0))[:, None, None]
    sites = np.array([[0.25, 0.5, 0.5], [0.75, 0.5, 0.5], [0.0, 0.0, 0.0]])
    frac = sites[None] + 0.01 * rng.standard_normal((F, 3, 3))
    frac[:, 0] += 1.0  # another image: must be wrapped back
    pos = np.einsum("fnj,fjk->fnk", frac, cells)
    return ArrayTrajectory(pos, cells, np.arange(F) * 10.0, ["Na", "Na", "Cl"], np.array([23.0, 23.0, 35.5]))


def test_density_is_normalized_and_sits_on_the_sites():
    traj = site_hopping_trajectory(np.random.default_rng(42))
    rho, cell = density_grid(traj, np.array([0, 1]), spacing_A=0.5)
    assert np.allclose(cell, traj.cells_A.mean(axis=0))
    n = int(np.ceil(cell[0, 0] / 0.5))
    assert rho.shape == (n, n, n)
    voxel = abs(np.linalg.det(cell)) / rho.size
    assert rho.sum() * voxel == pytest.approx(2.0)
    peak = np.unravel_index(np.argmax(rho), rho.shape)
    mid = int(0.5 * n)
    assert peak[0] in (int(0.25 * n), int(0.75 * n)) and peak[1] == mid and peak[2] == mid
    # fractional binning: the breathing cell does not smear the sites (±0.01 frac ≈ ±0.08 Å)
    assert rho[:, mid - 1 : mid + 2, mid - 1 : mid + 2].sum() / rho.sum() > 0.95


@pytest.mark.parametrize("name", ["na.cube", "Na_CHGCAR"])
def test_written_files_read_back_with_ase(tmp_path, name):
    traj = site_hopping_trajectory(np.random.default_rng(43))
    rho, cell = density_grid(traj, np.array([0, 1]), spacing_A=0.5)
    atoms = structure_for_file(traj, cell)
    path = tmp_path / name
    write_volumetric(path, atoms, rho)
    if name.endswith(".cube"):
        from ase.io.cube import read_cube_data

        from ase.units import Bohr

        data, atoms2 = read_cube_data(str(path))
        data = data / Bohr**3  # the file holds ions/Bohr^3 (cube convention)
    else:
        from ase.calculators.vasp import VaspChargeDensity

        vcd = VaspChargeDensity(str(path))
        data, atoms2 = vcd.chg[-1], vcd.atoms[-1]
    assert np.allclose(data, rho, rtol=1e-4, atol=1e-8)
    assert atoms2.get_chemical_symbols() == ["Cl", "Na", "Na"]
    assert np.allclose(atoms2.cell.array, cell, atol=1e-4)


def test_bad_names_and_spacing_are_clear_errors():
    with pytest.raises(SuperionError, match="cube"):
        volumetric_format("density.txt")
    traj = site_hopping_trajectory(np.random.default_rng(44), F=5)
    with pytest.raises(SuperionError, match="spacing"):
        density_grid(traj, np.array([0]), spacing_A=0.0)


def test_hop_sites_add_interstitial_maxima_and_snap_starting_positions():
    from superion.analysis.density import hop_sites_frac

    rng = np.random.default_rng(7)
    cell = np.eye(3) * 10.0
    F = 3000
    # ion 0 lives at (2,2,2) (it starts 0.7 A off the centre of its cloud); ion 1 at (7,7,7) for the first
    # half of the run, then at an interstitial site (7,7,4.5) 2.5 A away
    a = np.array([2.0, 2.0, 2.0]) + 0.2 * rng.standard_normal((F, 3))
    b = np.where(np.arange(F)[:, None] < F // 2, [7.0, 7.0, 7.0], [7.0, 7.0, 4.5]) + 0.2 * rng.standard_normal((F, 3))
    a[0] = [2.7, 2.0, 2.0]
    b[0] = [7.0, 7.0, 7.0]
    frac = np.stack([a, b], axis=1) / 10.0
    out = hop_sites_frac(frac, cell, frac[0], snap_A=1.5)
    sites = out["sites_frac"] * 10.0
    assert out["n_start_sites"] == 2 and out["n_interstitial_sites"] == 1
    assert np.linalg.norm(sites[0] - [2.0, 2.0, 2.0]) < 0.3  # snapped from 0.7 A off to the cloud centre
    assert np.linalg.norm(sites[2] - [7.0, 7.0, 4.5]) < 0.3
    # without snapping the off-centre start stays, and the cloud centre 0.7 A away is deduplicated (< 1 A)
    raw = hop_sites_frac(frac, cell, frac[0])
    assert raw["n_interstitial_sites"] == 1 and np.allclose(raw["sites_frac"][0] * 10.0, [2.7, 2.0, 2.0])
