"""Arrhenius fit: recovers a set Ea, honest intervals, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from superion.analysis.arrhenius import arrhenius_from_results
from superion.analysis.arrhenius_stats import fit_arrhenius_log
from superion.analysis.diffusion import nernst_einstein_mS_cm
from superion.units import K_B_EV_K
from superion.errors import SuperionError

TEMPS = np.array([500, 550, 600, 700, 800.0])


def results_from(Ea, D0, rel_err, rng, temps=TEMPS):
    D_true = D0 * np.exp(-Ea / (K_B_EV_K * temps))
    D = D_true * np.exp(rel_err * rng.standard_normal(len(temps)))
    return [
        {"temperature_K": T, "diffusivity_cm2_s": d, "diffusivity_stderr_cm2_s": rel_err * d, "n_ions": 96, "volume_A3": 9000.0 + T, "charge": 1.0}
        for T, d in zip(temps, D)
    ]


def test_exact_data_recovers_Ea_and_D0():
    D = 1e-3 * np.exp(-0.25 / (K_B_EV_K * TEMPS))
    fit = fit_arrhenius_log(TEMPS, D, np.full(len(TEMPS), 0.1), target_K=300.0)
    assert fit["Ea_eV"] == pytest.approx(0.25, rel=1e-9)
    assert fit["prefactor"] == pytest.approx(1e-3, rel=1e-9)
    assert fit["value_at_target"] == pytest.approx(1e-3 * np.exp(-0.25 / (K_B_EV_K * 300)), rel=1e-9)


def test_noisy_data_recovers_set_Ea_within_error_and_ci_covers():
    rng = np.random.default_rng(21)
    Ea, D0 = 0.23, 2e-3
    D300 = D0 * np.exp(-Ea / (K_B_EV_K * 300))
    covered, zs = 0, []
    for _ in range(200):
        out = arrhenius_from_results(results_from(Ea, D0, 0.15, rng))
        zs.append((out["Ea_eV"] - Ea) / out["Ea_stderr_eV"])
        lo, hi = out["diffusivity_300K_ci95_cm2_s"]
        covered += lo <= D300 <= hi
    # max(1, chi2/dof) scaling makes the error conservative, never too small
    assert 0.6 < np.std(zs) < 1.2
    assert covered / 200 >= 0.93


def test_conductivity_at_300K_uses_mean_density_and_ci_brackets_it():
    rng = np.random.default_rng(22)
    res = results_from(0.2, 1e-3, 0.1, rng)
    out = arrhenius_from_results(res, sources=[f"r{i}.json" for i in range(len(res))])
    n_mean = np.mean([r["n_ions"] / r["volume_A3"] for r in res])
    assert out["conductivity_300K_mS_cm"] == pytest.approx(nernst_einstein_mS_cm(out["diffusivity_300K_cm2_s"], n_mean, 1.0, 300.0))
    lo, hi = out["conductivity_300K_ci95_mS_cm"]
    assert lo < out["conductivity_300K_mS_cm"] < hi
    assert out["Ea_stderr_eV"] > 0 and out["fit_weighted"]
    assert len(out["points"]) == len(TEMPS)


def test_other_target_temperature_names_keys():
    rng = np.random.default_rng(23)
    out = arrhenius_from_results(results_from(0.2, 1e-3, 0.1, rng), target_K=350.0)
    assert "diffusivity_350K_cm2_s" in out and "conductivity_350K_ci95_mS_cm" in out


def test_two_points_fit_without_error_and_nonpositive_excluded():
    res = [
        {"temperature_K": 600.0, "diffusivity_cm2_s": 1e-5},
        {"temperature_K": 800.0, "diffusivity_cm2_s": 4e-5},
        {"temperature_K": 400.0, "diffusivity_cm2_s": -1e-7},
    ]
    out = arrhenius_from_results(res)
    assert out["n_points"] == 2 and out["Ea_stderr_eV"] is None
    assert out["diffusivity_300K_ci95_cm2_s"] is None
    assert out["resolved"] is False and "need >= 3" in out["not_resolved_reason"]
    assert any("excluded" in w for w in out["warnings"])
    Ea = K_B_EV_K * np.log(4) / (1 / 600 - 1 / 800)
    assert out["Ea_eV"] == pytest.approx(Ea, rel=1e-9)


def test_too_few_temperatures_is_clear_error():
    with pytest.raises(SuperionError, match="at least 2|>= 2 temperatures"):
        arrhenius_from_results([{"temperature_K": 600.0, "diffusivity_cm2_s": 1e-5}, {"temperature_K": 600.0, "diffusivity_cm2_s": 2e-5}])
    with pytest.raises(SuperionError, match="not a diffusion result"):
        arrhenius_from_results([{"foo": 1}])


def test_no_measurable_diffusion_is_a_result_only_when_allowed():
    from superion.analysis.arrhenius import arrhenius_from_results
    from superion.errors import SuperionError

    runs = [
        {"temperature_K": 700.0, "diffusivity_cm2_s": -1e-7, "diffusivity_stderr_cm2_s": 1e-7, "n_ions": 4, "volume_A3": 240.0},
        {"temperature_K": 800.0, "diffusivity_cm2_s": 2e-7, "diffusivity_stderr_cm2_s": 1e-7, "n_ions": 4, "volume_A3": 240.0},
    ]
    with pytest.raises(SuperionError, match="at least 2|>= 2"):
        arrhenius_from_results(runs)
    out = arrhenius_from_results(runs, allow_no_fit=True)
    assert out["fitted"] is False and out["Ea_eV"] is None and out["conductivity_300K_mS_cm"] is None
    assert [p["used"] for p in out["points"]] == [False, True]
    assert any("no Arrhenius fit" in w for w in out["warnings"])
    assert out["resolved"] is False and out["not_resolved_reason"].startswith("1 temperature(s) with a resolved D")
    assert out["sigma_300K_ci95_mS_cm"] is None


def regime_result(T, regime, D=None, ci=None, ub=None, n_hops=None):
    r = {"temperature_K": T, "regime": regime, "diffusivity_cm2_s": D, "diffusivity_ci95_cm2_s": ci,
         "diffusivity_stderr_cm2_s": None if ci is None else (ci[1] - ci[0]) / 3.92,
         "diffusivity_upper_bound_cm2_s": ub, "n_ions": 12, "volume_A3": 1500.0, "charge": 1.0, "duration_ps": 10.0}
    if n_hops is not None:
        r["n_hops"] = n_hops
    return r


def test_non_diffusive_runs_are_bounds_excluded_from_the_fit():
    Ea, D0 = 0.3, 1e-2
    D = lambda T: D0 * np.exp(-Ea / (K_B_EV_K * T))  # noqa: E731
    res = [regime_result(T, "diffusive", D(T), [0.9 * D(T), D(T) / 0.9]) for T in (500.0, 575.0, 650.0, 725.0, 800.0)]
    res.append(regime_result(400.0, "immobile", ub=5 * D(400.0)))
    out = arrhenius_from_results(res, sources=["a", "b", "c", "e", "f", "d"])
    assert out["resolved"] is True and out["not_resolved_reason"] is None
    assert out["Ea_eV"] == pytest.approx(Ea, abs=1e-6)
    assert [p["used"] for p in out["points"]] == [True] * 5 + [False]
    assert out["upper_bounds"] == [{"source": "d", "temperature_K": 400.0, "regime": "immobile",
                                    "diffusivity_upper_bound_cm2_s": 5 * D(400.0)}]
    lo, hi = out["sigma_300K_ci95_mS_cm"]
    assert lo < out["conductivity_300K_mS_cm"] < hi and np.log10(hi / lo) <= 2


def test_interval_wider_than_two_decades_is_not_resolved():
    D = lambda T: 1e-2 * np.exp(-0.3 / (K_B_EV_K * T))  # noqa: E731
    # factor-30 intervals at three close temperatures: the 300 K extrapolation spans many decades
    res = [regime_result(T, "diffusive", D(T), [D(T) / 30, D(T) * 30]) for T in (780.0, 800.0, 820.0)]
    out = arrhenius_from_results(res)
    assert out["fitted"] is True and out["resolved"] is False
    assert "decades" in out["not_resolved_reason"]


def test_hop_rate_activation_energy_when_rates_resolved():
    Ea = 0.25
    temps = (500.0, 600.0, 700.0, 800.0)
    # expected counts follow Arrhenius; exposures 12 ions x 10 ps
    counts = [int(round(4000 * np.exp(-Ea / (K_B_EV_K * T)) / np.exp(-Ea / (K_B_EV_K * 800.0)))) for T in temps]
    res = [regime_result(T, "subdiffusive", ub=1e-5, n_hops=n) for T, n in zip(temps, counts)]
    out = arrhenius_from_results(res, allow_no_fit=True)
    assert out["resolved"] is False and out["Ea_eV"] is None  # no diffusive run: D not resolved
    assert out["hops_resolved"] is True and out["Ea_hops_eV"] == pytest.approx(Ea, abs=0.02)
    lo, hi = out["Ea_hops_ci95_eV"]
    assert lo < Ea < hi
    # zero hops everywhere: no hop Ea
    out0 = arrhenius_from_results([regime_result(T, "immobile", ub=1e-6, n_hops=0) for T in temps], allow_no_fit=True)
    assert out0["Ea_hops_eV"] is None and out0["hops_resolved"] is False
