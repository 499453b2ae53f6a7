"""Displacement moments of mobile ions: all-origin MSD by FFT, fourth moment and α2 at chosen lags.

Layout everywhere: positions ``pos_A`` (n_ions, 3, F) in Å, unwrapped (and drift-corrected),
time last, frames evenly spaced; lags are frame offsets (int). MSD values are summed over
x, y, z (Å²), fourth moments ⟨|Δr|⁴⟩ in Å⁴.

The MSD uses every time origin: MSD(m) = S1(m) − 2 S2(m) with S1 from running sums of x² and
S2 the autocorrelation from a zero-padded real FFT (O(F log F) per series). The fourth moment
is evaluated directly at a few lags with a strided set of origins (origins closer than ~lag/8
carry almost the same displacement, so skipping them loses little and keeps 1e5 frames cheap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superion.analysis.msd import spectral_weights  # noqa: F401  (one owner: msd)
from superion.errors import SuperionError

# Rows (series) per FFT batch: bounds the work memory to ~64 MB for 1e5 frames.
_FFT_BYTES = 64 << 20


def check_positions(pos_A) -> np.ndarray:
    """Validated float array (n_ions, 3, F) with n_ions ≥ 1 and F ≥ 2 (SuperionError otherwise)."""
    pos = np.asarray(pos_A)
    if pos.ndim != 3 or pos.shape[1] != 3:
        raise SuperionError(f"positions must have shape (n_ions, 3, n_frames), got {pos.shape}; transpose (F, n, 3) input with .transpose(1, 2, 0)")
    if pos.shape[0] == 0:
        raise SuperionError("no mobile ions in the positions; check the species selection")
    if pos.shape[2] < 2:
        raise SuperionError(f"trajectory has {pos.shape[2]} frame(s); displacement statistics need at least 2 frames")
    if not np.all(np.isfinite(pos)):
        raise SuperionError("positions contain NaN or inf; check the trajectory")
    return pos


def _msd_rows(x: np.ndarray) -> np.ndarray:
    """All-origin MSD of each row of x (s, F) → (s, F), units of x²."""
    from scipy.fft import irfft, next_fast_len, rfft

    s, F = x.shape
    x = x - x.mean(axis=1, keepdims=True)  # MSD is translation invariant; centring limits cancellation
    n_fft = next_fast_len(2 * F, real=True)
    spec = rfft(x, n=n_fft, axis=1)
    s2 = irfft(spec.real**2 + spec.imag**2, n=n_fft, axis=1)[:, :F]
    x2 = x * x
    # S1(m) = [Σ_{t≥m} x² + Σ_{t<F−m} x²] / (F − m), from one cumulative sum
    c = np.concatenate([np.zeros((s, 1)), np.cumsum(x2, axis=1)], axis=1)
    total = c[:, -1:]
    m = np.arange(F)
    s1 = (total - c[:, m]) + c[:, F - m]
    norm = (F - m).astype(np.float64)
    out = (s1 - 2.0 * s2) / norm
    np.maximum(out, 0.0, out=out)  # round-off can give −1e-13 at lag 0
    return out


def msd_per_ion_A2(pos_A) -> np.ndarray:
    """Each ion's all-origin MSD at every lag 0..F−1: (n_ions, F) Å², summed over x, y, z."""
    pos = check_positions(pos_A)
    n, _, F = pos.shape
    out = np.empty((n, F))
    per_batch = max(1, int(_FFT_BYTES // (3 * 8 * 6 * F)))
    for a in range(0, n, per_batch):
        b = min(a + per_batch, n)
        rows = np.asarray(pos[a:b], dtype=np.float64).reshape(3 * (b - a), F)
        out[a:b] = _msd_rows(rows).reshape(b - a, 3, F).sum(axis=1)
    return out


def msd_mean_A2(pos_A) -> np.ndarray:
    """Ion-averaged all-origin MSD at every lag 0..F−1: (F,) Å²."""
    return ion_spectra(pos_A).mean_A2


@dataclass
class IonSpectra:
    """What the all-origin MSD of every ion needs, kept per ion without building per-ion MSD curves.

    mean_A2: (F,) ion-averaged MSD (Å²); power: (n_ions, K) |FFT|² of the centred x, y, z
    series summed over directions; x2: (n_ions, F) centred squared positions summed over
    directions; n_fft: the zero-padded FFT length (≥ 2F)."""

    mean_A2: np.ndarray
    power: np.ndarray | None
    x2: np.ndarray | None
    n_fft: int

    @property
    def has_per_ion(self) -> bool:
        return self.power is not None

    def window_sums(self, first: int, last: int, weights) -> np.ndarray:
        """Σ_m w_m MSD_i(m) over lags first..last (frames) for each ion: (n_ions,) — e.g. with
        OLS slope weights, each ion's own OLS slope (Å² per unit of the weights' abscissa).

        MSD_i(m) = [Σ_{t≥m} x² + Σ_{t<F−m} x² − 2 Σ_t x(t) x(t+m)] / (F − m); the first two sums
        contract with cumulative sums of g = w/(F − m), the last with ĝ (:func:`spectral_weights`)."""
        if self.power is None:
            raise SuperionError("per-ion spectra were not kept (too large); call ion_spectra(pos, per_ion=True) for per-ion sums")
        F = self.x2.shape[1]
        w = np.asarray(weights, dtype=np.float64)
        if len(w) != last - first + 1 or first < 0 or last > F - 1:
            raise ValueError("weights must cover lags first..last inside the trajectory")
        g = np.zeros(F)
        g[first : last + 1] = w / (F - np.arange(first, last + 1))
        gc = np.cumsum(g)
        h = gc + gc[::-1]
        return self.x2 @ h - 2.0 * (self.power @ spectral_weights(g, self.n_fft))


PER_ION_MAX_BYTES = 2e9


def ion_spectra(pos_A, *, per_ion: bool | None = None) -> IonSpectra:
    """Forward FFT of every ion's centred x, y, z series (batches of 2 ions: pocketfft is
    fastest on a few rows at a time); the mean MSD needs three inverse transforms in all.

    ``per_ion``: keep each ion's power spectrum and x² (n_ions × (F + n_fft/2) floats) for
    :meth:`IonSpectra.window_sums`; default: only while that stays under 2 GB (1000 ions x
    1e5 frames is 1.6 GB; beyond, the mean MSD alone is returned and per-ion sums raise)."""
    from scipy.fft import irfft, next_fast_len, rfft

    pos = check_positions(pos_A)
    n, _, F = pos.shape
    n_fft = next_fast_len(2 * F, real=True)
    K = n_fft // 2 + 1
    if per_ion is None:
        per_ion = n * (K + F) * 8 <= PER_ION_MAX_BYTES
    power = np.empty((n, K)) if per_ion else None
    x2 = np.empty((n, F)) if per_ion else None
    p_dir = np.zeros((3, K))
    x2_dir = np.zeros((3, F))
    for a in range(0, n, 2):
        b = min(a + 2, n)
        x = np.asarray(pos[a:b], dtype=np.float64)
        x = x - x.mean(axis=2, keepdims=True)
        sq = x * x
        if per_ion:
            x2[a:b] = sq.sum(axis=1)
        x2_dir += sq.sum(axis=0)
        spec = rfft(x.reshape(3 * (b - a), F), n=n_fft, axis=1)
        pw = (spec.real**2 + spec.imag**2).reshape(b - a, 3, K)
        if per_ion:
            power[a:b] = pw.sum(axis=1)
        p_dir += pw.sum(axis=0)
    c = np.concatenate([np.zeros((3, 1)), np.cumsum(x2_dir, axis=1)], axis=1)
    m = np.arange(F)
    s1 = (c[:, -1:] - c[:, m]) + c[:, F - m]
    s2 = irfft(p_dir, n=n_fft, axis=1)[:, :F]
    mean = ((s1 - 2.0 * s2) / (F - m)).sum(axis=0) / n
    np.maximum(mean, 0.0, out=mean)
    return IonSpectra(mean, power, x2, n_fft)


def origin_stride(lag: int, per_window: int = 8) -> int:
    """Stride between time origins for a lag: about ``per_window`` origins per independent window."""
    return max(1, int(lag) // per_window)


def displacement_moments_A(pos_A, lags, per_window: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """⟨|Δr|²⟩ (Å²) and ⟨|Δr|⁴⟩ (Å⁴) at each lag (frames), over ions and strided origins.

    Both moments come from the same origins, so α2 built from them is consistent. Cost
    O(n_ions · F · per_window) per lag instead of O(n_ions · F).
    """
    pos = check_positions(pos_A)
    F = pos.shape[2]
    lags = np.asarray(lags, dtype=int)
    if np.any(lags < 1) or np.any(lags > F - 1):
        raise SuperionError(f"lags must lie in 1..{F - 1} frames, got {lags.min()}..{lags.max()}")
    n = pos.shape[0]
    m2 = np.zeros(len(lags))
    m4 = np.zeros(len(lags))
    for k, m in enumerate(lags):
        st = origin_stride(m, per_window)
        n_org = (F - m + st - 1) // st
        chunk = max(1, int(_FFT_BYTES // (3 * 8 * 3 * n_org)))  # bounded work memory for many ions x long runs
        count = 0
        for a in range(0, n, chunk):
            b = min(a + chunk, n)
            x1 = np.asarray(pos[a:b, :, m::st][:, :, :n_org], dtype=np.float64)
            x0 = np.asarray(pos[a:b, :, : F - m : st], dtype=np.float64)
            r2 = ((x1 - x0) ** 2).sum(axis=1)
            m2[k] += r2.sum()
            m4[k] += (r2 * r2).sum()
            count += r2.size
        m2[k] /= count
        m4[k] /= count
    return m2, m4


def msd_at_lag_per_ion_A2(pos_A, lag: int) -> np.ndarray:
    """Each ion's all-origin MSD (Å²) at one lag (frames), by direct differencing: (n_ions,)."""
    pos = check_positions(pos_A)
    n, _, F = pos.shape
    if not 1 <= int(lag) <= F - 1:
        raise SuperionError(f"lag must lie in 1..{F - 1} frames, got {lag}")
    m = int(lag)
    out = np.empty(n)
    chunk = max(1, int(_FFT_BYTES // (3 * 8 * 3 * (F - m))))
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        d = np.asarray(pos[a:b, :, m:], dtype=np.float64) - pos[a:b, :, : F - m]
        out[a:b] = (d * d).sum(axis=1).mean(axis=1)
    return out


def non_gaussian_alpha2(pos_A, lags, per_window: int = 8) -> np.ndarray:
    """Non-Gaussian parameter α2(t) = 3⟨r⁴⟩ / (5⟨r²⟩²) − 1 (3-D) at each lag (frames).

    α2 = 0 for Gaussian displacements; it peaks where caged ions start to hop (a few ions have
    moved far, most have not) and decays as 1/t in the diffusive regime.
    """
    m2, m4 = displacement_moments_A(pos_A, lags, per_window)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(m2 > 0, 3.0 * m4 / (5.0 * m2 * m2) - 1.0, np.nan)


def log_lags(first: int, last: int, n: int) -> np.ndarray:
    """About ``n`` distinct integer lags from ``first`` to ``last`` (inclusive), log-spaced.

    Dense (every integer) where log spacing would repeat integers, so the result has
    min(n, last − first + 1) lags.
    """
    first, last = int(first), int(last)
    if last < first:
        raise ValueError("last < first")
    count = last - first + 1
    if count <= n:
        return np.arange(first, last + 1)
    k = n
    while True:
        lags = np.unique(np.round(np.geomspace(first, last, k)).astype(int))
        if len(lags) >= n or k > 50 * n:
            break
        k = int(k * 1.2) + 1
    if len(lags) > n:  # keep both ends, thin evenly in index (still log-like spacing)
        lags = lags[np.unique(np.round(np.linspace(0, len(lags) - 1, n)).astype(int))]
    return lags
