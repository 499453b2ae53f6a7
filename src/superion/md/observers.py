"""Observers of the MD loop: small objects called after a step, each on its own schedule.

An observer has ``interval`` (steps) and ``due(step)`` (default ``step % interval == 0``) and is
called as ``observer(step, replica)`` with the replica view of :mod:`superion.md.engine`
(positions, momenta, energies, state) after the integrator has reached ``step``. It holds no
reference to the engine, so the same object serves one replica of a batched engine.
:class:`superion.md.loop.StepLoop` calls the due observers in the order they were attached.
Optional hooks: ``on_step_error(step, replica, exc)`` (the step itself raised; may raise
:class:`SimulationError` to say why) and ``close()``.

The order ``superion md`` attaches them, and why:

1. :class:`StabilityGuard` – every step, so nothing unphysical is ever written;
2. :class:`ThermoRecorder` – a ``thermo.csv`` row every ``save_every`` steps;
3. :class:`FrameRecorder` – a trajectory frame every ``save_every`` production steps;
4. :class:`CheckpointRecorder` – flush 2 and 3, then the checkpoint that points at them;
5. :class:`ProgressReporter` – progress bar (terminal) or progress lines (log files).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from superion.errors import SimulationError
from superion.killpoints import kill_point
from superion.md.engine import KineticTemperature
from superion.md.settings import RUN_FORMAT, MDSettings


class Observer:
    """Base class: called on every step that is a multiple of ``interval``."""

    interval: int = 1

    def due(self, step: int) -> bool:
        return step % self.interval == 0

    def __call__(self, step: int, replica) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- guard
class StabilityGuard(Observer):
    """Stops an unphysical run with :class:`SimulationError` naming the step and the cause.

    Every step: finite velocities, positions and forces, and T below ``max_temperature_factor``
    × target (microseconds). Every ``guard_every`` steps: no two atoms closer than
    ``min_distance_A`` (a neighbour search, ~3 ms for 1024 atoms).
    """

    interval = 1

    def __init__(self, settings: MDSettings, masses: np.ndarray) -> None:
        self.t_max = settings.max_temperature_factor * settings.temperature_K
        self.factor = settings.max_temperature_factor
        self.target = settings.temperature_K
        self.min_d = settings.min_distance_A
        self.guard_every = settings.guard_every
        self.temperature = KineticTemperature(masses)

    def __call__(self, step: int, replica) -> None:
        self.check_fast(step, replica)
        if step % self.guard_every == 0:
            self.check_overlap(step, replica)

    def on_step_error(self, step: int, replica, exc: BaseException) -> None:
        # A calculator failing on exploded coordinates is a simulation failure, not a bug.
        self.check_fast(step, replica)

    def check_fast(self, step: int, replica) -> None:
        """Finite positions/forces and T below the limit."""
        T = self.temperature(replica.momenta())
        # At step 0 nothing was integrated yet: the input (or the potential on it) is at fault.
        advice = ("check the input structure (finite positions, no overlaps) and that the potential covers it"
                  if step == 0 else
                  "try a smaller --timestep-fs, relax the structure first, and check it and the potential")
        if not math.isfinite(T):
            raise SimulationError(f"step {step}: velocities became NaN/inf (integration blew up); {advice}")
        if T > self.t_max:
            raise SimulationError(
                f"step {step}: temperature {T:.0f} K exceeds {self.factor:g} x target ({self.target:g} K); "
                "the run exploded: reduce --timestep-fs, relax the structure, or check the potential"
            )
        if not np.isfinite(replica.positions()).all():
            raise SimulationError(f"step {step}: positions became NaN/inf; {advice}")
        f = replica.forces()
        if f is not None and not np.isfinite(f).all():
            raise SimulationError(f"step {step}: forces became NaN/inf (the potential left its valid range); {advice}")

    def check_overlap(self, step: int, replica) -> None:
        """No two atoms closer than ``min_distance_A``."""
        if self.min_d <= 0:
            return
        i, j, d = close_pairs(replica.positions(), replica.cell(), self.min_d)
        if len(d):
            k = int(np.argmin(d))
            sym = replica.symbols
            raise SimulationError(
                f"step {step}: atoms {i[k]} ({sym[i[k]]}) and {j[k]} ({sym[j[k]]}) are {d[k]:.2f} A apart "
                f"(< {self.min_d:g} A): atoms overlap; reduce --timestep-fs or check the structure/potential"
            )


def close_pairs(positions: np.ndarray, cell: np.ndarray, r_A: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j, d) closer than ``r_A`` Å (periodic in 3-D, any cell, unwrapped positions fine).

    pymatgen's C neighbour search takes ~3 ms for 1024 atoms, ASE's ~5x longer; both work.
    """
    pos = np.ascontiguousarray(positions, dtype=float)
    lattice = np.ascontiguousarray(cell, dtype=float)
    try:
        from pymatgen.optimization.neighbors import find_points_in_spheres
    except ImportError:  # pragma: no cover - pymatgen is a dependency
        from ase.neighborlist import primitive_neighbor_list

        return primitive_neighbor_list("ijd", (True, True, True), lattice, pos, r_A)
    i, j, img, d = find_points_in_spheres(pos, pos, r=float(r_A), pbc=np.ones(3, dtype=np.int64),
                                          lattice=lattice, tol=1e-8)
    keep = ~((i == j) & (np.abs(img).sum(axis=1) == 0))  # drop each atom's pair with itself
    return i[keep], j[keep], d[keep]


