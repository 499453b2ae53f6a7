"""``run_md``: one MD simulation into a run directory, fresh, resumed or already complete.

validate settings and input → :class:`RunDirectory` decides → load the potential → engine (new
or restored from the checkpoint) → attach observers → :class:`StepLoop` → status and
``complete.json``. The three phases are functions of their own (:func:`plan_run`,
:func:`open_run`, :func:`execute_run`) so that the batched engine (:mod:`superion.md.batch`)
treats each of its replicas exactly as ``run_md`` treats its one run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from superion.atomic import file_sha256
from superion.errors import SimulationError, SuperionError
from superion.md.engine import AseEngine, initial_momenta, integrator_name
from superion.md.loop import StepLoop
from superion.md.observers import (CheckpointRecorder, FrameRecorder, ProgressReporter, StabilityGuard,
                                   ThermoRecorder, print_line)
from superion.md.rundir import RunDirectory, RunPlan, new_metadata
from superion.md.settings import MDSettings, settings_hash


@dataclass
class RunResult:
    """What :func:`run_md` did: ``status`` is "complete" or "already-complete"."""

    run_dir: Path
    status: str
    steps_done: int
    n_frames: int
    resumed_from_step: int | None = None
    wall_s: float = 0.0
    loop_s: float = 0.0  # wall time in the step loop (excludes model loading and setup)
    loop_cpu_s: float = 0.0  # CPU time of this process in the step loop
    loop_steps: int = 0


@dataclass
class PlannedRun:
    """A run directory and what to do with it, decided before any model is loaded."""

    structure: Path
    settings: MDSettings
    run: RunDirectory
    plan: RunPlan
    atoms: Any  # ase.Atoms with the simulated (scaled) masses
    labels: Any
    base_masses: np.ndarray
    input_sha256: str
    potential_id: str
    settings_hash: str

    def already_complete(self) -> RunResult:
        return RunResult(self.run.path, "already-complete", self.settings.total_steps,
                         self.plan.previous.get("n_frames", 0))


@dataclass
class OpenRun:
    """A run ready to step: its engine (fresh or restored), open storage and first step."""

    engine: AseEngine
    writer: Any
    thermo: Any
    start_step: int


def run_md(
    structure: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: MDSettings,
    *,
    potential: str | None = None,
    calculator=None,
    device: str = "auto",
    threads: int | None = None,
    legacy: bool | None = None,
    log=print_line,
    progress_every_s: float | None = 300.0,
    models_dir: str | os.PathLike | None = None,
) -> RunResult:
    """Run (or resume, or skip if complete) one MD simulation into ``out_dir``.

    Give either ``potential`` (name or path, see ``superion.potential``; by name from ``models_dir``
    first) or ``calculator`` (any
    ASE calculator; for tests and custom models — recorded as ``custom:<class>``). Messages go
    to ``log``; so do progress lines when stderr is not a terminal: at the start, every
    ``progress_every_s`` seconds of wall time and at the end (``math.inf``: start and end only,
    None: none). A terminal gets a progress bar instead.
    Raises SuperionError for bad input and SimulationError when the stability guard trips.
    """
    t_wall = time.perf_counter()
    settings.validate()
    check_progress_interval(progress_every_s)
    if (potential is None) == (calculator is None):
        raise SuperionError("give exactly one of a potential name (--potential) or a calculator")
    planned = plan_run(structure, out_dir, settings, potential_id(potential, calculator, legacy))
    if planned.plan.action == "complete":
        log(f"superion md: {planned.run.path} is already complete; nothing to do")
        res = planned.already_complete()
        res.wall_s = time.perf_counter() - t_wall
        return res

    calculator, pot_record = _calculator(potential, calculator, planned.potential_id, planned.atoms, device=device,
                                         threads=threads, legacy=legacy, models_dir=models_dir)
    planned.run.check_potential(planned.plan, pot_record["sha256"], planned.potential_id)
    opened = open_run(planned, calculator, pot_record, threads=threads, log=log)
    progress = ProgressReporter(settings.total_steps, opened.start_step, settings.timestep_fs,
                                every_s=progress_every_s, write=log)
    return execute_run(planned, opened, progress, t_wall=t_wall)


def check_progress_interval(progress_every_s: float | None) -> None:
    if progress_every_s is not None and not progress_every_s > 0:  # NaN fails too
        raise SuperionError(f"progress interval {progress_every_s} s; give --progress-every-s > 0 (0: start and end only)")


def potential_id(potential: str | None, calculator, legacy: bool | None) -> str:
    """The potential's part of the settings hash: its name, or ``custom:<class>`` for a calculator."""
    pid = str(potential) if potential is not None else f"custom:{type(calculator).__name__}"
    if potential is not None and legacy is not None:  # an explicit aggregation choice changes the forces
        pid += f"|legacy={bool(legacy)}"
    return pid


def plan_run(structure: str | os.PathLike, out_dir: str | os.PathLike, settings: MDSettings,
             potential_id: str) -> PlannedRun:
    """Read and check the input, hash the settings and decide fresh/resume/complete (writes nothing)."""
    structure = Path(structure)
    atoms, labels, base_masses = prepare_atoms(structure, settings)
    input_sha = file_sha256(structure)
    shash = settings_hash(settings, input_sha, potential_id)
    run = RunDirectory(out_dir)
    plan = run.plan(shash)
    return PlannedRun(structure, settings, run, plan, atoms, labels, base_masses, input_sha, potential_id, shash)


