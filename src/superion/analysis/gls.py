"""Diffusivity by generalized least squares (GLS) of the MSD with a random-walk covariance.

Why: MSD points at neighbouring lags share almost all their displacements, so an ordinary
least-squares (OLS) line through them is inefficient and its textbook error bar is far too
small. Following the idea of kinisi (McCluskey et al., J. Chem. Theory Comput. 21, 79 (2025):
model the MSD points as correlated with a covariance derived for a random walk and set by the
data), D here is the GLS slope of MSD(t) = 6 D t + c with that covariance. The covariance model
is our own derivation (exact for the model below, including the finite number of frames):

Model of one ion: r(t) = W(t) + ε(t), W a process with independent, stationary, isotropic
increments (a random walk: Brownian motion, or uncorrelated hops between sites), ε a
stationary Gaussian vibration about the site with autocovariance c(k) per Cartesian
direction (k in frames; white vibration: c(k) = 0 for k ≥ 1). For two displacement windows
A = [t, t+m] and B = [s, s+n] (frames) that overlap by o frames:

    Cov(|ΔW_A|², |ΔW_B|²) = Var(|ΔW_o|²) = (2/3) M(o)² + b M(o),   M(o) = 6 D o Δt,

(independent increments: only the shared part of the two windows correlates; the 2/3 is
the Gaussian part in 3-D, b = ⟨ℓ⁴⟩/⟨ℓ²⟩ the non-Gaussian part of a jump process with jump
length ℓ, b = 0 for Brownian motion), plus 4 M(o) C_e + 6 C_e² from the vibration, with
C_e = c(a₂−b₂) − c(a₂−b₁) − c(a₁−b₂) + c(a₁−b₁) the covariance of the vibration parts (nonzero
only where window ends come within the vibration's memory of each other). Summing over
all time origins of the all-origin MSD (closed-form piecewise-polynomial sums over the
origin offset for the W part; a Numba sum over the few offsets near coinciding window ends
for the ε part) gives, for lags m ≤ n, N_m = F − m origins and n_ions independent ions:

    Cov(MSD_m, MSD_n) = [ (2/3) s² S2 + b s S1 + 4 s V + 6 E ] / (n_ions N_m N_n)

with s = 6 D Δt (Å² per frame), S_k = Σ over origin pairs of overlap^k (:func:`pair_sums`),
V, E the vibration sums (:func:`noise_parts`; white: V = 2σ² m (F − n)). For Gaussian r this
is exact, finite F included (checked against brute-force sums over all origin pairs).

Parameters from the data, iterated: s and c from the GLS fit itself (start: OLS); the
vibration variance c(0) = c/6 from the intercept, its memory c(k) from the MSD below the
window (MSD(k) = s k + 6 (c(0) − c(k)), :func:`noise_acf_from_msd`); b from the fourth
moment: ⟨r⁴⟩ − (5/3)⟨r²⟩² = b (MSD − c) holds exactly for the model, so b is the ratio of the
two sides at a few lags near the window start (:func:`estimate_kurtosis_A2`).

Interval: D̂ is a quadratic form of the displacements, right-skewed when few independent
displacements enter; it is modelled as D · χ²_ν / ν with ν = 2 D² / Var(D̂ | D)
(Satterthwaite), and the 95 % interval is the set of D for which D̂ lies inside the central
95 % of that distribution (the variance is re-evaluated at each candidate D, so the pivot
is exact when Var ∝ D²). ν is reported as the effective number of degrees of freedom.

Lags: at most ``max_lags`` (default 200) lags of the fit window enter the covariance
(L × L matrix): every lag if the window is shorter, else log-spaced integer lags (dense
at the start, where the MSD carries the most information about the slope).

Assumptions to keep in mind: ions move independently (a Haven ratio ≠ 1 means correlated
ions, and the interval is then too narrow or too wide); the fit window lies in the
diffusive regime (no cage or back-hop curvature left; see :mod:`superion.analysis.window`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from superion.errors import SuperionError

from superion.units import A2_PS_TO_CM2_S

DEFAULT_MAX_LAGS = 200


def _power_sum(k: int, n: np.ndarray) -> np.ndarray:
    """Σ_{u=1}^{n} u^k for k = 0..3 (0 for n ≤ 0), float64, elementwise."""
    n = np.maximum(np.asarray(n, dtype=np.float64), 0.0)
    if k == 0:
        return n
    if k == 1:
        return n * (n + 1) / 2
    if k == 2:
        return n * (n + 1) * (2 * n + 1) / 6
    if k == 3:
        return (n * (n + 1) / 2) ** 2
    raise ValueError(k)


def pair_sums(lags, n_frames: int) -> dict:
    """Origin-pair sums of the all-origin MSD for each pair of lags (frames), exact for F frames.

    For lags m ≤ n and windows [t, t+m], [s, s+n] (0 ≤ t ≤ F−1−m, 0 ≤ s ≤ F−1−n) with overlap
    o(t, s): S1 = Σ o, S2 = Σ o², W = m (F − n) (pairs whose windows share an end, per
    shared end), K = number of pairs of window ends that coincide counted with their
    weight in Cov(|e_A|², |e_B|²) / (6σ⁴). Returns symmetric (L, L) arrays and N (L,) = F − lag.

    Derivation: with δ = s − t the overlap is δ + n on [−n, m−n], m on [m−n, 0], m − δ on
    [0, m] (zero outside) and the number of origin pairs with offset δ is F − m + δ,
    F − n and F − n − δ there (clipped at 0); both outer pieces become Σ_u u^k (F − m − n + u)
    over u = max(1, m + n − F)..m, the middle one (n − m − 1) m^k (F − n) (for m = n this −1
    removes the double-counted δ = 0).
    """
    lags = np.asarray(lags, dtype=np.int64)
    F = int(n_frames)
    if lags.ndim != 1 or len(lags) == 0 or np.any(lags < 1) or np.any(lags > F - 1):
        raise SuperionError(f"covariance lags must lie in 1..{F - 1} frames; check the fit window")
    mm, nn = np.meshgrid(lags, lags, indexing="ij")
    m = np.minimum(mm, nn).astype(np.float64)
    n = np.maximum(mm, nn).astype(np.float64)
    c = F - m - n
    u0 = np.maximum(1.0, m + n - F)
    def psum(k):  # Σ_{u=u0}^{m} u^k
        return _power_sum(k, m) - _power_sum(k, u0 - 1)
    mid = (n - m - 1.0) * (F - n)
    S1 = 2.0 * (c * psum(1) + psum(2)) + mid * m
    S2 = 2.0 * (c * psum(2) + psum(3)) + mid * m * m
    W = m * (F - n)
    same = mm == nn
    K = np.where(same, 4.0 * (F - n) + 2.0 * np.maximum(F - 2.0 * n, 0.0), 2.0 * (F - n) + 2.0 * np.maximum(c, 0.0))
    return {"S1": S1, "S2": S2, "W": W, "K": K, "N": (F - lags).astype(np.float64)}


@njit(cache=True)
def _noise_pair_kernel(lags, F, acf, V, E):  # pragma: no cover - compiled
    """Σ over origin pairs of count·overlap·C_e and count·C_e² for every pair of lags, with
    C_e(δ) = c(m−n−δ) − c(m−δ) − c(−n−δ) + c(−δ) the covariance of the vibration parts of the two
    window displacements (per direction), c = acf (c(k) = 0 beyond its end). Only offsets δ
    within the acf's reach of the four window-end coincidences (δ = −n, m−n, 0, m) contribute."""
    L = lags.shape[0]
    K = acf.shape[0] - 1
    for i in range(L):
        for j in range(i, L):
            m = min(lags[i], lags[j])
            n = max(lags[i], lags[j])
            lo_d = -(F - 1 - m)
            hi_d = F - 1 - n
            centres = (-n, m - n, 0, m)
            v = 0.0
            e = 0.0
            last = -(1 << 62)
            for c in centres:
                a = max(c - K, lo_d, last + 1)
                b = min(c + K, hi_d)
                for d in range(a, b + 1):
                    ce = 0.0
                    k = m - n - d
                    if -K <= k <= K:
                        ce += acf[abs(k)]
                    k = m - d
                    if -K <= k <= K:
                        ce -= acf[abs(k)]
                    k = -n - d
                    if -K <= k <= K:
                        ce -= acf[abs(k)]
                    k = -d
                    if -K <= k <= K:
                        ce += acf[abs(k)]
                    if ce == 0.0:
                        continue
                    cnt = min(F - 1 - m, F - 1 - n - d) - max(0, -d) + 1
                    if cnt <= 0:
                        continue
                    ov = min(m, d + n) - max(0, d)
                    if ov < 0:
                        ov = 0
                    v += cnt * ov * ce
                    e += cnt * ce * ce
                if b > last:
                    last = b
            V[i, j] = v
            V[j, i] = v
            E[i, j] = e
            E[j, i] = e


