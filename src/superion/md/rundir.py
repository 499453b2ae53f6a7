"""One MD run directory: its files, its metadata, and what a (re)run does with it.

Files (names from :data:`superion.layout.RUN_FILES`; docs/architecture.md "MD run directory"):
``metadata.json`` (settings, hash, input, potential, versions, status), ``thermo.csv``,
``trajectory.h5``, ``checkpoint.npz`` and ``complete.json`` (written last, only when done).

Decision (:meth:`RunDirectory.plan`), made before the potential is loaded:

- no ``metadata.json`` → **fresh** (``complete.json`` without metadata is refused);
- ``metadata.json`` with another settings hash → refused (another ``--out`` or delete it);
- same hash and ``complete.json`` → **complete** (nothing to do);
- same hash and ``checkpoint.npz`` → **resume** from the checkpoint; else **fresh** again.

After loading the potential, :meth:`RunDirectory.check_potential` refuses weights whose sha256
differs from the recorded run. Status in ``metadata.json``: "running" while the loop runs,
then "complete", "failed" (stability guard; ``failed_step``) or "interrupted" (any other
exception, e.g. Ctrl-C). A ``kill -9`` leaves "running": the checkpoint decides.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superion.atomic import write_json
from superion.errors import SuperionError
from superion.killpoints import kill_point
from superion.layout import COMPLETE_NAME, METADATA_NAME, RUN_FILES, run_file
from superion.md.settings import RUN_FORMAT, MDSettings
from superion.provenance import now_utc, software_versions

# metadata.json keys copied into trajectory.h5 (its own provenance when moved alone).
TRAJECTORY_METADATA_KEYS = ("settings", "settings_hash", "input", "potential", "versions", "seed", "mass_scale",
                            "cluster_counts")
UNITS = {"time": "fs", "length": "Angstrom", "velocity": "Angstrom/fs", "mass": "amu",
         "energy": "eV", "pressure": "bar", "temperature": "K (2 E_kin / 3 N k_B)"}


@dataclass
class RunPlan:
    """What to do with a run directory: ``action`` is "fresh", "resume" or "complete".

    ``previous`` is the metadata.json found there (None when there was none); a fresh start over
    a run killed before its first checkpoint keeps its ``started_utc``.
    """

    action: str
    previous: dict | None = None

    @property
    def resume(self) -> bool:
        return self.action == "resume"


class RunDirectory:
    """The files and the metadata of one MD run directory (see the module docstring)."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.metadata_path = run_file(self.path, "metadata")
        self.thermo_path = run_file(self.path, "thermo")
        self.trajectory_path = run_file(self.path, "trajectory")
        self.checkpoint_path = run_file(self.path, "checkpoint")
        self.complete_path = run_file(self.path, "complete")
        self.meta: dict[str, Any] | None = None  # this attempt's metadata, once begun

    # Decision --------------------------------------------------------------------------
    def plan(self, settings_hash: str) -> RunPlan:
        """Fresh, resume or complete for a run with ``settings_hash``; SuperionError if refused."""
        from superion.paths import check_writable

        out = self.path
        if out.exists() and not out.is_dir():
            raise SuperionError(f"output {out} exists and is not a directory; choose another --out")
        check_writable(self.metadata_path)  # before the model loads: an unwritable --out costs a second
        if not self.metadata_path.exists():
            if self.complete_path.exists():
                raise SuperionError(f"{out} has {COMPLETE_NAME} but no {METADATA_NAME}; delete it and rerun")
            return RunPlan("fresh")
        previous = self.read_metadata()
        if previous.get("settings_hash") != settings_hash:
            raise SuperionError(
                f"{out} holds a run with different settings (hash {previous.get('settings_hash')} vs "
                f"{settings_hash}); use another --out or delete that directory"
            )
        if self.complete_path.exists():
            return RunPlan("complete", previous)
        return RunPlan("resume" if self.checkpoint_path.exists() else "fresh", previous)

    def check_potential(self, plan: RunPlan, sha256: str | None, potential_id: str) -> None:
        """Refuse to continue a run whose potential weights (sha256) have changed since."""
        if plan.previous is not None and plan.previous.get("potential", {}).get("sha256") != sha256:
            raise SuperionError(
                f"potential '{potential_id}' now has different weights (sha256) than the run in {self.path}; "
                "use another --out or restore the model"
            )

    # Files -------------------------------------------------------------------------------
    def read_metadata(self) -> dict:
        from superion.files import read_json

        return read_json(self.metadata_path, fix=f"delete {self.path} and rerun superion md")

    def read_checkpoint(self, settings_hash: str):
        """(state arrays, info) of the checkpoint; SuperionError if it belongs to other settings."""
        from superion.md.storage import read_checkpoint

        state, info = read_checkpoint(self.checkpoint_path)
        if info.get("settings_hash") != settings_hash:
            raise SuperionError(f"checkpoint in {self.path} belongs to other settings; delete {self.path} and rerun")
        return state, info

    def clear_for_fresh_start(self) -> None:
        """Create the directory; drop a stale complete.json (a run killed before its first checkpoint)."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.complete_path.unlink(missing_ok=True)

    def create_storage(self, meta: dict, atoms, labels, settings: MDSettings):
        """New (trajectory writer, thermo log) for a fresh start; ``meta`` from :func:`new_metadata`."""
        from superion.md.storage import ThermoLog
        from superion.trajectory.h5md import H5TrajectoryWriter

        writer = H5TrajectoryWriter.create(
            self.trajectory_path, symbols=atoms.get_chemical_symbols(), numbers=atoms.numbers,
            masses_amu=atoms.get_masses(), metadata={k: meta[k] for k in TRAJECTORY_METADATA_KEYS},
            labels=labels, temperature_K=settings.temperature_K, save_velocities=settings.save_velocities,
            dtype=settings.trajectory_dtype, creator_version=meta["versions"]["superion"],
            frame_interval_fs=settings.save_every * settings.timestep_fs, standard_orientation=True)
        self.link_h5md_alias()
        return writer, ThermoLog(self.thermo_path)

    def reopen_storage(self, checkpoint_info: dict):
        """(trajectory writer, thermo log) truncated to the frame/row counts of the checkpoint."""
        from superion.md.storage import ThermoLog
        from superion.trajectory.h5md import H5TrajectoryWriter

        writer = H5TrajectoryWriter.open_append(self.trajectory_path, keep_frames=int(checkpoint_info["n_frames"]))
        thermo = ThermoLog(self.thermo_path, keep_rows=int(checkpoint_info["n_thermo_rows"]))
        self.link_h5md_alias()
        return writer, thermo

    def link_h5md_alias(self) -> None:
        """``trajectory.h5md`` → ``trajectory.h5`` (relative symlink): MDAnalysis picks its H5MD
        reader by that suffix, so ``mda.Universe(RUN_DIR/trajectory.h5md)`` needs no hints.
        Skipped where the file system has no symlinks."""
        alias = self.trajectory_path.with_suffix(".h5md")
        try:
            if alias.is_symlink() or alias.exists():
                return
            alias.symlink_to(self.trajectory_path.name)
        except OSError:
            pass

    def remove_temporaries(self) -> None:
        """Delete half-written files of a killed attempt (``superion.atomic`` temporaries, named
        ``.<stem>.*``). Safe: the caller holds the run-directory lock, so no writer is active."""
        for name in RUN_FILES.values():
            for tmp in self.path.glob(f".{Path(name).stem}.*"):
                tmp.unlink(missing_ok=True)

    # Status ------------------------------------------------------------------------------
    def begin(self, meta: dict) -> None:
        """Write this attempt's metadata (status "running"); drop temporaries a kill left."""
        self.meta = meta
        self.remove_temporaries()
        write_json(self.metadata_path, meta)

    def mark_failed(self, step: int, message: str, n_frames: int) -> None:
        """The stability guard stopped the run at ``step``."""
        self.meta.update(status="failed", message=message, failed_step=step, finished_utc=now_utc(),
                         n_frames=n_frames)
        write_json(self.metadata_path, self.meta)

    def mark_interrupted(self, exc: BaseException, n_frames: int) -> None:
        """Anything else stopped the run (Ctrl-C, a crash): rerunning resumes."""
        self.meta.update(status="interrupted", message=f"{type(exc).__name__}: {exc}", n_frames=n_frames)
        write_json(self.metadata_path, self.meta)

    def mark_complete(self, *, steps: int, n_frames: int, wall_s: float, steps_per_s: float | None) -> None:
        """Final metadata, then complete.json (written last: the workflow's output) with the
        trajectory's content digests, which analysis verifies."""
        from superion.trajectory.h5md import content_digests

        kill_point("complete", steps)
        self.meta.update(status="complete", message="", finished_utc=now_utc(), n_frames=n_frames, wall_s=wall_s,
                         steps_per_s=steps_per_s)
        write_json(self.metadata_path, self.meta)
        kill_point("complete-metadata", steps)
        write_json(self.complete_path, {"status": "complete", "settings_hash": self.meta["settings_hash"],
                                        "steps": steps, "n_frames": n_frames,
                                        "finished_utc": self.meta["finished_utc"],
                                        "trajectory_sha256": (content_digests(self.trajectory_path)
                                                              if self.trajectory_path.exists() else None)})


