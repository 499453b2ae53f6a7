"""Arrhenius fits that know which temperatures resolved diffusion, and when an extrapolation means something.

- :func:`fit_arrhenius_log`: weighted least squares of ln y = ln y0 − Ea/(k_B T) with per-point
  standard errors in log space; covariance (AᵀWA)⁻¹ · max(1, χ²/(n−2)) (the stated errors are
  trusted unless the scatter is larger); 95 % intervals with Student t, n − 2 dof.
- :func:`arrhenius_from_regimes`: per-temperature diffusion results {temperature_K, regime,
  diffusivity_cm2_s, diffusivity_ci95_cm2_s, diffusivity_upper_bound_cm2_s}. Only
  ``diffusive`` points enter the fit, each with σ(ln D) = ln(hi/lo) / (2 · 1.96) from its 95 %
  interval. Upper-bound points (subdiffusive/immobile) are excluded — not used as censored
  constraints — but the fitted line is checked against them and every bound it exceeds is
  listed in the warnings (a line above a valid upper bound means the fit is questionable).
  Fewer than 3 diffusive temperatures: ``resolved: false`` with ``not_resolved_reason`` (two
  points give a line without any error estimate).
- :func:`fit_arrhenius_rates`: the same for hop rates Γ (counts n over n_ions × duration):
  σ(ln Γ) from the exact Poisson interval; runs with 0 hops are upper bounds, excluded.
- :func:`interval_resolved`: an extrapolated quantity (D or σ at 300 K) is resolved only when
  its 95 % interval spans at most ``max_decades`` (2) decades; otherwise report it as not
  resolved rather than as a number.
"""

from __future__ import annotations

import numpy as np

from superion.errors import SuperionError

from superion.units import K_B_EV_K

Z95 = 1.959963984540054


def interval_resolved(ci, max_decades: float = 2.0) -> dict:
    """{"resolved", "decades", "not_resolved_reason"} for a positive 95 % interval [lo, hi]."""
    if ci is None:
        return {"resolved": False, "decades": None, "not_resolved_reason": "no interval"}
    lo, hi = float(ci[0]), float(ci[1])
    if lo >= 0 and hi > 0 and (lo == 0 or np.isinf(hi)):  # exp() under/overflowed: unbounded in log space
        return {"resolved": False, "decades": float("inf"),
                "not_resolved_reason": f"95 % interval spans more than {max_decades:g} decades (unbounded)"}
    if not (lo > 0 and hi >= lo):
        return {"resolved": False, "decades": None, "not_resolved_reason": f"interval [{lo:g}, {hi:g}] is not positive"}
    dec = float(np.log10(hi / lo))
    ok = dec <= max_decades
    return {"resolved": ok, "decades": dec,
            "not_resolved_reason": None if ok else f"95 % interval spans {dec:.2g} decades (> {max_decades:g})"}


def fit_arrhenius_log(temperatures_K, y, sigma_ln_y, *, target_K: float | None = None) -> dict:
    """Weighted fit of ln y = ln y0 − Ea / (k_B T); y > 0 (any unit), σ(ln y) > 0 per point.

    Returns Ea_eV, ln_prefactor, their covariance, Ea_ci95_eV and, with ``target_K``, the
    extrapolated y, its 95 % interval and whether that interval is resolved."""
    from scipy.stats import t as student_t

    T = np.asarray(temperatures_K, dtype=np.float64)
    v = np.asarray(y, dtype=np.float64)
    s = np.asarray(sigma_ln_y, dtype=np.float64)
    if not (T.shape == v.shape == s.shape) or T.ndim != 1:
        raise SuperionError("temperatures, values and their log errors must be 1-D arrays of the same length")
    if np.any(T <= 0) or np.any(v <= 0) or np.any(~(s > 0)):
        raise SuperionError("an Arrhenius fit needs positive temperatures, positive values and positive errors")
    if len(np.unique(T)) < 2:
        raise SuperionError("an Arrhenius fit needs at least 2 different temperatures; add runs")
    x = 1.0 / (K_B_EV_K * T)
    A = np.column_stack([np.ones_like(x), -x])  # (ln y0, Ea)
    W = 1.0 / s**2
    AtWA = A.T @ (A * W[:, None])
    p = np.linalg.solve(AtWA, A.T @ (W * np.log(v)))
    r = np.log(v) - A @ p
    dof = len(T) - 2
    chi2 = float(np.sum(W * r * r))
    out = {"Ea_eV": float(p[1]), "ln_prefactor": float(p[0]), "prefactor": float(np.exp(p[0])),
           "dof": dof, "chi2": chi2, "cov_lnprefactor_Ea": None, "Ea_stderr_eV": None, "Ea_ci95_eV": None,
           "n_points": int(len(T))}
    if dof >= 1:
        cov = np.linalg.inv(AtWA) * max(1.0, chi2 / dof)
        q = float(student_t.ppf(0.975, dof))
        se = float(np.sqrt(cov[1, 1]))
        out.update(cov_lnprefactor_Ea=cov.tolist(), Ea_stderr_eV=se, Ea_ci95_eV=[p[1] - q * se, p[1] + q * se])
    if target_K is not None:
        g = np.array([1.0, -1.0 / (K_B_EV_K * target_K)])
        ln_t = float(g @ p)
        out["target_K"] = float(target_K)
        out["value_at_target"] = float(np.exp(ln_t))
        if out["cov_lnprefactor_Ea"] is not None:
            sd = float(np.sqrt(g @ np.asarray(out["cov_lnprefactor_Ea"]) @ g))
            q = float(student_t.ppf(0.975, dof))
            with np.errstate(over="ignore", under="ignore"):
                ci = [float(np.exp(ln_t - q * sd)), float(np.exp(ln_t + q * sd))]
            out["value_at_target_ci95"] = ci
            out["value_at_target_resolved"] = interval_resolved(ci)
        else:
            out["value_at_target_ci95"] = None
            out["value_at_target_resolved"] = interval_resolved(None)
    return out


