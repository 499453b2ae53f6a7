"""Tracer and charge diffusivity, Nernst–Einstein conductivity, Haven ratio, active ions.

Conventions (see ../shared/docs/science.md):
- D = slope / 6 of the all-origin MSD (Å²) vs lag (ps) in a fit window; 1 Å²/ps = 1e-4 cm²/s.
- Default fit window: 10 % to 50 % of the trajectory duration. The start skips the
  ballistic/vibrational regime (≲ 1 ps) for any run longer than ~10 ps; the end keeps at least
  two independent time origins per lag, before the noisy tail. Both are configurable (ps).
- Standard error: every ion gets its own OLS slope D_i on its own all-origin MSD in the same
  window; D (the slope of the ion-averaged MSD) equals mean(D_i) because OLS is linear, and
  stderr = std(D_i) / sqrt(n_ions). Each D_i carries the full time correlation of its MSD
  points, so this is not the (too small) naive OLS error of correlated points; it assumes the
  ions move independently (the Haven ratio says how far that holds). The naive OLS error is
  reported beside it for comparison.
- Nernst–Einstein σ = n (Ze)² D / (k_B T), n = n_ions / ⟨V⟩ with ⟨V⟩ the mean volume over frames
  (NPT), SI throughout, reported in mS/cm (1 S/m = 10 mS/cm).
- Collective (charge) diffusivity D_σ = slope / 6 of MSD(Σ_i Δr_i) / n_ions; σ_collective uses
  D_σ; Haven ratio H = D / D_σ. The centre-of-charge MSD is one series per run (no averaging
  over ions), so D_σ is far noisier than D: its stderr comes from the spread over 8 consecutive
  time blocks (see :func:`collective_block_stderr`) and is propagated into H.
- Active ion: its own squared displacement from its start (drift-corrected) reaches
  ``threshold_A2`` at any time of the run (max over time). Fraction = n_active / normalization
  (default: number of ions of the species).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from superion.errors import SuperionError
from superion.structures.clusters import ION_CHARGE
from superion.units import A2_PS_TO_CM2_S, A3_TO_M3, CM2_TO_M2, E_CHARGE_C, K_B_J_K, S_M_TO_MS_CM

DEFAULT_FIT_START_FRACTION = 0.10
DEFAULT_FIT_END_FRACTION = 0.50
# The default window never starts before this lag: the first rise of the MSD (ballistic motion,
# then the ion filling its cage, ~0.1-0.2 ps for Na+) is vibration, not diffusion; fitting it
# turns the cage size into a fake D (seen: 2e-5 cm2/s for NaBH4, whose Na does not hop).
MIN_FIT_START_PS = 0.25
# Below this start the cage plateau may still be rising: D is flagged as an upper bound.
CAGE_REGIME_PS = 1.0
DEFAULT_ACTIVE_THRESHOLD_A2 = 21.0
HOP_A2 = 9.0  # squared length of one Na hop between neighbouring sites (science.md: hops need ≳ 9 Å²)
SHORT_RUN_PS = 20.0


def nernst_einstein_mS_cm(diffusivity_cm2_s, n_ions: float, volume_A3: float, temperature_K: float, charge: float = 1.0):
    """σ = n (Ze)² D / (k_B T) in mS/cm, with n = n_ions / volume."""
    n_m3 = n_ions / (volume_A3 * A3_TO_M3)
    d_m2_s = np.asarray(diffusivity_cm2_s, dtype=float) * CM2_TO_M2
    sigma_S_m = n_m3 * (charge * E_CHARGE_C) ** 2 * d_m2_s / (K_B_J_K * temperature_K)
    return sigma_S_m * S_M_TO_MS_CM


def ion_charge(species: str, charge: float | None = None) -> float:
    """Formal charge of the mobile species (explicit value wins)."""
    if charge is not None:
        return float(charge)
    if species not in ION_CHARGE:
        raise SuperionError(f"no default charge for species {species!r}; pass --charge")
    return float(ION_CHARGE[species])


def fit_window(duration_ps: float, start_ps: float | None, end_ps: float | None) -> tuple[float, float]:
    """Validated fit window in ps (default: from max(10 %, min(0.25 ps, 25 %)) to 50 % of the duration)."""
    end = DEFAULT_FIT_END_FRACTION * duration_ps if end_ps is None else float(end_ps)
    start = DEFAULT_FIT_START_FRACTION * duration_ps if start_ps is None else float(start_ps)
    if start_ps is None:
        # skip the cage rise, but keep at least the second half of [0, end] to fit
        # (sub-ps runs then start earlier and are flagged by the cage-regime warning)
        start = max(start, min(MIN_FIT_START_PS, 0.5 * end))
    if not (0.0 <= start < end <= duration_ps * (1 + 1e-9)):
        raise SuperionError(
            f"fit window {start:g}–{end:g} ps is outside the trajectory (0–{duration_ps:g} ps) or empty; "
            "choose 0 <= --fit-start-ps < --fit-end-ps <= the duration"
        )
    return start, end


def below(x: float, limit: float) -> str:
    """``x`` (< ``limit``) with 3 significant digits, more when rounding would print ``limit``
    itself (19.98 → "19.98", not "20" in "20 ps < 20 ps")."""
    for digits in range(3, 17):
        text = f"{x:.{digits}g}"
        if float(text) < limit:
            return text
    return repr(x)


def ols_slope_weights(t: np.ndarray) -> np.ndarray:
    """Weights w with slope = w · y for the OLS line y = a + b t."""
    tc = t - t.mean()
    return tc / np.sum(tc * tc)


def ols_fit(t: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """OLS slope, intercept and the naive slope stderr (points treated as independent)."""
    A = np.vstack([t, np.ones_like(t)]).T
    coef, res, *_ = np.linalg.lstsq(A, y, rcond=None)
    n = len(t)
    resid = y - A @ coef
    s2 = float(resid @ resid) / max(n - 2, 1)
    se = np.sqrt(s2 / np.sum((t - t.mean()) ** 2))
    return float(coef[0]), float(coef[1]), float(se)


def active_ions(max_sq_disp_A2: np.ndarray, threshold_A2: float = DEFAULT_ACTIVE_THRESHOLD_A2, normalization: float | None = None) -> dict:
    """Count of ions whose max squared displacement from the start reaches ``threshold_A2``."""
    n_ions = int(len(max_sq_disp_A2))
    norm = float(n_ions if normalization is None else normalization)
    if norm <= 0:
        raise SuperionError(f"active-ion normalization must be positive, got {norm:g}")
    n_active = int(np.count_nonzero(max_sq_disp_A2 >= threshold_A2))
    return {
        "n_active": n_active,
        "active_fraction": n_active / norm,
        "active_normalization": norm,
        "active_threshold_A2": float(threshold_A2),
    }


@dataclass
class DiffusionResult:
    """Diffusion analysis of one trajectory; ``summary`` is JSON-ready, ``curves`` go to .npz."""

    summary: dict
    curves: dict = field(default_factory=dict)


def analyze_displacements(
    disp_A: np.ndarray,
    frame_interval_fs: float,
    temperature_K: float,
    volumes_A3: np.ndarray,
    *,
    species: str = "Na",
    charge: float | None = None,
    fit_start_ps: float | None = None,
    fit_end_ps: float | None = None,
    active_threshold_A2: float = DEFAULT_ACTIVE_THRESHOLD_A2,
    active_normalization: float | None = None,
    max_bytes: float | None = None,
    summed_A: np.ndarray | None = None,
    max_sq_disp_A2: np.ndarray | None = None,
) -> DiffusionResult:
    """Diffusivity, conductivity, Haven ratio and active ions from mobile-ion displacements.

    disp_A: (n_ions, 3, F) unwrapped, drift-corrected positions (Å, float32 or float64); frame_interval_fs: time
    between frames (fs); volumes_A3: (F,) cell volume per frame (Å³); summed_A (3, F) Σ_i Δr_i
    and max_sq_disp_A2 (n_ions,) when the caller has them already (:func:`collect_mobile`
    computes both on the way), else they are computed here.
    """
    from superion.analysis.kernels import max_sq_disp
    from superion.analysis.msd import DEFAULT_MAX_BYTES, ion_msd

    n_ions, _, F = disp_A.shape
    if n_ions == 0:
        raise SuperionError(f"no {species} atoms in the trajectory; check --species")
    if F < 3:
        raise SuperionError(f"trajectory has {F} frame(s); diffusion needs at least 3 frames")
    if not (temperature_K and temperature_K > 0):
        raise SuperionError(f"temperature must be positive, got {temperature_K}; pass --temperature-K")
    if not (frame_interval_fs and frame_interval_fs > 0):
        raise SuperionError(f"frame interval must be positive, got {frame_interval_fs}; pass --frame-interval-fs")
    z = ion_charge(species, charge)
    dt_ps = frame_interval_fs / 1000.0
    duration_ps = (F - 1) * dt_ps
    start_ps, end_ps = fit_window(duration_ps, fit_start_ps, fit_end_ps)
    i0 = int(np.ceil(start_ps / dt_ps - 1e-9))
    i1 = int(np.floor(end_ps / dt_ps + 1e-9))
    if i1 - i0 + 1 < 3:
        raise SuperionError(
            f"fit window {start_ps:g}–{end_ps:g} ps holds {max(i1 - i0 + 1, 0)} MSD point(s) at {frame_interval_fs:g} fs per frame; "
            "widen the window or use a longer trajectory"
        )
    window = slice(i0, i1 + 1)
    lag_ps = np.arange(F) * dt_ps
    t = lag_ps[window]
    w = ols_slope_weights(t)
    # (3, F) Σ_i Δr_i: the charge displacement
    summed = disp_A.sum(axis=0, dtype=np.float64) if summed_A is None else np.asarray(summed_A, dtype=np.float64)
    # each ion's own OLS slope over the window comes straight out of the FFT pass
    res = ion_msd(disp_A, fit_lags=window, fit_weights=w, max_bytes=max_bytes or DEFAULT_MAX_BYTES, summed=summed)

    d_ion = res.per_ion_fit / 6.0 * A2_PS_TO_CM2_S  # per-ion D, cm²/s
    D = float(d_ion.mean())
    if not np.isfinite(D):  # readers refuse non-finite frames; displacements handed in directly may not be
        raise SuperionError("the displacements contain NaN/inf, so D is not a number; check the trajectory")
    slope, intercept, se_naive = ols_fit(t, res.mean[window])
    stderr = float(d_ion.std(ddof=1) / np.sqrt(n_ions)) if n_ions > 1 else float("nan")
    d_dir = np.array([ols_fit(t, res.per_dir[window, k])[0] / 2.0 * A2_PS_TO_CM2_S for k in range(3)])
    slope_c, _, _ = ols_fit(t, res.collective[window])
    D_sigma = slope_c / 6.0 * A2_PS_TO_CM2_S
    D_sigma_se, n_blocks = collective_block_stderr(summed, n_ions, dt_ps, start_ps / duration_ps, end_ps / duration_ps)

    volume = float(np.mean(volumes_A3))
    sigma = float(nernst_einstein_mS_cm(D, n_ions, volume, temperature_K, z))
    sigma_se = float(nernst_einstein_mS_cm(stderr, n_ions, volume, temperature_K, z)) if np.isfinite(stderr) else None
    sigma_c = float(nernst_einstein_mS_cm(D_sigma, n_ions, volume, temperature_K, z))
    haven = D / D_sigma if D_sigma > 0 and D > 0 else None
    haven_se = None
    if haven is not None and D_sigma_se is not None and np.isfinite(stderr):
        haven_se = haven * float(np.hypot(stderr / D, D_sigma_se / D_sigma))

    if max_sq_disp_A2 is None:
        msq = np.zeros(n_ions)
        max_sq_disp(np.ascontiguousarray(disp_A), msq)
    else:
        msq = np.asarray(max_sq_disp_A2, dtype=np.float64)
    active = active_ions(msq, active_threshold_A2, active_normalization)

    warnings: list[str] = []
    if duration_ps < SHORT_RUN_PS:
        warnings.append(f"short trajectory ({below(duration_ps, SHORT_RUN_PS)} ps < {SHORT_RUN_PS:g} ps): D is noisy")
    if t[0] < CAGE_REGIME_PS:
        warnings.append(
            f"fit starts at {t[0]:.3g} ps, inside the ~{CAGE_REGIME_PS:g} ps cage-rattling regime: "
            "D may include vibration (an upper bound); run longer"
        )
    msd_end = float(res.mean[i1])
    if msd_end < HOP_A2:
        warnings.append(
            f"mean MSD {msd_end:.3g} A^2 at the end of the fit window is below one hop (~{HOP_A2:g} A^2): "
            "ions barely moved; D reflects vibration and noise"
        )
    if D <= 0:
        warnings.append("MSD slope is not positive: no measurable diffusion in the fit window")
    elif np.isfinite(stderr) and stderr > 0.5 * D:
        warnings.append(f"relative stderr of D is {stderr / D:.0%}: D is poorly determined")
    if n_ions == 1:
        warnings.append("one mobile ion: no ion-to-ion spread, stderr unavailable")
    if haven is None:
        warnings.append("collective MSD slope or D not positive: Haven ratio undefined")
    elif haven_se is not None and haven_se > 0.5 * haven:
        warnings.append(f"Haven ratio {haven:.2g} +- {haven_se:.1g}: the centre-of-charge MSD is a single noisy series; run longer")

    summary = {
        "species": species,
        "charge": z,
        "temperature_K": float(temperature_K),
        "n_ions": int(n_ions),
        "n_frames": int(F),
        "frame_interval_fs": float(frame_interval_fs),
        "duration_ps": duration_ps,
        "volume_A3": volume,
        "volume_std_A3": float(np.std(volumes_A3)),
        "number_density_A3": n_ions / volume,
        "fit_start_ps": float(t[0]),
        "fit_end_ps": float(t[-1]),
        "fit_points": int(len(t)),
        "fit_window_source": "user" if fit_start_ps is not None or fit_end_ps is not None else "default: max(10 %, min(0.25 ps, 25 %)) to 50 % of the duration",
        "fit_method": "OLS line MSD = a + 6 D t over every lag in the window (all time origins, FFT)",
        "diffusivity_cm2_s": D,
        "diffusivity_stderr_cm2_s": stderr if np.isfinite(stderr) else None,
        "diffusivity_stderr_method": (
            "standard error of the mean of per-ion diffusivities (OLS slope of each ion's all-origin MSD "
            "in the fit window; their mean is the slope of the ion-averaged MSD); assumes independent ions"
        ),
        "diffusivity_ols_naive_stderr_cm2_s": se_naive / 6.0 * A2_PS_TO_CM2_S,
        "diffusivity_components_cm2_s": d_dir.tolist(),
        "msd_intercept_A2": intercept,
        "msd_at_fit_end_A2": msd_end,
        "conductivity_mS_cm": sigma,
        "conductivity_stderr_mS_cm": sigma_se,
        "conductivity_method": "Nernst-Einstein with the mean volume over frames",
        "charge_diffusivity_cm2_s": D_sigma,
        "charge_diffusivity_stderr_cm2_s": D_sigma_se,
        "charge_diffusivity_stderr_method": (
            f"std over {n_blocks} consecutive time blocks of the block estimates (same window fractions; "
            "each block estimate has about the variance of the full-run estimate, checked on random walks)"
        ) if D_sigma_se is not None else None,
        "conductivity_collective_mS_cm": sigma_c,
        "haven_ratio": haven,
        "haven_ratio_stderr": haven_se,
        **active,
        "max_sq_disp_mean_A2": float(msq.mean()),
        "warnings": warnings,
    }
    stride = -(-F // 100000)  # full resolution up to 1e5 frames; keeps the .npz small beyond
    curves = {
        "lag_ps": lag_ps[::stride],
        "msd_A2": res.mean[::stride],
        "msd_xyz_A2": res.per_dir[::stride],
        "msd_collective_A2": res.collective[::stride],
        "per_ion_diffusivity_cm2_s": d_ion,
        "per_ion_max_sq_disp_A2": msq,
    }
    return DiffusionResult(summary, curves)


def collective_block_stderr(summed_A: np.ndarray, n_ions: int, dt_ps: float, f0: float, f1: float, max_blocks: int = 8, min_block: int = 40):
    """Rough stderr (cm²/s) of the collective diffusivity: the centre-of-charge MSD is one series
    per run, so ions cannot be averaged; the run is cut into B consecutive blocks, each fitted
    on the same fractions [f0, f1] of its own duration, and the spread of the block values
    estimates the error of the full-run value. summed_A: (3, F) Σ_i Δr_i (Å). Returns
    (stderr or None, B)."""
    from superion.analysis.msd import msd_fft

    F = summed_A.shape[1]
    B = min(max_blocks, F // min_block)
    if B < 3:
        return None, 0
    L = F // B
    i0, i1 = int(np.ceil(f0 * (L - 1))), int(np.floor(f1 * (L - 1)))
    if i1 - i0 + 1 < 3:
        return None, 0
    t = np.arange(i0, i1 + 1) * dt_ps
    vals = []
    for b in range(B):
        m = msd_fft(summed_A[:, b * L : (b + 1) * L]).sum(axis=0) / n_ions
        vals.append(ols_fit(t, m[i0 : i1 + 1])[0] / 6.0 * A2_PS_TO_CM2_S)
    return float(np.std(vals, ddof=1)), B


def analyze_trajectory(
    traj,
    species: str,
    temperature_K: float | None = None,
    *,
    drift: str = "framework",
    chunk_frames: int | None = None,
    **kwargs,
) -> DiffusionResult:
    """Stream a trajectory reader: unwrap, remove framework drift, analyse the ``species`` ions.

    The time between frames is the reader's ``frame_interval_fs`` (an explicit interval is
    given to :func:`superion.trajectory.open_trajectory`); ``kwargs`` go to
    :func:`analyze_displacements`.
    """
    from superion.analysis.unwrap import collect_mobile

    if traj.n_frames == 0:
        raise SuperionError("trajectory has no frames; check the file or the run directory")
    if traj.n_frames < 3:
        raise SuperionError(f"trajectory has {traj.n_frames} frame(s); diffusion needs at least 3 frames")
    symbols = np.asarray(traj.symbols)
    mobile = np.flatnonzero(symbols == species)
    if mobile.size == 0:
        present = ", ".join(sorted(set(symbols.tolist())))
        raise SuperionError(f"species {species!r} not in the trajectory (elements: {present}); check --species")
    T = temperature_K if temperature_K is not None else getattr(traj, "temperature_K", None)
    if T is None:
        raise SuperionError("temperature unknown; pass --temperature-K")
    if T <= 0:
        raise SuperionError(f"temperature must be positive, got {T}; pass --temperature-K")
    if drift == "framework" and mobile.size == traj.n_atoms:
        raise SuperionError(
            f"every atom of the trajectory is {species}: there is no framework whose centre-of-mass drift could be "
            "removed; pass --drift none to analyse it with the drift left in"
        )
    dt = traj.frame_interval_fs
    mob = collect_mobile(traj, mobile, drift=drift, chunk_frames=chunk_frames, temperature_K=T)
    result = analyze_displacements(mob.disp_A, dt, T, mob.volumes_A3, species=species, summed_A=mob.summed_A,
                                   max_sq_disp_A2=mob.max_sq_disp_A2, **kwargs)
    result.summary["drift_correction"] = mob.drift_method
    result.summary["max_framework_displacement_A"] = mob.max_framework_disp_A
    if mob.drift_method == "none" and drift == "framework":
        result.summary["warnings"].append("no framework atoms: centre-of-mass drift not removed")
    result.summary["n_atoms"] = int(traj.n_atoms)
    return result



def write_diffusion(
    trajectory: str | os.PathLike,
    json_path: str | os.PathLike,
    species: str = "Na",
    temperature_K: float | None = None,
    *,
    frame_interval_fs: float | None = None,
    drift: str = "framework",
    open_options: dict | None = None,
    **kwargs,
) -> dict:
    """``superion analyze diffusion``: open ``trajectory`` (run directory or file, with
    ``frame_interval_fs`` fs between frames if given), analyse the ``species`` ions
    (:func:`analyze_trajectory`; ``kwargs`` as for :func:`analyze_displacements`), write the
    summary JSON to ``json_path`` and the MSD curves beside it (.npz). Returns the summary.
    ``open_options`` go to :func:`~superion.trajectory.open_trajectory` (format, type_map, topology)."""
    from superion import __version__
    from superion.analysis.outputs import curves_path, write_result
    from superion.paths import check_writable
    from superion.trajectory import open_trajectory

    if temperature_K is not None and not temperature_K > 0:  # before the trajectory is read
        raise SuperionError(f"--temperature-K {temperature_K}: temperature must be positive")
    check_writable(json_path)
    with open_trajectory(trajectory, frame_interval_fs, **(open_options or {})) as traj:
        res = analyze_trajectory(traj, species, temperature_K, drift=drift, **kwargs)
    npz = curves_path(json_path)
    summary = {"source": str(trajectory), **res.summary, "msd_file": npz.name, "superion_version": __version__}
    write_result(json_path, summary, res.curves)
    return summary