# --------------------------------------------------------------------------- recorders
class ThermoRecorder(Observer):
    """One ``thermo.csv`` row (:data:`superion.md.storage.THERMO_COLUMNS`) every ``interval`` steps.

    ``thermo`` is a :class:`superion.md.storage.ThermoLog` (anything with ``append(row)``);
    rows before ``production_start`` have phase "equilibration", the others "production".
    """

    def __init__(self, thermo, *, interval: int, timestep_fs: float, production_start: int,
                 masses_amu: np.ndarray) -> None:
        self.thermo = thermo
        self.interval = interval
        self.dt_fs = timestep_fs
        self.production_start = production_start
        self.temperature = KineticTemperature(masses_amu)

    def __call__(self, step: int, replica) -> None:
        # Evaluation order kept from the first engine: a calculator without cached stress is
        # called here, and the call order of such calculators must not change.
        epot = replica.potential_energy()
        ekin = replica.kinetic_energy()
        p_bar = replica.pressure_bar()
        a, b, c = np.linalg.norm(replica.cell(), axis=1)
        self.thermo.append({
            "step": step, "time_fs": step * self.dt_fs,
            "phase": "production" if step >= self.production_start else "equilibration",
            "T_K": self.temperature(replica.momenta()), "P_bar": p_bar, "volume_A3": replica.volume(),
            "a_A": float(a), "b_A": float(b), "c_A": float(c),
            "epot_eV": epot, "ekin_eV": ekin, "conserved_eV": replica.conserved_energy(),
        })


class FrameRecorder(Observer):
    """A trajectory frame (positions, cell, velocities if asked) every ``interval`` production steps.

    ``writer`` is a :class:`superion.trajectory.H5TrajectoryWriter` (anything with
    ``append(step, time_fs, positions, cell, velocities)``); velocities are stored in Å/fs.
    """

    def __init__(self, writer, *, interval: int, timestep_fs: float, production_start: int,
                 masses_amu: np.ndarray, save_velocities: bool) -> None:
        from ase import units

        self.writer = writer
        self.interval = interval
        self.dt_fs = timestep_fs
        self.production_start = production_start
        # momenta (ASE units) -> velocities in A/fs
        self.vel_factor = units.fs / np.asarray(masses_amu, dtype=float)[:, None] if save_velocities else None

    def due(self, step: int) -> bool:
        return step >= self.production_start and step % self.interval == 0

    def __call__(self, step: int, replica) -> None:
        vel = replica.momenta() * self.vel_factor if self.vel_factor is not None else None
        self.writer.append(step, step * self.dt_fs, replica.positions(), replica.cell(), vel)
        kill_point("frame", step)