def new_metadata(*, settings: MDSettings, settings_hash: str, structure: Path, input_sha256: str,
                 potential: dict, threads: int | None, atoms, base_masses, labels, plan: RunPlan,
                 integrator: str) -> dict[str, Any]:
    """The metadata.json of one attempt (status "running"); the one place its keys are spelled.

    ``atoms`` carries the simulated (scaled) masses, ``base_masses`` the unscaled ones;
    ``potential`` is the potential record (``LoadedPotential.record()`` + "requested").
    """
    previous = plan.previous or {}
    resumed = list(previous.get("resumed_utc", []))
    if plan.resume:
        resumed.append(now_utc())
    return {
        "format": RUN_FORMAT,
        "status": "running",
        "message": "",
        "settings": dataclasses.asdict(settings),
        "settings_hash": settings_hash,
        "input": {"path": str(Path(structure).resolve()), "sha256": input_sha256},
        "potential": potential,
        "versions": software_versions(),
        "device": potential["device"],
        "threads": threads,
        "seed": settings.seed,
        "n_atoms": len(atoms),
        "symbols": atoms.get_chemical_symbols(),
        "cell_initial_A": atoms.cell.array.tolist(),
        "masses_amu": atoms.get_masses().tolist(),
        "base_masses_amu": base_masses.tolist(),
        "mass_scale": settings.mass_scale,
        "cluster_counts": labels.counts(),
        "cluster_labels": labels.to_dict(),
        "units": UNITS,
        "started_utc": previous.get("started_utc", now_utc()),
        "resumed_utc": resumed,
        "n_frames": 0,
        "integrator": integrator,
    }
