"""Relaxation of positions (and cell) with ASE's FrechetCellFilter and a standard optimizer.

:func:`relax_structure` does no file I/O unless a ``trajectory``/``logfile`` is given, so
builders can call it in screening loops. Convergence is judged by ASE on the filter's
generalized forces (atomic forces and, with ``relax_cell``, the stress times volume), so
``fmax_final_eV_A`` below ``fmax`` means converged; the pure atomic force maximum and the
largest stress component are reported as well. ASE's FrechetCellFilter scales the cell
force as virial / N_atoms, so "converged" allows |stress| up to fmax·N/V (for 24-atom NaBH4
at fmax 0.05: ~0.9 GPa); ``max_stress_GPa`` shows what remains.

The relax stage on top of it: :func:`relax_with_report` adds the cluster-integrity check and
the JSON report; :func:`relax_file` is ``superion relax`` (read, load the potential, relax,
write the structure with ``OUT.json`` beside it).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from superion.errors import SimulationError, SuperionError
from superion.units import EV_A3_TO_GPA
from superion.structures.lattice import lattice_parameters
from superion.structures.symmetry import SYMPREC_A, space_group

if TYPE_CHECKING:  # pragma: no cover
    from ase import Atoms

OPTIMIZERS = ("FIRE", "BFGS", "LBFGS")


@dataclass
class RelaxResult:
    """Outcome of one relaxation. Energies eV, lengths Å, angles degrees, volumes Å^3."""

    atoms: Any = field(repr=False)
    converged: bool
    steps: int
    energy_eV: float
    energy_per_atom_eV: float
    fmax_final_eV_A: float
    max_atom_force_eV_A: float
    max_stress_GPa: float | None
    fmax_target_eV_A: float
    max_steps: int
    optimizer: str
    relax_cell: bool
    n_atoms: int
    volume_before_A3: float
    volume_after_A3: float
    lattice_before: dict
    lattice_after: dict
    spacegroup_before: dict
    spacegroup_after: dict
    energy_before_eV: float | None = None

    @property
    def volume_change_percent(self) -> float:
        return 100.0 * (self.volume_after_A3 - self.volume_before_A3) / self.volume_before_A3

    def to_dict(self) -> dict:
        """JSON-ready summary (without the atoms)."""
        d = {k: v for k, v in self.__dict__.items() if k != "atoms"}
        d["volume_change_percent"] = self.volume_change_percent
        return d


def check_relax_settings(fmax: float, max_steps: int, optimizer: str) -> str:
    """Validate settings; return the canonical optimizer name."""
    if not (isinstance(fmax, (int, float)) and math.isfinite(fmax) and fmax > 0):
        raise SuperionError(f"fmax must be > 0 eV/Å, got {fmax}; use e.g. 0.05")
    if int(max_steps) < 0:
        raise SuperionError(f"max_steps must be >= 0, got {max_steps}; use e.g. 500")
    name = str(optimizer).upper()
    if name not in OPTIMIZERS:
        raise SuperionError(f"unknown optimizer '{optimizer}'; use one of {', '.join(OPTIMIZERS)}")
    return name


def relax_structure(
    atoms: "Atoms",
    calculator,
    *,
    fmax: float = 0.05,
    max_steps: int = 500,
    relax_cell: bool = True,
    optimizer: str = "FIRE",
    trajectory: str | os.PathLike | None = None,
    logfile: str | os.PathLike | None = None,
    symprec: float = SYMPREC_A,
    stress_tol_GPa: float | None = 0.1,
) -> RelaxResult:
    """Relax ``atoms`` (a copy; the input is not modified) with ``calculator``.

    fmax in eV/Å; ``relax_cell`` adds the cell via FrechetCellFilter (zero pressure).
    ``stress_tol_GPa`` sets the filter's cell factor so that "converged" also means
    |stress| ≤ stress_tol_GPa (ASE's default factor, N_atoms, tolerates fmax·N/V, which is
    ~1 GPa for small cells); ``None`` keeps ASE's default.
    Per-atom arrays such as ``cluster_id`` are kept on ``result.atoms``. Raises
    SimulationError if the energy or forces become non-finite.
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS, FIRE, LBFGS

    opt_name = check_relax_settings(fmax, max_steps, optimizer)
    work = atoms.copy()
    work.constraints = []
    work.calc = calculator
    before_lat = lattice_parameters(work)
    sg_before = space_group(work, symprec)
    try:
        e0 = float(work.get_potential_energy())
    except Exception as exc:
        raise SimulationError(f"the potential failed on the input structure: {type(exc).__name__}: {exc}") from None
    if not math.isfinite(e0):
        raise SimulationError("energy of the input structure is not finite; check the structure (overlapping atoms?)")

    if relax_cell:
        # cell force = virial / cell_factor = stress·V / cell_factor ≤ fmax  ⇔  stress ≤ fmax·cell_factor/V
        cell_factor = None
        if stress_tol_GPa is not None:
            if not (math.isfinite(stress_tol_GPa) and stress_tol_GPa > 0):
                raise SuperionError(f"stress tolerance must be > 0 GPa, got {stress_tol_GPa}; use e.g. 0.1")
            cell_factor = stress_tol_GPa / EV_A3_TO_GPA * work.get_volume() / fmax
        target = FrechetCellFilter(work, exp_cell_factor=cell_factor)
    else:
        target = work
    cls = {"FIRE": FIRE, "BFGS": BFGS, "LBFGS": LBFGS}[opt_name]
    opt = cls(target, logfile=str(logfile) if logfile else None, trajectory=str(trajectory) if trajectory else None)
    converged = bool(opt.run(fmax=fmax, steps=int(max_steps)))
    steps = int(opt.nsteps)

    energy = float(work.get_potential_energy())
    forces = work.get_forces()
    gen_forces = target.get_forces()
    if not (math.isfinite(energy) and np.isfinite(forces).all()):
        raise SimulationError("relaxation diverged: energy or forces became non-finite; check the structure and potential")
    fmax_final = float(np.sqrt((np.asarray(gen_forces) ** 2).sum(axis=1)).max())
    max_atom = float(np.sqrt((forces**2).sum(axis=1)).max())
    try:
        max_stress = float(np.abs(work.get_stress()).max() * EV_A3_TO_GPA)
    except Exception:  # a calculator without stress (fixed-cell use) is fine
        max_stress = None
    # ASE's own test uses the same generalized forces; keep the flag consistent with them.
    converged = converged and fmax_final < fmax

    out = work.copy()
    out.calc = None
    return RelaxResult(
        atoms=out,
        converged=converged,
        steps=steps,
        energy_eV=energy,
        energy_per_atom_eV=energy / len(work),
        fmax_final_eV_A=fmax_final,
        max_atom_force_eV_A=max_atom,
        max_stress_GPa=max_stress,
        fmax_target_eV_A=float(fmax),
        max_steps=int(max_steps),
        optimizer=opt_name,
        relax_cell=bool(relax_cell),
        n_atoms=len(work),
        volume_before_A3=before_lat["volume_A3"],
        volume_after_A3=float(work.get_volume()),
        lattice_before=before_lat,
        lattice_after=lattice_parameters(work),
        spacegroup_before=sg_before,
        spacegroup_after=space_group(work, symprec),
        energy_before_eV=e0,
    )


