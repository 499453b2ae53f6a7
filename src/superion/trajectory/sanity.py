"""Physical sanity of trajectory frames: finite cells and positions, no impossible jumps.

Every analysis refuses a trajectory with a frame that cannot come from MD, naming the frame
and the atom (:class:`SuperionError`), instead of turning it into a number:

- cells: finite, with a volume > 0 (:func:`check_cells`);
- positions: finite;
- steps between consecutive frames: no atom moves more than
  ``max(JUMP_SIGMAS · sqrt(k_B T / m) · Δt, MIN_JUMP_A)`` (:func:`step_limits_A`). In classical MD
  each velocity component is Maxwell–Boltzmann distributed with σ = sqrt(k_B T / m), and a step
  is at most the largest speed times Δt; the largest of 1e10 samples is ~6.5 σ, and the MD
  guard stops a run at 3 × T (another factor 1.7), so 20 σ is never reached by real dynamics.
  The floor keeps short intervals and unphysically fast synthetic test data from being
  refused for sub-Å jitter; garbage (an overwritten frame, swapped atoms) moves Å to 1e6 Å.

The step measured is a lower bound on the step length, the same here and in the fused kernel
(:func:`superion.analysis.kernels.collect_chunk`): for positions that may be wrapped, the
largest fractional component of the minimum-image step times the cell's perpendicular width
along it; for continuous (unwrapped) positions, the largest Cartesian component. Wrapped data
can show no step beyond half the cell (the minimum image aliases it), but garbage lands at a
random place and shows up all the same.

The streaming kernel only reports that something is wrong in a chunk (a running per-atom
maximum of the step that keeps NaN, and for continuous positions a sum of the steps that turns
NaN); :func:`first_fault` then finds the frame and the atom in NumPy, on the failure path only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from superion.errors import SuperionError
from superion.units import K_B_EV_K

JUMP_SIGMAS = 20.0
MIN_JUMP_A = 2.0
# Used for the bound when a trajectory says nothing about its temperature: hotter than any MD
# run here (the config schema's limit), so the bound is generous, never tight.
FALLBACK_TEMPERATURE_K = 5000.0
# sqrt(eV / amu) in Å/fs
_SQRT_EV_AMU_A_FS = 0.09822694788464063


def check_cells(cells: np.ndarray, source, frame0: int = 0) -> None:
    """SuperionError naming the first frame whose cell (f, 3, 3) Å is not finite or has no volume
    (frames counted from ``frame0``)."""
    cells = np.asarray(cells, dtype=np.float64)
    finite = np.isfinite(cells).all(axis=(1, 2))
    vol = np.abs(np.linalg.det(np.where(finite[:, None, None], cells, 0.0))) if cells.size else np.zeros(0)
    bad = np.flatnonzero(~finite | ~(vol > 1e-3))
    if bad.size:
        t = int(bad[0])
        what = "is not finite (NaN/inf)" if not finite[t] else f"has no volume ({vol[t]:.3g} A^3)"
        raise SuperionError(f"{source}: frame {frame0 + t}: the cell {what}; the trajectory is damaged: regenerate it "
                            "or keep only the frames before this one")


def perpendicular_widths(inv_cells: np.ndarray) -> np.ndarray:
    """(F, 3) Å: the distance between opposite faces along each lattice vector, 1 / |column k of
    the inverse cell| (rows of the cell = lattice vectors)."""
    return 1.0 / np.sqrt(np.einsum("fjk,fjk->fk", inv_cells, inv_cells))


def frame_interval_bound_fs(times_fs: np.ndarray) -> float | None:
    """The longest time between consecutive frames (fs), None if there is no positive one."""
    steps = np.diff(np.asarray(times_fs, dtype=float))
    if steps.size == 0 or not np.all(np.isfinite(steps)):
        return None
    dt = float(steps.max())
    return dt if dt > 0 else None


def step_limits_A(masses_amu: np.ndarray, temperature_K: float | None, interval_fs: float | None) -> np.ndarray:
    """Largest step (Å) each atom may make between two frames: ``max(JUMP_SIGMAS · sqrt(k_B T / m)
    · Δt, MIN_JUMP_A)``, masses in amu; T None: :data:`FALLBACK_TEMPERATURE_K`; Δt None (no
    usable frame times): infinite limits, only non-finite positions are refused."""
    m = np.asarray(masses_amu, dtype=np.float64)
    if interval_fs is None:
        return np.full(m.shape, np.inf)
    T = FALLBACK_TEMPERATURE_K if temperature_K is None or not temperature_K > 0 else float(temperature_K)
    with np.errstate(divide="ignore"):
        sigma = np.sqrt(K_B_EV_K * T / m) * _SQRT_EV_AMU_A_FS  # Å/fs; inf for a massless atom
    return np.maximum(JUMP_SIGMAS * sigma * interval_fs, MIN_JUMP_A)


def step_lengths(pos: np.ndarray, prev: np.ndarray, cells: np.ndarray, inv_cells: np.ndarray,
                 wrapped: bool) -> tuple[np.ndarray, np.ndarray]:
    """(lower bound, length) in Å of every atom's step into each frame of ``pos`` (f, n, 3) Å, with
    ``cells``/``inv_cells`` (f, 3, 3) of those frames (see the module docstring). ``prev`` (n, 3)
    is the frame before: fractional (unwrapped or not) when ``wrapped``, else Cartesian Å."""
    pos = np.asarray(pos, dtype=np.float64)
    prev = np.asarray(prev, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        if wrapped:
            s = np.matmul(pos, inv_cells)
            d = s - np.concatenate([prev[None], s[:-1]])
            d -= np.floor(d + 0.5)  # minimum image, as the kernel's s - floor(s - acc + 0.5) - acc
            bound = np.max(np.abs(d) * perpendicular_widths(inv_cells)[:, None, :], axis=2)
            length = np.linalg.norm(np.matmul(d, cells), axis=2)
        else:
            d = pos - np.concatenate([prev[None], pos[:-1]])
            bound = np.max(np.abs(d), axis=2)
            length = np.linalg.norm(d, axis=2)
    return bound, length


@dataclass(frozen=True)
class Fault:
    """The first frame (index in the chunk) and atom that cannot be physical; ``step_A`` is the
    step length into that frame (NaN for a non-finite position)."""

    frame: int
    atom: int
    step_A: float


def first_fault(pos: np.ndarray, prev: np.ndarray, cells: np.ndarray, inv_cells: np.ndarray, wrapped: bool,
                limits_A: np.ndarray) -> Fault | None:
    """The first non-finite position or step beyond ``limits_A`` (n,) in ``pos`` (f, n, 3), or None."""
    bad_pos = ~np.isfinite(np.asarray(pos)).all(axis=2)
    bound, length = step_lengths(pos, prev, cells, inv_cells, wrapped)
    with np.errstate(invalid="ignore"):
        bad = bad_pos | (bound > limits_A[None, :])
    hits = np.argwhere(bad)
    if not hits.size:
        return None
    t = int(hits[0, 0])
    atoms = np.flatnonzero(bad[t])
    if bad_pos[t].any():
        return Fault(t, int(np.flatnonzero(bad_pos[t])[0]), math.nan)
    i = int(atoms[np.argmax(length[t, atoms])])
    return Fault(t, i, float(length[t, i]))


def fault_error(fault: Fault, frame0: int, atoms: np.ndarray, symbols, source, limits_A: np.ndarray,
                interval_fs: float | None, temperature_K: float | None) -> SuperionError:
    """The one-line error for ``fault`` found in a chunk starting at frame ``frame0``; ``atoms``
    (n,): the trajectory's index of each atom checked, ``symbols`` and ``limits_A`` theirs."""
    t, i = frame0 + fault.frame, fault.atom
    atom = f"atom {int(atoms[i])} ({symbols[i]})"
    if math.isnan(fault.step_A):
        return SuperionError(f"{source}: frame {t}: {atom} has a non-finite position (NaN/inf); the trajectory is "
                             "damaged: regenerate it or keep only the frames before this one")
    T = f"{temperature_K:g} K" if temperature_K else f"{FALLBACK_TEMPERATURE_K:g} K (temperature unknown)"
    return SuperionError(
        f"{source}: {atom} moved {fault.step_A:.3g} A between frames {t - 1} and {t} ({interval_fs:g} fs apart), "
        f"beyond any physical step (limit {limits_A[i]:.2g} A: the larger of {MIN_JUMP_A:g} A and {JUMP_SIGMAS:g}x its "
        f"thermal speed at {T} times the interval); the "
        "trajectory is damaged (overwritten frame, reordered atoms) or the frame interval is wrong: fix or cut it, "
        "or check --frame-interval-fs"
    )


