"""Synthetic mobile-ion trajectories with a known true diffusivity (for tests and benchmarks).

Three kinds, all returned as :class:`SyntheticRun` with unwrapped Cartesian positions
(n_ions, 3, F) Å — what superion's unwrapping hands to the analysis — plus per-frame cells
(F, 3, 3) Å (rows = lattice vectors) and :meth:`SyntheticRun.wrapped_positions` (F, n, 3)
for pipeline-level tests:

- :func:`lattice_hopping`: ions on a simple-cubic sublattice (site spacing a in the mean
  cell) hop to one of the 6 nearest sites as a Poisson process of rate Γ per ion, and
  vibrate about their site (Ornstein–Uhlenbeck "rattling", rms ``rattle_rms_A`` per
  direction, correlation time ``rattle_tau_ps``; 0 = white from frame to frame). Hops may be
  correlated: with probability p the next hop reverses the previous one, else its direction
  is uniform over the 6. The direction correlation ⟨u_k·u_{k+j}⟩ = (−p)^j gives the exact
  correlation factor f = (1 − p)/(1 + p) and the true tracer diffusivity

      D_true = f Γ a² / 6        (3-D; f = 1 for uncorrelated hops).

  ``hop_rate_per_ps = 0`` is the caged-only case (D_true = 0).
- :func:`free_walkers`: Gaussian random walk with D_true set directly (MSD = 6 D t).

NPT breathing: the cell is h(t) = h0 · diag(1 + e(t) + e_k(t)) with e(t) = A sin(2π t/P) (a few
%) and small independent AR(1) fluctuations e_k per axis; sites are fixed in fractional
coordinates. Two ways to hand out unwrapped positions (``unwrap``):

- ``"displacement"`` (default): r(t) = r(0) + Σ_k Δs_k · h_k + vibration, every frame-to-frame
  step measured in the cell of its frame — what a displacement-accumulating (TOR-type)
  NPT unwrapping gives (von Bülow, Bullerjahn & Hummer, J. Chem. Phys. 153, 021101 (2020)).
  Breathing only changes the hop length a little: D_true = f Γ a0² ⟨λ²⟩ / 6 with ⟨λ²⟩ the
  mean over frames and axes of the squared scale factor of the realised cells (≈ 1 + A²/2).
- ``"affine"``: r(t) = s_u(t) · h(t) + vibration with s_u the unwrapped fractional site, the
  convention of superion's fractional unwrapping (superion.unwrap). Its fractional
  coordinates r · h(t)⁻¹ are images of the true ones (needed by the hop analysis), but the
  cell change multiplies the whole unwrapped distance from the origin: MSD gains
  ⟨|r_u|²⟩ ⟨(e(t+τ) − e(t))²⟩, a term that oscillates in τ with the cell and grows with the
  run length. Its long-time slope cancels (D_true = f Γ a0² / 6), but at lags below the
  breathing period it biases an estimator that weights short lags (GLS): measured 0.4 σ
  for 32 ions × 1000 frames, A = 2 %, P = run/10.

Ions do not interact (sites may be shared): the independent-ion assumption of the MSD
statistics holds exactly, which is what a coverage benchmark must test first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from superion.errors import SuperionError

from superion.units import A2_PS_TO_CM2_S

_DIRS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.int64)


@dataclass
class SyntheticRun:
    """One synthetic trajectory and its ground truth."""

    positions_A: np.ndarray  # (n_ions, 3, F) unwrapped Cartesian, Å
    cells_A: np.ndarray  # (F, 3, 3) Å, rows = lattice vectors
    dt_ps: float
    D_true_cm2_s: float
    sites_frac: np.ndarray | None = None  # (S, 3) fractional site coordinates
    site_index: np.ndarray | None = None  # (n_ions, F) true site per frame
    n_hops: np.ndarray | None = None  # (n_ions,) true number of hops
    hop_rate_per_ps: float = 0.0
    hop_length_A: float | None = None
    correlation_factor: float = 1.0
    info: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.positions_A.shape[2])

    @property
    def duration_ps(self) -> float:
        return (self.n_frames - 1) * self.dt_ps

    def wrapped_positions(self) -> np.ndarray:
        """(F, n_ions, 3) Cartesian positions wrapped into the cell of each frame (affine
        positions only: displacement-accumulated ones are not lattice images of the truth)."""
        if self.info.get("unwrap") == "displacement" and np.ptp(self.cells_A, axis=0).max() > 0:
            raise SuperionError("displacement-unwrapped positions in a changing cell cannot be wrapped; generate with unwrap='affine'")
        pos = self.positions_A.transpose(2, 0, 1)
        inv = np.linalg.inv(self.cells_A)
        frac = np.einsum("fnj,fjk->fnk", pos, inv)
        frac -= np.floor(frac)
        return np.einsum("fnj,fjk->fnk", frac, self.cells_A)


def breathing_cells(cell0_A: np.ndarray, n_frames: int, dt_ps: float, rng, amplitude: float = 0.02,
                    period_ps: float | None = None, noise: float = 0.003, noise_tau_ps: float | None = None) -> np.ndarray:
    """(F, 3, 3) cells: h0 scaled per axis by 1 + A sin(2π t/P) + AR(1) noise (rms ``noise``).

    Default period: a tenth of the run (several oscillations per run); the noise has a
    correlation time of a fiftieth of the run."""
    from scipy.signal import lfilter

    F = int(n_frames)
    t = np.arange(F) * dt_ps
    dur = max(t[-1], dt_ps)
    P = period_ps or dur / 10.0
    e = amplitude * np.sin(2 * np.pi * t / P)
    tau = noise_tau_ps or dur / 50.0
    rho = np.exp(-dt_ps / tau)
    xi = rng.standard_normal((3, F)) * noise * np.sqrt(1 - rho * rho)
    ek = lfilter([1.0], [1.0, -rho], xi, axis=1)
    scale = 1.0 + e[None, :] + ek  # (3, F)
    return np.asarray(cell0_A, dtype=np.float64)[None, :, :] * scale.T[:, :, None]


def _ou(rng, shape, n_frames: int, dt_ps: float, rms: float, tau_ps: float) -> np.ndarray:
    """Stationary Ornstein–Uhlenbeck series (..., F) with rms ``rms``; tau 0 → white noise.

    Drawn in float32 (vibration needs no more; halves the cost of 1e7+ normals)."""
    from scipy.signal import lfilter

    if rms == 0:
        return np.zeros((*shape, n_frames))
    xi = rng.standard_normal((*shape, n_frames), dtype=np.float32)
    xi *= np.float32(rms)
    if tau_ps <= 0:
        return xi
    rho = np.exp(-dt_ps / tau_ps)
    xi *= np.float32(np.sqrt(1 - rho * rho))
    xi[..., 0] /= np.float32(np.sqrt(1 - rho * rho))  # stationary start
    return lfilter([1.0], [1.0, -rho], xi.astype(np.float64), axis=-1)


def _hop_directions(rng, n_ions: int, n_max: int, back_hop_prob: float) -> np.ndarray:
    """(n_ions, n_max) indices into _DIRS; Markov: reverse the previous hop with prob p."""
    d = rng.integers(0, 6, size=(n_ions, n_max))
    if back_hop_prob > 0 and n_max > 1:
        rev = rng.random((n_ions, n_max)) < back_hop_prob
        for k in range(1, n_max):  # sequential in k, vectorised over ions
            d[:, k] = np.where(rev[:, k], d[:, k - 1] ^ 1, d[:, k])  # _DIRS pairs (0,1) (2,3) (4,5): ^1 reverses
    return d


def lattice_hopping(
    n_ions: int,
    n_frames: int,
    dt_ps: float,
    hop_rate_per_ps: float,
    *,
    hop_length_A: float = 3.0,
    rattle_rms_A: float = 0.25,
    rattle_tau_ps: float = 0.0,
    back_hop_prob: float = 0.0,
    breathing: float = 0.02,
    cell_noise: float = 0.003,
    sites_per_axis: int | None = None,
    unwrap: str = "displacement",
    store_sites: bool = True,
    seed=None,
) -> SyntheticRun:
    """Hopping on a simple-cubic sublattice with rattling in a breathing cell (see module doc).

    Hop times are a Poisson process per ion (continuous time; the frame after a hop shows the
    new site). ``store_sites``: keep the true site per frame (n_ions, F) for hop tests.
    Cost ~O(n_ions · F) with a few passes (1e7 ion-frames ≈ 1–2 s)."""
    if unwrap not in ("displacement", "affine"):
        raise SuperionError(f"unwrap must be 'displacement' or 'affine', got {unwrap!r}")
    if n_ions < 1:
        raise SuperionError("n_ions must be at least 1")
    if n_frames < 2:
        raise SuperionError("n_frames must be at least 2")
    if not (dt_ps > 0 and hop_length_A > 0 and hop_rate_per_ps >= 0 and 0 <= back_hop_prob < 1):
        raise SuperionError("need dt_ps > 0, hop_length_A > 0, hop_rate_per_ps >= 0 and 0 <= back_hop_prob < 1")
    rng = np.random.default_rng(seed)
    F, n = int(n_frames), int(n_ions)
    nc = sites_per_axis or max(2, int(np.ceil((2 * n) ** (1 / 3))))
    cell0 = np.eye(3) * nc * hop_length_A
    if breathing or cell_noise:
        cells = breathing_cells(cell0, F, dt_ps, rng, breathing, noise=cell_noise)
    else:
        cells = np.broadcast_to(cell0, (F, 3, 3)).copy()
    grid = np.stack(np.meshgrid(*[np.arange(nc)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    sites_frac = (grid + 0.5) / nc
    start = grid[rng.integers(0, len(grid), size=n)]  # (n, 3) integer site coordinates
    # Poisson hop times in continuous time over (0, F−1) frame intervals
    n_hops = rng.poisson(hop_rate_per_ps * dt_ps * (F - 1), size=n) if hop_rate_per_ps > 0 else np.zeros(n, dtype=np.int64)
    K = int(n_hops.max())
    valid = np.arange(K)[None, :] < n_hops[:, None]
    # the first n_hops draws of each row are that ion's hop times (masked before sorting, so
    # they stay uniform over the run)
    u = np.where(valid, rng.random((n, K)) * (F - 1), np.inf)
    u.sort(axis=1)
    hop_frame = np.where(valid, np.floor(np.minimum(u, F - 1.5)).astype(np.int64) + 1, F)  # first frame showing the new site
    # hops done by each frame: one global searchsorted over per-ion offset keys
    keys = (np.arange(n, dtype=np.int64)[:, None] * (F + 1) + hop_frame).ravel()
    q = np.arange(n, dtype=np.int64)[:, None] * (F + 1) + np.arange(F, dtype=np.int64)[None, :]
    k_done = (np.searchsorted(keys, q.ravel(), side="right").reshape(n, F) - np.arange(n)[:, None] * K).astype(np.int64)
    del q
    d = _hop_directions(rng, n, K, back_hop_prob) if K > 0 else np.zeros((n, 0), dtype=np.int64)
    steps = _DIRS[d]  # (n, K, 3) integer site steps
    if unwrap == "affine":
        cum = np.concatenate([np.zeros((n, 1, 3), dtype=np.int64), np.cumsum(steps, axis=1)], axis=1)
        pos = np.empty((n, 3, F))
        fr = [(start[:, j, None] + np.take_along_axis(cum[:, :, j], k_done, axis=1) + 0.5) / nc for j in range(3)]
        for c in range(3):
            pos[:, c, :] = sum(fr[j] * cells[None, :, j, c] for j in range(3))
        del fr
        scale2 = 1.0
    else:
        # each hop in the cell of the frame it shows up in (displacement-accumulating unwrap)
        h_hop = cells[np.minimum(hop_frame, F - 1)]  # (n, K, 3, 3)
        vec = np.einsum("nkj,nkjc->nkc", steps / nc, h_hop) * valid[:, :, None]
        cum = np.concatenate([np.zeros((n, 1, 3)), np.cumsum(vec, axis=1)], axis=1)
        r0 = ((start + 0.5) / nc) @ cells[0]
        pos = np.empty((n, 3, F))
        for c in range(3):
            pos[:, c, :] = r0[:, c, None] + np.take_along_axis(cum[:, :, c], k_done, axis=1)
        lam = np.einsum("fkk->fk", cells) / np.diag(cell0)[None, :]
        scale2 = float(np.mean(lam[1:] ** 2))  # hop lengths scale with the cell of the hop's frame
    if rattle_rms_A > 0:
        pos += _ou(rng, (n, 3), F, dt_ps, rattle_rms_A, rattle_tau_ps)
    site_idx = None
    if store_sites:
        cum_i = np.concatenate([np.zeros((n, 1, 3), dtype=np.int64), np.cumsum(steps, axis=1)], axis=1)
        site_hop = np.ravel_multi_index(tuple(np.moveaxis((start[:, None, :] + cum_i) % nc, -1, 0)), (nc, nc, nc))
        site_idx = np.take_along_axis(site_hop, k_done, axis=1).astype(np.int32)
    f = (1 - back_hop_prob) / (1 + back_hop_prob)
    D_A2_ps = f * hop_rate_per_ps * hop_length_A**2 * scale2 / 6.0
    return SyntheticRun(
        positions_A=pos,
        cells_A=cells,
        dt_ps=float(dt_ps),
        D_true_cm2_s=D_A2_ps * A2_PS_TO_CM2_S,
        sites_frac=sites_frac,
        site_index=site_idx,
        n_hops=n_hops,
        hop_rate_per_ps=float(hop_rate_per_ps),
        hop_length_A=float(hop_length_A),
        correlation_factor=f,
        info={"kind": "lattice_hopping" if hop_rate_per_ps > 0 else "caged", "back_hop_prob": back_hop_prob,
              "rattle_rms_A": rattle_rms_A, "rattle_tau_ps": rattle_tau_ps, "breathing": breathing,
              "sites_per_axis": nc, "unwrap": unwrap, "hop_length_scale2": scale2},
    )


def caged_only(n_ions: int, n_frames: int, dt_ps: float, **kwargs) -> SyntheticRun:
    """Ions rattling about their sites, never hopping (D_true = 0)."""
    return lattice_hopping(n_ions, n_frames, dt_ps, 0.0, **kwargs)


def free_walkers(n_ions: int, n_frames: int, dt_ps: float, D_A2_ps: float, *, box_A: float = 12.0,
                 breathing: float = 0.0, seed=None) -> SyntheticRun:
    """Gaussian random walkers, MSD = 6 D t exactly in expectation (D_true = D_A2_ps · 1e-4 cm²/s)."""
    if n_ions < 1 or n_frames < 2 or not (dt_ps > 0 and D_A2_ps >= 0):
        raise SuperionError("need n_ions >= 1, n_frames >= 2, dt_ps > 0 and D >= 0")
    rng = np.random.default_rng(seed)
    step = np.sqrt(2.0 * D_A2_ps * dt_ps)  # per-direction step rms for MSD = 6 D t
    x = np.cumsum(step * rng.standard_normal((n_ions, 3, n_frames)), axis=2)
    x += rng.random((n_ions, 3, 1)) * box_A
    cell0 = np.eye(3) * box_A
    cells = breathing_cells(cell0, n_frames, dt_ps, rng, breathing, noise=0.0) if breathing else np.broadcast_to(cell0, (n_frames, 3, 3)).copy()
    return SyntheticRun(positions_A=x, cells_A=cells, dt_ps=float(dt_ps), D_true_cm2_s=D_A2_ps * A2_PS_TO_CM2_S,
                        info={"kind": "free"})
