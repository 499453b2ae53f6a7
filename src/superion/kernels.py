"""Numba kernels of the analysis: small, array-in/array-out, each tested against NumPy.

All kernels are compiled lazily on first call and cached on disk (``cache=True``), so the
second process pays no compile time. Inputs must be C-contiguous float64 arrays; the
Python wrappers in :mod:`superion.unwrap`, :mod:`superion.msd` and :mod:`superion.density`
take care of that.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _unwrap_atom(pos, cells, inv_cells, t, i, prev, acc, s, out_row):  # pragma: no cover - compiled
    """One atom, one frame: fractional step to the previous frame, minimum image, accumulate,
    back to Cartesian with this frame's cell (written to out_row, Å)."""
    for k in range(3):
        s[k] = pos[t, i, 0] * inv_cells[t, 0, k] + pos[t, i, 1] * inv_cells[t, 1, k] + pos[t, i, 2] * inv_cells[t, 2, k]
    for k in range(3):
        d = s[k] - prev[i, k]
        # minimum image of the one-frame step: an atom never moves half a cell per frame
        d -= math.floor(d + 0.5)
        acc[i, k] += d
        prev[i, k] = s[k]
    for k in range(3):
        out_row[k] = acc[i, 0] * cells[t, 0, k] + acc[i, 1] * cells[t, 1, k] + acc[i, 2] * cells[t, 2, k]


@njit(cache=True)
def unwrap_chunk(pos, cells, inv_cells, prev, acc, out):  # pragma: no cover - compiled
    """Unwrap one chunk of frames frame to frame in fractional coordinates (NPT-safe).

    pos: (f, n, 3) Cartesian positions in Å (any image); cells, inv_cells: (f, 3, 3), rows =
    lattice vectors, and their inverses; prev: (n, 3) fractional positions of the frame before
    this chunk (updated); acc: (n, 3) accumulated unwrapped fractional positions (updated);
    out: (f, n, 3) unwrapped Cartesian positions in Å (acc of each frame times its own cell).
    The caller starts with ``prev = acc = s[0]`` so the first frame maps onto itself.
    """
    f, n = pos.shape[0], pos.shape[1]
    s = np.empty(3)
    for t in range(f):
        for i in range(n):
            _unwrap_atom(pos, cells, inv_cells, t, i, prev, acc, s, out[t, i])


@njit(cache=True)
def collect_chunk(pos, cells, inv_cells, do_unwrap, prev, acc, weights, mobile, framework,
                  first_mob, first_fw, com0, t0, out_mob, out_com, max_fw):  # pragma: no cover - compiled
    """Fused pass over one chunk of frames: unwrap, reference centre of mass, mobile-ion
    displacements (time last), largest framework excursion. One read of every atom per frame.

    pos: (f, n, 3) Å; cells/inv_cells: (f, 3, 3); do_unwrap: positions may jump across the
    cell (else they are continuous already); prev/acc: (n, 3) fractional unwrapping state (see
    :func:`unwrap_chunk`); weights: (n,) COM weights (sum 1, zeros outside the reference;
    all zeros = no drift correction); mobile, framework: atom indices; first_mob/first_fw:
    their positions at frame 0; com0: (3,) reference COM at frame 0; t0: index of the chunk's
    first frame in the whole run; out_mob: (n_mob, 3, F) displacement from the start minus
    the COM drift (written at t0 + t); out_com: (f, 3) COM per frame. Returns the running
    maximum of |framework displacement − COM drift| (Å), starting from max_fw.
    """
    f, n = pos.shape[0], pos.shape[1]
    buf = np.empty((n, 3))
    s = np.empty(3)
    best = max_fw * max_fw
    for t in range(f):
        cx = 0.0
        cy = 0.0
        cz = 0.0
        for i in range(n):
            if do_unwrap:
                _unwrap_atom(pos, cells, inv_cells, t, i, prev, acc, s, buf[i])
            else:
                for k in range(3):
                    buf[i, k] = pos[t, i, k]
            w = weights[i]
            if w != 0.0:
                cx += w * buf[i, 0]
                cy += w * buf[i, 1]
                cz += w * buf[i, 2]
        out_com[t, 0] = cx
        out_com[t, 1] = cy
        out_com[t, 2] = cz
        sx = cx - com0[0]
        sy = cy - com0[1]
        sz = cz - com0[2]
        for a in range(mobile.shape[0]):
            i = mobile[a]
            out_mob[a, 0, t0 + t] = buf[i, 0] - first_mob[a, 0] - sx
            out_mob[a, 1, t0 + t] = buf[i, 1] - first_mob[a, 1] - sy
            out_mob[a, 2, t0 + t] = buf[i, 2] - first_mob[a, 2] - sz
        for a in range(framework.shape[0]):
            i = framework[a]
            dx = buf[i, 0] - first_fw[a, 0] - sx
            dy = buf[i, 1] - first_fw[a, 1] - sy
            dz = buf[i, 2] - first_fw[a, 2] - sz
            v = dx * dx + dy * dy + dz * dz
            if v > best:
                best = v
    return math.sqrt(best)