def noise_parts(lags, n_frames: int, n_ions: int, acf_A2) -> tuple[np.ndarray, np.ndarray]:
    """(V, E) (L, L): the vibration terms of the MSD covariance for a stationary vibration with
    autocovariance ``acf_A2`` (Å² per direction, lags 0..K frames): Σ += 4 s V + 6 E."""
    lags = np.asarray(lags, dtype=np.int64)
    acf = np.ascontiguousarray(acf_A2, dtype=np.float64)
    V = np.zeros((len(lags), len(lags)))
    E = np.zeros_like(V)
    if len(acf) and np.any(acf != 0):
        _noise_pair_kernel(lags, int(n_frames), acf, V, E)
    N = (int(n_frames) - lags).astype(np.float64)
    norm = float(n_ions) * np.outer(N, N)
    return V / norm, E / norm


def noise_acf_from_msd(msd_below_A2, slope_A2_per_frame: float, intercept_A2: float, max_lag: int | None = None) -> np.ndarray:
    """Vibration autocovariance c(k) (Å² per direction) from the MSD below the fit window.

    For r = W + ε, MSD(k) = s k + 6 (c(0) − c(k)) with c(0) = intercept/6, so
    c(k) = (intercept − (MSD(k) − s k)) / 6: the MSD's shortfall from the fitted line at short
    lags is the vibration's memory. Truncated where it first falls below 5 % of c(0) (beyond
    that it is noise); white vibration gives c = [c(0)]."""
    c0 = max(float(intercept_A2), 0.0) / 6.0
    if c0 == 0.0:
        return np.zeros(1)
    m = np.asarray(msd_below_A2, dtype=np.float64)
    k = np.arange(len(m))
    c = (intercept_A2 - (m - slope_A2_per_frame * k)) / 6.0
    c[0] = c0
    c = np.clip(c, -c0, c0)
    small = np.flatnonzero(np.abs(c[1:]) < 0.05 * c0)
    K = int(small[0]) + 1 if len(small) else len(c)
    if max_lag is not None:
        K = min(K, int(max_lag) + 1)
    return c[:K]


