"""One call from mobile-ion positions to a trustworthy diffusivity: window → regime → GLS (or a bound).

:func:`diffusion_statistics` chains :mod:`~superion.analysis.moments` (all-origin MSD by FFT),
:mod:`~superion.analysis.window` (fit window from the data), :mod:`~superion.analysis.regime`
(diffusive / subdiffusive / immobile against the hop length) and :mod:`~superion.analysis.gls`
(GLS D with a calibrated 95 % interval, or an upper bound when not diffusive). The coverage
benchmark (bench/diffusion_coverage.py) runs exactly this function on synthetic replicas.
"""

from __future__ import annotations

import numpy as np

from superion.errors import SuperionError


def diffusion_statistics(
    pos_A,
    dt_ps: float,
    hop_length_A: float,
    *,
    species: str | None = None,
    start_ps: float | None = None,
    end_ps: float | None = None,
    max_lags: int | None = None,
    spectra=None,
    n_hops: int | None = None,
) -> dict:
    """Diffusion statistics of one run (JSON-ready dict).

    pos_A: (n_ions, 3, F) unwrapped, drift-corrected positions (Å); dt_ps: time between
    frames (ps); hop_length_A: site-to-site distance of the mobile sublattice (Å, from
    :func:`superion.analysis.regime.hop_length_A`); start_ps/end_ps: user overrides of the fit
    window; n_hops: hops counted in the run (see :func:`superion.analysis.regime.classify_regime`).
    Only a ``diffusive`` run gets ``diffusivity_cm2_s`` and its interval; the others
    get ``diffusivity_upper_bound_cm2_s`` and ``diffusivity_cm2_s`` = None. The comparison
    estimators (OLS over every window lag: naive and per-ion-spread stderr) are included
    for diffusive runs.
    """
    from superion.analysis.gls import DEFAULT_MAX_LAGS, diffusion_gls
    from superion.analysis.moments import check_positions, ion_spectra, msd_at_lag_per_ion_A2
    from superion.analysis.regime import classify_regime
    from superion.analysis.window import fit_window_from_msd

    pos = check_positions(pos_A)
    if not (dt_ps and dt_ps > 0):
        raise SuperionError(f"frame interval must be positive, got {dt_ps} ps; pass the time between frames")
    if not (hop_length_A and hop_length_A > 0):
        raise SuperionError(f"hop length must be positive, got {hop_length_A} Å; check the structure or pass the site spacing")
    n, _, F = pos.shape
    if F < 8:
        raise SuperionError(f"trajectory has {F} frames; diffusion statistics need at least 8")
    sp = ion_spectra(pos) if spectra is None else spectra
    lag_ps = np.arange(F) * dt_ps
    duration = (F - 1) * dt_ps
    window = fit_window_from_msd(lag_ps, sp.mean_A2, duration, start_ps=start_ps, end_ps=end_ps, n_ions=n, dt_ps=dt_ps)
    i_end = int(np.floor(window.end_ps / dt_ps + 1e-9))
    # each ion's MSD at the window end (for the upper bound of non-diffusive runs)
    per_ion_end = sp.window_sums(i_end, i_end, [1.0]) if sp.has_per_ion else msd_at_lag_per_ion_A2(pos, i_end)
    regime = classify_regime(lag_ps, sp.mean_A2, window, hop_length_A, species=species,
                             per_ion_msd_end_A2=per_ion_end, n_frames=F, dt_ps=dt_ps, n_hops=n_hops)
    out = {"n_ions": int(n), "n_frames": int(F), "frame_interval_ps": float(dt_ps), "duration_ps": duration,
           **window.summary(), **regime}
    warnings = list(regime["warnings"])
    if regime["regime"] == "diffusive":
        res = diffusion_gls(pos, dt_ps, window.start_ps, window.end_ps, spectra=sp, max_lags=max_lags or DEFAULT_MAX_LAGS)
        summ = res.summary()
        warnings += summ.pop("warnings")
        out.update(summ)
    else:
        out.update({"diffusivity_cm2_s": None, "diffusivity_stderr_cm2_s": None, "diffusivity_ci95_cm2_s": None})
    out["warnings"] = warnings
    return out
