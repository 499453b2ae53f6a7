"""Arrhenius analysis of per-run diffusion results that knows what the data do not resolve.

- Only ``diffusive`` runs (see :mod:`superion.analysis.regime`) enter the fit of ln D vs
  1/(k_B T); subdiffusive/immobile runs are listed as upper bounds and excluded (not used as
  censored constraints; the fitted line is checked against them). Results without a ``regime``
  (older JSON) count as diffusive when D > 0, with a log-normal interval D·exp(±1.96 se/D).
- The fit is :func:`superion.analysis.arrhenius_stats.arrhenius_from_regimes`: weighted least
  squares with σ(ln D) from each run's 95 % interval, covariance scaled by max(1, χ²/dof),
  Student t (n−2 dof) intervals; a line through 2 temperatures is reported without an error.
- ``resolved``: >= 3 diffusive temperatures and a σ(T*) 95 % interval spanning <= 2 decades;
  otherwise ``not_resolved_reason`` says why (the numbers of a line are still given when
  fitted, but tables and figures show the reason instead).
- σ(T*) by Nernst–Einstein with the number density n = mean over the runs of n_ions/⟨V⟩ and
  the mobile-ion charge of the runs.
- Hop rates: Ea from ln Γ vs 1/(k_B T) (:func:`~superion.analysis.arrhenius_stats.fit_arrhenius_rates`,
  exact Poisson errors; 0-hop runs are upper bounds) as ``Ea_hops_eV`` when resolved.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from superion.analysis.arrhenius_stats import Z95
from superion.analysis.diffusion import nernst_einstein_mS_cm
from superion.errors import SuperionError

MIN_RESOLVED_TEMPERATURES = 3
MAX_DECADES = 2.0


def _point(src: str, r: dict) -> dict:
    """Regime-aware point of one diffusion result (older results without regime: diffusive if D > 0)."""
    try:
        T = float(r["temperature_K"])
        D = r["diffusivity_cm2_s"]
    except (KeyError, TypeError, ValueError):
        raise SuperionError(f"{src}: not a diffusion result (needs temperature_K and diffusivity_cm2_s); run superion analyze diffusion")
    se = r.get("diffusivity_stderr_cm2_s")
    regime = r.get("regime")
    ci = r.get("diffusivity_ci95_cm2_s")
    if regime is None:
        regime = "diffusive" if D is not None and D > 0 else "subdiffusive"
        if D is not None and D > 0 and se is not None and se > 0 and ci is None:
            ci = [D * float(np.exp(-Z95 * se / D)), D * float(np.exp(Z95 * se / D))]
    if D is not None and D > 0 and ci is None:
        ci = [D * 0.5, D * 2.0]  # no error given: a factor 2 either way (flagged in the warnings)
    return {"source": src, "temperature_K": T, "regime": regime, "diffusivity_cm2_s": D,
            "diffusivity_stderr_cm2_s": se, "diffusivity_ci95_cm2_s": ci,
            "diffusivity_upper_bound_cm2_s": r.get("diffusivity_upper_bound_cm2_s"),
            "conductivity_mS_cm": r.get("conductivity_mS_cm")}


def arrhenius_from_results(
    results: list[dict], target_K: float = 300.0, sources: list[str] | None = None, allow_no_fit: bool = False
) -> dict:
    """Arrhenius analysis of ``superion analyze diffusion`` result dicts (one per run); see the module docstring.

    Fewer than 2 diffusive temperatures is a SuperionError unless ``allow_no_fit`` (then the
    fit fields are null, ``fitted`` and ``resolved`` false: the ions do not diffuse in the
    simulated time)."""
    from superion.analysis.arrhenius_stats import arrhenius_from_regimes, fit_arrhenius_rates, interval_resolved

    if target_K is None or target_K <= 0:
        raise SuperionError(f"target temperature must be positive, got {target_K}")
    sources = sources or [f"#{i}" for i in range(len(results))]
    pts = [_point(src, r) for src, r in zip(sources, results)]
    tag = f"{target_K:g}K"
    reg = arrhenius_from_regimes(pts, target_K=target_K, min_points=2)
    warnings = list(reg["warnings"])
    for p, row in zip(pts, reg["points"]):
        row.update(source=p["source"], diffusivity_stderr_cm2_s=p["diffusivity_stderr_cm2_s"],
                   diffusivity_ci95_cm2_s=p["diffusivity_ci95_cm2_s"], conductivity_mS_cm=p["conductivity_mS_cm"])
        if not row["used"] and p["regime"] != "diffusive":
            warnings.append(f"{p['source']}: {p['regime']} at {p['temperature_K']:g} K: excluded from the fit (upper bound only)")
    used = [(p, r) for p, r, row in zip(pts, results, reg["points"]) if row["used"]]
    n_T = len({p["temperature_K"] for p, _ in used})
    bounds = [{"source": p["source"], "temperature_K": p["temperature_K"], "regime": p["regime"],
               "diffusivity_upper_bound_cm2_s": p["diffusivity_upper_bound_cm2_s"]}
              for p, row in zip(pts, reg["points"]) if not row["used"]]
    hop_runs = [r for r in results if r.get("n_hops") is not None and r.get("n_ions") and r.get("duration_ps")]
    if hop_runs:
        hops = fit_arrhenius_rates([r["temperature_K"] for r in hop_runs], [r["n_hops"] for r in hop_runs],
                                   [r["n_ions"] for r in hop_runs], [r["duration_ps"] for r in hop_runs], target_K=target_K)
    else:
        hops = {"resolved": False, "not_resolved_reason": "no hop counts in the results", "Ea_eV": None}
    hop_fields = {"Ea_hops_eV": hops["Ea_eV"] if hops["resolved"] else None,
                  "Ea_hops_ci95_eV": hops.get("Ea_ci95_eV") if hops["resolved"] else None,
                  "hops_resolved": bool(hops["resolved"]), "hops_not_resolved_reason": hops["not_resolved_reason"],
                  "hop_rate_points": hops.get("points", [])}
    base = {"target_temperature_K": float(target_K), "n_points": len(used), "n_diffusive_temperatures": n_T,
            "upper_bounds": bounds, "upper_bounds_policy": reg["upper_bounds_policy"], **hop_fields}
    if n_T < 2:
        reason = (f"{n_T} temperature(s) with a resolved D (diffusive regime); need >= {MIN_RESOLVED_TEMPERATURES}")
        if not allow_no_fit:
            raise SuperionError(f"an Arrhenius fit needs a resolved D at >= 2 temperatures (>= 3 for an error), got {n_T}; "
                                "run longer or hotter, or add temperatures")
        warnings.append(f"no Arrhenius fit: {reason}")
        null_keys = ("Ea_eV", "Ea_stderr_eV", "Ea_ci95_eV", "D0_cm2_s", f"diffusivity_{tag}_cm2_s",
                     f"diffusivity_{tag}_ci95_cm2_s", f"conductivity_{tag}_mS_cm", f"conductivity_{tag}_ci95_mS_cm")
        return {**dict.fromkeys(null_keys), "fitted": False, "resolved": False, "not_resolved_reason": reason,
                "sigma_300K_ci95_mS_cm": None, **base, "points": reg["points"], "warnings": warnings}
    if any(p["diffusivity_stderr_cm2_s"] is None and "diffusivity_ci95_cm2_s" not in r for p, r in used):
        warnings.append("some diffusive points carry no error: a factor-2 interval was assumed for them")
    charges = {float(r.get("charge", 1.0)) for _, r in used}
    if len(charges) > 1:
        raise SuperionError(f"results mix mobile-ion charges {sorted(charges)}; fit one species at a time")
    z = charges.pop() if charges else 1.0
    D_t, D_ci = reg[f"diffusivity_{target_K:g}K_cm2_s"], reg[f"diffusivity_{target_K:g}K_ci95_cm2_s"]
    out = {
        "fitted": True,
        "Ea_eV": reg["Ea_eV"],
        "Ea_stderr_eV": reg["Ea_stderr_eV"],
        "Ea_ci95_eV": reg["Ea_ci95_eV"],
        "D0_cm2_s": reg["D0_cm2_s"],
        "cov_lnD0_Ea": reg["cov_lnD0_Ea"],
        "fit_weighted": True,
        "fit_chi2": reg["fit_chi2"],
        "fit_dof": reg["fit_dof"],
        **base,
        f"diffusivity_{tag}_cm2_s": D_t,
        f"diffusivity_{tag}_ci95_cm2_s": D_ci,
        "method": reg["method"],
    }
    dens = [r.get("number_density_A3") or (r["n_ions"] / r["volume_A3"] if r.get("n_ions") and r.get("volume_A3") else None) for _, r in used]
    dens = [d for d in dens if d]
    sig_ci = None
    if dens:
        n_mean = float(np.mean(dens))
        sig = lambda d: float(nernst_einstein_mS_cm(d, n_mean, 1.0, target_K, z))  # noqa: E731
        out["number_density_A3"] = n_mean
        out[f"conductivity_{tag}_mS_cm"] = sig(D_t)
        sig_ci = [sig(D_ci[0]), sig(D_ci[1])] if D_ci else None
        out["conductivity_method"] = "Nernst-Einstein at the target T with the mean number density of the runs"
    else:
        out[f"conductivity_{tag}_mS_cm"] = None
        warnings.append("results carry no number density (n_ions, volume_A3): conductivity not extrapolated")
    out[f"conductivity_{tag}_ci95_mS_cm"] = sig_ci
    out["sigma_300K_ci95_mS_cm"] = out.get("conductivity_300K_ci95_mS_cm")
    if n_T < MIN_RESOLVED_TEMPERATURES:
        reason = f"{n_T} temperatures with a resolved D; need >= {MIN_RESOLVED_TEMPERATURES} for an error"
        warnings.append(f"only {n_T} temperatures: Ea has no error estimate; use >= {MIN_RESOLVED_TEMPERATURES} temperatures")
    else:
        width = interval_resolved(sig_ci if sig_ci else D_ci, MAX_DECADES)
        reason = None if width["resolved"] else f"sigma({tag}) {width['not_resolved_reason']}"
    out["resolved"] = reason is None
    out["not_resolved_reason"] = reason
    out["points"] = reg["points"]
    out["warnings"] = list(dict.fromkeys(warnings))
    return out


def write_arrhenius(result_files: list[str | os.PathLike], json_path: str | os.PathLike, target_K: float = 300.0,
                    allow_no_fit: bool = False) -> dict:
    """``superion analyze arrhenius``: read the ``superion analyze diffusion`` JSON files
    ``result_files``, fit (:func:`arrhenius_from_results`, sources named as given), write the
    result to ``json_path``; returns it."""
    from superion.atomic import write_json
    from superion.files import read_json

    results = []
    for f in result_files:
        p = Path(f)
        if not p.is_file():
            raise SuperionError(f"result file {f} not found; give JSON files from 'superion analyze diffusion'")
        results.append(read_json(p, fix="give JSON files from 'superion analyze diffusion'", kind=None))
        if not isinstance(results[-1], dict):
            raise SuperionError(f"{f} is not a diffusion result; give JSON files from 'superion analyze diffusion'")
    out = arrhenius_from_results(results, target_K, sources=[str(f) for f in result_files], allow_no_fit=allow_no_fit)
    write_json(json_path, out)
    return out
