"""MD engine: canonical NVT/NPT molecular dynamics with resumable, checkpointed output.

Ensembles (ASE 3.29, ``ase.md.nose_hoover_chain``):

* ``npt``     – ``MTKNPT``: Martyna–Tobias–Klein, full cell fluctuations (default; orthorhombic
  and monoclinic cells must relax each axis).
* ``npt_iso`` – ``IsotropicMTKNPT``: isotropic volume fluctuations only.
* ``nvt``     – ``NoseHooverChainNVT`` (deterministic, so restarts are bitwise exact).
* ``nve``     – velocity Verlet (energy-conservation checks).

Defaults: timestep 1 fs, pressure 1 bar, thermostat damping ``tdamp`` 100 fs (= 100 steps,
the value ASE recommends), barostat damping ``pdamp`` 1000 fs (volume relaxes over ~1 ps,
slow enough not to couple to lattice vibrations), Nosé–Hoover chains of length 3.
Velocities: Maxwell–Boltzmann at the target temperature from ``seed``, total momentum
removed, set *before* the integrator is built (MTK copies positions/momenta on construction).

Forces come from one ASE calculator attached to the atoms: that is the only interface to the
potential. The integrator sits behind :class:`AseEngine` (``step``, ``get_state``,
``set_state``, ``conserved_energy``), and storage (``superion.trajectory``) only sees arrays,
so a batched multi-replica engine can be added beside it.

Restart: the checkpoint (``checkpoint.npz``, atomic, every ``checkpoint_every`` steps) holds
every evolving integrator variable plus the frame/row counts it matches; a rerun truncates
``trajectory.h5``/``thermo.csv`` to those counts and continues, bitwise identical on CPU with a
fixed thread count and a calculator that is a pure function of positions (M3GNet is: its graph
is rebuilt every call). The only random numbers are the seeded initial velocities (NHC/MTK are
deterministic), so no RNG state is needed. Tests pass any ASE calculator through
``run_md(calculator=...)``; the CLI only accepts real potentials.
Run directory and failure rules: see docs/architecture.md ("MD run directory").
The step loop checks temperature and finiteness every step (microseconds), atom overlap
every ``guard_every`` steps, and writes thermo rows/frames every ``save_every`` steps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from superion.atomic import file_sha256, write_json
from superion.errors import SimulationError, SuperionError
from superion.trajectory import (
    CHECKPOINT_NAME,
    COMPLETE_NAME,
    METADATA_NAME,
    THERMO_NAME,
    TRAJECTORY_NAME,
    H5TrajectoryWriter,
    ThermoLog,
    read_checkpoint,
    write_checkpoint,
)

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
        from superion.masses import parse_mass_scale

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


# --------------------------------------------------------------------------- helpers
def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)



def read_structure(path: str | os.PathLike):
    """Ordered periodic structure from a CIF or (prepared) extended-XYZ file, last frame."""
    from ase.io import read

    p = Path(path)
    if not p.is_file():
        raise SuperionError(f"structure file {p} not found; give a CIF or a prepared .extxyz")
    try:
        atoms = read(str(p), index=-1)
    except Exception as exc:
        raise SuperionError(f"cannot read structure {p} ({type(exc).__name__}: {exc}); give a CIF or .extxyz") from None
    occ = atoms.info.get("occupancy")
    if occ and any(float(v) < 0.999 for site in occ.values() for v in site.values()):
        raise SuperionError(f"{p} has partially occupied sites; order it first (superion prepare)")
    if len(atoms) == 0:
        raise SuperionError(f"{p} contains no atoms")
    if not atoms.pbc.all() or atoms.cell.volume <= 1e-6:
        raise SuperionError(f"{p} is not a periodic 3-D crystal (need a cell and pbc in all directions)")
    atoms.calc = None
    atoms.set_constraint()
    return atoms


def initial_momenta(masses_amu: np.ndarray, temperature_K: float, seed: int) -> np.ndarray:
    """Maxwell–Boltzmann momenta (ASE units) with zero total momentum.

    Each component is sqrt(m kT)·z with z ~ N(0, 1) from ``numpy.random.default_rng(seed)``,
    so the mean kinetic energy per atom (3/2 kT) does not depend on the mass and velocities
    scale as 1/sqrt(m).
    """
    from ase import units

    m = np.asarray(masses_amu, dtype=float)[:, None]
    rng = np.random.default_rng(seed)
    p = rng.standard_normal((len(m), 3)) * np.sqrt(m * units.kB * temperature_K)
    p -= m * (p.sum(axis=0) / m.sum())  # zero total momentum (no drift of the whole crystal)
    return p


def software_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from superion import __version__

    out = {"superion": __version__, "python": sys.version.split()[0]}
    for dist in ("matgl", "ase", "torch", "torch-geometric", "numpy", "h5py"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "missing"
    return out


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- engine
# Integrator variables that make up the complete state of the ASE MTK/NHC classes (3.29).
_DYN_VARS = ("_q", "_p", "_h", "_p_g", "_eps", "_p_eps", "_volume0", "_cell0")
_CHAIN_VARS = ("_eta", "_p_eta", "_xi", "_p_xi")


class AseEngine:
    """One replica integrated by an ASE ``MolecularDynamics`` object.

    Forces/stress come from ``atoms.calc`` (any ASE calculator). ``get_state``/``set_state``
    capture every variable the integrator evolves, so a restored engine continues bitwise.
    """

    def __init__(self, atoms, settings: MDSettings) -> None:
        from ase import units

        self.atoms = atoms
        self.settings = settings
        dt = settings.timestep_fs * units.fs
        T = settings.temperature_K
        ens = settings.ensemble
        if ens == "nve":
            from ase.md.verlet import VelocityVerlet

            self.dyn = VelocityVerlet(atoms, timestep=dt)
        elif ens == "nvt":
            from ase.md.nose_hoover_chain import NoseHooverChainNVT

            self.dyn = NoseHooverChainNVT(atoms, timestep=dt, temperature_K=T, tdamp=settings.tdamp_fs * units.fs,
                                          tchain=settings.tchain)
        else:
            from ase.md.nose_hoover_chain import IsotropicMTKNPT, MTKNPT

            cls = MTKNPT if ens == "npt" else IsotropicMTKNPT
            self.dyn = cls(atoms, timestep=dt, temperature_K=T, pressure_au=settings.pressure_bar * units.bar,
                           tdamp=settings.tdamp_fs * units.fs, pdamp=settings.pdamp_fs * units.fs,
                           tchain=settings.tchain, pchain=settings.pchain)
        self.masses = atoms.get_masses()

    def step(self) -> None:
        self.dyn.step()

    # State -------------------------------------------------------------------------
    def _holders(self):
        yield "", self.dyn
        for name in ("_thermostat", "_barostat"):
            obj = getattr(self.dyn, name, None)
            if obj is not None:
                yield name[1:] + ".", obj

    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of all evolving variables (positions, momenta, cell, chain variables)."""
        state = {
            "atoms.positions": self.atoms.get_positions(),
            "atoms.momenta": self.atoms.get_momenta(),
            "atoms.cell": np.array(self.atoms.cell.array),
        }
        for prefix, obj in self._holders():
            for var in _DYN_VARS + _CHAIN_VARS:
                if var in vars(obj):
                    state[prefix + var] = np.array(getattr(obj, var), dtype=float, copy=True)
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.atoms.set_cell(np.asarray(state["atoms.cell"]), scale_atoms=False)
        self.atoms.set_positions(np.asarray(state["atoms.positions"]))
        self.atoms.set_momenta(np.asarray(state["atoms.momenta"]))
        for prefix, obj in self._holders():
            for var in _DYN_VARS + _CHAIN_VARS:
                key = prefix + var
                if var in vars(obj):
                    if key not in state:
                        raise SuperionError(f"checkpoint lacks integrator variable {key}; delete the run directory")
                    val = np.array(state[key], dtype=float, copy=True)
                    # scalars (IsotropicMTKNPT's _eps, _p_eps, _volume0) stay Python floats
                    setattr(obj, var, float(val) if val.ndim == 0 else val)
        if hasattr(self.dyn, "_update_atoms"):
            self.dyn._update_atoms()

    def conserved_energy(self) -> float:
        """Integrator's conserved quantity (eV); E_pot + E_kin for NVE."""
        if hasattr(self.dyn, "get_conserved_energy"):
            return float(self.dyn.get_conserved_energy())
        return float(self.atoms.get_potential_energy() + self.atoms.get_kinetic_energy())

    # Cheap views -------------------------------------------------------------------
    def momenta(self) -> np.ndarray:
        return self.atoms.arrays["momenta"]

    def positions(self) -> np.ndarray:
        return self.atoms.positions

    def forces(self) -> np.ndarray | None:
        calc = self.atoms.calc
        return None if calc is None else calc.results.get("forces")


