"""Regime classification, hop length from the structure, data-driven fit window, upper bounds."""

from __future__ import annotations

import numpy as np
import pytest

from superion.analysis.diffusion_stats import diffusion_statistics
from superion.analysis.moments import ion_spectra, non_gaussian_alpha2
from superion.analysis.regime import classify_regime, diffusivity_upper_bound, hop_length_A
from superion.analysis.synthetic import caged_only, free_walkers, lattice_hopping
from superion.analysis.window import fit_window_from_msd, local_exponent
from superion.errors import SuperionError


def stats(run, h=3.0, species="Na"):
    return diffusion_statistics(run.positions_A, run.dt_ps, h, species=species)


def test_hop_length_from_the_structure():
    # simple cubic a = 3 Å in a 2x2x2 cell; bcc sublattice: nearest neighbours at a√3/2
    g = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3) / 2.0
    assert hop_length_A(g, np.eye(3) * 6.0) == pytest.approx(3.0)
    bcc = np.array([[0, 0, 0], [0.5, 0.5, 0.5]])
    assert hop_length_A(bcc, np.eye(3) * 4.0) == pytest.approx(4.0 * np.sqrt(3) / 2)
    # a partially occupied sublattice: occupied positions are farther apart than the sites
    occupied = g[[0, 7]]
    assert hop_length_A(occupied, np.eye(3) * 6.0) > 5.0
    assert hop_length_A(occupied, np.eye(3) * 6.0, sites_frac=g) == pytest.approx(3.0)
    # one ion: its own periodic image is the neighbour
    assert hop_length_A([[0.1, 0.2, 0.3]], np.diag([3.0, 4.0, 5.0])) == pytest.approx(3.0)
    # a triclinic cell: the neighbour across the skewed face is found through the 27 images
    h = np.array([[4.0, 0, 0], [3.9, 1.0, 0], [0, 0, 10.0]])
    assert hop_length_A([[0.0, 0.0, 0.0]], h) == pytest.approx(np.hypot(0.1, 1.0))


def test_caged_only_is_not_diffusive_and_gets_a_valid_upper_bound():
    s = stats(caged_only(32, 2000, 0.01, seed=1), species="Li")
    assert s["regime"] in ("immobile", "subdiffusive")
    assert s["diffusivity_cm2_s"] is None
    assert s["diffusivity_upper_bound_cm2_s"] > 0
    assert any("Li-Li hop" in w for w in s["warnings"])
    # large slow rattling (OU, 0.6 Å rms, 0.05 ps): still not diffusive
    s2 = stats(caged_only(32, 2000, 0.01, rattle_rms_A=0.6, rattle_tau_ps=0.05, seed=2))
    assert s2["regime"] in ("immobile", "subdiffusive")


def test_hopping_and_free_walkers_are_diffusive():
    run = lattice_hopping(32, 2000, 0.01, 5.0, seed=3)
    s = stats(run)
    assert s["regime"] == "diffusive" and s["fit_window_found"]
    assert abs(s["diffusivity_cm2_s"] - run.D_true_cm2_s) < 3 * s["diffusivity_stderr_cm2_s"]
    free = free_walkers(16, 2000, 0.01, 2.0, seed=4)
    s = stats(free)
    assert s["regime"] == "diffusive"
    assert s["fit_start_ps"] <= 0.02  # a pure random walk is linear from the first lag


def test_rare_hops_give_an_upper_bound_above_the_true_D():
    bounds_ok = 0
    for k in range(20):
        run = lattice_hopping(24, 2000, 0.01, 0.02, seed=(5, k))  # ~0.4 hops per ion in the run
        s = stats(run)
        assert s["regime"] != "diffusive"
        bounds_ok += s["diffusivity_upper_bound_cm2_s"] >= run.D_true_cm2_s
    assert bounds_ok >= 18  # one-sided 95 %


