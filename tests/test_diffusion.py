"""Diffusivity, stderr, Nernst–Einstein, Haven ratio and active ions against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from superion.analysis.diffusion import analyze_displacements, analyze_trajectory, nernst_einstein_mS_cm
from superion.errors import SuperionError
from superion.analysis.unwrap import to_fractional
from superion.trajectory import ArrayTrajectory


def wrap(positions, cells):
    frac = to_fractional(positions, cells)
    frac -= np.floor(frac)
    return np.einsum("fnj,fjk->fnk", frac, cells)


def random_walk_system(rng, n_ions=64, n_fw=32, F=2000, dt_fs=10.0, D_A2_ps=0.5, wrapped=True):
    """Na random walkers with a set D plus a vibrating Cl framework; all atoms drift; NPT-like cell."""
    step = np.sqrt(2 * D_A2_ps * dt_fs / 1000.0)  # per-dimension step std (Å) for MSD = 6 D t
    t = np.arange(F)
    cells = np.diag([14.0, 15.0, 16.0])[None] * (1 + 0.03 * np.sin(2 * np.pi * t / 97.0))[:, None, None]
    na = rng.random((n_ions, 3)) * 14 + np.cumsum(step * rng.standard_normal((F, n_ions, 3)), axis=0)
    cl = rng.random((n_fw, 3)) * 14 + 0.1 * rng.standard_normal((F, n_fw, 3))
    drift = (0.002 * t)[:, None, None] * np.array([1.0, -0.5, 0.3])
    pos = np.concatenate([na, cl], axis=1) + drift
    if wrapped:
        pos = wrap(pos, cells)
    symbols = ["Na"] * n_ions + ["Cl"] * n_fw
    masses = np.array([22.99] * n_ions + [35.45] * n_fw)
    return ArrayTrajectory(pos, cells, t * dt_fs, symbols, masses, wrapped=wrapped), cells


def test_random_walk_recovers_set_D_with_wrapped_positions_and_fluctuating_cell():
    rng = np.random.default_rng(11)
    D_true = 0.5  # Å²/ps
    traj, cells = random_walk_system(rng, D_A2_ps=D_true)
    res = analyze_trajectory(traj, "Na", 600.0, chunk_frames=300)
    s = res.summary
    D_true_cm2_s = D_true * 1e-4
    assert s["n_ions"] == 64 and s["drift_correction"] == "framework"
    assert abs(s["diffusivity_cm2_s"] - D_true_cm2_s) < 3 * s["diffusivity_stderr_cm2_s"]
    assert s["diffusivity_stderr_cm2_s"] < 0.15 * D_true_cm2_s
    # independent walkers: Haven ratio ~1 (the collective MSD is a single noisy series)
    assert 0.4 < s["haven_ratio"] < 2.5
    # default window 10-50 % of the duration
    assert s["fit_start_ps"] == pytest.approx(0.1 * s["duration_ps"], abs=0.011)
    assert s["fit_end_ps"] == pytest.approx(0.5 * s["duration_ps"], abs=0.011)
    assert s["volume_A3"] == pytest.approx(np.abs(np.linalg.det(cells)).mean())
    assert res.curves["msd_A2"].shape == res.curves["lag_ps"].shape


def test_stderr_is_honest_and_naive_ols_is_not():
    """Over independent realizations, (D − D_true)/stderr has unit spread; naive OLS errors are far too small."""
    rng = np.random.default_rng(12)
    D_true, dt_fs, F, n = 1.0, 20.0, 400, 12
    step = np.sqrt(2 * D_true * dt_fs / 1000.0)
    z, z_naive, z_sigma = [], [], []
    for _ in range(40):
        disp = np.cumsum(step * rng.standard_normal((n, 3, F)), axis=2)
        s = analyze_displacements(disp, dt_fs, 500.0, np.full(F, 1000.0)).summary
        err = s["diffusivity_cm2_s"] - D_true * 1e-4
        z.append(err / s["diffusivity_stderr_cm2_s"])
        z_naive.append(err / s["diffusivity_ols_naive_stderr_cm2_s"])
        # independent walkers: charge diffusivity = tracer diffusivity in expectation
        z_sigma.append((s["charge_diffusivity_cm2_s"] - D_true * 1e-4) / s["charge_diffusivity_stderr_cm2_s"])
    assert abs(np.mean(z)) < 0.6
    assert 0.6 < np.std(z) < 1.5
    assert np.std(z_naive) > 2.0
    # block stderr of the single collective series: median |z| near 0.67 (heavy tails from 8 blocks)
    assert 0.4 < np.median(np.abs(z_sigma)) < 1.2


def test_nernst_einstein_by_hand_uses_mean_volume():
    # σ = n e² D / (k_B T) written out in SI: 96 Na, D = 1e-5 cm²/s, T = 500 K
    e, kB, NA, R = 1.602176634e-19, 1.380649e-23, 6.02214076e23, 8.314462618
    volumes = np.array([9000.0, 9300.0, 9600.0])
    n_m3 = 96 / (volumes.mean() * 1e-30)
    by_hand_mS_cm = n_m3 * e**2 * 1e-5 * 1e-4 / (kB * 500.0) * 10
    assert nernst_einstein_mS_cm(1e-5, 96, volumes.mean(), 500.0) == pytest.approx(by_hand_mS_cm, rel=1e-9)
    # pymatgen's own formula (molar form) gives the same number
    pmg = 1000 * 96 / (volumes.mean() * 1e-24 * NA) * (NA * e) ** 2 / (R * 500.0) * 1e-5
    assert by_hand_mS_cm == pytest.approx(pmg, rel=1e-6)
    # and the analysis uses the mean over frames, not the first frame
    rng = np.random.default_rng(13)
    disp = np.cumsum(0.2 * rng.standard_normal((8, 3, 300)), axis=2)
    vols = np.linspace(9000, 9600, 300)
    s = analyze_displacements(disp, 10.0, 500.0, vols).summary
    assert s["volume_A3"] == pytest.approx(vols.mean())
    assert s["conductivity_mS_cm"] == pytest.approx(nernst_einstein_mS_cm(s["diffusivity_cm2_s"], 8, vols.mean(), 500.0))


def test_half_mobile_half_vibrating_gives_active_fraction_half():
    rng = np.random.default_rng(14)
    F, n = 1000, 20
    disp = np.empty((n, 3, F))
    disp[:10] = np.cumsum(0.3 * rng.standard_normal((10, 3, F)), axis=2)  # ~9·10³·... Å²: far past 21 Å²
    disp[10:] = 0.3 * rng.standard_normal((10, 3, F))  # vibrating: |Δr|² ≲ 2 Å²
    disp -= disp[:, :, :1]
    s = analyze_displacements(disp, 10.0, 500.0, np.full(F, 2000.0)).summary
    assert s["n_active"] == 10 and s["active_fraction"] == pytest.approx(0.5)
    s2 = analyze_displacements(disp, 10.0, 500.0, np.full(F, 2000.0), active_normalization=40).summary
    assert s2["active_fraction"] == pytest.approx(0.25)


def test_matches_pymatgen_diffusion_analyzer_on_its_lag_grid():
    pytest.importorskip("pymatgen.analysis.diffusion.analyzer")
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer, get_diffusivity_from_msd
    from pymatgen.core import Lattice, Structure

    

    rng = np.random.default_rng(15)
    traj, _ = random_walk_system(rng, n_ions=24, n_fw=16, F=1500, dt_fs=20.0, wrapped=False)
    res = analyze_trajectory(traj, "Na", 600.0)
    pos = traj.positions()
    disp = (pos - pos[:1]).transpose(1, 0, 2)  # (sites, steps, 3) as pymatgen wants
    lattice = Lattice(traj.cells_A[0])
    structure = Structure(lattice, traj.symbols, pos[0], coords_are_cartesian=True)
    da = DiffusionAnalyzer(structure, disp, "Na", 600.0, time_step=20, step_skip=1, smoothed="max")
    lag_index = (da.dt / 20.0).astype(int)
    ours = res.curves["msd_A2"][lag_index]
    assert np.allclose(ours, da.msd, rtol=1e-2)
    assert np.allclose(res.curves["msd_collective_A2"][lag_index], da.mscd, rtol=1e-2)
    # the same weighted fit on the same points gives the same D
    D_ours, _ = get_diffusivity_from_msd(ours, da.dt, "max")
    assert D_ours == pytest.approx(da.diffusivity, rel=1e-2)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p[:0], "no frames"),
        (lambda p: p[:1], "frame"),
    ],
)
def test_empty_and_one_frame_trajectories_are_clear_errors(mutate, message):
    rng = np.random.default_rng(16)
    traj, _ = random_walk_system(rng, n_ions=4, n_fw=4, F=10)
    short = ArrayTrajectory(mutate(traj.positions_A), mutate(traj.cells_A), mutate(traj.times_fs), traj.symbols, traj.masses)
    with pytest.raises(SuperionError, match=message):
        analyze_trajectory(short, "Na", 500.0)


def test_bad_inputs_are_clear_errors():
    rng = np.random.default_rng(17)
    traj, _ = random_walk_system(rng, n_ions=4, n_fw=4, F=100)
    with pytest.raises(SuperionError, match="species 'Li' not in the trajectory"):
        analyze_trajectory(traj, "Li", 500.0)
    with pytest.raises(SuperionError, match="temperature must be positive"):
        analyze_trajectory(traj, "Na", -5.0)
    with pytest.raises(SuperionError, match="temperature unknown"):
        analyze_trajectory(traj, "Na", None)
    with pytest.raises(SuperionError, match="outside the trajectory"):
        analyze_trajectory(traj, "Na", 500.0, fit_start_ps=0.5, fit_end_ps=50.0)
    with pytest.raises(SuperionError, match="outside the trajectory"):
        analyze_trajectory(traj, "Na", 500.0, fit_start_ps=0.5, fit_end_ps=0.2)
    with pytest.raises(SuperionError, match="MSD point"):
        analyze_trajectory(traj, "Na", 500.0, fit_start_ps=0.1, fit_end_ps=0.11)


def test_default_fit_window_skips_the_cage_rise():
    from superion.analysis.diffusion import MIN_FIT_START_PS, fit_window

    # a 1.1 ps run: 10 % would start at 0.11 ps, inside the Na cage rise
    start, end = fit_window(1.1, None, None)
    assert start == MIN_FIT_START_PS and end == 0.55
    # long runs: 10 % is already past it
    assert fit_window(100.0, None, None) == (10.0, 50.0)
    # a run too short for the floor fits the second half of [0, 50 %] rather than failing
    assert fit_window(0.2, None, None) == (0.05, 0.1)
    assert fit_window(0.55, None, None) == pytest.approx((0.1375, 0.275))
    # an explicit start is never moved
    assert fit_window(1.1, 0.05, None)[0] == 0.05
