"""superion's trajectory.h5 in MDAnalysis (the H5MD reader; MDAnalysis is in the test extra):
same positions, box, time step and minimum-image distances as superion's reader and ASE, for a
cell that is not in MDAnalysis' orientation (the writer stores it rotated to lower-triangular)."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest

from superion.md import MDSettings, run_md
from superion.trajectory import open_trajectory
from superion.trajectory.h5md import lower_triangular

mda = pytest.importorskip("MDAnalysis")
sys.path.insert(0, os.path.dirname(__file__))
from test_md_resume import EMT  # noqa: E402


@pytest.fixture(scope="module")
def tilted_run(tmp_path_factory):
    """NPT EMT run of 32 Cu atoms in a cell rotated off every axis (not lower-triangular)."""
    from ase.build import bulk
    from ase.io import write

    atoms = bulk("Cu", cubic=True) * (2, 2, 2)
    atoms.rotate(25, "z", rotate_cell=True)
    atoms.rotate(-40, "x", rotate_cell=True)
    assert abs(atoms.cell.array[0, 1]) > 1  # really tilted
    d = tmp_path_factory.mktemp("tilted")
    write(d / "cu.extxyz", atoms)
    s = MDSettings(temperature_K=700, steps=60, ensemble="npt", timestep_fs=2.0, save_every=5, seed=4,
                   trajectory_dtype="float64", save_velocities=True)
    run_md(d / "cu.extxyz", d / "run", s, calculator=EMT(), log=lambda *a: None)
    return d / "run", atoms


def test_lower_triangular_rotation_keeps_fractional_coordinates():
    rng = np.random.default_rng(3)
    cell = rng.normal(size=(3, 3)) * 3 + np.eye(3) * 8
    if np.linalg.det(cell) < 0:
        cell[0] *= -1
    L, q = lower_triangular(cell)
    assert np.allclose(np.triu(L, 1), 0) and (np.diag(L) > 0).all()
    assert np.allclose(q @ q.T, np.eye(3)) and np.linalg.det(q) == pytest.approx(1.0)
    pos = rng.random((5, 3)) @ cell
    np.testing.assert_allclose(np.linalg.solve(L.T, (pos @ q).T).T, np.linalg.solve(cell.T, pos.T).T, atol=1e-12)
    same, none = lower_triangular(L)
    assert none is None and same is not None and np.array_equal(same, L)


def test_mdanalysis_reads_superion_h5md(tilted_run):
    from ase import Atoms
    from ase.geometry import cell_to_cellpar
    from MDAnalysis.lib.distances import distance_array

    run, _ = tilted_run
    assert os.readlink(run / "trajectory.h5md") == "trajectory.h5"
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        u = mda.Universe(str(run / "trajectory.h5md"))  # no format hint; topology built from the file
        dt_ps = u.trajectory.dt
    assert not [w for w in said if "dt" in str(w.message)]  # no "Reader has no dt information"
    with open_trajectory(run) as tr:
        assert u.trajectory.n_frames == tr.n_frames == 13 and len(u.atoms) == tr.n_atoms
        assert dt_ps * 1000 == pytest.approx(tr.frame_interval_fs)
        pos, cells, vel = tr.positions(), tr.cells(), tr.velocities()
        assert np.allclose(np.triu(cells, 1), 0)  # stored in the standard orientation
        for i, ts in enumerate(u.trajectory):
            assert ts.time * 1000 == pytest.approx(tr.times_fs[i])  # MDAnalysis times in ps
            np.testing.assert_allclose(ts.positions, pos[i], atol=1e-4)  # MDAnalysis keeps float32
            np.testing.assert_allclose(ts.dimensions, cell_to_cellpar(cells[i]), rtol=1e-5)
            np.testing.assert_allclose(ts.velocities, vel[i] * 1000, rtol=1e-4, atol=1e-4)  # A/ps
            a = Atoms("Cu32", positions=pos[i], cell=cells[i], pbc=True)
            d_ase = a.get_all_distances(mic=True)
            d_mda = distance_array(ts.positions, ts.positions, box=ts.dimensions)
            np.testing.assert_allclose(d_mda, d_ase, atol=2e-4)


def test_rotation_preserves_the_simulated_geometry(tilted_run):
    """The first frame (step 0) is the input structure: same distances and fractional coordinates."""
    run, atoms = tilted_run
    with open_trajectory(run) as tr:
        pos, cell = tr.positions(0)[0], tr.cells(0)[0]
    from ase import Atoms

    stored = Atoms("Cu32", positions=pos, cell=cell, pbc=True)
    np.testing.assert_allclose(stored.get_all_distances(mic=True), atoms.get_all_distances(mic=True), atol=1e-9)
    np.testing.assert_allclose(stored.cell.cellpar(), atoms.cell.cellpar(), atol=1e-9)


def test_einstein_msd_matches_superion(tilted_run):
    """MDAnalysis' EinsteinMSD on the unwrapped positions = superion's MSD (no drift removal)."""
    from MDAnalysis.analysis.msd import EinsteinMSD

    from superion.analysis.msd import ion_msd
    from superion.analysis.unwrap import collect_mobile

    run, _ = tilted_run
    u = mda.Universe(str(run / "trajectory.h5md"))
    m = EinsteinMSD(u, select="all", msd_type="xyz", fft=False).run()
    with open_trajectory(run) as tr:
        disp = collect_mobile(tr, np.arange(tr.n_atoms), drift="none")
    ours = ion_msd(disp.disp_A).mean
    np.testing.assert_allclose(m.results.timeseries, ours, rtol=1e-4, atol=1e-6)