# --------------------------------------------------------------------------- guard
class StabilityGuard:
    """Stops an unphysical run with :class:`SimulationError` naming the step and the cause."""

    def __init__(self, settings: MDSettings, masses: np.ndarray) -> None:
        from ase import units

        self.t_max = settings.max_temperature_factor * settings.temperature_K
        self.factor = settings.max_temperature_factor
        self.target = settings.temperature_K
        self.min_d = settings.min_distance_A
        self.inv_m = 1.0 / np.asarray(masses, dtype=float)[:, None]
        self.to_K = 1.0 / (3 * len(masses) * units.kB)  # ASE convention: 3N degrees of freedom

    def temperature(self, p: np.ndarray) -> float:
        return float(np.sum(p * p * self.inv_m)) * self.to_K  # 2 E_kin / (3 N k_B)

    def check_fast(self, step: int, engine: AseEngine) -> None:
        """Every step: finite positions/forces and T below the limit (microseconds)."""
        T = self.temperature(engine.momenta())
        if not math.isfinite(T):
            raise SimulationError(f"step {step}: velocities became NaN/inf (integration blew up); "
                                  "reduce --timestep-fs or check the structure")
        if T > self.t_max:
            raise SimulationError(
                f"step {step}: temperature {T:.0f} K exceeds {self.factor:g} x target ({self.target:g} K); "
                "the run exploded: reduce --timestep-fs, relax the structure, or check the potential"
            )
        if not np.isfinite(engine.positions()).all():
            raise SimulationError(f"step {step}: positions became NaN/inf; reduce --timestep-fs")
        f = engine.forces()
        if f is not None and not np.isfinite(f).all():
            raise SimulationError(f"step {step}: forces became NaN/inf; the potential left its valid range")

    def check_overlap(self, step: int, atoms) -> None:
        """Every ``guard_every`` steps: no two atoms closer than ``min_distance_A``."""
        if self.min_d <= 0:
            return
        i, j, d = _close_pairs(atoms, self.min_d)
        if len(d):
            k = int(np.argmin(d))
            sym = atoms.get_chemical_symbols()
            raise SimulationError(
                f"step {step}: atoms {i[k]} ({sym[i[k]]}) and {j[k]} ({sym[j[k]]}) are {d[k]:.2f} A apart "
                f"(< {self.min_d:g} A): atoms overlap; reduce --timestep-fs or check the structure/potential"
            )