class FrameGuard:
    """The physical-sanity check of one pass over a trajectory for the atoms ``atoms`` (indices): step limits from their masses, ``temperature_K`` (default
    the trajectory's) and the longest frame interval. Cells are checked by the caller
    (:func:`check_cells`)."""

    def __init__(self, traj, temperature_K: float | None, atoms: np.ndarray) -> None:
        self.source = getattr(traj, "path", None) or "trajectory"
        self.temperature_K = temperature_K if temperature_K is not None else getattr(traj, "temperature_K", None)
        self.interval_fs = frame_interval_bound_fs(traj.times_fs)
        self.atoms = np.asarray(atoms)
        self.symbols = [traj.symbols[i] for i in self.atoms]
        self.limits_A = step_limits_A(np.asarray(traj.masses, dtype=float)[atoms], self.temperature_K, self.interval_fs)

    def check(self, step_sum, step_max, pos, prev, cells, inv_cells, wrapped: bool, frame0: int) -> None:
        """Raise for the first fault in the chunk ``pos`` (f, n, 3) starting at ``frame0``; ``prev``
        (n, 3): the frame before, fractional when ``wrapped`` else Cartesian. With the kernel's
        ``step_sum``/``step_max`` the chunk is searched only when they say something is wrong."""
        if step_max is not None and math.isfinite(step_sum) and np.all(step_max <= self.limits_A):  # NaN fails
            return
        fault = first_fault(pos, prev, cells, inv_cells, wrapped, self.limits_A)
        if fault is not None:
            raise fault_error(fault, frame0, self.atoms, self.symbols, self.source, self.limits_A, self.interval_fs,
                              self.temperature_K)
