"""Export of a run's trajectory to extended XYZ (ASE, OVITO, VESTA read it; so does
:func:`superion.trajectory.open_trajectory`).

Each frame carries the unwrapped positions (Å), the cell (Å), velocities when stored (ASE
units), ``info`` time_fs / step / temperature_K / ``wrapped=False``, and the cluster labels, so
the file reads back as the same trajectory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from superion.errors import SuperionError


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_extxyz` wrote: ``n_frames`` frames to ``path``; ``complete`` is
    whether the run had finished (an incomplete one exports the frames written so far)."""

    path: Path
    n_frames: int
    complete: bool


def export_extxyz(run_dir: str | os.PathLike, out: str | os.PathLike, every: int = 1, chunk: int = 256) -> ExportResult:
    """Write every ``every``-th frame of the run directory ``run_dir`` to ``out`` (extended
    XYZ, atomic: no partial file), reading ``chunk`` frames at a time."""
    import numpy as np
    from ase import Atoms, units
    from ase.io import write

    from superion.atomic import atomic_path
    from superion.layout import COMPLETE_NAME, TRAJECTORY_NAME
    from superion.trajectory.readers import open_trajectory

    if every <= 0:
        raise SuperionError(f"--every {every}: give a positive integer")
    run = Path(run_dir)
    if not (run / TRAJECTORY_NAME).is_file():
        raise SuperionError(f"{run} is not a 'superion md' run directory (no {TRAJECTORY_NAME})")
    n_written = 0
    with open_trajectory(run) as tr, atomic_path(out, suffix=".extxyz") as tmp, open(tmp, "w") as fh:
        idx = np.arange(0, tr.n_frames, every)
        labels = tr.labels
        for c0 in range(0, len(idx), chunk):
            sel = idx[c0 : c0 + chunk]
            pos, cells = tr.positions(sel), tr.cells(sel)
            vel = tr.velocities(sel)
            for k, i in enumerate(sel):
                a = Atoms(symbols=tr.symbols, positions=pos[k], cell=cells[k], pbc=True, masses=tr.masses)
                if vel is not None:
                    a.set_velocities(vel[k] / units.fs)  # A/fs -> ASE velocity units
                a.info.update(time_fs=float(tr.times_fs[i]), step=int(tr.steps[i]), wrapped=False)
                if tr.temperature_K is not None:
                    a.info["temperature_K"] = tr.temperature_K
                if labels is not None:
                    labels.attach(a)
                write(fh, a, format="extxyz")
                n_written += 1
    return ExportResult(Path(out), n_written, (run / COMPLETE_NAME).exists())
