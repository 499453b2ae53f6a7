"""Numba kernels of the analysis: small, array-in/array-out, each tested against NumPy.

All kernels are compiled lazily on first call and cached on disk (``cache=True``), so the
second process pays no compile time (one compiled version per argument dtype). Inputs must
be C-contiguous; trajectory positions and displacements may be float32 (as superion stores
them) or float64, everything accumulated is float64. The Python wrappers in
:mod:`superion.unwrap`, :mod:`superion.msd` and :mod:`superion.density` take care of that.

Unwrapping runs on structure-of-arrays copies of each frame (``_frame_soa``): the x, y, z
interleaving of stored frames keeps LLVM from vectorising, contiguous component rows let it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


# Float flags for the vectorised kernels: reassociation lets LLVM vectorise the sums over
# atoms; no "nnan"/"ninf", so NaN in a trajectory still propagates into the results.
_VEC = {"contract", "reassoc", "nsz", "arcp"}


@njit(cache=True)
def _soa_buffers(n):  # pragma: no cover - compiled
    """Six float64 rows (n,): one frame's positions and displacements, x, y, z apart."""
    return np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)


@njit(cache=True, fastmath=_VEC)
def _frame_soa(pos_t, bx, by, bz):  # pragma: no cover - compiled
    """Copy one frame (n, 3) of any float type into three float64 component buffers (n,).
    The stride-3 layout of a stored frame defeats SIMD; the contiguous copies do not."""
    q = pos_t.ravel()  # a flat view of a C-contiguous frame: interleaved loads LLVM can vectorise
    for i in range(pos_t.shape[0]):
        bx[i] = q[3 * i]
        by[i] = q[3 * i + 1]
        bz[i] = q[3 * i + 2]


@njit(cache=True, fastmath=_VEC)
def _unwrap_soa(bx, by, bz, g, h, wd, acc, first, w, ux, uy, uz, step_max):  # pragma: no cover - compiled
    """Unwrap one frame; return the w-weighted mean displacement from frame 0 (3 floats).

    bx/by/bz: (n,) Cartesian positions (Å, any image); g, h: (3, 3) inverse cell and cell
    (rows = lattice vectors); wd: (3,) perpendicular widths of the cell (Å); acc: (3, n)
    unwrapped fractional positions of the last frame,
    replaced by this frame's: the image of s = r · g nearest to the last one,
    ``s − round(s − acc)``, i.e. the minimum image of the one-frame step (an atom never moves
    half a cell between frames; acc differs from the wrapped s by whole cells, so no separate
    last-frame array is needed and no rounding error accumulates); first: (3, n) Cartesian
    positions at frame 0; ux/uy/uz: (n,) written with acc · h − first, the displacement
    from frame 0 in this frame's cell (Å); step_max: (n,) running maximum of each atom's step
    (largest fractional component times the width along it, Å: see
    :mod:`superion.trajectory.sanity`), updated; NaN once the atom's position was not finite.
    """
    g00, g01, g02 = g[0, 0], g[0, 1], g[0, 2]
    g10, g11, g12 = g[1, 0], g[1, 1], g[1, 2]
    g20, g21, g22 = g[2, 0], g[2, 1], g[2, 2]
    h00, h01, h02 = h[0, 0], h[0, 1], h[0, 2]
    h10, h11, h12 = h[1, 0], h[1, 1], h[1, 2]
    h20, h21, h22 = h[2, 0], h[2, 1], h[2, 2]
    w0, w1, w2 = wd[0], wd[1], wd[2]
    a0, a1, a2 = acc[0], acc[1], acc[2]
    f0, f1, f2 = first[0], first[1], first[2]
    sx = 0.0
    sy = 0.0
    sz = 0.0
    for i in range(bx.shape[0]):
        x, y, z = bx[i], by[i], bz[i]
        s0 = x * g00 + y * g10 + z * g20
        s1 = x * g01 + y * g11 + z * g21
        s2 = x * g02 + y * g12 + z * g22
        c0 = s0 - math.floor(s0 - a0[i] + 0.5)
        c1 = s1 - math.floor(s1 - a1[i] + 0.5)
        c2 = s2 - math.floor(s2 - a2[i] + 0.5)
        # the step into this frame, as a running maximum (element-wise: vectorises) that keeps
        # NaN: "not q <= v" stores a NaN step, "v == v" never overwrites a stored NaN (acc does
        # not stay NaN: floor(NaN) is an integer here)
        q = max(abs(c0 - a0[i]) * w0, abs(c1 - a1[i]) * w1, abs(c2 - a2[i]) * w2)
        v = step_max[i]
        if v == v and not q <= v:
            step_max[i] = q
        a0[i] = c0
        a1[i] = c1
        a2[i] = c2
        vx = c0 * h00 + c1 * h10 + c2 * h20 - f0[i]
        vy = c0 * h01 + c1 * h11 + c2 * h21 - f1[i]
        vz = c0 * h02 + c1 * h12 + c2 * h22 - f2[i]
        ux[i] = vx
        uy[i] = vy
        uz[i] = vz
        wi = w[i]
        sx += wi * vx
        sy += wi * vy
        sz += wi * vz
    return sx, sy, sz


