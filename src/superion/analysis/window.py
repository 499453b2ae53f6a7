"""Fit window for the diffusivity, chosen from the MSD itself.

Rule (the string :attr:`FitWindow.rule` says which parts applied; it goes to the JSON):

- End: the longest lag that still has ``min_origins`` independent (non-overlapping) time
  origins per ion, t_end = duration / min_origins (default 3). Longer lags add noise (few
  independent displacements) and little information.
- Start: after the ballistic and cage (rattling, back-hop) regimes, detected from the local
  exponent β(t) = d ln MSD / d ln t: the least-squares slope of ln MSD vs ln t over the lags
  within a factor ``span`` (2) around t, on a log-spaced grid of t. The start is the first
  grid lag t0 (≤ t_end/2, so the window spans at least a factor 2) from which
  ``beta_min`` (0.9) ≤ β ≤ 2 − ``beta_min`` (ballistic motion, β → 2, is excluded) at every grid lag up to min(``sustain`` · t0, t_end) (sustain = 8): the
  linear regime must last, a short linear stretch before a cage or back-hop dip is not
  enough. (Checking every lag to t_end instead rejected 3–4 % of diffusive runs of 8 ions:
  the exponent at long lags scatters more than the Gaussian model says.) Optionally also
  after the peak of the non-Gaussian parameter α2 (ions start to leave their cages there).
- Noise: with ``n_ions`` and ``dt_ps`` given, the threshold at each grid lag is lowered by
  ``noise_z`` (2) standard errors of β for independent random walkers (delta method with the
  MSD covariance of :mod:`superion.analysis.gls`, D from the slope over the last half of the
  window), never below ``beta_floor`` (0.5): a few ions over few frames give a β that
  scatters by ±0.1 at long lags, and a strict 0.9 would reject most diffusive runs.
- What β ≥ 0.9 means: for MSD = 6 D t + c (c ≥ 0: vibration plateau, back-hop offset) β =
  6Dt / (6Dt + c), so the start is where the linear part has grown to ~9× the plateau: the
  cage's own curvature (of order c) is then a small part of the MSD, and GLS carries c as its
  intercept. The price: slow diffusion over a large plateau starts late. (A rule on the
  flatness of dMSD/dt would start earlier, but tested here it picks its start from the noise
  of the same MSD points the fit then uses, and the 95 % coverage fell to 0.90; β is
  dominated by the deterministic c/(6Dt) and selects far more stably.)
- Measured: the Li6PS5Cl AIMD example of kinisi (14 ps) never reaches β = 0.9 before
  duration/3 — its MSD grows by less than one Li–Li hop over that window; the regime is
  then not diffusive, and a fit over the whole run needs a user window.

No start found: :attr:`FitWindow.found` is False (the run is not diffusive on the sampled
time scale; see :mod:`superion.analysis.regime`), and the window falls back to
[t_end / 2, t_end] for reporting only.

User overrides (``start_ps``/``end_ps``) replace either end; they are validated against the
trajectory (SuperionError outside 0 ≤ start < end ≤ duration).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from superion.errors import SuperionError

DEFAULT_BETA_MIN = 0.9
DEFAULT_SPAN = 2.0
DEFAULT_MIN_ORIGINS = 3.0
DEFAULT_GRID = 48
DEFAULT_NOISE_Z = 2.0
DEFAULT_BETA_FLOOR = 0.5
DEFAULT_SUSTAIN = 8.0


@dataclass
class FitWindow:
    """Fit window in ps and how it was chosen."""

    start_ps: float
    end_ps: float
    found: bool
    rule: str
    source: str  # "data", "user" or "data+user"
    grid_ps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    beta: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def summary(self) -> dict:
        return {"fit_start_ps": self.start_ps, "fit_end_ps": self.end_ps, "fit_window_found": self.found,
                "fit_window_rule": self.rule, "fit_window_source": self.source}


def _check_curve(lag_ps, msd_A2) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(lag_ps, dtype=np.float64)
    y = np.asarray(msd_A2, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1:
        raise SuperionError(f"lag ({t.shape}) and MSD ({y.shape}) arrays must be 1-D and of the same length")
    keep = (t > 0) & np.isfinite(y) & (y > 0)
    if np.count_nonzero(keep) < 3:
        raise SuperionError("MSD has fewer than 3 positive points at positive lags; the trajectory is too short or the ions do not move")
    if np.any(np.diff(t) <= 0):
        raise SuperionError("lags must be strictly increasing")
    return t[keep], y[keep]


def _local_fit(x, z, grid_x, half):
    """LS slope of z vs x over x within ±half of each grid point (≥ 3 points): (slope, lo, hi)."""
    c0 = np.arange(len(x) + 1, dtype=np.float64)
    c1 = np.concatenate([[0.0], np.cumsum(x)])
    c2 = np.concatenate([[0.0], np.cumsum(x * x)])
    cz = np.concatenate([[0.0], np.cumsum(z)])
    cxz = np.concatenate([[0.0], np.cumsum(x * z)])
    return c0, c1, c2, cz, cxz


def _grid_ranges(t, n_grid, span):
    """Log grid on the available lags and the index range [lo, hi) of each local window."""
    gi = np.unique(np.clip(np.searchsorted(t, np.geomspace(t[0], t[-1], n_grid)), 0, len(t) - 1))
    grid = t[gi]
    lt = np.log(t)
    half = 0.5 * np.log(span)
    lo = np.searchsorted(lt, np.log(grid) - half - 1e-12, side="left")
    hi = np.searchsorted(lt, np.log(grid) + half + 1e-12, side="right")
    short = hi - lo < 3  # widen to the 3 nearest lags where the log window is too sparse
    lo = np.where(short, np.clip(gi - 1, 0, max(len(t) - 3, 0)), lo)
    hi = np.where(short, lo + 3, hi)
    return grid, lo, hi


def _slopes(x, z, lo, hi):
    c0, c1, c2, cz, cxz = _local_fit(x, z, None, None)
    n = c0[hi] - c0[lo]
    sx, sxx = c1[hi] - c1[lo], c2[hi] - c2[lo]
    sz, sxz = cz[hi] - cz[lo], cxz[hi] - cxz[lo]
    den = n * sxx - sx * sx
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (n * sxz - sx * sz) / den, np.nan)


def _curve(lag_ps, msd_A2, t_max_ps):
    t, y = _check_curve(lag_ps, msd_A2)
    if t_max_ps is not None:
        keep = t <= t_max_ps * (1 + 1e-12)
        t, y = t[keep], y[keep]
        if len(t) < 3:
            raise SuperionError("fewer than 3 MSD points up to the window end; use a longer trajectory")
    return t, y


def local_exponent(lag_ps, msd_A2, *, span: float = DEFAULT_SPAN, n_grid: int = DEFAULT_GRID, t_max_ps: float | None = None):
    """Local exponent β(t) = d ln MSD / d ln t on a log grid: (t_grid_ps, β), the LS slope of ln MSD
    vs ln t over the lags within a factor ``span`` around each grid t (at least 3 lags)."""
    t, y = _curve(lag_ps, msd_A2, t_max_ps)
    grid, lo, hi = _grid_ranges(t, n_grid, span)
    return grid, _slopes(np.log(t), np.log(y), lo, hi)


def local_slope(lag_ps, msd_A2, *, span: float = DEFAULT_SPAN, n_grid: int = DEFAULT_GRID, t_max_ps: float | None = None):
    """Local slope s(t) = dMSD/dt (Å²/ps) on a log grid: (t_grid_ps, s), the LS slope of MSD vs t
    over the lags within a factor ``span`` around each grid t (at least 3 lags)."""
    t, y = _curve(lag_ps, msd_A2, t_max_ps)
    grid, lo, hi = _grid_ranges(t, n_grid, span)
    return grid, _slopes(t, y, lo, hi)


def beta_stderr(t, y, lo, hi, n_frames: int, dt_ps: float, n_ions: int, max_points: int = 24) -> np.ndarray:
    """Standard error of each local exponent (ranges [lo, hi) of lags t, MSD y) for independent
    random walkers: delta method on the ln–ln LS slope with the MSD covariance of
    :func:`superion.analysis.gls.msd_covariance_A4`; D and the white vibration σ² from an OLS
    line over the last half of the lags (the diffusive part if there is one)."""
    from superion.analysis.gls import msd_covariance_A4, ols_line

    half = t >= 0.5 * t[-1]
    s, c = (ols_line(t[half], y[half])[:2]) if np.count_nonzero(half) >= 3 else (y[-1] / t[-1], 0.0)
    D = max(s, 1e-3 * y[-1] / t[-1]) / 6.0
    sig2 = max(c, 0.0) / 6.0
    out = np.full(len(lo), np.nan)
    for j, (a, b) in enumerate(zip(lo, hi)):
        idx = np.arange(a, b)
        if len(idx) > max_points:
            idx = np.unique(np.round(np.geomspace(a + 1, b, max_points)).astype(int) - 1)
        frames, keep = np.unique(np.round(t[idx] / dt_ps).astype(np.int64), return_index=True)
        idx = idx[keep]
        if len(idx) < 3 or frames[0] < 1 or frames[-1] > n_frames - 1:
            continue
        x = np.log(t[idx])
        w = (x - x.mean()) / np.sum((x - x.mean()) ** 2)
        g = w / y[idx]
        cov = msd_covariance_A4(frames, n_frames, n_ions, dt_ps, D, 0.0, sig2)
        out[j] = float(np.sqrt(max(g @ cov @ g, 0.0)))
    return out


def fit_window_from_msd(
    lag_ps,
    msd_A2,
    duration_ps: float,
    *,
    start_ps: float | None = None,
    end_ps: float | None = None,
    beta_min: float = DEFAULT_BETA_MIN,
    span: float = DEFAULT_SPAN,
    min_origins: float = DEFAULT_MIN_ORIGINS,
    alpha2: tuple | None = None,
    n_grid: int = DEFAULT_GRID,
    n_ions: int | None = None,
    dt_ps: float | None = None,
    noise_z: float = DEFAULT_NOISE_Z,
    beta_floor: float = DEFAULT_BETA_FLOOR,
    sustain: float | None = DEFAULT_SUSTAIN,
) -> FitWindow:
    """Fit window [start_ps, end_ps] for the ion-averaged MSD ``msd_A2`` (Å²) at lags ``lag_ps``
    (ps) of a run of ``duration_ps``; rule in the module docstring. ``n_ions`` and ``dt_ps``
    (time between frames) switch on the noise-aware threshold; ``alpha2`` = (lags_ps, α2)
    adds the α2-peak condition. Explicit ``start_ps``/``end_ps`` override the data-driven ends."""
    if not (duration_ps and duration_ps > 0):
        raise SuperionError(f"trajectory duration must be positive, got {duration_ps} ps; the run needs at least 2 frames")
    if not (min_origins >= 1 and span > 1 and beta_min > 0 and noise_z >= 0):
        raise SuperionError("window parameters need min_origins >= 1, span > 1, beta_min > 0 and noise_z >= 0")
    for name, v in (("start", start_ps), ("end", end_ps)):
        if v is not None and not (0 <= v <= duration_ps * (1 + 1e-9)):
            raise SuperionError(f"fit window {name} {v:g} ps is outside the trajectory (0–{duration_ps:g} ps); choose a value inside it")
    t_end = float(end_ps) if end_ps is not None else duration_ps / min_origins
    end_rule = f"user end {t_end:g} ps" if end_ps is not None else f"end = duration/{min_origins:g} ({min_origins:g} independent time origins per lag)"
    if start_ps is not None:
        if not start_ps < t_end:
            raise SuperionError(f"fit window start {start_ps:g} ps is not before its end {t_end:g} ps; choose start < end")
        src = "user" if end_ps is not None else "data+user"
        return FitWindow(float(start_ps), t_end, True, f"user start {start_ps:g} ps; {end_rule}", src)
    t, y = _curve(lag_ps, msd_A2, t_end)
    grid, lo, hi = _grid_ranges(t, n_grid, span)
    beta = _slopes(np.log(t), np.log(y), lo, hi)
    thr = np.full(len(grid), beta_min)
    noise_rule = ""
    if n_ions is not None and dt_ps is not None and noise_z > 0:
        if not (n_ions >= 1 and dt_ps > 0):
            raise SuperionError("n_ions must be >= 1 and dt_ps > 0 for the noise-aware window")
        se = beta_stderr(t, y, lo, hi, int(round(duration_ps / dt_ps)) + 1, float(dt_ps), int(n_ions))
        floor = min(beta_floor, beta_min)
        thr = np.where(np.isfinite(se), np.maximum(beta_min - noise_z * se, floor), beta_min)
        noise_rule = f" (minus {noise_z:g} random-walk standard errors of the exponent, not below {floor:g})"
    # β ≈ 1 from both sides: the ballistic start (β → 2) is not diffusion either, and without the
    # upper limit a run would "start" at its first frames (seen on o-NBH at 800 K: 5 fs)
    ok = (beta >= thr) & (beta <= 2.0 - thr)
    start = None
    for j in np.flatnonzero(grid <= 0.5 * t_end * (1 + 1e-9)):
        top = t_end if sustain is None else min(sustain * grid[j], t_end)
        if ok[(grid >= grid[j]) & (grid <= top * (1 + 1e-9))].all():
            start = float(grid[j])
            break
    start_rule = (f"start = first lag from which the local MSD exponent (ln-ln slope over a factor {span:g} in lag) "
                  f"stays within [{beta_min:g}, {2 - beta_min:g}]{noise_rule} up to " + ("the end" if sustain is None else f"{sustain:g}x that lag")
                  + ", leaving >= a factor 2 before the end")
    if start is not None and alpha2 is not None:
        a_t, a_v = (np.asarray(v, dtype=np.float64) for v in alpha2)
        sel = np.isfinite(a_v) & (a_t <= t_end)
        if np.any(sel):
            t_peak = float(a_t[sel][np.argmax(a_v[sel])])
            start_rule += "; and not before the peak of the non-Gaussian parameter alpha2"
            if t_peak > start:
                start = t_peak if t_peak <= 0.5 * t_end else None
    src = "data" if end_ps is None else "data+user"
    if start is None:
        return FitWindow(0.5 * t_end, t_end, False, f"no diffusive stretch found ({start_rule}); {end_rule}; "
                         "reported window [end/2, end] is for information only", src, grid, beta)
    return FitWindow(start, t_end, True, f"{start_rule}; {end_rule}", src, grid, beta)
