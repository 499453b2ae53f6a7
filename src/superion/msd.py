"""Mean squared displacement over all time origins, every lag, by FFT (O(T log T)).

For a series x(t), t = 0..T−1, and lag m:
    MSD(m) = 1/(T−m) Σ_{t<T−m} (x(t+m) − x(t))² = S1(m) − 2 S2(m),
S1 from a running sum (Numba kernel :func:`superion.kernels.msd_s1`), S2(m) = 1/(T−m) Σ x(t)x(t+m)
from the FFT autocorrelation (zero-padded to a fast length ≥ 2T). Series are processed in
chunks so the transient memory stays below ``max_bytes``. Each series is centred first
(MSD is translation invariant) to keep the S1 − 2 S2 cancellation small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superion.kernels import as_c64, msd_s1

DEFAULT_MAX_BYTES = 128_000_000


def msd_fft(x: np.ndarray) -> np.ndarray:
    """MSD at every lag of each series: x (s, T) → (s, T) in units of x²."""
    from scipy.fft import irfft, next_fast_len, rfft

    x = np.asarray(x, dtype=np.float64)
    s, T = x.shape
    x = as_c64(x - x.mean(axis=1, keepdims=True))
    n_fft = next_fast_len(2 * T, real=True)
    f = rfft(x, n=n_fft, axis=1)
    f = f.real**2 + f.imag**2
    s2 = irfft(f, n=n_fft, axis=1)[:, :T]
    del f
    norm = (T - np.arange(T)).astype(np.float64)
    s1 = np.empty_like(x)
    msd_s1(as_c64(x * x), s1)
    out = s1 - 2.0 * s2 / norm
    np.maximum(out, 0.0, out=out)  # FFT round-off can give −1e-12 at lag 0
    return out


def msd_reference(x: np.ndarray, lags=None) -> np.ndarray:
    """Plain NumPy O(T²) MSD over all origins (tests): x (s, T) → (s, len(lags))."""
    x = np.asarray(x, dtype=np.float64)
    T = x.shape[1]
    lags = range(T) if lags is None else lags
    return np.stack([((x[:, m:] - x[:, : T - m]) ** 2).mean(axis=1) for m in lags], axis=1)


def _chunk_size(n_series_per_item: int, T: int, max_bytes: float) -> int:
    # rfft spectrum (complex, ~T+1 per series), padded inverse (~2T), x, x², s1, out (~4T): ~8T doubles
    per_item = n_series_per_item * 8 * 10 * T
    return max(1, int(max_bytes // per_item))


@dataclass
class IonMSD:
    """MSD of a set of ions (Å², lag index = frame offset).

    mean: (T,) averaged over ions, summed over x, y, z; per_dir: (T, 3) averaged over ions;
    per_ion: (n, L) summed over x, y, z, only for the requested lags (or None);
    collective: (T,) MSD of the summed displacement divided by n (centre-of-charge MSD in the
    convention of pymatgen's ``mscd``: equals ``mean`` for uncorrelated ions).
    """

    mean: np.ndarray
    per_dir: np.ndarray
    per_ion: np.ndarray | None
    collective: np.ndarray


def ion_msd(
    disp: np.ndarray,
    *,
    per_ion_lags: slice | None = None,
    max_bytes: float = DEFAULT_MAX_BYTES,
) -> IonMSD:
    """All-origin MSD of ions from displacements ``disp`` (n, 3, T) Å, chunked over ions."""
    n, _, T = disp.shape
    chunk = _chunk_size(3, T, max_bytes)
    per_dir = np.zeros((T, 3))
    per_ion = None
    if per_ion_lags is not None:
        n_l = len(range(*per_ion_lags.indices(T)))
        per_ion = np.empty((n, n_l))
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        m = msd_fft(disp[a:b].reshape((b - a) * 3, T)).reshape(b - a, 3, T)
        per_dir += m.sum(axis=0).T
        if per_ion is not None:
            per_ion[a:b] = m[:, :, per_ion_lags].sum(axis=1)
    per_dir /= n
    collective = msd_fft(disp.sum(axis=0)).sum(axis=0) / n
    return IonMSD(per_dir.sum(axis=1), per_dir, per_ion, collective)