def covariance_parts(lags, n_frames: int, n_ions: int) -> dict:
    """The four (L, L) matrices whose combination is the MSD covariance (Å⁴):
    Σ = (2/3) s² G + b s B + 8 s σ² V + 6 σ⁴ E, with s = 6 D Δt (Å²/frame), b (Å²), σ² (Å²)."""
    p = pair_sums(lags, n_frames)
    norm = float(n_ions) * np.outer(p["N"], p["N"])
    return {"G": p["S2"] / norm, "B": p["S1"] / norm, "V": p["W"] / norm, "E": p["K"] / norm}


def msd_covariance_A4(lags, n_frames: int, n_ions: int, dt_ps: float, D_A2_ps: float,
                      kurtosis_A2: float = 0.0, noise_var_A2: float = 0.0, noise_acf_A2=None) -> np.ndarray:
    """Covariance (L, L) in Å⁴ of the ion-averaged all-origin MSD at ``lags`` (frames) for
    independent ions with diffusivity ``D_A2_ps`` (Å²/ps), jump kurtosis b = ``kurtosis_A2``
    (Å², 0 for Brownian motion, the hop length² for hops of one length) and vibration: white
    with variance ``noise_var_A2`` (Å² per direction), or with autocovariance
    ``noise_acf_A2`` (Å², lags 0..K frames) when given."""
    parts = covariance_parts(lags, n_frames, n_ions)
    s = 6.0 * D_A2_ps * dt_ps
    if noise_acf_A2 is None:
        return _combine(parts, s, kurtosis_A2, noise_var_A2)
    V, E = noise_parts(lags, n_frames, n_ions, noise_acf_A2)
    return _combine(parts, s, kurtosis_A2, 0.0) + 4.0 * s * V + 6.0 * E