class CheckpointRecorder(Observer):
    """Every ``interval`` steps and at ``final_step``: flush the data files, then checkpoint.

    Order matters: the trajectory and thermo log are flushed (fsync) first, then
    ``checkpoint.npz`` is written atomically with the replica's state and the frame/row counts
    it matches, so a checkpoint never points past data on disk. Info keys: step, n_frames,
    n_thermo_rows, settings_hash, format.
    """

    def __init__(self, path, writer, thermo, *, interval: int, final_step: int, settings_hash: str) -> None:
        self.path = Path(path)
        self.writer = writer
        self.thermo = thermo
        self.interval = interval
        self.final_step = final_step
        self.settings_hash = settings_hash

    def due(self, step: int) -> bool:
        return step % self.interval == 0 or step == self.final_step

    def __call__(self, step: int, replica) -> None:
        from superion.md.storage import write_checkpoint

        kill_point("checkpoint", step)
        self.writer.flush()
        self.thermo.flush()
        kill_point("checkpoint-flushed", step)
        write_checkpoint(self.path, replica.get_state(), {
            "step": step, "n_frames": self.writer.n_frames, "n_thermo_rows": self.thermo.n_rows,
            "settings_hash": self.settings_hash, "format": RUN_FORMAT,
        })
        kill_point("checkpoint-written", step)


# --------------------------------------------------------------------------- progress
def print_line(line: str) -> None:
    """Print and flush: a job log (stdout to a file) must show the line now, not at exit."""
    print(line, flush=True)


class ProgressReporter(Observer):
    """Progress of a run: a tqdm bar on a terminal, else a line every ``every_s`` seconds of wall time.

    Lines (for SLURM/Snakemake logs, where stderr is a file) are written at construction (the
    start), whenever ``every_s`` seconds have passed since the last line, and at ``total_steps``:
    step/total, simulated ps, speed in ns/day and the expected time to the end, from the mean
    speed since the start. ``every_s=math.inf``: start and end only; None: no lines. ``clock`` (seconds, monotonic) and
    ``stamp`` (UTC time text) are parameters so tests can use a fake clock.
    """

    interval = 1

    def __init__(self, total_steps: int, start_step: int, timestep_fs: float, *, every_s: float | None = 300.0,
                 write: Callable[[str], None] = print_line, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, stamp: Callable[[], str] | None = None) -> None:
        from superion.provenance import now_utc

        self.total = total_steps
        self.start_step = self.shown = start_step
        self.dt_fs = timestep_fs
        self.every_s = every_s
        self.write = write
        self.clock = clock
        self.stamp = stamp or now_utc
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.t0 = self.last = clock()
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", desc="md", dynamic_ncols=True,
                            smoothing=0.05)
        elif every_s is not None:
            every = f"; progress every {every_s:g} s" if math.isfinite(every_s) else ""
            self._line(f"starting at step {start_step}/{total_steps} "
                       f"({self._ps(start_step)} of {self._ps(total_steps)} ps){every}")

    def __call__(self, step: int, replica=None) -> None:
        if self.bar is not None:
            self.bar.update(step - self.shown)
            self.shown = step
            rate = self.steps_per_s(step)
            if rate:
                self.bar.set_postfix_str(f"{self._ns_per_day(rate):.3g} ns/day", refresh=False)
            return
        if self.every_s is None:
            return
        now = self.clock()
        if step == self.total and step > self.start_step:
            self._line(f"finished step {step}/{self.total} ({self._ps(step)} ps) in "
                       f"{format_duration(now - self.t0)}, {self._speed(step)}")
        elif now - self.last >= self.every_s:
            self.last = now
            rate = self.steps_per_s(step)
            eta = format_duration((self.total - step) / rate) if rate else "unknown"
            self._line(f"step {step}/{self.total} ({100 * step / self.total:.1f} %), "
                       f"{self._ps(step)} of {self._ps(self.total)} ps, {self._speed(step)}, ETA {eta}")

    def steps_per_s(self, step: int) -> float | None:
        """Mean steps per wall second since the reporter started; None before any step."""
        dt = self.clock() - self.t0
        done = step - self.start_step
        return done / dt if done > 0 and dt > 0 else None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _ns_per_day(self, steps_per_s: float) -> float:
        return steps_per_s * self.dt_fs * 86400 / 1e6

    def _speed(self, step: int) -> str:
        rate = self.steps_per_s(step)
        return f"{self._ns_per_day(rate):.3g} ns/day" if rate else "speed unknown"

    def _ps(self, step: int) -> str:
        return f"{step * self.dt_fs / 1000:.6g}"

    def _line(self, text: str) -> None:
        self.write(f"superion md: [{self.stamp()}] {text}")


def format_duration(seconds: float) -> str:
    """Wall time as ``45s``, ``12m30s``, ``4h05m`` or ``3d04h``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
