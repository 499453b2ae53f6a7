"""The MD engine: one replica integrated by an ASE ``MolecularDynamics`` object.

Ensembles (ASE 3.29, ``ase.md.nose_hoover_chain``): ``npt`` → ``MTKNPT`` (full cell
fluctuations), ``npt_iso`` → ``IsotropicMTKNPT``, ``nvt`` → ``NoseHooverChainNVT``, ``nve`` →
``VelocityVerlet``. Forces come from the ASE calculator attached to the atoms: that is the only
interface to the potential.

:class:`AseEngine` is also the *replica view* that observers (:mod:`superion.md.observers`)
read. A batched engine offers one such view per replica. The view is:

- ``masses`` (N,) amu and ``symbols`` (list of N str), fixed for the run;
- ``positions()`` (N, 3) Å, unwrapped; ``momenta()`` (N, 3) ASE units; ``cell()`` (3, 3) Å,
  rows = lattice vectors; ``forces()`` (N, 3) eV/Å of the current positions, or None;
- ``potential_energy()``, ``kinetic_energy()``, ``conserved_energy()`` eV; ``pressure_bar()``
  (NaN when the calculator has no stress); ``volume()`` Å³;
- ``get_state()`` / ``set_state(state)``: every variable the integrator evolves, as arrays
  (what a checkpoint holds); a restored engine continues bitwise.

Arrays returned by the cheap views may be the engine's own buffers: observers copy what they
keep and never write to them.
"""

from __future__ import annotations

import numpy as np

from superion.errors import SuperionError
from superion.md.settings import MDSettings

# Integrator variables that make up the complete state of the ASE MTK/NHC classes (3.29).
_DYN_VARS = ("_q", "_p", "_h", "_p_g", "_eps", "_p_eps", "_volume0", "_cell0")
_CHAIN_VARS = ("_eta", "_p_eta", "_xi", "_p_xi")


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


def integrator_class(ensemble: str):
    """The ASE integrator class of an ensemble name (:data:`superion.md.settings.ENSEMBLES`)."""
    if ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet
    from ase.md.nose_hoover_chain import IsotropicMTKNPT, MTKNPT, NoseHooverChainNVT

    return {"nvt": NoseHooverChainNVT, "npt": MTKNPT, "npt_iso": IsotropicMTKNPT}[ensemble]


def integrator_name(ensemble: str) -> str:
    """Dotted class name of the ensemble's integrator (recorded in metadata.json)."""
    cls = integrator_class(ensemble)
    return f"{cls.__module__}.{cls.__name__}"


class KineticTemperature:
    """T (K) = 2 E_kin / (3 N k_B) from momenta (ASE units) for fixed masses (amu).

    ASE's convention (3N degrees of freedom, total momentum not subtracted). The thermo log and
    the stability guard both use it, so their temperatures agree to the last bit.
    """

    def __init__(self, masses_amu: np.ndarray) -> None:
        from ase import units

        self.inv_m = 1.0 / np.asarray(masses_amu, dtype=float)[:, None]
        self.to_K = 1.0 / (3 * len(self.inv_m) * units.kB)

    def __call__(self, momenta: np.ndarray) -> float:
        return float(np.sum(momenta * momenta * self.inv_m)) * self.to_K


class AseEngine:
    """One replica integrated by an ASE ``MolecularDynamics`` object (see the module docstring).

    Build it *after* setting the momenta: MTK copies positions/momenta on construction.
    """

    def __init__(self, atoms, settings: MDSettings) -> None:
        from ase import units

        self.atoms = atoms
        self.settings = settings
        dt = settings.timestep_fs * units.fs
        cls = integrator_class(settings.ensemble)
        if settings.ensemble == "nve":
            self.dyn = cls(atoms, timestep=dt)
        elif settings.ensemble == "nvt":
            self.dyn = cls(atoms, timestep=dt, temperature_K=settings.temperature_K,
                           tdamp=settings.tdamp_fs * units.fs, tchain=settings.tchain)
        else:
            self.dyn = cls(atoms, timestep=dt, temperature_K=settings.temperature_K,
                           pressure_au=settings.pressure_bar * units.bar, tdamp=settings.tdamp_fs * units.fs,
                           pdamp=settings.pdamp_fs * units.fs, tchain=settings.tchain, pchain=settings.pchain)
        self.masses = atoms.get_masses()
        self.symbols = atoms.get_chemical_symbols()

    def evaluate(self) -> None:
        """Forces of the current positions (before step 1; the calculator caches them for it)."""
        self.atoms.get_forces()

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

    # Replica view ------------------------------------------------------------------
    def momenta(self) -> np.ndarray:
        return self.atoms.arrays["momenta"]

    def positions(self) -> np.ndarray:
        return self.atoms.positions

    def cell(self) -> np.ndarray:
        return self.atoms.cell.array

    def forces(self) -> np.ndarray | None:
        calc = self.atoms.calc
        return None if calc is None else calc.results.get("forces")

    def potential_energy(self) -> float:
        return float(self.atoms.get_potential_energy())

    def kinetic_energy(self) -> float:
        return float(self.atoms.get_kinetic_energy())

    def pressure_bar(self) -> float:
        """Pressure (bar) from the stress including the ideal-gas (kinetic) term; NaN without stress."""
        from ase import units

        try:
            stress = self.atoms.get_stress(voigt=False, include_ideal_gas=True)
        except Exception:  # calculators without stress (some test potentials): pressure unknown
            return float("nan")
        return float(-np.trace(stress) / 3 / units.bar)

    def volume(self) -> float:
        return float(self.atoms.get_volume())

    def conserved_energy(self) -> float:
        """Integrator's conserved quantity (eV); E_pot + E_kin for NVE."""
        if hasattr(self.dyn, "get_conserved_energy"):
            return float(self.dyn.get_conserved_energy())
        return float(self.atoms.get_potential_energy() + self.atoms.get_kinetic_energy())
