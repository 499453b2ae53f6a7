"""Arrhenius fits over diffusive runs only, resolved/not-resolved rules, hop-rate fits with Poisson errors."""

from __future__ import annotations

import numpy as np
import pytest

from superion.analysis.arrhenius_stats import (
    K_B_EV_K,
    arrhenius_from_regimes,
    fit_arrhenius_log,
    fit_arrhenius_rates,
    interval_resolved,
)
from superion.errors import SuperionError


def point(T, Ea=0.25, D0=1e-2, rel=0.1, regime="diffusive", ub=None):
    D = D0 * np.exp(-Ea / (K_B_EV_K * T))
    if regime != "diffusive":
        return {"temperature_K": T, "regime": regime, "diffusivity_cm2_s": None, "diffusivity_ci95_cm2_s": None,
                "diffusivity_upper_bound_cm2_s": ub if ub is not None else 3 * D}
    return {"temperature_K": T, "regime": regime, "diffusivity_cm2_s": D,
            "diffusivity_ci95_cm2_s": [D * np.exp(-1.96 * rel), D * np.exp(1.96 * rel)]}


def test_exact_points_recover_Ea_and_extrapolate():
    pts = [point(T) for T in (500, 600, 700, 800)]
    r = arrhenius_from_regimes(pts, target_K=300)
    assert r["resolved"] and r["Ea_eV"] == pytest.approx(0.25, abs=1e-9)
    assert r["D0_cm2_s"] == pytest.approx(1e-2, rel=1e-9)
    D300 = 1e-2 * np.exp(-0.25 / (K_B_EV_K * 300))
    assert r["diffusivity_300K_cm2_s"] == pytest.approx(D300, rel=1e-9)
    lo, hi = r["diffusivity_300K_ci95_cm2_s"]
    assert lo < D300 < hi


def test_upper_bound_points_are_excluded_and_checked():
    pts = [point(T) for T in (600, 700, 800)] + [point(400, regime="immobile", ub=1e-20), point(450, regime="subdiffusive")]
    r = arrhenius_from_regimes(pts)
    assert r["n_diffusive"] == 3 and r["Ea_eV"] == pytest.approx(0.25, abs=1e-9)
    assert [p["used"] for p in r["points"]] == [True, True, True, False, False]
    assert any("400 K" in w and "exceeds the upper bound" in w for w in r["warnings"])
    assert not any("450 K" in w for w in r["warnings"])  # that bound (3x the line) is respected


def test_fewer_than_three_diffusive_temperatures_is_not_resolved():
    pts = [point(700), point(800), point(500, regime="immobile")]
    r = arrhenius_from_regimes(pts)
    assert r["resolved"] is False and r["Ea_eV"] is None
    assert "2 temperature(s)" in r["not_resolved_reason"]


def test_extrapolation_spanning_more_than_two_decades_is_not_resolved():
    assert interval_resolved([1e-9, 5e-8])["resolved"] is True
    bad = interval_resolved([1e-10, 2e-8])
    assert bad["resolved"] is False and bad["decades"] == pytest.approx(np.log10(200))
    assert "decades" in bad["not_resolved_reason"]
    # noisy high-T points extrapolated far: the 300 K interval is wide and flagged
    pts = [point(T, rel=0.6) for T in (700, 750, 800)]
    r = arrhenius_from_regimes(pts, target_K=300)
    assert r["resolved"] is True and r["diffusivity_300K_resolved"] is False


def test_weighted_fit_errors_scale_with_point_errors():
    T = np.array([500.0, 600, 700, 800])
    y = 1e-2 * np.exp(-0.3 / (K_B_EV_K * T)) * np.array([1.05, 0.97, 1.02, 0.99])
    a = fit_arrhenius_log(T, y, np.full(4, 0.05))
    b = fit_arrhenius_log(T, y, np.full(4, 0.5))
    assert b["Ea_stderr_eV"] > 5 * a["Ea_stderr_eV"]
    with pytest.raises(SuperionError):
        fit_arrhenius_log(T, -y, np.full(4, 0.1))
    with pytest.raises(SuperionError, match="2 different temperatures"):
        fit_arrhenius_log([500.0, 500.0], [1.0, 2.0], [0.1, 0.1])


def test_hop_rate_fit_with_poisson_errors_and_zero_hop_runs():
    T = np.array([500.0, 600, 700, 800, 400])
    G = 1e13 * np.exp(-0.2 / (K_B_EV_K * T))  # s⁻¹
    exposure_s = 96 * 1000e-12
    n = np.round(G * exposure_s).astype(int)
    n[-1] = 0
    r = fit_arrhenius_rates(T, n, 96, 1000.0)
    assert r["resolved"] and r["Ea_eV"] == pytest.approx(0.2, abs=0.01)
    assert "hop_rate_upper95_per_s" in r["points"][-1]
    assert r["points"][-1]["hop_rate_upper95_per_s"] == pytest.approx(2.9957 / exposure_s, rel=1e-4)
    few = fit_arrhenius_rates([500.0, 600.0, 700.0], [0, 0, 5], 96, 1000.0)
    assert few["resolved"] is False
    with pytest.raises(SuperionError, match="n_ions > 0"):
        fit_arrhenius_rates([500.0], [3], 0, 1000.0)
