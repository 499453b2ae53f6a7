"""Is a run diffusive? Regime of the mobile-ion MSD, measured against the hop length of the structure.

Regimes (:func:`classify_regime`):

- ``diffusive``: a diffusive stretch was found (the local exponent β reaches ~1 and stays,
  see :mod:`superion.analysis.window`), the ln–ln slope of the MSD over the whole fit window
  is ≥ 0.8, and the MSD grows by at least one hop length squared over the window
  (MSD(t_end) − MSD(t_start) ≥ h²): the slope measures ions moving between sites, not
  vibration. Only these runs get a diffusivity.
- ``immobile``: MSD(t_end) < h²/4 — the ions stay within half a hop of where they started
  (rms displacement < h/2): vibration, at most a few rare hops.
- ``subdiffusive``: anything else (caged/rattling, back-and-forth hops, or the diffusive
  regime not reached in the sampled time).

The hop length h comes from the structure, not from a per-element constant:
:func:`hop_length_A` is the median nearest-neighbour distance between sites of the mobile
sublattice (the mobile ions of the first frame, or candidate sites). So the same rule reads
"one Li–Li hop (2.4 Å)" for an argyrodite and "one Na–Na hop (3.4 Å)" for o-NBH.

Non-diffusive runs get an upper bound on D (:func:`diffusivity_upper_bound`) instead:

    D ≤ U95[MSD(t)] / (6 t),   t = the window end (the longest well-sampled lag),

U95 the one-sided 95 % upper confidence limit of the ion-averaged MSD (Student t over the
per-ion MSDs at t, n_ions − 1 degrees of freedom; one ion: the random-walk variance at D =
MSD/(6t)). Why it bounds the long-time D: d/dt [MSD/t] = (MSD/t²)(β − 1), so MSD(t)/t never
increases while β ≤ 1; caged, trapped and back-hopping dynamics have β ≤ 1 at all times
after the ballistic regime, and MSD/t falls to 6 D from above. (It would fail only for a
superdiffusive stretch after t, which vibrating ions in a solid do not show.) The t chosen
in advance (not the minimum over lags) keeps the 95 % honest.
"""

from __future__ import annotations

import numpy as np

from superion.errors import SuperionError

from superion.units import A2_PS_TO_CM2_S

BETA_DIFFUSIVE = 0.8
MIN_HOPS_IN_WINDOW = 1.0  # MSD growth over the window, in units of h²
IMMOBILE_FRACTION = 0.25  # MSD(t_end) / h² below this: immobile


