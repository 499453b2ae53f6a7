"""GLS diffusivity: exact MSD covariance, recovery of D, calibrated coverage, narrower than per-ion spread."""

from __future__ import annotations

import numpy as np
import pytest

from superion.analysis.diffusion_stats import diffusion_statistics
from superion.analysis.gls import (
    _satterthwaite_ci,
    diffusion_gls,
    fit_gls,
    msd_covariance_A4,
    noise_acf_from_msd,
    window_indices,
)
from superion.analysis.moments import displacement_moments_A, ion_spectra, log_lags, msd_per_ion_A2
from superion.analysis.synthetic import free_walkers, lattice_hopping
from superion.errors import SuperionError


def brute_covariance(lags, F, dt, D, acf):
    """Exact covariance of the all-origin MSD of one 3-D Gaussian walker plus stationary Gaussian
    vibration (autocovariance acf per direction): Cov(|a|², |b|²) = 6 c_ab² summed over origin pairs."""
    K = len(acf) - 1

    def c(k):
        return acf[abs(k)] if abs(k) <= K else 0.0

    C = np.zeros((len(lags), len(lags)))
    for i, m in enumerate(lags):
        for j, n in enumerate(lags):
            tot = 0.0
            for t in range(F - m):
                for s in range(F - n):
                    ov = max(0, min(t + m, s + n) - max(t, s))
                    ce = c(t + m - s - n) - c(t + m - s) - c(t - s - n) + c(t - s)
                    tot += 6.0 * (2.0 * D * dt * ov + ce) ** 2
            C[i, j] = tot / ((F - m) * (F - n))
    return C


@pytest.mark.parametrize("acf", [[0.0], [0.3], [0.3, 0.2, 0.1, 0.05], [0.3, -0.1]])
def test_covariance_is_exact_for_gaussian_walkers_including_long_lags(acf):
    F, lags = 23, [1, 2, 5, 9, 12, 15, 20]  # 15 + 20 > F: the clipped origin-pair counts are exercised
    ours = msd_covariance_A4(lags, F, 1, 0.1, 0.7, noise_acf_A2=np.array(acf))
    ref = brute_covariance(lags, F, 0.1, 0.7, acf)
    assert np.max(np.abs(ours - ref)) < 1e-12 * np.max(np.abs(ref))
    # white vibration: closed form and the general kernel agree; n ions divide by n
    white = msd_covariance_A4(lags, F, 4, 0.1, 0.7, noise_var_A2=acf[0])
    assert np.allclose(white, msd_covariance_A4(lags, F, 1, 0.1, 0.7, noise_acf_A2=np.array(acf[:1])) / 4, rtol=1e-12)


def test_kurtosis_term_matches_lattice_hops():
    """Hops of one length a: Var(|Δr|²) = (2/3) M² + a² M; the MSD variance at one lag over many runs agrees."""
    rng_runs = [lattice_hopping(16, 60, 0.01, 30.0, rattle_rms_A=0.0, breathing=0.0, cell_noise=0.0, seed=k) for k in range(400)]
    lag = 10
    vals = np.array([msd_per_ion_A2(r.positions_A)[:, lag].mean() for r in rng_runs])
    D = 30.0 * 9.0 / 6.0
    pred = msd_covariance_A4([lag], 60, 16, 0.01, D, kurtosis_A2=9.0)[0, 0]
    gauss = msd_covariance_A4([lag], 60, 16, 0.01, D)[0, 0]
    assert vals.var(ddof=1) == pytest.approx(pred, rel=0.2)
    assert vals.var(ddof=1) > 1.5 * gauss  # without the jump term the variance is far too small


def test_gls_recovers_D_of_free_walkers():
    run = free_walkers(64, 3000, 0.01, 0.8, seed=3)
    res = diffusion_gls(run.positions_A, 0.01, 0.05, run.duration_ps / 3)
    assert abs(res.D_cm2_s - run.D_true_cm2_s) < 3 * res.stderr_cm2_s
    assert res.stderr_cm2_s < 0.05 * run.D_true_cm2_s
    lo, hi = res.ci95_cm2_s
    assert lo < res.D_cm2_s < hi
    assert res.converged and res.kurtosis_A2 < 0.5  # Gaussian steps: no jump kurtosis
    # the naive OLS error is far too small, per-ion spread is larger than GLS
    assert res.ols_naive_stderr_cm2_s < 0.3 * res.stderr_cm2_s
    assert res.per_ion_stderr_cm2_s > res.stderr_cm2_s


def test_satterthwaite_interval_is_exact_for_scaled_chi2():
    rng = np.random.default_rng(5)
    nu, s_true, hits = 12.0, 2.0, 0
    for _ in range(2000):
        s_hat = s_true * rng.chisquare(nu) / nu
        lo, hi, _ = _satterthwaite_ci(s_hat, (2.0 / nu, 0.0, 0.0))
        hits += lo <= s_true <= hi
    assert abs(hits / 2000 - 0.95) < 0.015
    # with a variance that is not ∝ s² the root-finding branch is used and gives a wider, valid interval
    lo, hi, _ = _satterthwaite_ci(2.0, (2.0 / nu, 0.05, 0.0))
    lo0, hi0, _ = _satterthwaite_ci(2.0, (2.0 / nu, 0.0, 0.0))
    assert lo < lo0 < 2.0 < hi0 < hi


