"""``run_md``: one MD simulation into a run directory, fresh, resumed or already complete.

validate settings and input → :class:`RunDirectory` decides → load the potential → engine (new
or restored from the checkpoint) → attach observers → :class:`StepLoop` → status and
``complete.json``.
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
from superion.md.rundir import RunDirectory, new_metadata
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
    if progress_every_s is not None and not progress_every_s > 0:  # NaN fails too
        raise SuperionError(f"progress interval {progress_every_s} s; give --progress-every-s > 0 (0: start and end only)")
    structure = Path(structure)
    if (potential is None) == (calculator is None):
        raise SuperionError("give exactly one of a potential name (--potential) or a calculator")
    atoms, labels, base_masses = prepare_atoms(structure, settings)
    input_sha = file_sha256(structure)
    potential_id = str(potential) if potential is not None else f"custom:{type(calculator).__name__}"
    if potential is not None and legacy is not None:  # an explicit aggregation choice changes the forces
        potential_id += f"|legacy={bool(legacy)}"
    shash = settings_hash(settings, input_sha, potential_id)

    run = RunDirectory(out_dir)
    plan = run.plan(shash)
    if plan.action == "complete":
        log(f"superion md: {run.path} is already complete; nothing to do")
        return RunResult(run.path, "already-complete", settings.total_steps, plan.previous.get("n_frames", 0),
                         wall_s=time.perf_counter() - t_wall)

    calculator, pot_record = _calculator(potential, calculator, potential_id, atoms, device=device,
                                         threads=threads, legacy=legacy, models_dir=models_dir)
    run.check_potential(plan, pot_record["sha256"], potential_id)
    meta = new_metadata(settings=settings, settings_hash=shash, structure=structure, input_sha256=input_sha,
                        potential=pot_record, threads=threads, atoms=atoms, base_masses=base_masses, labels=labels,
                        plan=plan, integrator=integrator_name(settings.ensemble))

    atoms.calc = calculator
    if plan.resume:
        state, info = run.read_checkpoint(shash)
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
        writer, thermo = run.create_storage(meta, atoms, labels, settings)
    run.begin(meta)

    total = settings.total_steps
    progress = ProgressReporter(total, start_step, settings.timestep_fs, every_s=progress_every_s, write=log)
    loop = StepLoop(engine, [*replica_observers(settings, run, writer, thermo, engine.masses, shash), progress])
    try:
        loop.run(start_step, total, fresh=not plan.resume)
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
    return RunResult(run.path, "complete", total, n_frames, resumed_from_step=start_step if plan.resume else None,
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
    return calculator, {"name": potential_id, "sha256": None, "legacy": None, "device": "cpu", "path": None}
