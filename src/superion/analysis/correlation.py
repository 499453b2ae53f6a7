"""All-origin time autocorrelation by FFT (O(T log T)): the one used by the MSD
(:mod:`superion.analysis.msd`) and the orientational correlations (:mod:`superion.analysis.rotation`).

For a series x(t), t = 0..T−1, and lag m:
    c(m) = 1/(T−m) Σ_{t<T−m} x(t) x(t+m)
(mean over the T−m time origins), from the power spectrum of x zero-padded to a fast length
≥ 2T (:func:`fft_length`), so the circular correlation of the FFT does not wrap around.
"""

from __future__ import annotations

import numpy as np


def fft_length(T: int) -> int:
    """Fast real-FFT length ≥ 2T: zero padding for a non-circular correlation of T points."""
    from scipy.fft import next_fast_len

    return next_fast_len(2 * T, real=True)


def autocorrelation(x: np.ndarray) -> np.ndarray:
    """All-origin autocorrelation c(m) of each series: x (s, T) → (s, T) float64, units of x²."""
    from scipy.fft import irfft, rfft

    x = np.asarray(x, dtype=np.float64)
    T = x.shape[1]
    n_fft = fft_length(T)
    f = rfft(x, n=n_fft, axis=1)
    c = irfft(f.real**2 + f.imag**2, n=n_fft, axis=1)[:, :T]
    return c / (T - np.arange(T))