def test_noise_acf_from_msd_reads_the_vibration_memory():
    k = np.arange(40)
    c0, tau, s = 0.05, 4.0, 0.1
    msd = s * k + 6 * c0 * (1 - np.exp(-k / tau))
    acf = noise_acf_from_msd(msd, s, 6 * c0)
    assert acf[0] == pytest.approx(c0)
    assert np.allclose(acf, c0 * np.exp(-np.arange(len(acf)) / tau), atol=1e-12)
    assert len(acf) - 1 == int(np.floor(tau * np.log(20)))  # kept while above 5 % of c(0)


def test_coverage_at_ci_size_and_narrower_than_per_ion_spread():
    """200 replicas of 8 ions x 200 frames through the full pipeline: coverage within binomial
    tolerance of 95 % (3 sigma: 0.90-0.99), and the GLS interval narrower than +-1.96 per-ion spread."""
    hits, w_gls, w_ion, n_diff = 0, [], [], 0
    for r in range(200):
        run = lattice_hopping(8, 200, 0.01, 10.0, seed=(77, r))
        s = diffusion_statistics(run.positions_A, run.dt_ps, 3.0)
        if s["regime"] != "diffusive":
            continue
        n_diff += 1
        lo, hi = s["diffusivity_ci95_cm2_s"]
        hits += lo <= run.D_true_cm2_s <= hi
        w_gls.append(hi - lo)
        w_ion.append(2 * 1.96 * s["diffusivity_per_ion_stderr_cm2_s"])
    assert n_diff >= 190
    cov = hits / n_diff
    assert 0.90 <= cov <= 0.99, cov
    assert np.mean(w_gls) < 0.8 * np.mean(w_ion)


def test_fit_gls_kurtosis_from_moments_and_lag_subsampling():
    run = lattice_hopping(32, 4000, 0.01, 2.0, seed=9)
    sp = ion_spectra(run.positions_A)
    lags = log_lags(20, 1333, 200)
    assert len(lags) == 200 and lags[0] == 20 and lags[-1] == 1333
    kl = np.array([20, 30, 40, 60])
    res = fit_gls(lags, sp.mean_A2[lags], 4000, 0.01, 32, moments=(kl, *displacement_moments_A(run.positions_A, kl)))
    assert res.kurtosis_A2 == pytest.approx(9.0, rel=0.25)  # hop length² for hops of one length
    assert abs(res.D_cm2_s - run.D_true_cm2_s) < 3.5 * res.stderr_cm2_s


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: window_indices(0.0, 5.0, 0.01, 100), "outside the trajectory"),
        (lambda: window_indices(0.5, 0.2, 0.01, 100), "or empty"),
        (lambda: window_indices(0.10, 0.11, 0.01, 100), "holds 2 lag"),
        (lambda: window_indices(0.1, 0.5, 0.0, 100), "frame interval must be positive"),
        (lambda: fit_gls([1, 2], [1.0, 2.0], 100, 0.01, 4), "at least 3 MSD points"),
        (lambda: fit_gls([1, 2, 3], [1.0, 2.0, 3.0], 100, 0.01, 0), "no mobile ions"),
        (lambda: fit_gls([1, 2, 3], [1.0, np.nan, 3.0], 100, 0.01, 2), "NaN"),
        (lambda: diffusion_gls(np.zeros((0, 3, 50)), 0.01, 0.01, 0.2), "no mobile ions"),
        (lambda: diffusion_gls(np.zeros((3, 3, 1)), 0.01, 0.0, 0.0), "1 frame"),
        (lambda: diffusion_statistics(np.random.default_rng(0).random((3, 3, 100)), 0.01, 0.0), "hop length must be positive"),
    ],
)
def test_bad_input_is_a_superion_error(call, match):
    with pytest.raises(SuperionError, match=match):
        call()


def test_large_runs_without_per_ion_spectra_still_get_D_and_bounds():
    """Beyond ~2 GB of per-ion spectra only the mean MSD is kept: GLS is unchanged, the per-ion
    comparison is skipped, and the upper bound uses the per-ion MSD at one lag computed directly."""
    from superion.analysis.synthetic import caged_only

    run = lattice_hopping(16, 1000, 0.01, 5.0, seed=31)
    full = diffusion_statistics(run.positions_A, 0.01, 3.0)
    lean = diffusion_statistics(run.positions_A, 0.01, 3.0, spectra=ion_spectra(run.positions_A, per_ion=False))
    assert lean["diffusivity_cm2_s"] == pytest.approx(full["diffusivity_cm2_s"], rel=1e-10)
    assert lean["diffusivity_per_ion_stderr_cm2_s"] is None and full["diffusivity_per_ion_stderr_cm2_s"] > 0
    cage = caged_only(16, 1000, 0.01, seed=32)
    a = diffusion_statistics(cage.positions_A, 0.01, 3.0)
    b = diffusion_statistics(cage.positions_A, 0.01, 3.0, spectra=ion_spectra(cage.positions_A, per_ion=False))
    assert b["diffusivity_upper_bound_cm2_s"] == pytest.approx(a["diffusivity_upper_bound_cm2_s"], rel=1e-9)
    with pytest.raises(SuperionError, match="per-ion spectra were not kept"):
        ion_spectra(cage.positions_A, per_ion=False).window_sums(5, 5, [1.0])