def _combine(parts: dict, s: float, b: float, sig2: float) -> np.ndarray:
    return (2.0 / 3.0) * s * s * parts["G"] + b * s * parts["B"] + 8.0 * s * sig2 * parts["V"] + 6.0 * sig2 * sig2 * parts["E"]


@dataclass
class GLSResult:
    """GLS diffusivity of one run (all values JSON-ready through :meth:`summary`)."""

    D_cm2_s: float
    stderr_cm2_s: float
    ci95_cm2_s: tuple[float, float]
    intercept_A2: float
    dof_eff: float
    kurtosis_A2: float
    noise_var_A2: float
    lag_ps: np.ndarray
    iterations: int
    converged: bool
    D_ols_cm2_s: float | None = None
    ols_naive_stderr_cm2_s: float | None = None
    per_ion_stderr_cm2_s: float | None = None
    warnings: list = field(default_factory=list)
    noise_model: str = "white"
    noise_memory_frames: int = 0
    slope_weights: np.ndarray | None = None  # ŝ = w · MSD(lags), Å² per frame
    per_ion_check_ratio: float | None = None

    def summary(self) -> dict:
        return {
            "diffusivity_cm2_s": self.D_cm2_s,
            "diffusivity_stderr_cm2_s": self.stderr_cm2_s,
            "diffusivity_ci95_cm2_s": list(self.ci95_cm2_s),
            "diffusivity_method": (
                "GLS line MSD = 6 D t + c over the fit window with the random-walk MSD covariance "
                "(finite-F origin-pair sums, independent ions; jump kurtosis b from <r^4>, vibration variance from the "
                "intercept and its memory from the MSD below the window), iterated to self-consistency; "
                "95 % interval from D*chi2_nu/nu (Satterthwaite)"
            ),
            "diffusivity_dof_eff": self.dof_eff,
            "msd_intercept_A2": self.intercept_A2,
            "jump_kurtosis_A2": self.kurtosis_A2,
            "vibration_variance_A2": self.noise_var_A2,
            "vibration_model": self.noise_model,
            "vibration_memory_frames": self.noise_memory_frames,
            "gls_lags": int(len(self.lag_ps)),
            "gls_lag_range_ps": [float(self.lag_ps[0]), float(self.lag_ps[-1])],
            "gls_iterations": self.iterations,
            "gls_converged": self.converged,
            "diffusivity_ols_cm2_s": self.D_ols_cm2_s,
            "diffusivity_ols_naive_stderr_cm2_s": self.ols_naive_stderr_cm2_s,
            "diffusivity_per_ion_stderr_cm2_s": self.per_ion_stderr_cm2_s,
            "gls_per_ion_variance_ratio": self.per_ion_check_ratio,
            "warnings": list(self.warnings),
        }


