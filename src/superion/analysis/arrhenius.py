"""Arrhenius fit ln D = ln D0 − Ea/(k_B T) with uncertainties, and extrapolation to any T.

- Weighted least squares in (x = 1/(k_B T) [1/eV], y = ln D) with σ_y = stderr(D)/D when every
  point has a positive stderr, else unweighted.
- Covariance of (ln D0, Ea): (AᵀWA)⁻¹ · max(1, χ²/(n−2)) when weighted (the stated errors are
  trusted unless the scatter is larger), (AᵀA)⁻¹ · RSS/(n−2) when unweighted. Needs ≥ 3 points;
  with 2 points Ea is exact and has no error.
- Extrapolated ln D(T*) has variance gᵀ C g with g = (1, −1/(k_B T*)); its 95 % interval uses
  Student's t with n−2 degrees of freedom (few temperatures), then exponentiated.
- σ(T*) by Nernst–Einstein with the number density n = mean over the runs of n_ions/⟨V⟩ (the
  density changes by a few % with T under NPT; the mean is the best guess at T*), and the
  mobile-ion charge of the runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from superion.analysis.diffusion import nernst_einstein_mS_cm
from superion.units import K_B_EV_K
from superion.errors import SuperionError


def fit_arrhenius(temperatures_K, diffusivities_cm2_s, stderrs_cm2_s=None) -> dict:
    """Fit ln D vs 1/(k_B T); returns Ea, ln D0, their covariance and fit diagnostics."""
    T = np.asarray(temperatures_K, dtype=float)
    D = np.asarray(diffusivities_cm2_s, dtype=float)
    if np.any(T <= 0):
        raise SuperionError("temperatures must be positive for an Arrhenius fit")
    if np.any(D <= 0):
        raise SuperionError("diffusivities must be positive for an Arrhenius fit")
    if len(np.unique(T)) < 2:
        raise SuperionError(f"an Arrhenius fit needs at least 2 different temperatures, got {len(np.unique(T))}; add runs")
    x = 1.0 / (K_B_EV_K * T)
    y = np.log(D)
    n = len(T)
    se = None if stderrs_cm2_s is None else np.asarray([np.nan if s is None else s for s in stderrs_cm2_s], dtype=float)
    weighted = se is not None and np.all(np.isfinite(se)) and np.all(se > 0)
    sy = se / D if weighted else np.ones(n)
    A = np.vstack([np.ones(n), -x]).T  # params (ln D0, Ea)
    W = 1.0 / sy**2
    AtWA = A.T @ (A * W[:, None])
    params = np.linalg.solve(AtWA, A.T @ (W * y))
    resid = y - A @ params
    dof = n - 2
    chi2 = float(np.sum(W * resid**2))
    cov = None
    if dof >= 1:
        base = np.linalg.inv(AtWA)
        scale = max(1.0, chi2 / dof) if weighted else chi2 / dof
        cov = base * scale
    return {
        "ln_D0": float(params[0]),
        "Ea_eV": float(params[1]),
        "cov": cov,
        "dof": dof,
        "weighted": bool(weighted),
        "chi2": chi2,
        "residuals_lnD": resid,
    }


def extrapolate(fit: dict, temperature_K: float) -> dict:
    """ln D at ``temperature_K`` with its standard error and 95 % interval (t, n−2 dof)."""
    from scipy.stats import t as student_t

    x = 1.0 / (K_B_EV_K * temperature_K)
    lnD = fit["ln_D0"] - fit["Ea_eV"] * x
    out = {"diffusivity_cm2_s": float(np.exp(lnD)), "ln_diffusivity_stderr": None, "diffusivity_ci95_cm2_s": None}
    if fit["cov"] is not None:
        g = np.array([1.0, -x])
        sd = float(np.sqrt(g @ fit["cov"] @ g))
        q = float(student_t.ppf(0.975, fit["dof"]))
        out["ln_diffusivity_stderr"] = sd
        out["diffusivity_ci95_cm2_s"] = [float(np.exp(lnD - q * sd)), float(np.exp(lnD + q * sd))]
    return out


def arrhenius_from_results(
    results: list[dict], target_K: float = 300.0, sources: list[str] | None = None, allow_no_fit: bool = False
) -> dict:
    """Arrhenius analysis of ``superion analyze diffusion`` result dicts (one per run).

    With ``allow_no_fit``, fewer than two temperatures with positive D is a result, not an
    error: the fit fields are null and ``fitted`` is false (a poor conductor whose ions do not
    move in the simulated time).
    """
    from scipy.stats import t as student_t

    if target_K is None or target_K <= 0:
        raise SuperionError(f"target temperature must be positive, got {target_K}")
    sources = sources or [f"#{i}" for i in range(len(results))]
    warnings: list[str] = []
    table, used = [], []
    for src, r in zip(sources, results):
        try:
            T = float(r["temperature_K"])
            D = r["diffusivity_cm2_s"]
        except (KeyError, TypeError, ValueError):
            raise SuperionError(f"{src}: not a diffusion result (needs temperature_K and diffusivity_cm2_s); run superion analyze diffusion")
        row = {
            "source": src,
            "temperature_K": T,
            "diffusivity_cm2_s": D,
            "diffusivity_stderr_cm2_s": r.get("diffusivity_stderr_cm2_s"),
            "conductivity_mS_cm": r.get("conductivity_mS_cm"),
            "used": D is not None and D > 0 and T > 0,
        }
        if not row["used"]:
            warnings.append(f"{src}: D = {D} at {T:g} K is not positive; excluded from the fit")
        table.append(row)
        if row["used"]:
            used.append((row, r))
    n_T = len({row["temperature_K"] for row, _ in used})
    if n_T < 2 and allow_no_fit:
        tag = f"{target_K:g}K"
        warnings.append(f"positive D at {n_T} temperature(s) only: no Arrhenius fit (no measurable diffusion)")
        null_keys = ("Ea_eV", "Ea_stderr_eV", "Ea_ci95_eV", "D0_cm2_s", f"diffusivity_{tag}_cm2_s",
                     f"diffusivity_{tag}_ci95_cm2_s", f"conductivity_{tag}_mS_cm", f"conductivity_{tag}_ci95_mS_cm")
        return {**dict.fromkeys(null_keys), "fitted": False, "n_points": len(used),
                "target_temperature_K": float(target_K), "points": table, "warnings": warnings}
    if n_T < 2:
        raise SuperionError(
            f"an Arrhenius fit needs positive D at >= 2 temperatures (>= 3 for an error), got {n_T}; add runs at more temperatures"
        )
    if len(used) < 3:
        warnings.append("only 2 points: Ea has no error estimate; use >= 3 temperatures")
    Ts = [row["temperature_K"] for row, _ in used]
    Ds = [row["diffusivity_cm2_s"] for row, _ in used]
    ses = [row["diffusivity_stderr_cm2_s"] for row, _ in used]
    if any(s is None or not s > 0 for s in ses):
        warnings.append("some points have no stderr: unweighted fit")
    fit = fit_arrhenius(Ts, Ds, ses)
    ex = extrapolate(fit, target_K)

    ea_se = float(np.sqrt(fit["cov"][1, 1])) if fit["cov"] is not None else None
    q = float(student_t.ppf(0.975, fit["dof"])) if fit["cov"] is not None else None
    # Nernst-Einstein at the target: mean number density and charge of the runs
    dens = [r.get("number_density_A3") or (r["n_ions"] / r["volume_A3"] if r.get("n_ions") and r.get("volume_A3") else None) for _, r in used]
    dens = [d for d in dens if d]
    charges = {float(r.get("charge", 1.0)) for _, r in used}
    if len(charges) > 1:
        raise SuperionError(f"results mix mobile-ion charges {sorted(charges)}; fit one species at a time")
    z = charges.pop() if charges else 1.0
    tag = f"{target_K:g}K"
    out = {
        "fitted": True,
        "Ea_eV": fit["Ea_eV"],
        "Ea_stderr_eV": ea_se,
        "Ea_ci95_eV": [fit["Ea_eV"] - q * ea_se, fit["Ea_eV"] + q * ea_se] if ea_se is not None else None,
        "D0_cm2_s": float(np.exp(fit["ln_D0"])),
        "ln_D0_stderr": float(np.sqrt(fit["cov"][0, 0])) if fit["cov"] is not None else None,
        "cov_lnD0_Ea": fit["cov"].tolist() if fit["cov"] is not None else None,
        "fit_weighted": fit["weighted"],
        "fit_chi2": fit["chi2"],
        "fit_dof": fit["dof"],
        "n_points": len(used),
        "target_temperature_K": float(target_K),
        f"diffusivity_{tag}_cm2_s": ex["diffusivity_cm2_s"],
        f"diffusivity_{tag}_ci95_cm2_s": ex["diffusivity_ci95_cm2_s"],
        "method": "weighted least squares of ln D vs 1/(k_B T); 95 % intervals with Student t (n-2 dof)",
    }
    if dens:
        n_mean = float(np.mean(dens))
        sig = lambda d: float(nernst_einstein_mS_cm(d, n_mean, 1.0, target_K, z))  # noqa: E731
        out["number_density_A3"] = n_mean
        out[f"conductivity_{tag}_mS_cm"] = sig(ex["diffusivity_cm2_s"])
        ci = ex["diffusivity_ci95_cm2_s"]
        out[f"conductivity_{tag}_ci95_mS_cm"] = [sig(ci[0]), sig(ci[1])] if ci else None
        out["conductivity_method"] = "Nernst-Einstein at the target T with the mean number density of the runs"
    else:
        out[f"conductivity_{tag}_mS_cm"] = None
        out[f"conductivity_{tag}_ci95_mS_cm"] = None
        warnings.append("results carry no number density (n_ions, volume_A3): conductivity not extrapolated")
    out["points"] = table
    out["warnings"] = warnings
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
