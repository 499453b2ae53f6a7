"""Regime, tracer and charge diffusivity, Nernst–Einstein conductivity, Haven ratio, hops, active ions.

Conventions (see ../shared/docs/science.md):
- Statistics core: :func:`superion.analysis.diffusion_stats.diffusion_statistics` chooses the fit
  window from the data (local exponent β ≈ 1 after the cage regime; end = duration/3, three
  independent origins), classifies the run against the hop length h of the structure (median
  nearest-neighbour distance of the mobile ions in the first frame) as ``diffusive``,
  ``subdiffusive`` or ``immobile``, and gives a diffusive run its GLS D with a 95 % interval.
  A non-diffusive run gets ``diffusivity_cm2_s`` = null and ``diffusivity_upper_bound_cm2_s``
  (one-sided 95 % limit of MSD(t)/(6t) at the window end, see :mod:`~superion.analysis.regime`);
  conductivity, charge diffusivity and Haven ratio are then null too (σ gets its bound).
  ``--fit-start-ps/--fit-end-ps`` override the window. 1 Å²/ps = 1e-4 cm²/s.
- Per-ion spread: each ion's OLS slope over the window (``per_ion_diffusivity_cm2_s`` in the
  .npz) and, for diffusive runs, the per-ion-spread stderr beside the GLS one.
- Nernst–Einstein σ = n (Ze)² D / (k_B T), n = n_ions / ⟨V⟩ with ⟨V⟩ the mean volume over frames
  (NPT), SI throughout, reported in mS/cm (1 S/m = 10 mS/cm).
- Collective (charge) diffusivity D_σ = slope / 6 of MSD(Σ_i Δr_i) / n_ions over the same window
  (OLS); Haven ratio H = D / D_σ; D_σ's stderr from 8 consecutive time blocks
  (:func:`collective_block_stderr`), propagated into H. Diffusive runs only.
- Short-run mobility numbers that are resolved when D is not: the MSD at a reference lag
  (``msd_ref_*``, bootstrap 95 % interval over ions, :func:`msd_at_reference_lag`) and the
  active-ion fraction with its Clopper–Pearson interval. Active ion: its own squared
  displacement from its start (drift-corrected) reaches ``threshold_A2`` at any time of the run.
- Hops (with first-frame positions and cells): sites = starting positions of the mobile ions
  (snapped to their density maximum) + interstitial density maxima of the run
  (:func:`superion.analysis.density.hop_sites_frac`); rate with the exact Poisson interval,
  correlation factor f = D / (Γ⟨a²⟩/6) for diffusive runs (:mod:`~superion.analysis.hops`).
- Positions: fractional unwrapping r = s_u · h(t) (superion's unwrap). Under strong NPT cell
  breathing this biases the MSD slightly (the stats author's finding); a TOR-style unwrap that
  accumulates Cartesian minimum-image steps would avoid it — not done yet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from superion.errors import SuperionError
from superion.structures.clusters import ION_CHARGE
from superion.units import A2_PS_TO_CM2_S, A3_TO_M3, CM2_TO_M2, E_CHARGE_C, FS_PER_PS, K_B_J_K, S_M_TO_MS_CM

DEFAULT_ACTIVE_THRESHOLD_A2 = 21.0
DEFAULT_MSD_REF_LAG_PS = 1.0
# bootstrap resamples of the ions for the MSD(reference lag) interval; fixed seed: same input, same JSON
N_BOOTSTRAP = 4000
SHORT_RUN_PS = 20.0  # a diffusive D from a shorter run rests on few hops


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


def clopper_pearson(k: int, n: int, level: float = 0.95) -> list[float]:
    """Exact (Clopper–Pearson) two-sided interval of a binomial proportion k/n."""
    from scipy.stats import beta

    a = 1.0 - level
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return [lo, hi]


def active_ions(max_sq_disp_A2: np.ndarray, threshold_A2: float = DEFAULT_ACTIVE_THRESHOLD_A2, normalization: float | None = None) -> dict:
    """Count of ions whose max squared displacement from the start reaches ``threshold_A2``, with the
    Clopper–Pearson 95 % interval of the fraction (binomial over the simulated ions, divided by the
    normalization like the fraction itself)."""
    n_ions = int(len(max_sq_disp_A2))
    norm = float(n_ions if normalization is None else normalization)
    if norm <= 0:
        raise SuperionError(f"active-ion normalization must be positive, got {norm:g}")
    n_active = int(np.count_nonzero(max_sq_disp_A2 >= threshold_A2))
    lo, hi = clopper_pearson(n_active, n_ions)
    return {
        "n_active": n_active,
        "active_fraction": n_active / norm,
        "active_fraction_ci95": [lo * n_ions / norm, hi * n_ions / norm],
        "active_fraction_ci95_method": f"Clopper-Pearson exact binomial interval of {n_active}/{n_ions} ions, times n_ions/normalization",
        "active_normalization": norm,
        "active_threshold_A2": float(threshold_A2),
    }


def msd_at_reference_lag(pos_A: np.ndarray, dt_ps: float, ref_lag_ps: float = DEFAULT_MSD_REF_LAG_PS) -> dict:
    """Ion-averaged all-origin MSD (Å²) at a reference lag with a 95 % bootstrap interval over ions.

    A mobility number that short runs resolve even when D does not. The lag is ``ref_lag_ps``
    rounded to a frame; if that leaves fewer than half the frames as time origins (run shorter
    than 2 × the lag) the longest lag with >= half the frames as origins is used and the JSON says so."""
    from superion.analysis.moments import msd_at_lag_per_ion_A2

    if not (ref_lag_ps and ref_lag_ps > 0):
        raise SuperionError(f"--msd-ref-lag-ps {ref_lag_ps}: the reference lag must be positive")
    n, _, F = pos_A.shape
    want = max(1, int(round(ref_lag_ps / dt_ps)))
    longest = F // 2  # F − m >= F/2 origins
    if longest < 1:
        raise SuperionError(f"trajectory has {F} frames; the MSD at a reference lag needs at least 2")
    lag = min(want, longest)
    note = None
    if lag < want:
        note = (f"run of {(F - 1) * dt_ps:.3g} ps is shorter than 2 x the requested {ref_lag_ps:g} ps: "
                f"MSD taken at {lag * dt_ps:.3g} ps, the longest lag with >= half the frames as time origins")
    per_ion = msd_at_lag_per_ion_A2(pos_A, lag)
    mean = float(per_ion.mean())
    ci = None
    if n > 1:
        rng = np.random.default_rng(0)
        boot = per_ion[rng.integers(0, n, size=(N_BOOTSTRAP, n))].mean(axis=1)
        ci = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
    return {
        "msd_ref_lag_requested_ps": float(ref_lag_ps),
        "msd_ref_lag_ps": float(lag * dt_ps),
        "msd_ref_A2": mean,
        "msd_ref_ci95_A2": ci,
        "msd_ref_method": (f"all-origin MSD at the lag, averaged over ions; 95 % interval: percentile bootstrap over ions "
                           f"({N_BOOTSTRAP} resamples; ions treated as independent, slightly narrow for < 10 ions)"
                           if n > 1 else "all-origin MSD of the one ion at the lag; no interval (one ion)"),
        "msd_ref_note": note,
    }


def _hop_statistics(pos_A: np.ndarray, cells_A: np.ndarray, start_frac: np.ndarray, dt_ps: float, hop_length_A: float) -> tuple[dict, object]:
    """Hop counts between the starting sites + density-maximum interstitials (see density.hop_sites_frac)."""
    from superion.analysis.density import hop_sites_frac
    from superion.analysis.hops import count_hops
    from superion.analysis.unwrap import inverse_cells

    cells = np.broadcast_to(np.asarray(cells_A, dtype=np.float64), (pos_A.shape[2], 3, 3))
    frac = np.einsum("ikf,fkl->fil", pos_A, inverse_cells(np.ascontiguousarray(cells))[0])
    # An interstitial site must lie at least half a hop length from every other site: a density
    # maximum closer than that is a side lobe of the same cage (seen: NaBH4 at 800 K, no vacancies,
    # gave 17 "hops" of 1.6 A between Na sites and such lobes with a 1 A rule, 2 with h/2). The
    # core-radius assignment already ignores rattling that never enters another site's core; a
    # residence filter would also erase real quick successive hops (18 % of them at 2 hops/ps).
    from superion.analysis.density import SITE_DEDUPE_A

    sites = hop_sites_frac(frac, cells.mean(axis=0), start_frac, snap_A=0.5 * hop_length_A,
                           dedupe_A=max(SITE_DEDUPE_A, 0.5 * hop_length_A))
    hr = count_hops(pos_A, cells, sites["sites_frac"], dt_ps)
    summ = hr.summary()
    summ.update(n_hop_sites=len(sites["sites_frac"]), n_start_sites=sites["n_start_sites"],
                n_interstitial_sites=sites["n_interstitial_sites"], hop_sites_method=sites["method"],
                hop_core_radius_rule="0.3 x the median nearest-neighbour distance between the sites")
    return summ, hr


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
    msd_ref_lag_ps: float = DEFAULT_MSD_REF_LAG_PS,
    max_bytes: float | None = None,
    summed_A: np.ndarray | None = None,
    max_sq_disp_A2: np.ndarray | None = None,
    start_positions_A: np.ndarray | None = None,
    cells_A: np.ndarray | None = None,
    hop_length_A: float | None = None,
) -> DiffusionResult:
    """Regime, diffusivity (or its upper bound), conductivity, Haven ratio, hops and active ions.

    disp_A: (n_ions, 3, F) unwrapped, drift-corrected displacements from the start (Å);
    frame_interval_fs: time between frames (fs); volumes_A3: (F,) cell volume per frame (Å³);
    start_positions_A (n_ions, 3) and cells_A (F, 3, 3) (Å, rows = lattice vectors): the first
    frame of the mobile ions and the cells, for the hop length of the structure and the hop
    count; without them pass ``hop_length_A`` (Å) and no hops are counted. summed_A (3, F)
    Σ_i Δr_i and max_sq_disp_A2 (n_ions,) when the caller has them already.
    The fit window, regime and GLS diffusivity come from
    :func:`superion.analysis.diffusion_stats.diffusion_statistics`; only a ``diffusive`` run gets
    ``diffusivity_cm2_s`` (else null and ``diffusivity_upper_bound_cm2_s``).
    """
    from superion.analysis.diffusion_stats import diffusion_statistics
    from superion.analysis.gls import window_indices
    from superion.analysis.kernels import max_sq_disp
    from superion.analysis.moments import ion_spectra
    from superion.analysis.msd import DEFAULT_MAX_BYTES, ion_msd
    from superion.analysis.regime import hop_length_A as structure_hop_length
    from superion.analysis.window import local_exponent

    n_ions, _, F = disp_A.shape
    if n_ions == 0:
        raise SuperionError(f"no {species} atoms in the trajectory; check --species")
    if F < 3:
        raise SuperionError(f"trajectory has {F} frame(s); diffusion needs at least 3 frames")
    if not np.all(np.isfinite(disp_A)):  # readers refuse non-finite frames; displacements handed in directly may not be
        raise SuperionError("the displacements contain NaN/inf, so D is not a number; check the trajectory")
    if not (temperature_K and temperature_K > 0):
        raise SuperionError(f"temperature must be positive, got {temperature_K}; pass --temperature-K")
    if not (frame_interval_fs and frame_interval_fs > 0):
        raise SuperionError(f"frame interval must be positive, got {frame_interval_fs}; pass --frame-interval-fs")
    z = ion_charge(species, charge)
    dt_ps = frame_interval_fs / FS_PER_PS
    duration_ps = (F - 1) * dt_ps
    pos = np.asarray(disp_A, dtype=np.float64)
    start_frac = None
    if start_positions_A is not None and cells_A is not None:
        cells = np.asarray(cells_A, dtype=np.float64)
        p0 = np.asarray(start_positions_A, dtype=np.float64)
        start_frac = np.linalg.solve(cells[0].T if cells.ndim == 3 else cells.T, p0.T).T
        pos = pos + p0[:, :, None]  # positions whose fractional coordinates are images of the true ones (hops)
        h = structure_hop_length(start_frac, cells[0] if cells.ndim == 3 else cells) if hop_length_A is None else float(hop_length_A)
        hop_source = "median nearest-neighbour distance of the mobile ions in the first frame" if hop_length_A is None else "given"
    elif hop_length_A is not None:
        h, hop_source = float(hop_length_A), "given"
    else:
        raise SuperionError("hop length unknown: pass hop_length_A (A) or the first-frame positions and the cells")

    hops: dict = {"n_hops": None, "hop_rate_per_s": None, "hop_rate_ci95_per_s": None,
                  "hop_note": "no first-frame positions and cells: hops not counted"}
    hr = None
    if start_frac is not None:  # before the regime: a run with hops is not immobile
        hops, hr = _hop_statistics(pos, np.asarray(cells_A, dtype=np.float64), start_frac, dt_ps, h)
    spectra = ion_spectra(pos)
    st = diffusion_statistics(pos, dt_ps, h, species=species, start_ps=fit_start_ps, end_ps=fit_end_ps, spectra=spectra,
                              n_hops=hops["n_hops"])
    start_ps, end_ps = st["fit_start_ps"], st["fit_end_ps"]
    i0, i1 = window_indices(start_ps, end_ps, dt_ps, F)  # validates a user window (>= 3 lags)
    window = slice(i0, i1 + 1)
    diffusive = st["regime"] == "diffusive"
    D = st["diffusivity_cm2_s"]
    D_ci = st.get("diffusivity_ci95_cm2_s")
    stderr = st.get("diffusivity_stderr_cm2_s")
    lag_ps = np.arange(F) * dt_ps
    t = lag_ps[window]
    w = ols_slope_weights(t)
    summed = disp_A.sum(axis=0, dtype=np.float64) if summed_A is None else np.asarray(summed_A, dtype=np.float64)
    # per-direction, collective and per-ion OLS slopes over the window: the per-ion spread figure
    res = ion_msd(disp_A, fit_lags=window, fit_weights=w, max_bytes=max_bytes or DEFAULT_MAX_BYTES, summed=summed)
    d_ion = res.per_ion_fit / 6.0 * A2_PS_TO_CM2_S

    volume = float(np.mean(volumes_A3))
    ne = lambda d: float(nernst_einstein_mS_cm(d, n_ions, volume, temperature_K, z))  # noqa: E731
    warnings: list[str] = list(st["warnings"])
    out_d: dict = {}
    if diffusive:
        d_dir = [ols_fit(t, res.per_dir[window, k])[0] / 2.0 * A2_PS_TO_CM2_S for k in range(3)]
        slope_c, _, _ = ols_fit(t, res.collective[window])
        D_sigma = slope_c / 6.0 * A2_PS_TO_CM2_S
        D_sigma_se, n_blocks = collective_block_stderr(summed, n_ions, dt_ps, start_ps / duration_ps, end_ps / duration_ps)
        haven = D / D_sigma if D_sigma > 0 and D > 0 else None
        haven_se = None
        if haven is not None and D_sigma_se is not None and stderr:
            haven_se = haven * float(np.hypot(stderr / D, D_sigma_se / D_sigma))
        out_d = {
            "conductivity_mS_cm": ne(D),
            "conductivity_stderr_mS_cm": ne(stderr) if stderr is not None else None,
            "conductivity_ci95_mS_cm": [ne(D_ci[0]), ne(D_ci[1])] if D_ci else None,
            "conductivity_upper_bound_mS_cm": None,
            "diffusivity_components_cm2_s": d_dir,
            "charge_diffusivity_cm2_s": D_sigma,
            "charge_diffusivity_stderr_cm2_s": D_sigma_se,
            "charge_diffusivity_stderr_method": (
                f"std over {n_blocks} consecutive time blocks of the block estimates (same window fractions; "
                "each block estimate has about the variance of the full-run estimate, checked on random walks)"
            ) if D_sigma_se is not None else None,
            "conductivity_collective_mS_cm": ne(D_sigma),
            "haven_ratio": haven,
            "haven_ratio_stderr": haven_se,
        }
        if duration_ps < SHORT_RUN_PS:
            warnings.append(f"short trajectory ({below(duration_ps, SHORT_RUN_PS)} ps < {SHORT_RUN_PS:g} ps): D is noisy")
        if D <= 0:
            warnings.append("MSD slope is not positive: no measurable diffusion in the fit window")
        if haven is None:
            warnings.append("collective MSD slope or D not positive: Haven ratio undefined")
        elif haven_se is not None and haven_se > 0.5 * haven:
            warnings.append(f"Haven ratio {haven:.2g} +- {haven_se:.1g}: the centre-of-charge MSD is a single noisy series; run longer")
    else:
        ub = st.get("diffusivity_upper_bound_cm2_s")
        out_d = {
            "conductivity_mS_cm": None, "conductivity_stderr_mS_cm": None, "conductivity_ci95_mS_cm": None,
            "conductivity_upper_bound_mS_cm": ne(ub) if ub is not None else None,
            "diffusivity_components_cm2_s": None, "charge_diffusivity_cm2_s": None, "charge_diffusivity_stderr_cm2_s": None,
            "charge_diffusivity_stderr_method": None, "conductivity_collective_mS_cm": None,
            "haven_ratio": None, "haven_ratio_stderr": None,
        }
    if n_ions == 1:
        warnings.append("one mobile ion: no ion-to-ion spread, interval from the random-walk model only")

    if max_sq_disp_A2 is None:
        msq = np.zeros(n_ions)
        max_sq_disp(np.ascontiguousarray(disp_A), msq)
    else:
        msq = np.asarray(max_sq_disp_A2, dtype=np.float64)
    active = active_ions(msq, active_threshold_A2, active_normalization)
    ref = msd_at_reference_lag(pos, dt_ps, msd_ref_lag_ps)

    if hr is not None:
        if diffusive and D:
            hops.update(hr.correlation_factor(D, D_ci))
        else:
            hops.update(correlation_factor=None, correlation_factor_ci95=None,
                        correlation_factor_note="D not resolved (non-diffusive run): no correlation factor")

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
        **{k: v for k, v in st.items() if k not in ("warnings", "n_ions", "n_frames", "duration_ps")},
        "hop_length_source": hop_source,
        "fit_points": int(len(t)),
        "fit_method": st.get("diffusivity_method") or "none: the run is not diffusive (see regime); upper bound only",
        "diffusivity_upper_bound_cm2_s": st.get("diffusivity_upper_bound_cm2_s"),
        "conductivity_method": "Nernst-Einstein with the mean volume over frames (of D, its interval, or its upper bound)",
        **out_d,
        **ref,
        **active,
        **hops,
        "max_sq_disp_mean_A2": float(msq.mean()),
        "warnings": warnings,
    }
    stride = -(-F // 100000)  # full resolution up to 1e5 frames; keeps the .npz small beyond
    beta_t, beta = local_exponent(lag_ps, spectra.mean_A2, t_max_ps=duration_ps / 2)
    curves = {
        "lag_ps": lag_ps[::stride],
        "msd_A2": res.mean[::stride],
        "msd_xyz_A2": res.per_dir[::stride],
        "msd_collective_A2": res.collective[::stride],
        "per_ion_diffusivity_cm2_s": d_ion,
        "per_ion_max_sq_disp_A2": msq,
        "beta_lag_ps": np.asarray(beta_t, dtype=np.float64),
        "beta": np.asarray(beta, dtype=np.float64),
        "fit_window_ps": np.array([start_ps, end_ps]),
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
    p0 = np.asarray(traj.positions(slice(0, 1), mobile), dtype=np.float64)[0]
    cells = np.asarray(traj.cells(slice(None)), dtype=np.float64)
    result = analyze_displacements(mob.disp_A, dt, T, mob.volumes_A3, species=species, summed_A=mob.summed_A,
                                   max_sq_disp_A2=mob.max_sq_disp_A2, start_positions_A=p0, cells_A=cells, **kwargs)
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
    import json

    from superion import __version__
    from superion.analysis.outputs import curves_path, write_result
    from superion.atomic import json_default
    from superion.paths import check_writable
    from superion.trajectory import open_trajectory

    if temperature_K is not None and not temperature_K > 0:  # before the trajectory is read
        raise SuperionError(f"--temperature-K {temperature_K}: temperature must be positive")
    check_writable(json_path)
    with open_trajectory(trajectory, frame_interval_fs, **(open_options or {})) as traj:
        res = analyze_trajectory(traj, species, temperature_K, drift=drift, **kwargs)
    npz = curves_path(json_path)
    summary = {"source": str(trajectory), **res.summary, "msd_file": npz.name, "superion_version": __version__}
    summary = json.loads(json.dumps(summary, default=json_default, allow_nan=True))  # plain types: returned == written
    write_result(json_path, summary, res.curves)
    return summary
