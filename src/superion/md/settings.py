"""MD settings: what determines a trajectory, its validation and its hash.

:class:`MDSettings` holds every integrator/output choice of one run (units in the field names:
K, fs, bar, Å). :meth:`MDSettings.hashed` is the part that determines the trajectory;
:func:`settings_hash` binds it to the input file and the potential, and names the run in
``metadata.json``, ``checkpoint.npz`` and ``complete.json`` (a rerun with another hash is
refused, see :mod:`superion.md.rundir`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from superion.errors import SuperionError

ENSEMBLES = ("npt", "npt_iso", "nvt", "nve")
DEFAULT_CHECKPOINT_STEPS = 100
# Bump when the meaning of stored files changes: old run dirs are then refused, not misread.
RUN_FORMAT = 1


@dataclass
class MDSettings:
    """Everything that determines the trajectory (hashed), plus the stability guard.

    Units: temperature K, timestep/tdamp/pdamp fs, pressure bar, distances Å. ``steps`` and
    ``equilibration_steps`` count integrator steps; both must be multiples of ``save_every``.
    """

    temperature_K: float
    steps: int
    equilibration_steps: int = 0
    timestep_fs: float = 1.0
    ensemble: str = "npt"
    pressure_bar: float = 1.0
    tdamp_fs: float = 100.0
    pdamp_fs: float = 1000.0
    tchain: int = 3
    pchain: int = 3
    mass_scale: dict[str, float] = field(default_factory=dict)
    save_every: int = 10
    checkpoint_every: int | None = None
    seed: int = 0
    save_velocities: bool = False
    trajectory_dtype: str = "float32"
    # Stability guard (not hashed: loosening it and rerunning resumes from the last checkpoint).
    max_temperature_factor: float = 3.0
    min_distance_A: float = 0.5
    guard_every: int = 10

    def validate(self) -> "MDSettings":
        """Raise SuperionError for any invalid value; fill the checkpoint default. Returns self."""
        def bad(msg: str) -> None:
            raise SuperionError(msg)

        if not _finite(self.temperature_K) or self.temperature_K <= 0:
            bad(f"temperature {self.temperature_K} K is not > 0; give --temperature-K > 0")
        if not _is_int(self.steps) or self.steps <= 0:
            bad(f"steps = {self.steps}; give --steps > 0 (production steps)")
        if not _is_int(self.equilibration_steps) or self.equilibration_steps < 0:
            bad(f"equilibration steps = {self.equilibration_steps}; give --equilibration-steps >= 0")
        if not _finite(self.timestep_fs) or self.timestep_fs <= 0:
            bad(f"timestep {self.timestep_fs} fs is not > 0; give --timestep-fs > 0 (1 fs is usual with H)")
        if self.ensemble not in ENSEMBLES:
            bad(f"unknown ensemble {self.ensemble!r}; use one of {', '.join(ENSEMBLES)}")
        if not _finite(self.pressure_bar):
            bad(f"pressure {self.pressure_bar} bar is not a finite number")
        if not _finite(self.tdamp_fs) or self.tdamp_fs <= 0:
            bad(f"tdamp {self.tdamp_fs} fs is not > 0; give --tdamp-fs > 0 (default 100)")
        if not _finite(self.pdamp_fs) or self.pdamp_fs <= 0:
            bad(f"pdamp {self.pdamp_fs} fs is not > 0; give --pdamp-fs > 0 (default 1000)")
        if not _is_int(self.tchain) or self.tchain < 1 or not _is_int(self.pchain) or self.pchain < 1:
            bad("thermostat/barostat chain lengths must be integers >= 1")
        if not _is_int(self.save_every) or self.save_every <= 0:
            bad(f"save interval {self.save_every} steps; give --save-every > 0")
        if self.steps % self.save_every or self.equilibration_steps % self.save_every:
            bad(f"--steps ({self.steps}) and --equilibration-steps ({self.equilibration_steps}) must be "
                f"multiples of --save-every ({self.save_every})")
        if self.checkpoint_every is None:
            self.checkpoint_every = self.save_every * max(1, math.ceil(DEFAULT_CHECKPOINT_STEPS / self.save_every))
        if not _is_int(self.checkpoint_every) or self.checkpoint_every <= 0 or self.checkpoint_every % self.save_every:
            bad(f"--checkpoint-every ({self.checkpoint_every}) must be a positive multiple of --save-every "
                f"({self.save_every})")
        if not _is_int(self.seed) or self.seed < 0:
            bad(f"seed {self.seed} must be an integer >= 0")
        if self.trajectory_dtype not in ("float32", "float64"):
            bad(f"trajectory dtype {self.trajectory_dtype!r}; use float32 or float64")
        if not _finite(self.max_temperature_factor) or self.max_temperature_factor <= 1:
            bad(f"max temperature factor {self.max_temperature_factor} must be > 1")
        if not _finite(self.min_distance_A) or self.min_distance_A < 0:
            bad(f"minimum distance {self.min_distance_A} A must be >= 0")
        if not _is_int(self.guard_every) or self.guard_every <= 0:
            bad(f"guard interval {self.guard_every} steps must be > 0")
        from superion.md.masses import parse_mass_scale

        self.mass_scale = parse_mass_scale(self.mass_scale)
        return self

    def hashed(self) -> dict[str, Any]:
        """The settings that determine the trajectory (guard and checkpoint interval excluded)."""
        d = dataclasses.asdict(self)
        for k in ("max_temperature_factor", "min_distance_A", "guard_every", "checkpoint_every"):
            d.pop(k)
        d["mass_scale"] = dict(sorted(d["mass_scale"].items()))
        return d

    @property
    def total_steps(self) -> int:
        return self.equilibration_steps + self.steps


def settings_hash(settings: MDSettings, input_sha256: str, potential_id: str) -> str:
    """16 hex digits naming (hashed settings, input file digest, potential id, run format)."""
    blob = json.dumps({"settings": settings.hashed(), "input_sha256": input_sha256, "potential": potential_id,
                       "format": RUN_FORMAT}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)
