"""Mean squared displacement over all time origins, every lag, by FFT (O(T log T)).

For a series x(t), t = 0..T−1, and lag m:
    MSD(m) = 1/(T−m) Σ_{t<T−m} (x(t+m) − x(t))² = S1(m) − 2 S2(m),
S1 from a running sum (Numba kernel :func:`superion.analysis.kernels.msd_s1`), S2(m) = 1/(T−m) Σ x(t)x(t+m)
is the FFT autocorrelation (:func:`superion.analysis.correlation.autocorrelation`). Each series is
centred first (MSD is translation invariant) to keep the S1 − 2 S2 cancellation small.

:func:`ion_msd` (the diffusion analysis) transforms every ion's x, y, z series once and works
on power spectra from there: summed over ions per direction for the MSD curve (three inverse
transforms in all), and contracted with the spectral weights of a fit (:func:`spectral_weights`)
for each ion's own slope, so no per-ion MSD curve is built. :func:`per_ion_msd` gives those
curves when they are wanted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superion.analysis.correlation import autocorrelation, fft_length
from superion.analysis.kernels import as_c64, msd_s1

DEFAULT_MAX_BYTES = 128_000_000


def msd_fft(x: np.ndarray) -> np.ndarray:
    """MSD at every lag of each series: x (s, T) → (s, T) in units of x²."""
    x = np.asarray(x, dtype=np.float64)
    x = as_c64(x - x.mean(axis=1, keepdims=True))
    s2 = autocorrelation(x)
    s1 = np.empty_like(x)
    msd_s1(as_c64(x * x), s1)
    out = s1 - 2.0 * s2
    np.maximum(out, 0.0, out=out)  # FFT round-off can give −1e-12 at lag 0
    return out


def per_ion_msd(disp: np.ndarray, lags: slice = slice(None), max_bytes: float = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Each ion's own all-origin MSD (Å², summed over x, y, z) at the lags ``lags`` (frame
    offsets): disp (n, 3, T) Å → (n, L). Chunked over ions; the diffusion analysis does not
    need these curves (it takes each ion's slope straight from the spectra, see
    :func:`ion_msd`), they are for looking at individual ions."""
    n, _, T = disp.shape
    n_l = len(range(*lags.indices(T)))
    out = np.empty((n, n_l))
    chunk = max(1, int(max_bytes // (3 * 8 * 10 * T)))
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        out[a:b] = msd_fft(disp[a:b].reshape((b - a) * 3, T)).reshape(b - a, 3, T).sum(axis=1)[:, lags]
    return out


def msd_reference(x: np.ndarray, lags=None) -> np.ndarray:
    """Plain NumPy O(T²) MSD over all origins (tests): x (s, T) → (s, len(lags))."""
    x = np.asarray(x, dtype=np.float64)
    T = x.shape[1]
    lags = range(T) if lags is None else lags
    return np.stack([((x[:, m:] - x[:, : T - m]) ** 2).mean(axis=1) for m in lags], axis=1)


# Target size of the complex spectrum of one chunk of ions: small enough to stay in cache and
# below glibc's mmap threshold (so chunks reuse memory instead of faulting in new pages).
_SPECTRUM_BYTES = 4 << 20


def _chunk_ions(T: int, n_fft: int, max_bytes: float) -> int:
    """Ions per chunk: the spectrum (3 series × n_fft/2+1 complex) plus the padded work rows.
    At least two ions (six rows): pocketfft transforms several rows at once in SIMD lanes, and
    three rows at a time ran 1.3-3x slower than six (measured here for T = 2e4 and 1e5)."""
    per_ion = 3 * (16 * (n_fft // 2 + 1) + 8 * n_fft)
    return max(2, int(min(max_bytes, _SPECTRUM_BYTES) // per_ion))


def spectral_weights(lag_weights: np.ndarray, n_fft: int) -> np.ndarray:
    """Weights ĝ (n_fft/2+1,) with Σ_m g_m · irfft(P, n_fft)[m] = Σ_k P_k ĝ_k for any real
    spectrum P (such as a power spectrum): the adjoint of the inverse real FFT.

    irfft(P)[m] = (1/n) [P_0 + 2 Σ_{0<k<n/2} P_k cos(2πkm/n) (+ P_{n/2} cos(πm), n even)],
    so ĝ_k = c_k / n · Re(rfft(g))_k with c_0 = 1, c_{n/2} = 1 (n even) and c_k = 2 otherwise.
    """
    from scipy.fft import rfft

    g = np.zeros(n_fft)
    g[: len(lag_weights)] = lag_weights
    c = np.full(n_fft // 2 + 1, 2.0)
    c[0] = 1.0
    if n_fft % 2 == 0:
        c[-1] = 1.0
    return c / n_fft * rfft(g).real


@dataclass
class IonMSD:
    """MSD of a set of ions (Å², lag index = frame offset).

    mean: (T,) averaged over ions, summed over x, y, z; per_dir: (T, 3) averaged over ions;
    per_ion_fit: (n,) Σ_m w_m MSD_i(m) over the lags of the fit window for the given weights
    w (e.g. OLS slope weights, so that it is each ion's own fitted slope), summed over x, y, z,
    or None; collective: (T,) MSD of the summed displacement divided by n (centre-of-charge
    MSD in the convention of pymatgen's ``mscd``: equals ``mean`` for uncorrelated ions).
    """

    mean: np.ndarray
    per_dir: np.ndarray
    per_ion_fit: np.ndarray | None
    collective: np.ndarray


def ion_msd(
    disp: np.ndarray,
    *,
    fit_lags: slice | None = None,
    fit_weights: np.ndarray | None = None,
    max_bytes: float = DEFAULT_MAX_BYTES,
    summed: np.ndarray | None = None,
) -> IonMSD:
    """All-origin MSD of ions from displacements ``disp`` (n, 3, T) Å (float32 or float64).

    Every series is transformed once (forward real FFT, zero-padded to ≥ 2T). The power
    spectra are summed over ions per direction, so the ion-averaged MSD needs three inverse
    transforms in all; each ion's weighted sum over the fit lags (its OLS slope) comes from
    two dot products, ``x² · h`` for S1 and ``|X|² · ĝ`` for S2 (:func:`spectral_weights`), so no
    per-ion MSD curve is ever built. Work O(n T log T), memory O(T) beyond ``disp``.
    """
    from scipy.fft import irfft, rfft

    from superion.analysis.kernels import centre_square, power_accumulate

    n, _, T = disp.shape
    n_fft = fft_length(T)
    K = n_fft // 2 + 1
    lag = np.arange(T)
    norm = (T - lag).astype(np.float64)
    p_dir = np.zeros((3, K))
    x2_dir = np.zeros((3, T))
    per_ion = None
    if fit_lags is not None:
        lags = lag[fit_lags]
        w = np.asarray(fit_weights, dtype=np.float64) if fit_weights is not None else np.ones(len(lags))
        if len(w) != len(lags) or len(lags) == 0 or np.any(np.diff(lags) != 1):
            raise ValueError("fit_weights must match a non-empty contiguous fit_lags slice")
        g = np.zeros(T)
        g[lags] = w / norm[lags]
        # Σ_m g_m S1(m) = Σ_t x²(t) h_t: S1(m) sums x² over t ≥ m and over t ≤ T−1−m
        gc = np.cumsum(g)
        h = gc + gc[::-1]
        g_hat = spectral_weights(g, n_fft)
        per_ion = np.empty(n)
    else:
        h, g_hat = np.zeros(0), np.zeros(K)
    chunk = _chunk_ions(T, n_fft, max_bytes)
    s1_w, s2_w = np.empty(chunk), np.empty(chunk)
    # zero-padded work rows, padded once: rfft then needs no padded copy per chunk
    x = np.zeros((3 * chunk, n_fft))
    disp = np.ascontiguousarray(disp)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        xa = x[: 3 * (b - a)]
        centre_square(disp[a:b], h, xa, x2_dir, s1_w)
        spec = rfft(xa, axis=1)
        power_accumulate(spec, g_hat, p_dir, s2_w)
        if per_ion is not None:
            per_ion[a:b] = s1_w[: b - a] - 2.0 * s2_w[: b - a]
        del spec
    s1 = np.empty((3, T))
    msd_s1(x2_dir, s1)
    s2 = irfft(p_dir, n=n_fft, axis=1)[:, :T] / norm
    per_dir = ((s1 - 2.0 * s2) / n).T
    np.maximum(per_dir, 0.0, out=per_dir)  # FFT round-off can give −1e-12 at lag 0
    summed = disp.sum(axis=0, dtype=np.float64) if summed is None else summed
    collective = msd_fft(summed).sum(axis=0) / n
    return IonMSD(per_dir.sum(axis=1), per_dir, per_ion, collective)