def test_strong_back_hops_delay_the_window_start():
    """f = 0.54 (p = 0.3): MSD bends over ~1/Γ; the start must wait until β has recovered."""
    run = lattice_hopping(64, 10000, 0.01, 2.0, back_hop_prob=0.3, seed=6)
    tau = 1.0 / 2.0
    s = stats(run)
    assert s["regime"] == "diffusive"
    assert s["fit_start_ps"] >= 3 * tau
    assert abs(s["diffusivity_cm2_s"] / run.D_true_cm2_s - 1) < 0.1


def test_window_rule_and_overrides():
    run = lattice_hopping(32, 3000, 0.01, 3.0, seed=7)
    sp = ion_spectra(run.positions_A)
    t = np.arange(3000) * 0.01
    w = fit_window_from_msd(t, sp.mean_A2, run.duration_ps, n_ions=32, dt_ps=0.01)
    assert w.found and w.source == "data"
    assert w.end_ps == pytest.approx(run.duration_ps / 3)
    assert "duration/3" in w.rule and "exponent" in w.rule
    g, beta = local_exponent(t, sp.mean_A2, t_max_ps=w.end_ps)
    assert np.all(beta[g >= w.start_ps] >= 0.5)
    # α2 peak condition: the start never precedes the α2 maximum
    lags = np.unique(np.geomspace(1, 999, 25).astype(int))
    a2 = non_gaussian_alpha2(run.positions_A, lags)
    w2 = fit_window_from_msd(t, sp.mean_A2, run.duration_ps, n_ions=32, dt_ps=0.01, alpha2=(lags * 0.01, a2))
    assert w2.start_ps >= lags[np.argmax(a2)] * 0.01 - 1e-12 and "alpha2" in w2.rule
    u = fit_window_from_msd(t, sp.mean_A2, run.duration_ps, start_ps=1.0, end_ps=8.0)
    assert (u.start_ps, u.end_ps, u.source) == (1.0, 8.0, "user")
    with pytest.raises(SuperionError, match="outside the trajectory"):
        fit_window_from_msd(t, sp.mean_A2, run.duration_ps, end_ps=40.0)
    with pytest.raises(SuperionError, match="not before its end"):
        fit_window_from_msd(t, sp.mean_A2, run.duration_ps, start_ps=12.0)
    with pytest.raises(SuperionError, match="duration must be positive"):
        fit_window_from_msd(t, sp.mean_A2, 0.0)


def test_upper_bound_definition():
    m = np.array([1.0, 2.0, 3.0, 2.0])
    ub = diffusivity_upper_bound(2.0, m)
    # mean 2, sd 0.8165, t(0.95, 3) = 2.3534: U = 2 + 2.3534 * 0.8165 / 2 = 2.9608 Å² → / (6 * 2 ps) → cm²/s
    assert ub["diffusivity_upper_bound_cm2_s"] == pytest.approx(2.9608 / 12 * 1e-4, rel=1e-4)
    one = diffusivity_upper_bound(1.0, [3.0], n_frames=1000, dt_ps=0.01)
    assert one["diffusivity_upper_bound_cm2_s"] > 3.0 / 6 * 1e-4
    with pytest.raises(SuperionError, match="needs n_frames"):
        diffusivity_upper_bound(1.0, [3.0])


def test_regime_bad_input():
    run = lattice_hopping(4, 200, 0.01, 5.0, seed=8)
    sp = ion_spectra(run.positions_A)
    t = np.arange(200) * 0.01
    w = fit_window_from_msd(t, sp.mean_A2, run.duration_ps)
    for h in (0.0, -1.0, None):
        with pytest.raises(SuperionError, match="hop length must be positive"):
            classify_regime(t, sp.mean_A2, w, h)
    with pytest.raises(SuperionError, match="no mobile-ion positions"):
        hop_length_A(np.zeros((0, 3)), np.eye(3))
    with pytest.raises(SuperionError, match="non-singular"):
        hop_length_A([[0, 0, 0]], np.zeros((3, 3)))
    with pytest.raises(SuperionError, match="at least 8"):
        diffusion_statistics(run.positions_A[:, :, :5], 0.01, 3.0)
