"""Hops of mobile ions between sites, hop rates with exact Poisson intervals, correlation factor.

Input layout: positions ``pos_A`` (n_ions, 3, F) Cartesian Å whose fractional coordinates
r · h(t)⁻¹ are images of the true ones — wrapped positions, or positions unwrapped in
fractional coordinates (r = s_u · h(t), superion's unwrapping); cells ``cells_A`` (F, 3, 3) Å,
rows = lattice vectors (NPT: one cell per frame); sites ``sites_frac`` (S, 3) fractional
(e.g. the mobile sublattice of the starting structure, or density maxima). Distances are
minimum-image in the frame's own cell, so a breathing cell moves the sites with it.

Assignment with a core radius ("transition-state" definition): an ion is assigned to a site
only while it is within ``r_core_A`` of it; in between it keeps its last site. A rattling ion
that swings towards a neighbour but never enters the neighbour's core is not counted.
Optional residence filter: a new site counts only after the ion has stayed there (in its
core or in the corridor, i.e. not back in another core) for ``min_residence_frames``
consecutive frames; shorter visits are erased (flicker across a saddle).

Hops: changes of the filtered site; per ion counts, events (ion, frame, from, to, length).
Hop rate per ion Γ = n_hops / (n_ions · duration) in s⁻¹ with the exact (Garwood) Poisson
95 % interval; 0 hops gives the interval [0, 3.689] events (two-sided, and the one-sided 95 %
upper limit 2.996 events is reported too). Correlation factor f = D_tracer / (Γ ⟨a²⟩ / 6)
with ⟨a²⟩ the mean squared hop length (equal to a² for one hop length).

Speed: a Numba kernel follows each ion's nearest site through its neighbour shell, falling
back to all sites when the ion is farther than half the shell from its previous nearest
site (so the nearest site is never missed); 100 ions × 1e5 frames in about a second.
:func:`assign_sites_reference` is the brute-force NumPy definition the kernel is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from superion.errors import SuperionError

from superion.units import A2_PS_TO_CM2_S, PS_TO_S


def poisson_interval(n_events: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided (Garwood) interval for a Poisson mean given ``n_events`` observed:
    [χ²_{α/2}(2n)/2, χ²_{1−α/2}(2n+2)/2]; n = 0 → [0, 3.689] at 95 %."""
    from scipy.stats import chi2

    n = int(n_events)
    if n < 0:
        raise SuperionError(f"event count must be >= 0, got {n}")
    a = 1.0 - level
    lo = 0.0 if n == 0 else float(chi2.ppf(a / 2, 2 * n) / 2)
    return lo, float(chi2.ppf(1 - a / 2, 2 * n + 2) / 2)


def poisson_upper(n_events: int, level: float = 0.95) -> float:
    """One-sided upper limit χ²_{level}(2n+2)/2 of a Poisson mean; n = 0 → −ln(0.05) = 2.996 at 95 %."""
    from scipy.stats import chi2

    return float(chi2.ppf(level, 2 * int(n_events) + 2) / 2)


def fractional(pos_A: np.ndarray, cells_A: np.ndarray) -> np.ndarray:
    """Fractional coordinates (n, 3, F) of positions (n, 3, F) Å in per-frame cells (F, 3, 3)."""
    inv = np.linalg.inv(cells_A)  # (F, 3, 3)
    s = np.empty(pos_A.shape, dtype=np.float64)
    for c in range(3):
        s[:, c, :] = sum(pos_A[:, j, :] * inv[None, :, j, c] for j in range(3))
    return s