# ---------------------------------------------------------------- the relax stage (superion relax)
RELAXED_SUFFIXES = (".cif", ".extxyz", ".xyz", ".vasp")


@dataclass
class Relaxed:
    """Outcome of the relax stage: the :class:`RelaxResult` (``result.atoms`` carries the cluster
    labels) and the JSON report."""

    result: RelaxResult
    report: dict

    @property
    def clusters_intact(self) -> bool:
        return bool(self.report["clusters_intact"])

    def warnings(self) -> list[str]:
        """One-line messages for the user: clusters changed, relaxation not converged."""
        out = []
        r, rep = self.result, self.report
        if not self.clusters_intact:
            out.append(f"clusters changed during relaxation ({rep['clusters_before']} -> {rep['clusters_after']}); "
                       "the potential or starting structure may be bad")
        if not r.converged:
            out.append(f"relaxation NOT converged after {r.steps} steps (fmax {r.fmax_final_eV_A:.3f} > "
                       f"{r.fmax_target_eV_A} eV/Å); raise --max-steps or start from a better structure")
        return out


def relax_with_report(
    atoms: "Atoms",
    potential,
    *,
    fmax: float = 0.05,
    max_steps: int = 500,
    stress_tol_GPa: float | None = 0.1,
    optimizer: str = "FIRE",
    relax_cell: bool = True,
    trajectory: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
) -> Relaxed:
    """:func:`relax_structure` with ``potential`` (a LoadedPotential), checked for cluster integrity.

    Clusters are the stored labels of ``atoms`` (else from connectivity) before, and from
    connectivity after; "intact" means the same counts of each type and of labelled atoms. The
    relaxed atoms carry the labels from before when intact, else the new ones. The report names
    the input file ``source`` (path + sha256; None if not given), the potential's record and
    the settings; its ``output`` is None (set by :func:`relax_file`).
    """
    from superion import __version__
    from superion.provenance import file_record
    from superion.structures.clusters import label_clusters, labels_for

    before = labels_for(atoms)
    res = relax_structure(
        atoms, potential.calculator(), fmax=fmax, max_steps=max_steps, relax_cell=relax_cell,
        stress_tol_GPa=stress_tol_GPa, optimizer=optimizer, trajectory=trajectory,
    )
    after = label_clusters(res.atoms)
    intact = after.counts() == before.counts() and bool((after.cluster_id >= 0).sum() == (before.cluster_id >= 0).sum())
    (before if intact else after).attach(res.atoms)
    report = {
        "superion_version": __version__,
        "command": "relax",
        "input": file_record(source) if source is not None else None,
        "output": None,
        "potential": potential.record(),
        "settings": {"fmax_eV_A": fmax, "stress_tol_GPa": stress_tol_GPa, "max_steps": max_steps,
                     "optimizer": res.optimizer, "relax_cell": relax_cell,
                     "filter": "FrechetCellFilter" if relax_cell else None},
        "formula": res.atoms.get_chemical_formula(mode="hill"),
        **res.to_dict(),
        "clusters_before": before.counts(),
        "clusters_after": after.counts(),
        "clusters_intact": intact,
    }
    return Relaxed(res, report)


