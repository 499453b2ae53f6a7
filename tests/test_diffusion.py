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
    # window from the data: free walkers are diffusive from the first lags; the end keeps 3 origins
    assert s["regime"] == "diffusive" and s["fit_window_source"] == "data" and s["fit_window_found"]
    assert s["fit_end_ps"] == pytest.approx(s["duration_ps"] / 3, abs=0.011)
    lo, hi = s["diffusivity_ci95_cm2_s"]
    assert lo < D_true_cm2_s < hi
    assert res.curves["beta"].shape == res.curves["beta_lag_ps"].shape and np.all(np.abs(res.curves["beta"] - 1) < 0.2)
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
        s = analyze_displacements(disp, dt_fs, 500.0, np.full(F, 1000.0), hop_length_A=1.0).summary
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
    s = analyze_displacements(disp, 10.0, 500.0, vols, hop_length_A=1.0).summary
    assert s["volume_A3"] == pytest.approx(vols.mean())
    assert s["conductivity_mS_cm"] == pytest.approx(nernst_einstein_mS_cm(s["diffusivity_cm2_s"], 8, vols.mean(), 500.0))


def test_half_mobile_half_vibrating_gives_active_fraction_half():
    rng = np.random.default_rng(14)
    F, n = 1000, 20
    disp = np.empty((n, 3, F))
    disp[:10] = np.cumsum(0.3 * rng.standard_normal((10, 3, F)), axis=2)  # ~9·10³·... Å²: far past 21 Å²
    disp[10:] = 0.3 * rng.standard_normal((10, 3, F))  # vibrating: |Δr|² ≲ 2 Å²
    disp -= disp[:, :, :1]
    s = analyze_displacements(disp, 10.0, 500.0, np.full(F, 2000.0), hop_length_A=3.0).summary
    assert s["n_active"] == 10 and s["active_fraction"] == pytest.approx(0.5)
    # Clopper-Pearson 95 % for 10/20 (textbook value 0.272-0.728)
    assert s["active_fraction_ci95"] == pytest.approx([0.2720, 0.7280], abs=2e-4)
    s2 = analyze_displacements(disp, 10.0, 500.0, np.full(F, 2000.0), active_normalization=40, hop_length_A=3.0).summary
    assert s2["active_fraction"] == pytest.approx(0.25)
    assert s2["active_fraction_ci95"] == pytest.approx([0.1360, 0.3640], abs=2e-4)


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
    with pytest.raises(SuperionError, match="not before its end"):
        analyze_trajectory(traj, "Na", 500.0, fit_start_ps=0.5, fit_end_ps=0.2)
    with pytest.raises(SuperionError, match="lag"):
        analyze_trajectory(traj, "Na", 500.0, fit_start_ps=0.1, fit_end_ps=0.11)


def synthetic_summary(run, T=700.0, **kw):
    """analyze_displacements on a synthetic run, with its first frame and cells (hops counted)."""
    pos = run.positions_A
    disp = pos - pos[:, :, :1]
    vol = np.abs(np.linalg.det(run.cells_A))
    return analyze_displacements(disp, run.dt_ps * 1000.0, T, vol, start_positions_A=pos[:, :, 0], cells_A=run.cells_A, **kw)


def test_caged_run_is_a_bound_with_null_D_and_diffusive_run_covers_truth():
    from superion.analysis.synthetic import caged_only, lattice_hopping

    caged = synthetic_summary(caged_only(16, 2000, 0.005, hop_length_A=3.4, seed=3, unwrap="affine")).summary
    assert caged["regime"] in ("immobile", "subdiffusive")
    assert caged["diffusivity_cm2_s"] is None and caged["conductivity_mS_cm"] is None and caged["haven_ratio"] is None
    ub = caged["diffusivity_upper_bound_cm2_s"]
    assert ub > 0 and caged["conductivity_upper_bound_mS_cm"] > 0
    assert "upper limit" in caged["diffusivity_upper_bound_method"]
    # from the rattled first frame of the structure (not a constant): about one site spacing
    assert 0.75 * 3.4 < caged["hop_length_A"] < 1.5 * 3.4
    assert caged["n_hops"] == 0 and caged["hop_rate_ci95_per_s"][0] == 0.0 and caged["hop_rate_ci95_per_s"][1] > 0
    assert caged["correlation_factor"] is None
    assert any("Na motion is" in w and "upper bound" in w for w in caged["warnings"])
    # the vibration MSD at 1 ps is resolved with an interval even though D is not
    lo, hi = caged["msd_ref_ci95_A2"]
    assert caged["msd_ref_lag_ps"] == pytest.approx(1.0) and lo <= caged["msd_ref_A2"] <= hi and hi < 1.0

    run = lattice_hopping(16, 8000, 0.005, 2.0, hop_length_A=3.0, seed=4, unwrap="affine")
    res = synthetic_summary(run, species="Li")
    d = res.summary
    assert d["regime"] == "diffusive" and d["diffusivity_upper_bound_cm2_s"] is None
    lo, hi = d["diffusivity_ci95_cm2_s"]
    assert lo < run.D_true_cm2_s < hi
    assert "GLS" in d["fit_method"] and d["fit_window_rule"]
    assert lo < d["diffusivity_cm2_s"] < hi and d["conductivity_ci95_mS_cm"][0] < d["conductivity_mS_cm"]
    # hops: the true count is recovered within its Poisson interval; correlation factor ~1 for a random walk
    n_true = int(run.n_hops.sum())
    assert d["n_hops"] == pytest.approx(n_true, rel=0.1)
    f_lo, f_hi = d["correlation_factor_ci95"]
    assert f_lo < 1.0 < f_hi
    # 16 ions on 64 lattice sites: the empty sites the ions pass through are found as density maxima
    assert d["n_start_sites"] + d["n_interstitial_sites"] == len(run.sites_frac)
    assert res.curves["fit_window_ps"].tolist() == [d["fit_start_ps"], d["fit_end_ps"]]


def test_msd_reference_lag_falls_back_for_short_runs_and_says_so():
    from superion.analysis.diffusion import msd_at_reference_lag

    rng = np.random.default_rng(5)
    pos = np.cumsum(0.1 * rng.standard_normal((10, 3, 101)), axis=2)  # 100 frames of 10 fs = 1 ps
    r = msd_at_reference_lag(pos, 0.01, 1.0)
    assert r["msd_ref_lag_ps"] == pytest.approx(0.5) and "shorter than 2 x" in r["msd_ref_note"]
    r2 = msd_at_reference_lag(pos, 0.01, 0.2)
    assert r2["msd_ref_lag_ps"] == pytest.approx(0.2) and r2["msd_ref_note"] is None
    # the per-ion mean by hand, and a bootstrap interval around it
    m = ((pos[:, :, 20:] - pos[:, :, :-20]) ** 2).sum(axis=1).mean(axis=1)
    assert r2["msd_ref_A2"] == pytest.approx(m.mean())
    assert r2["msd_ref_ci95_A2"][0] < m.mean() < r2["msd_ref_ci95_A2"][1]
    with pytest.raises(SuperionError, match="reference lag must be positive"):
        msd_at_reference_lag(pos, 0.01, 0.0)


def test_hop_length_is_required_without_a_structure():
    disp = np.cumsum(np.random.default_rng(6).standard_normal((4, 3, 50)), axis=2)
    with pytest.raises(SuperionError, match="hop length unknown"):
        analyze_displacements(disp, 10.0, 600.0, np.full(50, 1000.0))