@njit(cache=True)
def msd_s1(x2, out):  # pragma: no cover - compiled
    """First term of the FFT MSD: S1(m) = 1/(T-m) Σ_{t<T-m} (x²(t+m) + x²(t)).

    x2: (s, T) squared coordinates of s series; out: (s, T). O(T) by the recursion
    Q_m = Q_{m-1} − x²(m−1) − x²(T−m), Q_0 = 2 Σ x².
    """
    s, T = x2.shape
    for j in range(s):
        q = 0.0
        for t in range(T):
            q += x2[j, t]
        q *= 2.0
        for m in range(T):
            if m > 0:
                q -= x2[j, m - 1] + x2[j, T - m]
            out[j, m] = q / (T - m)


@njit(cache=True)
def max_sq_disp(disp, out):  # pragma: no cover - compiled
    """Per-ion maximum over time of |r(t) − r(0)|².

    disp: (n, 3, T) positions in Å (time last); out: (n,) Å², updated as a running maximum
    (so it can be called chunk by chunk with the same origin already subtracted).
    """
    n, _, T = disp.shape
    for i in range(n):
        best = out[i]
        for t in range(T):
            v = (disp[i, 0, t] - disp[i, 0, 0]) ** 2 + (disp[i, 1, t] - disp[i, 1, 0]) ** 2 + (disp[i, 2, t] - disp[i, 2, 0]) ** 2
            if v > best:
                best = v
        out[i] = best


@njit(cache=True)
def histogram_frac(frac, grid):  # pragma: no cover - compiled
    """Add counts of fractional positions (any image) into a periodic grid.

    frac: (f, n, 3) fractional coordinates; grid: (na, nb, nc) float64 counts (updated).
    Positions are wrapped into [0, 1) first.
    """
    na, nb, nc = grid.shape
    f, n = frac.shape[0], frac.shape[1]
    for t in range(f):
        for i in range(n):
            a = frac[t, i, 0] - math.floor(frac[t, i, 0])
            b = frac[t, i, 1] - math.floor(frac[t, i, 1])
            c = frac[t, i, 2] - math.floor(frac[t, i, 2])
            ia = int(a * na) % na
            ib = int(b * nb) % nb
            ic = int(c * nc) % nc
            grid[ia, ib, ic] += 1.0


@njit(cache=True)
def rotation_displacement_norms(rel, lag, out):  # pragma: no cover - compiled
    """Mean over time origins of ‖u(t+lag) − u(t)‖ for each series.

    rel: (s, 3, T) positions relative to their cluster centre (Å); out: (s,) Å.
    """
    s, _, T = rel.shape
    n0 = T - lag
    for j in range(s):
        acc = 0.0
        for t in range(n0):
            dx = rel[j, 0, t + lag] - rel[j, 0, t]
            dy = rel[j, 1, t + lag] - rel[j, 1, t]
            dz = rel[j, 2, t + lag] - rel[j, 2, t]
            acc += math.sqrt(dx * dx + dy * dy + dz * dz)
        out[j] = acc / n0


def as_c64(a) -> np.ndarray:
    """C-contiguous float64 view/copy (what the kernels accept)."""
    return np.ascontiguousarray(a, dtype=np.float64)
