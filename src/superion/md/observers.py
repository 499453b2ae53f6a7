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
5. :class:`ProgressBar` – progress bar on a terminal.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from superion.errors import SimulationError
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
        if not math.isfinite(T):
            raise SimulationError(f"step {step}: velocities became NaN/inf (integration blew up); "
                                  "reduce --timestep-fs or check the structure")
        if T > self.t_max:
            raise SimulationError(
                f"step {step}: temperature {T:.0f} K exceeds {self.factor:g} x target ({self.target:g} K); "
                "the run exploded: reduce --timestep-fs, relax the structure, or check the potential"
            )
        if not np.isfinite(replica.positions()).all():
            raise SimulationError(f"step {step}: positions became NaN/inf; reduce --timestep-fs")
        f = replica.forces()
        if f is not None and not np.isfinite(f).all():
            raise SimulationError(f"step {step}: forces became NaN/inf; the potential left its valid range")

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

        self.writer.flush()
        self.thermo.flush()
        write_checkpoint(self.path, replica.get_state(), {
            "step": step, "n_frames": self.writer.n_frames, "n_thermo_rows": self.thermo.n_rows,
            "settings_hash": self.settings_hash, "format": RUN_FORMAT,
        })


# --------------------------------------------------------------------------- progress
class ProgressBar(Observer):
    """A tqdm progress bar on stderr when it is a terminal, with the speed in ps/day."""

    interval = 1

    def __init__(self, total_steps: int, start_step: int, timestep_fs: float) -> None:
        from tqdm import tqdm

        self.start_step = self.shown = start_step
        self.dt_fs = timestep_fs
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", desc="md", dynamic_ncols=True,
                        disable=not sys.stderr.isatty(), smoothing=0.05)

    def __call__(self, step: int, replica=None) -> None:
        if self.bar.disable:
            return
        self.bar.update(step - self.shown)
        self.shown = step
        rate = (step - self.start_step) / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix_str(f"{rate * self.dt_fs * 86400 / 1000:.1f} ps/day", refresh=False)

    def close(self) -> None:
        self.bar.close()