def _close_pairs(atoms, r_A: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j, d) closer than ``r_A`` (periodic, any cell, unwrapped positions fine).

    pymatgen's C neighbour search takes ~3 ms for 1024 atoms, ASE's ~5x longer; both work.
    """
    try:
        from pymatgen.optimization.neighbors import find_points_in_spheres
    except ImportError:  # pragma: no cover - pymatgen is a dependency
        from ase.neighborlist import neighbor_list

        return neighbor_list("ijd", atoms, r_A)
    pos = np.ascontiguousarray(atoms.positions, dtype=float)
    i, j, img, d = find_points_in_spheres(pos, pos, r=float(r_A), pbc=np.ones(3, dtype=np.int64),
                                          lattice=np.ascontiguousarray(atoms.cell.array, dtype=float), tol=1e-8)
    keep = ~((i == j) & (np.abs(img).sum(axis=1) == 0))  # drop each atom's pair with itself
    return i[keep], j[keep], d[keep]


# --------------------------------------------------------------------------- run
def _thermo_row(step: int, phase: str, engine: AseEngine, guard: StabilityGuard, dt_fs: float) -> dict:
    from ase import units

    atoms = engine.atoms
    epot = float(atoms.get_potential_energy())
    ekin = float(atoms.get_kinetic_energy())
    try:
        stress = atoms.get_stress(voigt=False, include_ideal_gas=True)
        p_bar = float(-np.trace(stress) / 3 / units.bar)
    except Exception:  # calculators without stress (some test potentials): pressure unknown
        p_bar = float("nan")
    a, b, c = atoms.cell.lengths()
    return {
        "step": step, "time_fs": step * dt_fs, "phase": phase,
        "T_K": guard.temperature(engine.momenta()), "P_bar": p_bar, "volume_A3": float(atoms.get_volume()),
        "a_A": float(a), "b_A": float(b), "c_A": float(c),
        "epot_eV": epot, "ekin_eV": ekin, "conserved_eV": engine.conserved_energy(),
    }


def _prepare_atoms(structure_path: Path, settings: MDSettings):
    """(atoms with scaled masses, labels, base masses) — all input checks, no model needed."""
    from superion.clusters import labels_for
    from superion.masses import scaled_masses

    atoms = read_structure(structure_path)
    labels = labels_for(atoms)
    base = atoms.get_masses()
    masses = scaled_masses(base, labels, settings.mass_scale)
    atoms.set_masses(masses)
    return atoms, labels, base


def settings_hash(settings: MDSettings, input_sha256: str, potential_id: str) -> str:
    blob = json.dumps({"settings": settings.hashed(), "input_sha256": input_sha256, "potential": potential_id,
                       "format": RUN_FORMAT}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
    log=print,
) -> RunResult:
    """Run (or resume, or skip if complete) one MD simulation into ``out_dir``.

    Give either ``potential`` (name or path, see ``superion.potential``) or ``calculator`` (any
    ASE calculator; for tests and custom models — recorded as ``custom:<class>``).
    Raises SuperionError for bad input and SimulationError when the stability guard trips.
    """
    t_wall = time.perf_counter()
    settings.validate()
    structure = Path(structure)
    out = Path(out_dir)
    if (potential is None) == (calculator is None):
        raise SuperionError("give exactly one of a potential name (--potential) or a calculator")
    atoms, labels, base_masses = _prepare_atoms(structure, settings)
    input_sha = file_sha256(structure)
    potential_id = str(potential) if potential is not None else f"custom:{type(calculator).__name__}"
    if potential is not None and legacy is not None:  # an explicit aggregation choice changes the forces
        potential_id += f"|legacy={bool(legacy)}"
    shash = settings_hash(settings, input_sha, potential_id)

    # ---- decide: fresh start, resume, or no-op --------------------------------------
    if out.exists() and not out.is_dir():
        raise SuperionError(f"output {out} exists and is not a directory; choose another --out")
    meta_path, ckpt_path = out / METADATA_NAME, out / CHECKPOINT_NAME
    old_meta = None
    if meta_path.exists():
        try:
            old_meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            raise SuperionError(f"{meta_path} is unreadable; delete {out} and rerun") from None
        if old_meta.get("settings_hash") != shash:
            raise SuperionError(
                f"{out} holds a run with different settings (hash {old_meta.get('settings_hash')} vs {shash}); "
                "use another --out or delete that directory"
            )
        if (out / COMPLETE_NAME).exists():
            log(f"superion md: {out} is already complete; nothing to do")
            n = old_meta.get("n_frames", 0)
            return RunResult(out, "already-complete", settings.total_steps, n, wall_s=time.perf_counter() - t_wall)
    elif (out / COMPLETE_NAME).exists():
        raise SuperionError(f"{out} has {COMPLETE_NAME} but no {METADATA_NAME}; delete it and rerun")

    # ---- potential -----------------------------------------------------------------
    pot_meta: dict[str, Any]
    if calculator is None:
        from superion.potential import load_potential, set_threads

        set_threads(threads)
        lp = load_potential(potential, device=device, legacy=legacy)
        lp.check_elements(atoms.get_chemical_symbols())
        calculator = lp.calculator()
        pot_meta = {"name": lp.name, "requested": str(potential), "sha256": lp.sha256, "legacy": lp.legacy,
                    "device": lp.device, "path": str(lp.path) if lp.path else None}
    else:
        pot_meta = {"name": potential_id, "sha256": None, "legacy": None, "device": "cpu", "path": None}
        if threads is not None:
            from superion.potential import set_threads

            set_threads(threads)
    if old_meta is not None and old_meta.get("potential", {}).get("sha256") != pot_meta["sha256"]:
        raise SuperionError(
            f"potential '{potential_id}' now has different weights (sha256) than the run in {out}; "
            "use another --out or restore the model"
        )

    resume = ckpt_path.exists() and old_meta is not None
    meta = {
        "format": RUN_FORMAT,
        "status": "running",
        "message": "",
        "settings": dataclasses.asdict(settings),
        "settings_hash": shash,
        "input": {"path": str(structure.resolve()), "sha256": input_sha},
        "potential": pot_meta,
        "versions": software_versions(),
        "device": pot_meta["device"],
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
        "units": {"time": "fs", "length": "Angstrom", "velocity": "Angstrom/fs", "mass": "amu",
                  "energy": "eV", "pressure": "bar", "temperature": "K (2 E_kin / 3 N k_B)"},
        "started_utc": (old_meta or {}).get("started_utc", _now()),
        "resumed_utc": list((old_meta or {}).get("resumed_utc", [])),
        "n_frames": 0,
    }

    atoms.calc = calculator
    if resume:
        state, info = read_checkpoint(ckpt_path)
        if info.get("settings_hash") != shash:
            raise SuperionError(f"checkpoint in {out} belongs to other settings; delete {out} and rerun")
        start_step = int(info["step"])
        atoms.set_momenta(np.asarray(state["atoms.momenta"]))
        engine = AseEngine(atoms, settings)
        engine.set_state(state)
        writer = H5TrajectoryWriter.open_append(out / TRAJECTORY_NAME, keep_frames=int(info["n_frames"]))
        thermo = ThermoLog(out / THERMO_NAME, keep_rows=int(info["n_thermo_rows"]))
        meta["resumed_utc"].append(_now())
        log(f"superion md: resuming {out} from step {start_step} of {settings.total_steps}")
    else:
        start_step = 0
        out.mkdir(parents=True, exist_ok=True)
        # A leftover from a run killed before its first checkpoint is not worth keeping.
        (out / COMPLETE_NAME).unlink(missing_ok=True)
        atoms.set_momenta(initial_momenta(atoms.get_masses(), settings.temperature_K, settings.seed))
        engine = AseEngine(atoms, settings)  # after the velocities: MTK copies them here
        writer = H5TrajectoryWriter.create(
            out / TRAJECTORY_NAME, symbols=atoms.get_chemical_symbols(), numbers=atoms.numbers,
            masses_amu=atoms.get_masses(), metadata={k: meta[k] for k in ("settings", "settings_hash", "input",
                                                                          "potential", "versions", "seed",
                                                                          "mass_scale", "cluster_counts")},
            labels=labels, temperature_K=settings.temperature_K, save_velocities=settings.save_velocities,
            dtype=settings.trajectory_dtype, creator_version=meta["versions"]["superion"])
        thermo = ThermoLog(out / THERMO_NAME)
    meta["integrator"] = f"{type(engine.dyn).__module__}.{type(engine.dyn).__name__}"
    write_json(meta_path, meta)

    guard = StabilityGuard(settings, engine.masses)
    from ase import units

    vel_factor = units.fs / engine.masses[:, None]  # momenta (ASE) -> velocities in A/fs
    dt_fs = settings.timestep_fs
    M, total = settings.equilibration_steps, settings.total_steps
    save, ckpt = settings.save_every, settings.checkpoint_every

    def record(step: int) -> None:
        phase = "production" if step >= M else "equilibration"
        thermo.append(_thermo_row(step, phase, engine, guard, dt_fs))
        if step >= M:
            vel = engine.momenta() * vel_factor if settings.save_velocities else None
            writer.append(step, step * dt_fs, engine.positions(), engine.atoms.cell.array, vel)

    def checkpoint(step: int) -> None:
        # Order matters: data first (flushed), then the checkpoint that points at it.
        writer.flush()
        thermo.flush()
        write_checkpoint(ckpt_path, engine.get_state(), {
            "step": step, "n_frames": writer.n_frames, "n_thermo_rows": thermo.n_rows,
            "settings_hash": shash, "format": RUN_FORMAT,
        })

    from tqdm import tqdm

    bar = tqdm(total=total, initial=start_step, unit="step", desc="md", dynamic_ncols=True,
               disable=not sys.stderr.isatty(), smoothing=0.05)
    step = start_step
    t0 = None
    # An exploding run overflows inside the thermostat; the guard reports it, numpy need not.
    errstate = np.errstate(over="ignore", invalid="ignore")
    errstate.__enter__()
    try:
        if not resume:  # a fresh run; a resume from the step-0 checkpoint has recorded step 0 already
            engine.atoms.get_forces()  # evaluates the starting structure once (cached for step 1)
            guard.check_fast(0, engine)
            guard.check_overlap(0, engine.atoms)
            record(0)
            checkpoint(0)
        t0, s0, c0 = time.perf_counter(), start_step, time.process_time()
        for step in range(start_step + 1, total + 1):
            try:
                engine.step()
            except SimulationError:
                raise
            except Exception as exc:
                # A calculator failing on exploded coordinates is a simulation failure, not a bug.
                guard.check_fast(step, engine)
                if not np.isfinite(engine.positions()).all():
                    raise SimulationError(f"step {step}: positions became NaN/inf") from exc
                raise
            guard.check_fast(step, engine)
            if step % settings.guard_every == 0:
                guard.check_overlap(step, engine.atoms)
            if step % save == 0:
                record(step)
                if step % ckpt == 0 or step == total:
                    checkpoint(step)
                if not bar.disable:
                    rate = (step - s0) / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix_str(f"{rate * dt_fs * 86400 / 1000:.1f} ps/day", refresh=False)
            bar.update(1)
    except SimulationError as exc:
        meta.update(status="failed", message=str(exc), failed_step=step, finished_utc=_now(),
                    n_frames=writer.n_frames)
        write_json(meta_path, meta)
        raise
    except BaseException as exc:
        meta.update(status="interrupted", message=f"{type(exc).__name__}: {exc}", n_frames=writer.n_frames)
        write_json(meta_path, meta)
        raise
    finally:
        errstate.__exit__(None, None, None)
        loop_s = time.perf_counter() - t0 if t0 is not None else 0.0
        loop_cpu_s = time.process_time() - c0 if t0 is not None else 0.0
        n_frames = writer.n_frames
        bar.close()
        writer.close()
        thermo.close()

    wall = time.perf_counter() - t_wall
    loop_steps = total - start_step
    meta.update(status="complete", message="", finished_utc=_now(), n_frames=n_frames, wall_s=wall,
                steps_per_s=loop_steps / loop_s if loop_s > 0 else None)
    write_json(meta_path, meta)
    write_json(out / COMPLETE_NAME, {"status": "complete", "settings_hash": shash, "steps": total,
                                     "n_frames": n_frames, "finished_utc": meta["finished_utc"]})
    return RunResult(out, "complete", total, n_frames,
                     resumed_from_step=start_step if resume else None, wall_s=wall, loop_s=loop_s,
                     loop_cpu_s=loop_cpu_s, loop_steps=loop_steps)