@njit(cache=True, fastmath=_VEC)
def unwrap_chunk(pos, cells, inv_cells, widths, acc, out, step_max):  # pragma: no cover - compiled
    """Unwrap one chunk of frames frame to frame in fractional coordinates (NPT-safe).

    pos: (f, n, 3) Cartesian positions in Å (any image, float32 or float64); cells,
    inv_cells: (f, 3, 3), rows = lattice vectors, and their inverses; widths: (f, 3)
    perpendicular widths (Å); acc: (3, n) unwrapped
    fractional positions of the frame before this chunk (updated, see :func:`_unwrap_soa`);
    out: (f, n, 3) unwrapped Cartesian positions in Å (acc of each frame times its own
    cell); step_max: (n,) running maximum step per atom (Å, updated; NaN for an atom whose
    position was not finite). The caller starts with
    ``acc = s[0]`` (plus whole-cell shifts that keep clusters whole) so the first frame maps
    onto itself.
    """
    f, n = pos.shape[0], pos.shape[1]
    bx, by, bz, ux, uy, uz = _soa_buffers(n)
    origin = np.zeros((3, n))
    no_weights = np.zeros(n)
    for t in range(f):
        _frame_soa(pos[t], bx, by, bz)
        _unwrap_soa(bx, by, bz, inv_cells[t], cells[t], widths[t], acc, origin, no_weights, ux, uy, uz, step_max)
        for i in range(n):
            out[t, i, 0] = ux[i]
            out[t, i, 1] = uy[i]
            out[t, i, 2] = uz[i]


@njit(cache=True, fastmath=_VEC)
def collect_chunk(pos, cells, inv_cells, widths, do_unwrap, acc, weights, mobile, is_framework,
                  first, t0, out_mob, out_com, out_sum, out_msq, step_max, max_fw):  # pragma: no cover - compiled
    """Fused pass over one chunk of frames: unwrap, reference centre of mass, mobile-ion
    displacements (time last), largest framework excursion, largest step per atom. One read
    of every atom per frame.

    pos: (f, n, 3) Å, float32 or float64 as stored; cells/inv_cells: (f, 3, 3) float64;
    widths: (f, 3) perpendicular widths of the cells (Å);
    do_unwrap: positions may jump across the cell (else they are continuous already);
    acc: (3, n) float64 carried across chunks: unwrapped fractional positions of the last frame
    (see :func:`_unwrap_soa`; the caller starts it at frame 0's), or without unwrapping the
    last frame's Cartesian positions (Å; starts at frame 0's);
    weights: (n,) COM weights (sum 1, zeros outside the reference; all zeros = no drift
    correction); mobile: (m,) atom indices; is_framework: (n,) 1.0 for framework atoms else
    0.0; first: (3, n) Cartesian positions at frame 0 (Å); t0: index of the chunk's first
    frame in the run; out_mob: (m, 3, F) displacement from the start minus the COM drift,
    written at t0 + t (float32 or float64); out_com: (f, 3) COM drift from frame 0 (Å);
    out_sum: (f, 3) Σ over mobile ions of their displacements (Å, the charge displacement);
    out_msq: (m,) running maximum over time of each mobile ion's squared displacement (Å²,
    updated); step_max: (n,) running maximum of each atom's step between frames (Å, the lower
    bound of :mod:`superion.trajectory.sanity`; updated; with unwrapping NaN for an atom whose
    position was not finite). Returns (the running maximum of |framework displacement − COM
    drift| (Å), from max_fw; without unwrapping the sum of the step components, not finite when
    a position is not — a max drops NaN there, since the last position moves on — else 0).
    """
    f, n = pos.shape[0], pos.shape[1]
    bx, by, bz, ux, uy, uz = _soa_buffers(n)
    f0, f1, f2 = first[0], first[1], first[2]
    p0, p1, p2 = acc[0], acc[1], acc[2]
    run_max = np.full(n, max_fw * max_fw)
    qs = 0.0
    for t in range(f):
        _frame_soa(pos[t], bx, by, bz)
        if do_unwrap:
            sx, sy, sz = _unwrap_soa(bx, by, bz, inv_cells[t], cells[t], widths[t], acc, first, weights,
                                     ux, uy, uz, step_max)
        else:  # continuous already: the displacement is the difference to frame 0
            for i in range(n):
                x, y, z = bx[i], by[i], bz[i]
                ux[i] = x - f0[i]
                uy[i] = y - f1[i]
                uz[i] = z - f2[i]
                e0 = abs(x - p0[i])
                e1 = abs(y - p1[i])
                e2 = abs(z - p2[i])
                qs += e0 + e1 + e2
                e = max(e0, e1, e2)
                if e > step_max[i]:
                    step_max[i] = e
                p0[i] = x
                p1[i] = y
                p2[i] = z
            sx = np.dot(weights, ux)
            sy = np.dot(weights, uy)
            sz = np.dot(weights, uz)
        # (sx, sy, sz) = COM(t) − COM(0) = Σ w_i (r_i(t) − r_i(0)): the drift
        out_com[t, 0] = sx
        out_com[t, 1] = sy
        out_com[t, 2] = sz
        for i in range(n):  # element-wise running maximum: vectorises, a max-reduction does not
            dx = ux[i] - sx
            dy = uy[i] - sy
            dz = uz[i] - sz
            v = is_framework[i] * (dx * dx + dy * dy + dz * dz)
            if v > run_max[i]:
                run_max[i] = v
        cx = 0.0
        cy = 0.0
        cz = 0.0
        for a in range(mobile.shape[0]):
            i = mobile[a]
            dx = ux[i] - sx
            dy = uy[i] - sy
            dz = uz[i] - sz
            out_mob[a, 0, t0 + t] = dx
            out_mob[a, 1, t0 + t] = dy
            out_mob[a, 2, t0 + t] = dz
            cx += dx
            cy += dy
            cz += dz
            v = dx * dx + dy * dy + dz * dz
            if v > out_msq[a]:
                out_msq[a] = v
        out_sum[t, 0] = cx
        out_sum[t, 1] = cy
        out_sum[t, 2] = cz
    return math.sqrt(run_max.max()), qs