def _check(pos_A, cells_A, sites_frac, r_core_A):
    pos = np.asarray(pos_A, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[1] != 3:
        raise SuperionError(f"positions must have shape (n_ions, 3, n_frames), got {pos.shape}")
    if pos.shape[0] == 0:
        raise SuperionError("no mobile ions in the positions; check the species selection")
    F = pos.shape[2]
    if F < 2:
        raise SuperionError(f"trajectory has {F} frame(s); hop analysis needs at least 2 frames")
    cells = np.asarray(cells_A, dtype=np.float64)
    if cells.shape == (3, 3):
        cells = np.broadcast_to(cells, (F, 3, 3))
    if cells.shape != (F, 3, 3):
        raise SuperionError(f"cells must have shape (n_frames, 3, 3) or (3, 3), got {cells.shape}")
    sites = np.asarray(sites_frac, dtype=np.float64)
    if sites.ndim != 2 or sites.shape[1] != 3 or len(sites) == 0:
        raise SuperionError("sites must be a non-empty (S, 3) array of fractional coordinates")
    if not (r_core_A and r_core_A > 0):
        raise SuperionError(f"core radius must be positive, got {r_core_A} Å; pass r_core_A > 0")
    return pos, np.ascontiguousarray(cells), sites


@njit(cache=True)
def _d2(s, i, f, site, cells, sites):  # pragma: no cover - compiled
    d0 = s[i, 0, f] - sites[site, 0]
    d1 = s[i, 1, f] - sites[site, 1]
    d2 = s[i, 2, f] - sites[site, 2]
    d0 -= np.floor(d0 + 0.5)
    d1 -= np.floor(d1 + 0.5)
    d2 -= np.floor(d2 + 0.5)
    x = d0 * cells[f, 0, 0] + d1 * cells[f, 1, 0] + d2 * cells[f, 2, 0]
    y = d0 * cells[f, 0, 1] + d1 * cells[f, 1, 1] + d2 * cells[f, 2, 1]
    z = d0 * cells[f, 0, 2] + d1 * cells[f, 1, 2] + d2 * cells[f, 2, 2]
    return x * x + y * y + z * z


@njit(cache=True)
def _assign_kernel(s, cells, sites, nbr, r_core2, shell_half2, out):  # pragma: no cover - compiled
    """out[i, f]: last site whose core ion i was in up to frame f (−1 before the first)."""
    n, _, F = s.shape
    S = sites.shape[0]
    for i in range(n):
        near = 0
        best = 1e300
        for k in range(S):
            v = _d2(s, i, 0, k, cells, sites)
            if v < best:
                best, near = v, k
        cur = near if best <= r_core2 else -1
        out[i, 0] = cur
        for f in range(1, F):
            dn = _d2(s, i, f, near, cells, sites)
            best = dn
            cand = near
            if dn > shell_half2:
                # farther than half the neighbour shell: the nearest site may lie outside it
                for k in range(S):
                    v = _d2(s, i, f, k, cells, sites)
                    if v < best:
                        best, cand = v, k
            else:
                for j in range(nbr.shape[1]):
                    k = nbr[near, j]
                    if k < 0:
                        break
                    v = _d2(s, i, f, k, cells, sites)
                    if v < best:
                        best, cand = v, k
            near = cand
            if best <= r_core2:
                cur = near
            out[i, f] = cur


def _neighbour_lists(sites, cell, shell_A):
    """Sites within ``shell_A`` of each site (minimum image, first-frame cell), −1 padded."""
    d = sites[:, None, :] - sites[None, :, :]
    d -= np.round(d)
    r = np.linalg.norm(d @ cell, axis=-1)
    np.fill_diagonal(r, np.inf)
    lists = [np.flatnonzero(row <= shell_A) for row in r]
    width = max(1, max(len(x) for x in lists))
    nbr = np.full((len(sites), width), -1, dtype=np.int64)
    for k, x in enumerate(lists):
        nbr[k, : len(x)] = x
    return nbr


def assign_sites(pos_A, cells_A, sites_frac, r_core_A: float, *, shell_factor: float = 1.6) -> np.ndarray:
    """Site index (n_ions, F) int: the last site whose core (radius ``r_core_A``, Å) the ion
    was in, −1 before its first core visit. Kernel: nearest-site tracking through a neighbour
    shell of ``shell_factor`` × the site nearest-neighbour distance, exact by the triangle
    inequality (full search when the ion is more than 0.45 shell from its previous nearest
    site; the 0.9 margin covers cells that deform by up to 10 % from the first frame)."""
    pos, cells, sites = _check(pos_A, cells_A, sites_frac, r_core_A)
    n, _, F = pos.shape
    s = fractional(pos, cells)
    if len(sites) > 1:
        from superion.analysis.regime import nearest_neighbour_distances_A

        nn = float(np.min(nearest_neighbour_distances_A(sites, cells[0])))
    else:
        nn = float(np.min(np.linalg.norm(cells[0], axis=1)))
    shell = shell_factor * nn
    nbr = _neighbour_lists(sites, cells[0], shell)
    out = np.empty((n, F), dtype=np.int64)
    _assign_kernel(np.ascontiguousarray(s), cells, np.ascontiguousarray(sites), nbr, r_core_A**2, (0.45 * shell) ** 2, out)
    return out


def assign_sites_reference(pos_A, cells_A, sites_frac, r_core_A: float) -> np.ndarray:
    """Brute-force NumPy version of :func:`assign_sites` (every site, every frame; tests)."""
    pos, cells, sites = _check(pos_A, cells_A, sites_frac, r_core_A)
    n, _, F = pos.shape
    s = fractional(pos, cells)
    d = s[:, None, :, :] - sites[None, :, :, None]  # (n, S, 3, F)
    d -= np.round(d)
    cart = np.einsum("nsjf,fjk->nskf", d, cells)
    r2 = (cart**2).sum(axis=2)  # (n, S, F)
    near = r2.argmin(axis=1)
    inside = np.take_along_axis(r2, near[:, None, :], axis=1)[:, 0] <= r_core_A**2
    out = np.full((n, F), -1, dtype=np.int64)
    for i in range(n):
        cur = -1
        for f in range(F):
            if inside[i, f]:
                cur = near[i, f]
            out[i, f] = cur
    return out


@njit(cache=True)
def _residence_kernel(assigned, min_frames, out):  # pragma: no cover - compiled
    """Filtered site series: a change to site B counts only after B held for min_frames frames."""
    n, F = assigned.shape
    for i in range(n):
        conf = assigned[i, 0]
        cand = -2
        since = 0
        for f in range(F):
            a = assigned[i, f]
            if conf < 0 and a >= 0:
                conf = a  # first placement is not a hop
            if a == conf or a < 0:
                cand = -2
            elif a != cand:
                cand = a
                since = f
            if cand >= 0 and f - since + 1 >= min_frames:
                conf = cand
                for g in range(since, f):
                    out[i, g] = conf  # the ion arrived at `since`
                cand = -2
            out[i, f] = conf


def filter_residence(assigned: np.ndarray, min_residence_frames: int) -> np.ndarray:
    """Apply the residence filter to a site series (n_ions, F); 1 frame = no filtering."""
    if int(min_residence_frames) < 1:
        raise SuperionError(f"minimum residence must be >= 1 frame, got {min_residence_frames}")
    a = np.ascontiguousarray(assigned, dtype=np.int64)
    out = np.empty_like(a)
    _residence_kernel(a, int(min_residence_frames), out)
    return out


@dataclass
class HopResult:
    """Hop statistics of one run (``summary`` is JSON-ready)."""

    n_hops_per_ion: np.ndarray
    events: np.ndarray  # (n_events, 4) int: ion, frame, from site, to site
    hop_lengths_A: np.ndarray
    n_ions: int
    duration_ps: float
    r_core_A: float
    min_residence_frames: int
    sites: np.ndarray = field(repr=False, default=None)

    @property
    def n_hops(self) -> int:
        return int(self.n_hops_per_ion.sum())

    @property
    def rate_per_s(self) -> float:
        return self.n_hops / (self.n_ions * self.duration_ps * PS_TO_S)

    def rate_ci95_per_s(self) -> tuple[float, float]:
        lo, hi = poisson_interval(self.n_hops)
        norm = self.n_ions * self.duration_ps * PS_TO_S
        return lo / norm, hi / norm

    def rate_upper95_per_s(self) -> float:
        return poisson_upper(self.n_hops) / (self.n_ions * self.duration_ps * PS_TO_S)

    @property
    def mean_sq_hop_length_A2(self) -> float | None:
        return float(np.mean(self.hop_lengths_A**2)) if len(self.hop_lengths_A) else None

    def uncorrelated_diffusivity_cm2_s(self) -> float | None:
        """Γ ⟨a²⟩ / 6: the tracer D if successive hops were uncorrelated (cm²/s)."""
        a2 = self.mean_sq_hop_length_A2
        return None if a2 is None else self.rate_per_s * PS_TO_S * a2 / 6.0 * A2_PS_TO_CM2_S

    def correlation_factor(self, D_tracer_cm2_s: float, D_ci95_cm2_s=None) -> dict:
        """f = D_tracer / (Γ⟨a²⟩/6); 95 % interval from combining the D interval and the Poisson
        interval of Γ in log space (approximate: both treated as log-normal)."""
        D0 = self.uncorrelated_diffusivity_cm2_s()
        if D0 is None or not D0 > 0:
            return {"correlation_factor": None, "correlation_factor_ci95": None, "correlation_factor_note": "no hops"}
        f = D_tracer_cm2_s / D0
        ci = None
        lo, hi = self.rate_ci95_per_s()
        if D_ci95_cm2_s is not None and lo > 0 and D_ci95_cm2_s[0] > 0:
            s_g = np.log(hi / lo) / (2 * 1.96)
            s_d = np.log(D_ci95_cm2_s[1] / D_ci95_cm2_s[0]) / (2 * 1.96)
            s = float(np.hypot(s_g, s_d))
            ci = [f * float(np.exp(-1.96 * s)), f * float(np.exp(1.96 * s))]
        return {"correlation_factor": float(f), "correlation_factor_ci95": ci,
                "correlation_factor_note": "f = D_tracer / (Gamma <a^2> / 6); interval combines the D and Poisson intervals in log space"}

    def summary(self) -> dict:
        lo, hi = self.rate_ci95_per_s()
        return {
            "n_hops": self.n_hops,
            "n_ions_hopped": int(np.count_nonzero(self.n_hops_per_ion)),
            "n_ions": int(self.n_ions),
            "hop_rate_per_s": self.rate_per_s,
            "hop_rate_ci95_per_s": [lo, hi],
            "hop_rate_upper95_per_s": self.rate_upper95_per_s(),
            "hop_rate_method": "n_hops / (n_ions * duration); exact Poisson (Garwood) 95 % interval; one-sided 95 % upper limit beside it",
            "mean_hop_length_A": float(np.mean(self.hop_lengths_A)) if len(self.hop_lengths_A) else None,
            "mean_sq_hop_length_A2": self.mean_sq_hop_length_A2,
            "uncorrelated_diffusivity_cm2_s": self.uncorrelated_diffusivity_cm2_s(),
            "hop_core_radius_A": self.r_core_A,
            "hop_min_residence_frames": self.min_residence_frames,
            "hop_definition": "site changes of the last core visited (within r_core of a site, minimum image in each frame's cell), "
                              "after the residence filter",
        }


def count_hops(
    pos_A,
    cells_A,
    sites_frac,
    dt_ps: float,
    *,
    r_core_A: float | None = None,
    min_residence_frames: int = 1,
) -> HopResult:
    """Hops between ``sites_frac`` over a run with frames ``dt_ps`` apart (see module docstring).

    Default core radius: 0.3 × the nearest-neighbour distance between sites (wide enough to
    hold a vibrating ion, far from the saddle between two sites)."""
    if not (dt_ps and dt_ps > 0):
        raise SuperionError(f"frame interval must be positive, got {dt_ps} ps")
    if int(min_residence_frames) < 1:
        raise SuperionError(f"minimum residence must be >= 1 frame, got {min_residence_frames}")
    sites = np.asarray(sites_frac, dtype=np.float64)
    cells = np.asarray(cells_A, dtype=np.float64)
    c0 = cells if cells.ndim == 2 else cells[0]
    if r_core_A is None:
        from superion.analysis.regime import hop_length_A

        r_core_A = 0.3 * hop_length_A(sites, c0)
    a = assign_sites(pos_A, cells_A, sites, r_core_A)
    a = filter_residence(a, min_residence_frames) if min_residence_frames > 1 else a
    n, F = a.shape
    prev, nxt = a[:, :-1], a[:, 1:]
    ion, fr = np.nonzero((prev != nxt) & (prev >= 0))
    frame = fr + 1
    ev = np.column_stack([ion, frame, a[ion, fr], a[ion, frame]]).astype(np.int64)
    cells_f = np.broadcast_to(cells, (F, 3, 3)) if cells.ndim == 2 else cells
    d = sites[ev[:, 3]] - sites[ev[:, 2]]
    d -= np.round(d)
    lengths = np.linalg.norm(np.einsum("ej,ejk->ek", d, cells_f[ev[:, 1]]), axis=1) if len(ev) else np.zeros(0)
    counts = np.bincount(ion, minlength=n)
    return HopResult(counts, ev, lengths, n, (F - 1) * dt_ps, float(r_core_A), int(min_residence_frames), sites)