def _sigma_from_ci(value: float, ci) -> float | None:
    """σ(ln value) from a 95 % interval (half its log width over 1.96)."""
    if ci is None or not (ci[0] > 0 and ci[1] > ci[0]):
        return None
    return float(np.log(ci[1] / ci[0]) / (2 * Z95))


def arrhenius_from_regimes(points: list[dict], *, target_K: float = 300.0, min_points: int = 3) -> dict:
    """Arrhenius fit of ln D over the diffusive temperatures only (see module docstring).

    points: dicts with temperature_K, regime, diffusivity_cm2_s (None unless diffusive),
    diffusivity_ci95_cm2_s [lo, hi], diffusivity_upper_bound_cm2_s (non-diffusive runs)."""
    if not (target_K and target_K > 0):
        raise SuperionError(f"target temperature must be positive, got {target_K}")
    used, bounds, table, warnings = [], [], [], []
    for k, p in enumerate(points):
        try:
            T = float(p["temperature_K"])
            regime = p["regime"]
        except (KeyError, TypeError, ValueError):
            raise SuperionError(f"point #{k}: needs temperature_K and regime; pass the regime-aware diffusion results")
        D = p.get("diffusivity_cm2_s")
        sig = _sigma_from_ci(D, p.get("diffusivity_ci95_cm2_s")) if D else None
        row = {"temperature_K": T, "regime": regime, "diffusivity_cm2_s": D,
               "diffusivity_upper_bound_cm2_s": p.get("diffusivity_upper_bound_cm2_s"), "used": False}
        if regime == "diffusive" and D is not None and D > 0 and sig is not None:
            row["used"] = True
            row["sigma_lnD"] = sig
            used.append((T, D, sig))
        elif regime == "diffusive":
            warnings.append(f"{T:g} K: diffusive but without a positive D and interval; excluded")
        else:
            ub = p.get("diffusivity_upper_bound_cm2_s")
            if ub is not None:
                bounds.append((T, float(ub)))
        table.append(row)
    n_T = len({T for T, _, _ in used})
    base = {"target_temperature_K": float(target_K), "points": table, "n_diffusive": len(used),
            "upper_bounds_policy": "upper-bound (non-diffusive) points are excluded from the fit, not used as censored constraints; "
                                   "the line is checked against them"}
    if n_T < min_points:
        return {**base, "resolved": False, "Ea_eV": None, "Ea_ci95_eV": None, f"diffusivity_{target_K:g}K_cm2_s": None,
                f"diffusivity_{target_K:g}K_ci95_cm2_s": None,
                "not_resolved_reason": f"diffusion resolved at {n_T} temperature(s), an Arrhenius fit with an error needs >= {min_points}",
                "warnings": warnings}
    T, D, s = (np.array(c) for c in zip(*used))
    fit = fit_arrhenius_log(T, D, s, target_K=target_K)
    for Tb, ub in bounds:
        line = float(np.exp(fit["ln_prefactor"] - fit["Ea_eV"] / (K_B_EV_K * Tb)))
        if line > ub:
            warnings.append(f"{Tb:g} K: the fitted line ({line:.3g} cm2/s) exceeds the upper bound {ub:.3g} cm2/s of that non-diffusive run")
    res_t = fit["value_at_target_resolved"]
    return {
        **base,
        "resolved": True,
        "not_resolved_reason": None,
        "Ea_eV": fit["Ea_eV"],
        "Ea_stderr_eV": fit["Ea_stderr_eV"],
        "Ea_ci95_eV": fit["Ea_ci95_eV"],
        "D0_cm2_s": fit["prefactor"],
        "cov_lnD0_Ea": fit["cov_lnprefactor_Ea"],
        "fit_chi2": fit["chi2"],
        "fit_dof": fit["dof"],
        f"diffusivity_{target_K:g}K_cm2_s": fit["value_at_target"],
        f"diffusivity_{target_K:g}K_ci95_cm2_s": fit["value_at_target_ci95"],
        f"diffusivity_{target_K:g}K_resolved": res_t["resolved"],
        f"diffusivity_{target_K:g}K_not_resolved_reason": res_t["not_resolved_reason"],
        "method": "weighted least squares of ln D vs 1/(k_B T) over diffusive runs, sigma(ln D) from each 95 % interval; "
                  "covariance scaled by max(1, chi2/dof); Student t (n-2 dof) intervals",
        "warnings": warnings,
    }