@njit(cache=True, fastmath=_VEC)
def power_accumulate(spec, g_hat, p_dir, s2_w):  # pragma: no cover - compiled
    """Power spectra of (ion, x/y/z) series, accumulated two ways.

    spec: (3m, K) complex rfft of m ions' x, y, z series (rows ion-major); g_hat: (K,)
    spectral weights (see :func:`superion.analysis.msd.spectral_weights`); p_dir: (3, K) running sum
    of |spec|² over ions per direction (updated); s2_w: (m,) Σ_k |spec_k|² g_hat_k summed
    over x, y, z per ion (overwritten).
    """
    s, K = spec.shape
    for j in range(s // 3):
        acc = 0.0
        for d in range(3):
            row = spec[3 * j + d]
            out = p_dir[d]
            for k in range(K):
                v = row[k]
                p = v.real * v.real + v.imag * v.imag
                out[k] += p
                acc += p * g_hat[k]
        s2_w[j] = acc


@njit(cache=True, fastmath=_VEC)
def centre_square(disp, h, x, x2_dir, s1_w):  # pragma: no cover - compiled
    """One pass over a chunk of ions for the FFT MSD: centred series and their squares.

    disp: (m, 3, T) displacements (float32 or float64, Å); h: (T,) weights of x² in the
    per-ion fit sum (may be empty: then s1_w is left alone); x: (3m, ≥ T) float64, the centred
    series (written: MSD is translation invariant, centring keeps S1 − 2 S2 small); x2_dir:
    (3, T) running sum of x² over ions per direction (updated); s1_w: (m,) Σ_t h_t Σ_xyz x²
    per ion (written).
    """
    m, _, T = disp.shape
    use_h = h.shape[0] == T
    for j in range(m):
        acc = 0.0
        for d in range(3):
            src = disp[j, d]
            row = x[3 * j + d]
            mean = 0.0
            for t in range(T):
                mean += src[t]
            mean /= T
            out = x2_dir[d]
            for t in range(T):
                v = src[t] - mean
                row[t] = v
                v2 = v * v
                out[t] += v2
                if use_h:
                    acc += v2 * h[t]
        if use_h:
            s1_w[j] = acc


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

    disp: (n, 3, T) positions in Å (time last, float32 or float64); out: (n,) Å², updated as a running maximum
    (so it can be called chunk by chunk with the same origin already subtracted).
    """
    n, _, T = disp.shape
    for i in range(n):
        best = out[i]
        for t in range(T):
            dx = np.float64(disp[i, 0, t]) - disp[i, 0, 0]
            dy = np.float64(disp[i, 1, t]) - disp[i, 1, 0]
            dz = np.float64(disp[i, 2, t]) - disp[i, 2, 0]
            v = dx * dx + dy * dy + dz * dz
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