def open_run(planned: PlannedRun, calculator, pot_record: dict, *, threads: int | None, log=print_line) -> OpenRun:
    """Attach ``calculator``, build the engine (restored from the checkpoint or with fresh
    velocities), open the storage and write this attempt's metadata ("running")."""
    p, settings, run, atoms = planned, planned.settings, planned.run, planned.atoms
    meta = new_metadata(settings=settings, settings_hash=p.settings_hash, structure=p.structure,
                        input_sha256=p.input_sha256, potential=pot_record, threads=threads, atoms=atoms,
                        base_masses=p.base_masses, labels=p.labels, plan=p.plan,
                        integrator=integrator_name(settings.ensemble))
    atoms.calc = calculator
    if p.plan.resume:
        state, info = run.read_checkpoint(p.settings_hash)
        start_step = int(info["step"])
        atoms.set_momenta(np.asarray(state["atoms.momenta"]))
        engine = AseEngine(atoms, settings)
        engine.set_state(state)
        writer, thermo = run.reopen_storage(info)
        log(f"superion md: resuming {run.path} from step {start_step} of {settings.total_steps}")
    else:
        start_step = 0
        run.clear_for_fresh_start()
        atoms.set_momenta(initial_momenta(atoms.get_masses(), settings.temperature_K, settings.seed))
        engine = AseEngine(atoms, settings)  # after the velocities: MTK copies them here
        writer, thermo = run.create_storage(meta, atoms, labels=p.labels, settings=settings)
    run.begin(meta)
    return OpenRun(engine, writer, thermo, start_step)


def execute_run(planned: PlannedRun, opened: OpenRun, progress, *, t_wall: float) -> RunResult:
    """Step an opened run to the end with its observers; mark it complete, failed or interrupted."""
    settings, run, writer, thermo = planned.settings, planned.run, opened.writer, opened.thermo
    engine, start_step, total = opened.engine, opened.start_step, settings.total_steps
    loop = StepLoop(engine, [*replica_observers(settings, run, writer, thermo, engine.masses, planned.settings_hash),
                             progress])
    try:
        loop.run(start_step, total, fresh=not planned.plan.resume)
    except SimulationError as exc:
        run.mark_failed(loop.step, str(exc), n_frames=writer.n_frames)
        raise
    except BaseException as exc:
        run.mark_interrupted(exc, n_frames=writer.n_frames)
        raise
    finally:
        n_frames = writer.n_frames
        progress.close()
        writer.close()
        thermo.close()

    wall = time.perf_counter() - t_wall
    loop_steps = total - start_step
    run.mark_complete(steps=total, n_frames=n_frames, wall_s=wall,
                      steps_per_s=loop_steps / loop.loop_s if loop.loop_s > 0 else None)
    return RunResult(run.path, "complete", total, n_frames, resumed_from_step=start_step if planned.plan.resume else None,
                     wall_s=wall, loop_s=loop.loop_s, loop_cpu_s=loop.loop_cpu_s, loop_steps=loop_steps)


def replica_observers(settings: MDSettings, run: RunDirectory, writer, thermo, masses_amu, settings_hash: str) -> list:
    """The observers of one replica, in the order they must run: guard, thermo, frames, checkpoint.

    ``writer``/``thermo`` are the replica's open trajectory writer and thermo log (from
    ``run.create_storage`` or ``run.reopen_storage``); a batched engine attaches one such list per
    replica, with that replica's view.
    """
    dt_fs, M = settings.timestep_fs, settings.equilibration_steps
    return [
        StabilityGuard(settings, masses_amu),
        ThermoRecorder(thermo, interval=settings.save_every, timestep_fs=dt_fs, production_start=M,
                       masses_amu=masses_amu),
        FrameRecorder(writer, interval=settings.save_every, timestep_fs=dt_fs, production_start=M,
                      masses_amu=masses_amu, save_velocities=settings.save_velocities),
        CheckpointRecorder(run.checkpoint_path, writer, thermo, interval=settings.checkpoint_every,
                           final_step=settings.total_steps, settings_hash=settings_hash),
    ]


def prepare_atoms(structure_path: Path, settings: MDSettings):
    """(atoms with scaled masses, cluster labels, base masses) — all input checks, no model needed."""
    from superion.md.masses import scaled_masses
    from superion.structures.clusters import labels_for
    from superion.structures.io import read_atoms

    atoms = read_atoms(structure_path)
    atoms.calc = None  # an extxyz may carry a single-point calculator and constraints: MD uses neither
    atoms.set_constraint()
    labels = labels_for(atoms)
    base = atoms.get_masses()
    atoms.set_masses(scaled_masses(base, labels, settings.mass_scale))
    return atoms, labels, base


def _calculator(potential, calculator, potential_id: str, atoms, *, device: str, threads: int | None,
                legacy: bool | None, models_dir=None) -> tuple[Any, dict]:
    """(ASE calculator, potential record for metadata.json); loads a named potential."""
    if calculator is None:
        from superion.potential import load_checked

        lp = load_checked(potential, device=device, threads=threads, legacy=legacy,
                          symbols=atoms.get_chemical_symbols(), models_dir=models_dir)
        return lp.calculator(), {**lp.record(), "requested": str(potential)}
    if threads is not None:
        from superion.potential import set_threads

        set_threads(threads)
    return calculator, custom_record(potential_id)


def custom_record(potential_id: str) -> dict:
    """The metadata.json potential record of a custom ASE calculator (no weights to hash)."""
    return {"name": potential_id, "sha256": None, "legacy": None, "device": "cpu", "path": None}