def fit_arrhenius_rates(temperatures_K, n_hops, n_ions, duration_ps, *, target_K: float = 300.0, min_points: int = 3) -> dict:
    """Arrhenius fit of hop rates Γ = n_hops / (n_ions · duration) (s⁻¹) with Poisson errors.

    σ(ln Γ) from the exact 95 % Poisson interval of each count; runs with 0 hops are upper
    bounds (one-sided 95 %: 2.996 events) and are excluded from the fit, like non-diffusive D."""
    from superion.analysis.hops import poisson_interval, poisson_upper
    from superion.units import PS_TO_S

    T = np.atleast_1d(np.asarray(temperatures_K, dtype=np.float64))
    n = np.broadcast_to(np.asarray(n_hops, dtype=np.int64), T.shape)
    ni = np.broadcast_to(np.asarray(n_ions, dtype=np.float64), T.shape)
    dur = np.broadcast_to(np.asarray(duration_ps, dtype=np.float64), T.shape)
    if np.any(ni <= 0) or np.any(dur <= 0):
        raise SuperionError("hop-rate fit needs n_ions > 0 and duration_ps > 0 for every run")
    exposure_s = ni * dur * PS_TO_S
    rows, used = [], []
    for k in range(len(T)):
        rate = n[k] / exposure_s[k]
        row = {"temperature_K": float(T[k]), "n_hops": int(n[k]), "hop_rate_per_s": float(rate)}
        if n[k] > 0:
            lo, hi = poisson_interval(int(n[k]))
            row["hop_rate_ci95_per_s"] = [lo / exposure_s[k], hi / exposure_s[k]]
            used.append((T[k], rate, float(np.log(hi / lo) / (2 * Z95))))
        else:
            row["hop_rate_upper95_per_s"] = poisson_upper(0) / exposure_s[k]
        rows.append(row)
    if len({u[0] for u in used}) < min_points:
        return {"resolved": False, "not_resolved_reason": f"hops at {len(used)} temperature(s), the fit needs >= {min_points}",
                "Ea_eV": None, "points": rows}
    Tu, r, s = (np.array(c) for c in zip(*used))
    fit = fit_arrhenius_log(Tu, r, s, target_K=target_K)
    return {"resolved": True, "not_resolved_reason": None, "Ea_eV": fit["Ea_eV"], "Ea_stderr_eV": fit["Ea_stderr_eV"],
            "Ea_ci95_eV": fit["Ea_ci95_eV"], "prefactor_per_s": fit["prefactor"],
            f"hop_rate_{target_K:g}K_per_s": fit["value_at_target"], f"hop_rate_{target_K:g}K_ci95_per_s": fit.get("value_at_target_ci95"),
            f"hop_rate_{target_K:g}K_resolved": fit["value_at_target_resolved"]["resolved"],
            "method": "weighted least squares of ln Gamma vs 1/(k_B T); sigma(ln Gamma) from the exact Poisson 95 % interval; "
                      "0-hop runs excluded (upper bounds)",
            "points": rows}
