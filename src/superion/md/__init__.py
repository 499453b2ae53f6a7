"""MD stage: canonical NVT/NPT molecular dynamics with resumable, checkpointed output.

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

Modules:

* :mod:`~superion.md.settings` – :class:`MDSettings`, validation, the settings hash;
* :mod:`~superion.md.engine` – :class:`AseEngine` (one replica behind an ASE integrator; also
  the replica view observers read), :func:`initial_momenta`;
* :mod:`~superion.md.observers` – recorders and guards called after steps, each on its own
  interval (thermo rows, frames, checkpoints, stability guard, progress);
* :mod:`~superion.md.loop` – :class:`StepLoop`, the step loop that calls them in order;
* :mod:`~superion.md.rundir` – :class:`RunDirectory`: files, metadata, fresh/resume/complete;
* :mod:`~superion.md.run` – :func:`run_md`, composing the above;
* :mod:`~superion.md.storage` (thermo log, checkpoint files), :mod:`~superion.md.masses`.

Forces come from one ASE calculator attached to the atoms: that is the only interface to the
potential. Storage (``superion.trajectory``, ``md.storage``) only sees arrays, so a batched
multi-replica engine can be added beside :class:`AseEngine` and reuse the observers.

Restart: the checkpoint (``checkpoint.npz``, atomic, every ``checkpoint_every`` steps) holds
every evolving integrator variable plus the frame/row counts it matches; a rerun truncates
``trajectory.h5``/``thermo.csv`` to those counts and continues, bitwise identical on CPU with a
fixed thread count and a calculator that is a pure function of positions (M3GNet is: its graph
is rebuilt every call). The only random numbers are the seeded initial velocities (NHC/MTK are
deterministic), so no RNG state is needed. Tests pass any ASE calculator through
``run_md(calculator=...)``; the CLI only accepts real potentials.
Run directory and failure rules: see docs/architecture.md ("MD run directory").
"""

from superion.md.engine import AseEngine, initial_momenta
from superion.md.observers import StabilityGuard
from superion.md.run import RunResult, run_md
from superion.md.settings import ENSEMBLES, MDSettings

__all__ = ["AseEngine", "ENSEMBLES", "MDSettings", "RunResult", "StabilityGuard", "initial_momenta", "run_md"]