def relax_file(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    potential,
    device: str = "auto",
    threads: int | None = None,
    fmax: float = 0.05,
    max_steps: int = 500,
    optimizer: str = "FIRE",
    models_dir: str | os.PathLike | None = None,
    **settings,
) -> Relaxed:
    """``superion relax``: read ``path`` (:func:`superion.structures.io.read_atoms`), load
    ``potential`` (name or LoadedPotential; by name from ``models_dir`` first), :func:`relax_with_report` (``settings``: its other
    keywords), write ``out`` (.cif/.extxyz/.vasp; extxyz keeps the cluster labels) and
    ``OUT.json``. Output name and settings are checked before anything is read or loaded.
    A relaxation that does not converge is written all the same (``converged: false``)."""
    from superion.structures.io import check_output_path, read_atoms, write_with_report

    out_path = check_output_path(out, allowed=RELAXED_SUFFIXES)
    check_relax_settings(fmax, max_steps, optimizer)
    atoms = read_atoms(path)
    from superion.potential import load_checked

    lp = load_checked(potential, device=device, threads=threads, symbols=set(atoms.get_chemical_symbols()),
                      models_dir=models_dir)
    relaxed = relax_with_report(atoms, lp, fmax=fmax, max_steps=max_steps, optimizer=optimizer, source=path,
                                **settings)
    relaxed.report["output"] = str(out_path)
    write_with_report(relaxed.result.atoms, out_path, relaxed.report)
    return relaxed