def nearest_neighbour_distances_A(frac_positions, cell_A) -> np.ndarray:
    """Distance (Å) from each position to its nearest neighbour among the others and all their
    periodic images (27 neighbouring cells: right for cells not much thinner than the distance).

    frac_positions: (k, 3) fractional coordinates; cell_A: (3, 3) Å, rows = lattice vectors."""
    f = np.asarray(frac_positions, dtype=np.float64)
    h = np.asarray(cell_A, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != 3:
        raise SuperionError(f"fractional positions must have shape (k, 3), got {f.shape}")
    if len(f) == 0:
        raise SuperionError("no mobile-ion positions or sites given; check the species selection")
    if h.shape != (3, 3) or not abs(np.linalg.det(h)) > 0:
        raise SuperionError("cell must be a non-singular (3, 3) matrix in Å, rows = lattice vectors")
    shifts = np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij"), axis=-1).reshape(-1, 3)
    out = np.empty(len(f))
    chunk = max(1, 200_000 // (27 * len(f)))
    for a in range(0, len(f), chunk):
        b = min(a + chunk, len(f))
        d = f[a:b, None, :] - f[None, :, :]
        d -= np.round(d)
        dd = (d[:, :, None, :] + shifts[None, None]) @ h  # (c, k, 27, 3)
        r2 = np.einsum("...i,...i->...", dd, dd)
        r2[r2 < 1e-12] = np.inf  # the position itself (zero shift); its own images stay in
        out[a:b] = np.sqrt(r2.reshape(b - a, -1).min(axis=1))
    return out


def hop_length_A(frac_positions, cell_A, *, sites_frac=None) -> float:
    """Typical hop length (Å): median nearest-neighbour distance of the mobile sublattice.

    frac_positions: (k, 3) fractional coordinates of the mobile ions in the first frame;
    ``sites_frac`` (S, 3), if given, replaces them (candidate sites — use these for a
    partially occupied sublattice, where occupied positions are farther apart than sites)."""
    pts = frac_positions if sites_frac is None else sites_frac
    d = nearest_neighbour_distances_A(pts, cell_A)
    h = float(np.median(d))
    if not h > 0:
        raise SuperionError("hop length came out zero: two mobile sites coincide; check the structure")
    return h


def loglog_slope(lag_ps, msd_A2, start_ps: float, end_ps: float, max_points: int = 400) -> float:
    """Least-squares slope of ln MSD vs ln t over lags in [start_ps, end_ps] (log-spaced subsample)."""
    t = np.asarray(lag_ps, dtype=np.float64)
    y = np.asarray(msd_A2, dtype=np.float64)
    sel = np.flatnonzero((t >= start_ps * (1 - 1e-9)) & (t <= end_ps * (1 + 1e-9)) & (t > 0) & (y > 0))
    if len(sel) < 2:
        return float("nan")
    if len(sel) > max_points:
        sel = sel[np.unique(np.round(np.geomspace(1, len(sel), max_points)).astype(int) - 1)]
    x, z = np.log(t[sel]), np.log(y[sel])
    xc = x - x.mean()
    return float(xc @ (z - z.mean()) / (xc @ xc))


def diffusivity_upper_bound(t_ps: float, per_ion_msd_A2, *, level: float = 0.95, n_frames: int | None = None,
                            dt_ps: float | None = None) -> dict:
    """One-sided ``level`` upper bound on D (cm²/s) from the per-ion MSDs (Å²) at lag ``t_ps``.

    U = mean + t_{level, n−1} · sd / √n, D ≤ U / (6 t) (see module docstring). One ion: the
    random-walk variance of its all-origin MSD at D = MSD/(6t) (needs ``n_frames``, ``dt_ps``)."""
    from scipy.stats import norm, t as student_t

    m = np.asarray(per_ion_msd_A2, dtype=np.float64).ravel()
    if len(m) == 0:
        raise SuperionError("no mobile ions for the upper bound; check the species selection")
    if not (t_ps and t_ps > 0):
        raise SuperionError(f"lag for the upper bound must be positive, got {t_ps} ps")
    mean = float(m.mean())
    if len(m) > 1:
        U = mean + float(student_t.ppf(level, len(m) - 1)) * float(m.std(ddof=1)) / np.sqrt(len(m))
        how = f"mean + t({level:g}, {len(m) - 1} dof) x sd/sqrt(n) of the per-ion MSDs"
    else:
        if n_frames is None or dt_ps is None:
            raise SuperionError("one mobile ion: the upper bound needs n_frames and dt_ps for the random-walk variance")
        from superion.analysis.gls import msd_covariance_A4

        lag = int(round(t_ps / dt_ps))
        var = float(msd_covariance_A4([lag], n_frames, 1, dt_ps, max(mean, 0.0) / (6.0 * t_ps))[0, 0])
        U = mean + float(norm.ppf(level)) * np.sqrt(var)
        how = f"MSD + z({level:g}) x random-walk sd at D = MSD/(6t) (one ion)"
    return {
        "diffusivity_upper_bound_cm2_s": max(U, 0.0) / (6.0 * t_ps) * A2_PS_TO_CM2_S,
        "diffusivity_upper_bound_level": level,
        "diffusivity_upper_bound_lag_ps": float(t_ps),
        "diffusivity_upper_bound_method": f"one-sided upper limit of MSD(t)/(6 t) at the window end ({how}); "
                                          "valid because MSD(t)/t does not increase where the local exponent is <= 1",
    }


def classify_regime(
    lag_ps,
    msd_A2,
    window,
    hop_length_A: float,
    *,
    species: str | None = None,
    per_ion_msd_end_A2=None,
    n_frames: int | None = None,
    dt_ps: float | None = None,
    n_hops: int | None = None,
) -> dict:
    """Regime of one run (see module docstring) with reasons and species-aware warnings.

    lag_ps, msd_A2: the ion-averaged MSD curve (ps, Å²); window: a
    :class:`superion.analysis.window.FitWindow`; hop_length_A: from :func:`hop_length_A`;
    per_ion_msd_end_A2: (n_ions,) each ion's MSD at the window end (for the upper bound of
    non-diffusive runs; omitted → no bound); n_hops: hops between sites seen in the run (if
    counted): a run with hops is never ``immobile`` — the MSD at the window end (a third of a
    short run) can be below h²/4 while ions have already hopped. Returns a JSON-ready dict."""
    if not (hop_length_A and hop_length_A > 0):
        raise SuperionError(f"hop length must be positive, got {hop_length_A} Å; check the structure or pass the site spacing")
    t = np.asarray(lag_ps, dtype=np.float64)
    y = np.asarray(msd_A2, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1 or len(t) < 3:
        raise SuperionError("lag and MSD arrays must be 1-D, of the same length, with at least 3 points")
    ion = species or "ion"
    h = float(hop_length_A)
    h2 = h * h

    def at(tt):
        return float(np.interp(tt, t, y))

    m_end, m_start = at(window.end_ps), at(window.start_ps)
    growth = m_end - m_start
    beta_w = loglog_slope(t, y, window.start_ps, window.end_ps)
    reasons, warnings = [], []
    hop_txt = f"one {ion}-{ion} hop ({h:.2f} A, h^2 = {h2:.3g} A^2, from the structure)"
    if window.found and beta_w >= BETA_DIFFUSIVE and growth >= MIN_HOPS_IN_WINDOW * h2:
        regime = "diffusive"
        reasons.append(f"MSD linear over the window (ln-ln slope {beta_w:.2f}) and grows by {growth / h2:.3g} h^2 across it")
    elif m_end < IMMOBILE_FRACTION * h2 and not n_hops:
        regime = "immobile"
        reasons.append(f"MSD {m_end:.3g} A^2 at {window.end_ps:.3g} ps is below h^2/4: {ion} ions stay within half of {hop_txt}")
    elif m_end < IMMOBILE_FRACTION * h2:
        regime = "subdiffusive"
        reasons.append(f"MSD {m_end:.3g} A^2 at {window.end_ps:.3g} ps is below h^2/4, but {n_hops} hop(s) between "
                       "sites were seen: not immobile, subdiffusive")
    else:
        regime = "subdiffusive"
        if not window.found:
            reasons.append("no lag range where the local MSD exponent stays near 1 (caged or back-and-forth motion)")
        if beta_w < BETA_DIFFUSIVE:
            reasons.append(f"ln-ln slope of the MSD over the window is {beta_w:.2f} < {BETA_DIFFUSIVE:g}")
        if growth < MIN_HOPS_IN_WINDOW * h2:
            reasons.append(f"MSD grows by only {growth:.3g} A^2 over the window, less than {hop_txt}")
    if regime != "diffusive":
        warnings.append(
            f"{ion} motion is {regime} on the sampled time scale (MSD {m_end:.3g} A^2 at {window.end_ps:.3g} ps vs {hop_txt}): "
            "no diffusivity is reported, only an upper bound; run longer or hotter"
        )
    elif growth < 10 * h2:
        warnings.append(f"{ion} ions move only {growth / h2:.2g} hop lengths squared over the fit window: D rests on few hops")
    out = {
        "regime": regime,
        "regime_reasons": reasons,
        "hop_length_A": h,
        "msd_window_loglog_slope": beta_w,
        "msd_at_fit_start_A2": m_start,
        "msd_at_fit_end_A2": m_end,
        "msd_growth_over_window_hops2": growth / h2,
        "regime_thresholds": {"loglog_slope_min": BETA_DIFFUSIVE, "growth_min_h2": MIN_HOPS_IN_WINDOW,
                              "immobile_msd_max_h2": IMMOBILE_FRACTION},
        "warnings": warnings,
    }
    if regime != "diffusive" and per_ion_msd_end_A2 is not None:
        out.update(diffusivity_upper_bound(window.end_ps, per_ion_msd_end_A2, n_frames=n_frames, dt_ps=dt_ps))
    return out