def ols_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """OLS slope, intercept and the naive slope stderr (points treated as independent)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ (y - y.mean())) / sxx
    icpt = float(y.mean() - slope * x.mean())
    r = y - icpt - slope * x
    dof = max(len(x) - 2, 1)
    return slope, icpt, float(np.sqrt((r @ r) / dof / sxx))


def _gls_solve(lags_f: np.ndarray, y: np.ndarray, cov: np.ndarray):
    """GLS of y = c + s·lag with covariance cov: (s, c, slope weights w with s = w·y, ok)."""
    from scipy.linalg import cho_factor, cho_solve

    scale = float(np.mean(np.diag(cov)))
    C = cov / scale
    X = np.column_stack([lags_f, np.ones_like(lags_f)])
    jitter = 0.0
    for _ in range(6):
        try:
            cf = cho_factor(C + jitter * np.eye(len(C)), lower=True, check_finite=False)
            break
        except np.linalg.LinAlgError:
            # nearly collinear MSD points: a tiny ridge keeps the factorization alive
            jitter = 1e-13 if jitter == 0.0 else jitter * 100.0
    else:  # pragma: no cover - pathological matrices
        raise SuperionError("MSD covariance matrix is singular; widen the fit window or use fewer lags")
    CiX = cho_solve(cf, X, check_finite=False)
    A = X.T @ CiX
    Ainv = np.linalg.inv(A)
    Wmat = Ainv @ CiX.T  # rows: weights of slope and intercept
    coef = Wmat @ y
    return float(coef[0]), float(coef[1]), Wmat[0]


def _satterthwaite_ci(s_hat: float, q: tuple[float, float, float], level: float = 0.95):
    """Interval for s with ŝ ~ s χ²_ν/ν, ν(s) = 2 s² / (q2 s² + q1 s + q0)."""
    from scipy.optimize import brentq
    from scipy.stats import chi2

    q2, q1, q0 = q
    alpha = 1.0 - level

    def nu(s):
        v = q2 * s * s + q1 * s + q0
        return 2.0 * s * s / v if v > 0 else np.inf

    def quantile_ratio(s, p):
        v = nu(s)
        return 1.0 if not np.isfinite(v) or v > 1e8 else float(chi2.ppf(p, v) / v)

    if not s_hat > 0:
        sd = float(np.sqrt(max(q2 * s_hat * s_hat + q1 * abs(s_hat) + q0, 0.0)))
        return 0.0, max(s_hat, 0.0) + 1.96 * sd, float("nan")
    if q1 == 0.0 and q0 == 0.0 and q2 > 0:  # Var ∝ s²: ν is the same for every s, closed form
        v = 2.0 / q2
        return s_hat * v / float(chi2.ppf(1.0 - alpha / 2, v)), s_hat * v / float(chi2.ppf(alpha / 2, v)), v
    # lower limit: ŝ at the upper (1 − α/2) quantile of the distribution for s_lo
    f_lo = lambda s: s * quantile_ratio(s, 1.0 - alpha / 2) - s_hat  # noqa: E731
    f_hi = lambda s: s * quantile_ratio(s, alpha / 2) - s_hat  # noqa: E731
    lo_b, hi_b = s_hat * 1e-8, s_hat * 1e8
    s_lo = brentq(f_lo, lo_b, s_hat, xtol=s_hat * 1e-10) if f_lo(lo_b) < 0 < f_lo(s_hat) or f_lo(s_hat) == 0 else lo_b
    s_hi = brentq(f_hi, s_hat, hi_b, xtol=s_hat * 1e-10) if f_hi(s_hat) <= 0 < f_hi(hi_b) else hi_b
    return float(s_lo), float(s_hi), float(nu(s_hat))


def fit_gls(
    lag_frames,
    msd_A2,
    n_frames: int,
    dt_ps: float,
    n_ions: int,
    *,
    moments: tuple | None = None,
    kurtosis_A2: float | None = None,
    msd_below_A2=None,
    noise: str = "auto",
    max_iter: int = 30,
    rtol: float = 1e-7,
    level: float = 0.95,
) -> GLSResult:
    """GLS diffusivity from the ion-averaged all-origin MSD at ``lag_frames``.

    lag_frames: (L,) int lags in frames (the fit window, ≤ ~200–500 of them); msd_A2: (L,) MSD
    in Å² at those lags; n_frames: F of the trajectory; dt_ps: time between frames (ps);
    n_ions: independent mobile ions averaged in the MSD. Jump kurtosis: ``kurtosis_A2`` if
    given, else estimated from ``moments`` = (lags, ⟨r²⟩ Å², ⟨r⁴⟩ Å⁴) (see
    :func:`superion.analysis.moments.displacement_moments_A`), else 0 (Brownian).
    Vibration (``noise``): "colored" — autocovariance from the MSD below the window,
    ``msd_below_A2`` = MSD at lags 0..first window lag − 1 (:func:`noise_acf_from_msd`);
    "white" — variance intercept/6, no memory; "none"; "auto" = colored when
    ``msd_below_A2`` is given, else white.
    """
    lags = np.asarray(lag_frames, dtype=np.int64)
    y = np.asarray(msd_A2, dtype=np.float64)
    if lags.shape != y.shape or lags.ndim != 1:
        raise SuperionError(f"lags ({lags.shape}) and MSD values ({y.shape}) must be 1-D arrays of the same length")
    if len(lags) < 3:
        raise SuperionError(f"GLS needs at least 3 MSD points in the fit window, got {len(lags)}; widen the window or use a longer trajectory")
    if np.any(np.diff(lags) <= 0) or lags[0] < 1:
        raise SuperionError("fit lags must be positive and strictly increasing")
    if not (dt_ps and dt_ps > 0):
        raise SuperionError(f"frame interval must be positive, got {dt_ps} ps; pass the time between frames")
    if n_ions < 1:
        raise SuperionError("no mobile ions; check the species selection")
    if not np.all(np.isfinite(y)):
        raise SuperionError("MSD contains NaN or inf; check the trajectory")
    if noise == "auto":
        noise = "colored" if msd_below_A2 is not None else "white"
    if noise not in ("colored", "white", "none"):
        raise SuperionError(f"noise must be 'auto', 'colored', 'white' or 'none', got {noise!r}")
    if noise == "colored" and msd_below_A2 is None:
        raise SuperionError("colored vibration needs the MSD below the fit window (msd_below_A2)")
    parts = covariance_parts(lags, n_frames, n_ions)
    x = lags.astype(np.float64)
    s_ols, c_ols, _ = ols_line(x, y)
    # starting point: OLS; a non-positive slope (no diffusion visible) starts from the secant
    s = s_ols if s_ols > 0 else max(y[-1] / x[-1], 1e-12)
    c = c_ols
    warnings: list[str] = []

    def kurt(c_now):
        if kurtosis_A2 is not None:
            return max(float(kurtosis_A2), 0.0)
        if moments is None:
            return 0.0
        return estimate_kurtosis_A2(*moments, intercept_A2=c_now)

    def iterate(s, c, acf_fn, max_it):
        """GLS with the covariance re-evaluated at the current (s, c) until self-consistent."""
        w, done, k = None, False, 0
        for k in range(1, max_it + 1):
            b = kurt(c)
            V, E = acf_fn(s, c)
            s_eval = max(s, 1e-12 * max(y.max(), 1e-300) / x.max())
            cov = _combine(parts, s_eval, b, 0.0) + 4.0 * s_eval * V + 6.0 * E
            s_new, c_new, w = _gls_solve(x, y, cov)
            done = abs(s_new - s) <= rtol * abs(s_new) and abs(c_new - c) <= rtol * (abs(c_new) + 1e-12 * abs(y).max())
            s, c = s_new, c_new
            if s <= 0 or done:
                break
        return s, c, w, done, k

    def white(s_now, c_now):
        sig2 = max(c_now, 0.0) / 6.0 if noise != "none" else 0.0
        return sig2 * 2.0 * parts["V"], sig2 * sig2 * parts["E"]  # closed form (pair_sums W, K)

    s, c, w, converged, it = iterate(s, c, white, max_iter)
    acf = np.array([max(c, 0.0) / 6.0 if noise != "none" else 0.0])
    if noise == "colored" and s > 0:
        # the vibration memory is re-measured from the MSD below the window a few times, and the
        # (costly) pair sums are held fixed in between
        for _ in range(4):
            acf = noise_acf_from_msd(msd_below_A2, s, c, max_lag=lags[0] - 1)
            Vc, Ec = noise_parts(lags, n_frames, n_ions, acf)
            s_old = s
            s, c, w, converged, k = iterate(s, c, lambda *_: (Vc, Ec), max_iter)
            it += k
            if s <= 0 or abs(s - s_old) <= 1e-4 * abs(s):
                break
    if s <= 0:
        warnings.append("GLS slope is not positive: no measurable diffusion in the fit window")
    elif not converged:
        warnings.append(f"GLS iteration did not converge in {max_iter} steps (last relative change above {rtol:g})")
    b = kurt(c)
    V, E = noise_parts(lags, n_frames, n_ions, acf) if noise == "colored" and s > 0 else white(s, c)
    # Var(ŝ | s) = q2 s² + q1 s + q0 with the final weights w held fixed
    q2 = (2.0 / 3.0) * float(w @ parts["G"] @ w)
    q1 = b * float(w @ parts["B"] @ w) + 4.0 * float(w @ V @ w)
    q0 = 6.0 * float(w @ E @ w)
    var_s = q2 * s * s + q1 * abs(s) + q0
    s_lo, s_hi, nu = _satterthwaite_ci(s, (q2, q1, q0), level)
    to_cm2_s = A2_PS_TO_CM2_S / (6.0 * dt_ps)  # slope in Å²/frame → D in cm²/s
    res = GLSResult(
        D_cm2_s=s * to_cm2_s,
        stderr_cm2_s=float(np.sqrt(max(var_s, 0.0))) * to_cm2_s,
        ci95_cm2_s=(s_lo * to_cm2_s, s_hi * to_cm2_s),
        intercept_A2=c,
        dof_eff=nu,
        kurtosis_A2=b,
        noise_var_A2=float(acf[0]),
        lag_ps=x * dt_ps,
        iterations=it,
        converged=converged,
        warnings=warnings,
    )
    res.noise_model = noise
    res.noise_memory_frames = int(len(acf) - 1)
    res.slope_weights = w
    return res


def estimate_kurtosis_A2(lags, m2_A2, m4_A4, intercept_A2: float = 0.0) -> float:
    """Jump kurtosis b (Å²) from ⟨r²⟩ and ⟨r⁴⟩ at a few lags: b = Σ(⟨r⁴⟩ − 5/3 ⟨r²⟩²) / Σ(⟨r²⟩ − c).

    For r = W + ε (independent increments plus Gaussian vibration) ⟨r⁴⟩ − (5/3)⟨r²⟩² = b·(⟨r²⟩ − c)
    exactly, so any lag estimates b; summing over lags averages the noise. Clipped at 0
    (a negative value is noise or sub-Gaussian vibration).
    """
    m2 = np.asarray(m2_A2, dtype=np.float64)
    m4 = np.asarray(m4_A4, dtype=np.float64)
    num = float(np.sum(m4 - (5.0 / 3.0) * m2 * m2))
    den = float(np.sum(np.maximum(m2 - max(intercept_A2, 0.0), 1e-12 * m2.max())))
    return max(num / den, 0.0) if den > 0 else 0.0


def kurtosis_lags(i0: int, i1: int, n: int = 4) -> np.ndarray:
    """Lags (frames) for the kurtosis estimate: near the window start (start, ×1.5, ×2, ×3),
    where b M is largest relative to (5/3) M² and the fourth moment is least noisy."""
    cand = np.unique(np.clip(np.round(np.array([1.0, 1.5, 2.0, 3.0])[:n] * max(i0, 1)).astype(int), i0, i1))
    return cand


def diffusion_gls(
    pos_A,
    dt_ps: float,
    start_ps: float,
    end_ps: float,
    *,
    max_lags: int = DEFAULT_MAX_LAGS,
    spectra=None,
    kurtosis: bool = True,
    noise: str = "colored",
    level: float = 0.95,
) -> GLSResult:
    """GLS diffusivity from unwrapped positions ``pos_A`` (n_ions, 3, F) Å over the fit window
    [start_ps, end_ps] (lags, ps); frames ``dt_ps`` apart. Also fills the OLS diffusivity over
    every lag of the window with its naive stderr, and today's per-ion-spread stderr
    (std of per-ion OLS slopes / √n_ions) for comparison. ``spectra``: an
    :class:`superion.analysis.moments.IonSpectra` of ``pos_A`` if already computed."""
    from superion.analysis.moments import check_positions, displacement_moments_A, ion_spectra, log_lags

    pos = check_positions(pos_A)
    n, _, F = pos.shape
    i0, i1 = window_indices(start_ps, end_ps, dt_ps, F)
    sp = ion_spectra(pos) if spectra is None else spectra
    mean = sp.mean_A2
    lags = log_lags(i0, i1, max_lags)
    moments = None
    if kurtosis:
        kl = kurtosis_lags(i0, i1)
        moments = (kl, *displacement_moments_A(pos, kl))
    res = fit_gls(lags, mean[lags], F, dt_ps, n, moments=moments, msd_below_A2=mean[:i0] if noise == "colored" else None,
                  noise=noise, level=level)
    # comparison estimators on every lag of the window (what superion reports today)
    t = np.arange(i0, i1 + 1) * dt_ps
    slope, _, se = ols_line(t, mean[i0 : i1 + 1])
    res.D_ols_cm2_s = slope / 6.0 * A2_PS_TO_CM2_S
    res.ols_naive_stderr_cm2_s = se / 6.0 * A2_PS_TO_CM2_S
    if n > 1 and sp.has_per_ion:
        tc = t - t.mean()
        d_i = sp.window_sums(i0, i1, tc / (tc @ tc)) / 6.0 * A2_PS_TO_CM2_S
        res.per_ion_stderr_cm2_s = float(d_i.std(ddof=1) / np.sqrt(n))
        # model check: the same GLS weights applied to each ion's own MSD; independent ions make
        # var(ŝ_i)/n an estimate of Var(ŝ) that needs no covariance model (noisy for few ions)
        dense = np.zeros(i1 - i0 + 1)
        dense[lags - i0] = res.slope_weights
        s_i = sp.window_sums(i0, i1, dense)
        var_model = (res.stderr_cm2_s / A2_PS_TO_CM2_S * 6.0 * dt_ps) ** 2
        if var_model > 0:
            from scipy.stats import chi2

            ratio = float(s_i.var(ddof=1) / n / var_model)
            res.per_ion_check_ratio = ratio
            lim = float(chi2.ppf(0.99, n - 1) / (n - 1))
            if ratio > lim:
                res.warnings.append(
                    f"the scatter between ions is {ratio:.2g}x the random-walk model variance (99 % limit {lim:.2g}): "
                    "correlated motion (back-hops, cooperative hops) or a window inside the cage regime; the interval is likely too narrow"
                )
    return res


def window_indices(start_ps: float, end_ps: float, dt_ps: float, n_frames: int) -> tuple[int, int]:
    """First and last lag index (frames) inside [start_ps, end_ps]; SuperionError if the window
    is outside the trajectory or holds fewer than 3 lags."""
    if not (dt_ps and dt_ps > 0):
        raise SuperionError(f"frame interval must be positive, got {dt_ps} ps; pass the time between frames")
    duration = (n_frames - 1) * dt_ps
    if not (0.0 <= start_ps < end_ps <= duration * (1 + 1e-9)):
        raise SuperionError(
            f"fit window {start_ps:g}–{end_ps:g} ps is outside the trajectory (0–{duration:g} ps) or empty; "
            "choose 0 <= start < end <= the duration"
        )
    i0 = max(1, int(np.ceil(start_ps / dt_ps - 1e-9)))
    i1 = min(n_frames - 1, int(np.floor(end_ps / dt_ps + 1e-9)))
    if i1 - i0 + 1 < 3:
        raise SuperionError(
            f"fit window {start_ps:g}–{end_ps:g} ps holds {max(i1 - i0 + 1, 0)} lag(s) at {dt_ps:g} ps per frame; "
            "widen the window or use a longer trajectory"
        )
    return i0, i1
